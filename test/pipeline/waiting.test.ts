/**
 * Requests waiting for a key (issue 12, items 2 and 7): they wait for a
 * half-open circuit's probe like for an open circuit, within their deadline;
 * removing or disabling the keys they wait for ends the wait at once; and no
 * message calls a key disabled that is not.
 */
import OpenAI from 'openai';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { getKeyplexDetails, KeyManager, keyplex } from '../../src/index';
import { chatReply, deferred, errorReply, keyRing, provider, type Deferred } from '../support/upstream';
import '../support/setup';
import { fakeClock, until } from '../support/time';
import { settle } from '../support/caught';

const ONE = 'https://api.one.test/v1';
const MODEL = 'gpt-4.1';
const BODY = { model: MODEL, messages: [{ role: 'user' as const, content: 'hi' }] };

const managers: KeyManager[] = [];
const gates: Deferred<void>[] = [];
afterEach(async () => {
  for (const gate of gates.splice(0)) gate.resolve();
  await Promise.all(managers.splice(0).map((m) => m.close()));
  vi.useRealTimers();
});

describe('a half-open circuit: requests wait for its probe', () => {
  /** One key behind a deployment circuit (3 failures open it for 10 s); `mode` says how the upstream answers. */
  function setup() {
    const ring = keyRing('a');
    const up = { mode: 'outage' as 'outage' | 'held', gate: deferred(), then: 'ok' as 'ok' | 'outage' };
    gates.push(up.gate);
    const seen = provider(ONE, async () => {
      if (up.mode === 'held') {
        await up.gate.promise;
        if (up.then === 'outage') return errorReply(503, 'service_unavailable', {}, 'down');
      } else return errorReply(503, 'service_unavailable', {}, 'down');
      return chatReply(MODEL);
    });
    const manager = new KeyManager({
      providers: { one: { baseURL: ONE, keys: ring.keys, models: [MODEL] } },
      circuitBreaker: { key: false, deployment: { policy: { kind: 'consecutive', threshold: 3 }, openMs: 10_000 } },
      retry: { maxAttempts: 1, baseDelayMs: 0 },
    });
    managers.push(manager);
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
    return { up, seen, manager, client };
  }

  async function halfOpenWithProbe(s: ReturnType<typeof setup>) {
    for (let i = 0; i < 3; i++) await s.client.chat.completions.create(BODY).catch(() => {});
    await vi.advanceTimersByTimeAsync(10_000);
    s.up.mode = 'held';
    const probe = settle(s.client.chat.completions.create(BODY));
    await until(() => s.seen.length === 4, 'the probe is sent');
    return probe;
  }

  test('another request waits for the probe and is served when it succeeds', async () => {
    fakeClock();
    const s = setup();
    const probe = await halfOpenWithProbe(s);

    const other = settle(s.client.chat.completions.create(BODY));
    for (let i = 0; i < 50; i++) await Promise.resolve();
    await new Promise((resolve) => setImmediate(resolve));
    expect(other.done()).toBe(false);

    s.up.gate.resolve();
    expect(await probe.result).not.toBeInstanceOf(Error);
    expect(await other.result).not.toBeInstanceOf(Error);
    expect(s.seen).toHaveLength(5);
  });

  test('when the probe is abandoned (its caller aborts), a waiting request takes the probe slot at once', async () => {
    fakeClock();
    const s = setup();
    for (let i = 0; i < 3; i++) await s.client.chat.completions.create(BODY).catch(() => {});
    await vi.advanceTimersByTimeAsync(10_000);
    s.up.mode = 'held';
    const abort = new AbortController();
    const probe = settle(s.client.chat.completions.create(BODY, { signal: abort.signal }));
    await until(() => s.seen.length === 4, 'the probe is sent');
    const other = settle(s.client.chat.completions.create(BODY));
    await new Promise((resolve) => setImmediate(resolve));
    expect(other.done()).toBe(false);

    abort.abort();
    await probe.result;
    await until(() => s.seen.length === 5, 'the waiting request is sent without the clock moving');
    s.up.gate.resolve();
    expect(await other.result).not.toBeInstanceOf(Error);
  });

  test('when the probe fails and the circuit reopens past its deadline, it fails saying so, not "disabled"', async () => {
    fakeClock();
    const s = setup();
    s.up.then = 'outage';
    const probe = await halfOpenWithProbe(s);

    const other = settle(s.client.chat.completions.create(BODY, keyplex.options({ deadlineMs: 5_000 })));
    await new Promise((resolve) => setImmediate(resolve));
    expect(other.done()).toBe(false);

    s.up.gate.resolve();
    await probe.result;
    const error = await other.result;
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(getKeyplexDetails(error)?.code).toBe('no_key_available');
    expect((error as Error).message).toMatch(/circuit/);
    expect((error as Error).message).not.toMatch(/disabled/);
  });
});

describe('removing or disabling keys wakes the requests waiting for them', () => {
  function coolingSetup() {
    const ring = keyRing('a', 'b');
    const seen = provider(ONE, () => errorReply(429, 'rate_limit_exceeded', { 'retry-after-ms': '5000' }, 'slow down'));
    const manager = new KeyManager({ providers: { one: { baseURL: ONE, keys: ring.keys } }, deadlineMs: 30_000, retry: { baseDelayMs: 0 } });
    managers.push(manager);
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
    return { seen, manager, client };
  }

  test('removing the last keys fails the waiting request at once', async () => {
    fakeClock();
    const { seen, manager, client } = coolingSetup();
    const waiting = settle(client.chat.completions.create(BODY));
    await until(() => seen.length === 2, 'both keys tried');
    await new Promise((resolve) => setImmediate(resolve));
    expect(waiting.done()).toBe(false);

    manager.removeKey('one', 'a');
    manager.removeKey('one', 'b');

    await until(waiting.done, 'the waiting request ends without the clock moving');
    const error = (await waiting.result) as Error;
    expect(getKeyplexDetails(error)?.code).toBe('no_key_available');
    expect(error.message).toMatch(/no keys/);
  });

  test('disabling the keys fails the waiting request at once, saying they were disabled', async () => {
    fakeClock();
    const { seen, manager, client } = coolingSetup();
    const waiting = settle(client.chat.completions.create(BODY));
    await until(() => seen.length === 2, 'both keys tried');
    await new Promise((resolve) => setImmediate(resolve));
    expect(waiting.done()).toBe(false);

    manager.disableKey('one', 'a');
    manager.disableKey('one', 'b');

    await until(waiting.done, 'the waiting request ends without the clock moving');
    const error = (await waiting.result) as Error;
    expect(getKeyplexDetails(error)?.code).toBe('no_key_available');
    expect(error.message).toMatch(/2 keys disabled \(manual\)/);
  });
});

describe('requests held behind a first-reply probe that never answers', () => {
  test('a burst sharing one deadline ends whole with deadline_exceeded, and nothing but the probe is sent', async () => {
    // Every deadline is due at one moment: the probe's end wakes the held requests before their own timers run.
    // Those woken used to fail with no_key_available (503, "the probe did not settle"), or be sent as the next probe.
    fakeClock();
    const gate = deferred();
    gates.push(gate);
    const seen = provider(ONE, async () => {
      await gate.promise;
      return chatReply(MODEL);
    });
    const manager = new KeyManager({ providers: { one: { baseURL: ONE, keys: keyRing('a').keys } } });
    managers.push(manager);
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
    const burst = Array.from({ length: 10 }, () => settle(client.chat.completions.create(BODY, keyplex.options({ deadlineMs: 3_000 }))));
    await until(() => seen.length === 1, 'the probe is sent');

    await vi.advanceTimersByTimeAsync(3_000);
    const errors = await Promise.all(burst.map((b) => b.result));

    expect(errors.map((e) => getKeyplexDetails(e)?.code)).toEqual(Array(10).fill('deadline_exceeded'));
    expect(seen).toHaveLength(1);
    expect(manager.stats().totals.inFlight).toBe(0);
  });
});
