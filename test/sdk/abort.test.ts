/**
 * The caller ends a request: an AbortSignal given to the SDK, or the SDK's own
 * `timeout`. keyplex stops at once, retries nothing and penalises no key.
 */
import OpenAI from 'openai';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { useManagers } from '../support/scaffold';
import { chatReply, deferred, errorReply, keyRing, provider, type Deferred } from '../support/upstream';
import '../support/setup';
import { fakeClock, until, realSetImmediate } from '../support/time';
import { record } from '../support/events';

const ONE = 'https://api.one.test/v1';
const BODY = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hi' }] };

const manage = useManagers({});
const hanging: Deferred<'reset'>[] = [];
afterEach(() => {
  for (const hold of hanging.splice(0)) hold.resolve('reset');
});

/** An upstream that never answers (until the test ends). */
function hang(): Promise<'reset'> {
  const hold = deferred<'reset'>();
  hanging.push(hold);
  return hold.promise;
}

/** Lets the event loop turn `n` times without moving a fake clock. */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((resolve) => realSetImmediate(resolve));
}

/** The outcome of `promise` once settled, observable without awaiting. */
function settle<T>(promise: Promise<T>) {
  const state: { done: boolean; value?: T; error?: unknown } = { done: false };
  promise.then(
    (value) => Object.assign(state, { done: true, value }),
    (error: unknown) => Object.assign(state, { done: true, error }),
  );
  return state;
}

describe('aborting mid-request', () => {
  /** Two keys, an upstream that hangs, and a request on its way with an AbortController. */
  async function inFlightRequest() {
    const ring = keyRing('a', 'b');
    const seen = provider(ONE, () => hang());
    const setup = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, retry: { baseDelayMs: 0 } });
    const controller = new AbortController();
    const outcome = settle(setup.client.chat.completions.create(BODY, { signal: controller.signal }));
    await until(() => seen.length === 1, 'first upstream call');
    return { ...setup, seen, controller, outcome };
  }

  test('rejects with the SDK APIUserAbortError', async () => {
    const { controller, outcome } = await inFlightRequest();

    controller.abort();
    await until(() => outcome.done, 'request settled');

    expect(outcome.error).toBeInstanceOf(OpenAI.APIUserAbortError);
  });

  test('makes no further upstream attempt', async () => {
    const { manager, seen, controller, outcome } = await inFlightRequest();
    const attempts = record(manager, 'attempt');
    const retries = record(manager, 'retry');

    controller.abort();
    await until(() => outcome.done, 'request settled');
    await turns(50);

    expect(seen).toHaveLength(1);
    expect(attempts).toEqual([]);
    expect(retries).toEqual([]);
  });

  test('leaves nothing in flight, in total or on the key', async () => {
    const { manager, controller, outcome } = await inFlightRequest();
    expect(manager.stats().totals.inFlight).toBe(1);

    controller.abort();
    await until(() => outcome.done, 'request settled');

    const stats = manager.stats();
    expect(stats.totals.inFlight).toBe(0);
    expect(stats.providers.one?.keys.map((k) => k.inFlight)).toEqual([0, 0]);
  });

  test('does not penalise the key and reports the failure as aborted', async () => {
    const { manager, controller, outcome } = await inFlightRequest();
    const failures = record(manager, 'failure');

    controller.abort();
    await until(() => outcome.done, 'request settled');

    expect(manager.stats().providers.one?.keys.map((k) => k.status)).toEqual(['active', 'active']);
    expect(failures.map((f) => f.error.code)).toEqual(['aborted']);
  });
});

describe('aborting mid-backoff', () => {
  test('rejects at once, after exactly one upstream call', async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    const seen = provider(ONE, () => errorReply(500, 'server_error'));
    const { manager, client } = manage({
      providers: { one: { baseURL: ONE, keys: ring.keys } },
      retry: { baseDelayMs: 60_000, maxDelayMs: 60_000, jitter: 0 },
    });
    const controller = new AbortController();
    const retries = record(manager, 'retry');
    manager.on('retry', () => controller.abort());
    const startedAt = Date.now();

    const outcome = settle(client.chat.completions.create(BODY, { signal: controller.signal }));
    // The clock never moves: a request still sleeping through its backoff would not settle.
    await until(() => outcome.done, 'request settled without the clock moving');

    expect(retries).toEqual([expect.objectContaining({ delayMs: 60_000 })]);
    expect(outcome.error).toBeInstanceOf(OpenAI.APIUserAbortError);
    expect(seen).toHaveLength(1);
    expect(Date.now()).toBe(startedAt);
  });

  test('makes no attempt after the backoff would have ended', async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    const seen = provider(ONE, () => errorReply(500, 'server_error'));
    const { manager, client } = manage({
      providers: { one: { baseURL: ONE, keys: ring.keys } },
      retry: { baseDelayMs: 60_000, maxDelayMs: 60_000, jitter: 0 },
    });
    const controller = new AbortController();
    manager.on('retry', () => controller.abort());

    const outcome = settle(client.chat.completions.create(BODY, { signal: controller.signal }));
    await until(() => outcome.done, 'request settled');
    await vi.advanceTimersByTimeAsync(120_000);
    await turns(20);

    expect(seen).toHaveLength(1);
    expect(manager.stats().totals.inFlight).toBe(0);
  });

  test('aborting while waiting for a rate-limited key to recover rejects at once', async () => {
    fakeClock();
    const ring = keyRing('a');
    const seen = provider(ONE, (_call, index) => (index === 0 ? errorReply(429, 'rate_limit_exceeded', { 'retry-after-ms': '30000' }) : chatReply('gpt-4.1')));
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } } });
    const controller = new AbortController();

    const outcome = settle(client.chat.completions.create(BODY, { signal: controller.signal }));
    await until(() => seen.length === 1 && manager.stats().providers.one?.keys[0]?.status === 'cooling', 'key cooling');
    await turns(10);
    expect(outcome.done).toBe(false);
    controller.abort();
    await until(() => outcome.done, 'request settled');

    expect(outcome.error).toBeInstanceOf(OpenAI.APIUserAbortError);
    expect(seen).toHaveLength(1);
  });
});

describe("the SDK's timeout option", () => {
  test('ends a hanging request with APIConnectionTimeoutError', async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    const seen = provider(ONE, () => hang());
    const { client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, retry: { baseDelayMs: 0 } });

    const outcome = settle(client.chat.completions.create(BODY, { timeout: 5_000 }));
    await until(() => seen.length === 1, 'first upstream call');
    await vi.advanceTimersByTimeAsync(4_999);
    expect(outcome.done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await until(() => outcome.done, 'request settled');

    expect(outcome.error).toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
  });

  test('is not followed by another upstream attempt', async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    const seen = provider(ONE, () => hang());
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, retry: { baseDelayMs: 0 } });

    const outcome = settle(client.chat.completions.create(BODY, { timeout: 5_000 }));
    await until(() => seen.length === 1, 'first upstream call');
    await vi.advanceTimersByTimeAsync(5_000);
    await until(() => outcome.done, 'request settled');
    await turns(50);

    expect(seen).toHaveLength(1);
    expect(manager.stats().totals.inFlight).toBe(0);
  });

  test('set on the client bounds the request the same way', async () => {
    fakeClock();
    const ring = keyRing('a');
    const seen = provider(ONE, () => hang());
    const { manager } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } } });
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', timeout: 3_000 }));

    const outcome = settle(client.chat.completions.create(BODY));
    await until(() => seen.length === 1, 'first upstream call');
    await vi.advanceTimersByTimeAsync(3_000);
    await until(() => outcome.done, 'request settled');

    expect(outcome.error).toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
  });
});

describe('aborting while reading a reply passed through (audio, file contents, text)', () => {
  /** A `fetch` whose 200 body (`type`) sends a 1 KiB piece each time it is read, 100 in all, until cancelled. */
  function slowBody(type: string) {
    const state = { pieces: 0, cancelled: false };
    const fetch = (async () => {
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          state.pieces++;
          controller.enqueue(new Uint8Array(1024).fill(0x61));
          if (state.pieces === 100) controller.close();
        },
        cancel() {
          state.cancelled = true;
        },
      }, { highWaterMark: 0 });
      return new Response(body, { status: 200, headers: { 'content-type': type } });
    }) as typeof globalThis.fetch;
    return { state, fetch };
  }

  test.each(['audio/mpeg', 'text/plain'])('%s: the read ends with the abort and the upstream body is cancelled, as with fetch', async (type) => {
    const upstream = slowBody(type);
    const { client } = manage({ providers: { one: { baseURL: ONE, keys: keyRing('a').keys } }, fetch: upstream.fetch });
    const controller = new AbortController();
    const speech = await client.audio.speech.create({ model: 'gpt-4o-mini-tts', voice: 'alloy', input: 'hi' }, { signal: controller.signal });
    const reader = speech.body!.getReader();
    await reader.read();

    controller.abort();
    const next = await reader.read().then(
      (result) => (result.done ? 'done' : 'more'),
      (error: unknown) => error,
    );

    expect(next).toMatchObject({ name: 'AbortError' });
    await until(() => upstream.state.cancelled, 'upstream body cancelled');
    expect(upstream.state.pieces).toBeLessThan(10);
  });
});
