/**
 * Shared set-up of the framework integration suites (AI SDK, LangChain.js):
 * keyplex's provider simulator served in-process through msw, a manager over
 * its keys, and the events that manager emits. Fake keys only.
 */
import { setupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { KeyManager } from '../../src/index';
import { ProviderSimulator, type FaultOptions, type KeyTally, type SimKeyOptions } from '../../src/testing';
import { simulatorHandlers } from '../../src/testing/msw';
import { record } from '../support/events';
import { fakeKey } from '../support/fake-keys';

/** The simulator's clock: fixed, so a key's rate window never refills during a test. */
const T0 = 1_700_000_040_000;

/** The model every test asks for; keyplex's price table knows it, so costs are not null. */
export const MODEL = 'gpt-4.1';
/** The embedding model the simulator also serves (priced by keyplex too). */
export const EMBEDDING_MODEL = 'text-embedding-3-small';

const mswServer = setupServer();
const managers: KeyManager[] = [];

/** Installs the msw server and closes every manager after each test. Call once at the top of a suite. */
export function useSimulator(): void {
  beforeAll(() => mswServer.listen({ onUnhandledFrame: 'error' }));
  afterEach(async () => {
    mswServer.resetHandlers();
    await Promise.all(managers.splice(0).map((m) => m.close()));
  });
  afterAll(() => mswServer.close());
}

/** What {@link simulated} sets up. */
export interface SimulatedOptions {
  /** The provider's keys. Default: three fake keys. Pass key options to limit one. */
  keys?: (string | SimKeyOptions)[];
  /** Faults the simulated provider injects. Default: none. */
  faults?: FaultOptions[];
}

/**
 * A simulated provider `sim` serving {@link MODEL} and {@link EMBEDDING_MODEL},
 * and a manager over the same keys with fast retries. Returns the manager, the
 * simulator and the recorded events.
 */
export function simulated({ keys = [fakeKey('a'), fakeKey('b'), fakeKey('c')], faults }: SimulatedOptions = {}) {
  const sim = new ProviderSimulator({ now: () => T0, providers: [{ id: 'sim', keys, models: [MODEL, EMBEDDING_MODEL], faults }] });
  mswServer.use(...simulatorHandlers(sim));
  const secrets = keys.map((k) => (typeof k === 'string' ? k : k.key));
  const manager = new KeyManager({
    providers: { sim: { baseURL: sim.baseURL('sim'), keys: secrets, models: [MODEL, EMBEDDING_MODEL] } },
    retry: { baseDelayMs: 0 },
  });
  managers.push(manager);
  const events = {
    request: record(manager, 'request'),
    attempt: record(manager, 'attempt'),
    success: record(manager, 'success'),
    failure: record(manager, 'failure'),
    retry: record(manager, 'retry'),
    cooldown: record(manager, 'key:cooldown'),
  };
  /** The simulator's tally of each key, in the order given. */
  const tallies = (): KeyTally[] => {
    const byKey = sim.tallies().sim!.keys;
    return secrets.map((k) => byKey[k]!);
  };
  return { sim, manager, events, secrets, tallies };
}

/** What {@link simulated} returns. */
export type Simulated = ReturnType<typeof simulated>;

/**
 * {@link simulated} with two keys, the first of which has used up its one
 * request a minute behind keyplex's back (a direct call to the simulator), so
 * that keyplex's next request on that key gets a 429 it did not predict.
 */
export async function simulatedWithLimitedKey(): Promise<Simulated> {
  const limited = fakeKey('limited');
  const setup = simulated({ keys: [{ key: limited, rpm: 1 }, fakeKey('b')] });
  const response = await fetch(`${setup.sim.baseURL('sim')}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${limited}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'warm up' }], max_tokens: 1 }),
  });
  await response.arrayBuffer();
  if (response.status !== 200) throw new Error(`expected 200 from the simulator, got ${response.status}`);
  return setup;
}

/** After two calls on {@link simulatedWithLimitedKey}: one 429 on the limited key, retried on the other, both calls served. */
export function expectRateLimitMovedOn({ events, tallies }: Simulated): void {
  expect(tallies().map((t) => t.rateLimited)).toEqual([1, 0]);
  expect(tallies()[1]!.successes).toBe(2);
  expect(events.retry).toMatchObject([{ reason: 'rate_limit', status: 429 }]);
  expect(events.cooldown).toHaveLength(1);
  expect(events.success.map((e) => e.attempts).sort()).toEqual([1, 2]);
  expect(events.failure).toHaveLength(0);
}

/** After one call that failed on every attempt: the framework sent it once, keyplex tried it on several keys. */
export function expectRetriedByKeyplexOnly({ events, sim }: Simulated): void {
  expect(events.request).toHaveLength(1);
  expect(events.attempt.length).toBeGreaterThan(1);
  expect(sim.tallies().sim!.requests).toBe(events.attempt.length);
  expect(new Set(events.attempt.map((e) => e.keyId)).size).toBeGreaterThan(1);
  expect(events.failure).toHaveLength(1);
}
