/**
 * What attempts still in flight on a removed key do when they answer: a 429,
 * a 401 or failures that would trip its circuit change nothing any more
 * (no event, no timer, nothing published), and a key added back under the
 * same id is not touched by what the old one's attempts report.
 */
import { afterEach, describe, expect, test, vi } from 'vitest';
import { useManagers } from '../support/scaffold';
import { chatReply, deferred, errorReply, keyRing, provider } from '../support/upstream';
import '../support/setup';
import { until } from '../support/time';
import type { KeyManager } from '../../src/index';

const ONE = 'https://api.one.test/v1';
const BODY = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hi' }] };
const CONCURRENT = 60;

const manage = useManagers({ rateLimiting: { coldStart: 'open' }, retry: { baseDelayMs: 0 }, circuitBreaker: { key: { policy: { kind: 'consecutive', threshold: 3 }, openMs: 30_000 }, deployment: false } });
const gates: (() => void)[] = [];
afterEach(() => {
  for (const open of gates.splice(0)) open();
  vi.unstubAllGlobals();
  vi.useRealTimers();
});

/** Every event naming key `b`, from now on. */
function aboutB(manager: KeyManager): string[] {
  const seen: string[] = [];
  for (const name of ['key:cooldown', 'key:disabled', 'key:recovered', 'key:removed', 'key:added', 'circuit:open', 'circuit:half-open', 'circuit:close'] as const) {
    manager.on(name, (payload: { keyId?: string }) => {
      if (payload.keyId === 'b') seen.push(name);
    });
  }
  return seen;
}

/**
 * Timers keyplex's own code sets from now on and has not cleared nor run
 * (the HTTP stack under msw keeps its own: those are not counted), by where
 * they were set.
 */
function keyplexTimers(): { pending(): string[] } {
  const set = globalThis.setTimeout;
  const clear = globalThis.clearTimeout;
  const live = new Map<unknown, string>();
  vi.stubGlobal('setTimeout', (fn: () => void, ms?: number) => {
    const where = new Error().stack!.split('\n').slice(2).find((line) => line.includes('/src/')) ?? '';
    const timer = set(() => {
      live.delete(timer);
      fn();
    }, ms);
    if (where !== '') live.set(timer, where.trim());
    return timer;
  });
  vi.stubGlobal('clearTimeout', (timer: ReturnType<typeof setTimeout> | undefined) => {
    live.delete(timer);
    clear(timer);
  });
  return { pending: () => [...live.values()] };
}

/** Keys a, b, c; the first CONCURRENT calls are held, then those on key b answer `onB`; everything else answers 200. */
async function heldOnB(onB: () => Response) {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  const ring = keyRing('a', 'b', 'c');
  const gate = deferred();
  gates.push(() => gate.resolve());
  const seen = provider(ONE, async (call, index) => {
    if (index >= CONCURRENT) return chatReply('gpt-4.1');
    await gate.promise;
    return call.key === ring.keys[1]!.key ? onB() : chatReply('gpt-4.1');
  });
  const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } } });
  const requests = Array.from({ length: CONCURRENT }, () => client.chat.completions.create(BODY));
  await until(() => seen.length === CONCURRENT, `${CONCURRENT} calls in flight`);
  const onBInFlight = ring.ids(seen).filter((id) => id === 'b').length;
  expect(onBInFlight).toBeGreaterThan(3);
  return { ring, seen, manager, client, requests, release: () => gate.resolve() };
}

describe('attempts in flight on a removed key', () => {
  test.each([
    ['429', () => errorReply(429, 'rate_limit_exceeded', { 'retry-after-ms': '60000' })],
    ['401', () => errorReply(401, 'invalid_api_key')],
    ['500', () => errorReply(500, 'server_error')],
  ])('answering %s change nothing on the key and leave no timer', async (_status, onB) => {
    const { ring, seen, manager, requests, release } = await heldOnB(onB);
    const events = aboutB(manager);
    const timers = keyplexTimers();
    manager.removeKey('one', 'b');
    const mark = seen.length;
    release();
    const results = await Promise.allSettled(requests);

    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(ring.ids(seen.slice(mark))).not.toContain('b');
    expect(events).toEqual(['key:removed']);
    expect(manager.stats().totals.inFlight).toBe(0);
    await manager.close();
    expect(timers.pending()).toEqual([]);
  });

  test.each([
    ['429', () => errorReply(429, 'rate_limit_exceeded', { 'retry-after-ms': '60000' })],
    ['500', () => errorReply(500, 'server_error')],
  ])('answering %s leave the key added back under the same id as it is', async (_status, onB) => {
    const { ring, seen, manager, client, requests, release } = await heldOnB(onB);
    manager.removeKey('one', 'b');
    manager.addKey('one', ring.keys[1]!);
    const events = aboutB(manager);
    release();
    await Promise.allSettled(requests);
    const mark = seen.length;
    await Promise.all(Array.from({ length: 30 }, () => client.chat.completions.create(BODY)));

    expect(events).toEqual([]);
    expect(manager.stats().providers.one?.keys.find((k) => k.id === 'b')).toMatchObject({ status: 'active', inFlight: 0 });
    expect(ring.ids(seen.slice(mark))).toContain('b');
  });
});
