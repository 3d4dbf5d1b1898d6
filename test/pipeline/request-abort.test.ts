/**
 * A request's abort state (src/pipeline/abort.ts): one timer for the deadline
 * and the attempt timeout, one listener on the caller's signal, none left
 * after the request; an attempt that times out ends its fetch and the request
 * goes on — with or without hooks (then the attempt has its own controller).
 */
import { getEventListeners } from 'node:events';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { KeyManager, type KeyManagerOptions } from '../../src/index';
import { fakeKey } from '../support/fake-keys';
import { fakeClock, realSetImmediate, until } from '../support/time';
import { RequestAbort } from '../../src/pipeline/abort';

const URL_ = 'https://api.one.test/v1/chat/completions';
const BODY = JSON.stringify({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] });
const managers: KeyManager[] = [];

/** One turn of the real event loop (the fake clock does not move). */
const turn = () => new Promise<void>((resolve) => realSetImmediate(resolve));

/**
 * The loop blocked for `ms` (fake clock): the wall clock and the monotonic
 * one (performance.now) move on without any timer running, as they do
 * while a synchronous handler runs. A wall clock stepped by hand moves the
 * wall clock alone.
 */
function blockLoop(ms: number): void {
  blocked += ms;
  vi.spyOn(performance, 'now').mockImplementation(() => realPerformanceNow() + blocked);
  vi.setSystemTime(Date.now() + ms);
}
/** The monotonic clock's real reading, and how far {@link blockLoop} moved it on. */
const realPerformanceNow = performance.now.bind(performance);
let blocked = 0;

afterEach(async () => {
  vi.restoreAllMocks();
  blocked = 0;
  for (const m of managers.splice(0)) await m.close();
  vi.useRealTimers();
});

/** A fetch whose first call hangs until its signal aborts; later calls answer at once. */
function hangsFirst() {
  const signals: AbortSignal[] = [];
  const fetch = (_input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const signal = init!.signal!;
    signals.push(signal);
    if (signals.length > 1) return Promise.resolve(Response.json({ id: 'x', model: 'gpt-4.1', choices: [], usage: null }));
    return new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
  };
  return { fetch: fetch as typeof globalThis.fetch, signals };
}

function manager(options: Partial<KeyManagerOptions>): KeyManager {
  const m = new KeyManager({
    providers: { one: { baseURL: 'https://api.one.test/v1', keys: [fakeKey('a'), fakeKey('b')] } },
    retry: { baseDelayMs: 0 },
    ...options,
  } as KeyManagerOptions);
  managers.push(m);
  return m;
}

describe('an attempt timeout on the request timer', () => {
  test.each([
    ['sharing the request controller', {}],
    ['with its own controller (hooks configured)', { hooks: { afterResponse: () => undefined } }],
  ])('%s: the timed-out fetch is aborted, the retry succeeds, no timer or listener is left', async (_name, extra) => {
    fakeClock();
    const upstream = hangsFirst();
    const m = manager({ fetch: upstream.fetch, attemptTimeoutMs: 1_000, deadlineMs: 60_000, ...extra });
    const caller = new AbortController();

    const pending = m.fetch(URL_, { method: 'POST', body: BODY, headers: { 'content-type': 'application/json' }, signal: caller.signal });
    await until(() => upstream.signals.length === 1, 'first attempt sent');
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(1_000);
    const reply = await pending;

    expect(reply.status).toBe(200);
    expect(upstream.signals).toHaveLength(2);
    expect(upstream.signals[0]!.aborted).toBe(true);
    expect(upstream.signals[1]!.aborted).toBe(false);
    expect(getEventListeners(caller.signal, 'abort')).toHaveLength(0);
    expect(vi.getTimerCount()).toBe(0);
  });
});

test("a hook's signal is not aborted by an attempt's timeout, only by the request's end", async () => {
  fakeClock();
  const upstream = hangsFirst();
  const hookSignals: AbortSignal[] = [];
  const m = manager({ fetch: upstream.fetch, attemptTimeoutMs: 1_000, hooks: { beforeAttempt: (state) => void hookSignals.push(state.signal) } });

  const pending = m.fetch(URL_, { method: 'POST', body: BODY, headers: { 'content-type': 'application/json' } });
  await until(() => upstream.signals.length === 1, 'first attempt sent');
  await vi.advanceTimersByTimeAsync(1_000);
  expect((await pending).status).toBe(200);

  expect(upstream.signals[0]!.aborted).toBe(true);
  expect(hookSignals.map((s) => s.aborted)).toEqual([false, false]);
});

describe('a `fetch` option that ignores its signal (a wrapper that drops `init.signal`)', () => {
  /** Never settles the calls whose number `hangs` accepts, whatever their signal does; answers the others at once. */
  function deaf(hangs: (call: number) => boolean) {
    let calls = 0;
    const fetch = (): Promise<Response> => (hangs(++calls) ? new Promise<Response>(() => undefined) : Promise.resolve(Response.json({ id: 'x', model: 'gpt-4.1', choices: [], usage: null })));
    return { fetch: fetch as typeof globalThis.fetch, calls: () => calls };
  }
  const send = (m: KeyManager) => m.fetch(URL_, { method: 'POST', body: BODY, headers: { 'content-type': 'application/json' } });

  test('the attempt timeout still ends the attempt, and the next one serves the request', async () => {
    fakeClock();
    const upstream = deaf((call) => call === 1);
    const m = manager({ fetch: upstream.fetch, attemptTimeoutMs: 1_000, deadlineMs: 60_000 });

    const pending = send(m);
    await until(() => upstream.calls() === 1, 'first attempt sent');
    await vi.advanceTimersByTimeAsync(1_000);

    expect((await pending).status).toBe(200);
    expect(upstream.calls()).toBe(2);
    expect(m.stats().totals.inFlight).toBe(0);
  });

  test('the deadline still ends the request (504 deadline_exceeded), nothing left in flight', async () => {
    fakeClock();
    const upstream = deaf(() => true);
    const m = manager({ fetch: upstream.fetch, attemptTimeoutMs: 60_000, deadlineMs: 5_000 });

    const pending = send(m);
    await until(() => upstream.calls() === 1, 'first attempt sent');
    await vi.advanceTimersByTimeAsync(5_000);

    const reply = await pending;
    expect(reply.status).toBe(504);
    expect(reply.headers.get('x-keyplex-detail')).toContain('deadline_exceeded');
    expect(m.stats().totals.inFlight).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  test('the deadline still ends a request whose 200 body never ends (a stream the fetch does not end on abort)', async () => {
    fakeClock();
    let calls = 0;
    const stalled = () => new ReadableStream<Uint8Array>({ start: (c) => c.enqueue(new TextEncoder().encode('{"id":"x",')) });
    const fetch = (async () => (calls++, new Response(stalled(), { headers: { 'content-type': 'application/json' } }))) as typeof globalThis.fetch;
    const m = manager({ fetch, attemptTimeoutMs: 60_000, deadlineMs: 5_000 });

    const pending = send(m);
    await until(() => calls === 1, 'first attempt sent');
    await vi.advanceTimersByTimeAsync(5_000);

    expect((await pending).status).toBe(504);
    expect(m.stats().totals.inFlight).toBe(0);
  });

  test('close() still ends the request', async () => {
    const upstream = deaf(() => true);
    const m = manager({ fetch: upstream.fetch });

    const pending = send(m);
    await until(() => upstream.calls() === 1, 'first attempt sent');
    await m.close();

    expect((await pending).status).toBe(503);
  });
});

describe('RequestAbort', () => {
  test('one timer: the first attempt starting late times out at its own moment, then the deadline ends the request', async () => {
    fakeClock();
    const abort = new RequestAbort(Date.now(), 5_000, 1_000, undefined);
    vi.advanceTimersByTime(300);
    const signal = abort.startAttempt(Date.now(), 1_000, false);
    expect(vi.getTimerCount()).toBe(1);

    vi.advanceTimersByTime(999);
    await turn();
    expect(signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    // Judged once the sockets were read: after the poll phase (a reply that came meanwhile is taken first).
    expect(signal.aborted).toBe(false);
    await turn();
    expect(signal.aborted).toBe(true);
    expect(abort.attemptTimedOut).toBe(true);
    expect(abort.ended).toBe(false);
    expect(abort.signal.aborted).toBe(false);

    vi.advanceTimersByTime(3_699);
    await turn();
    expect(abort.ended).toBe(false);
    vi.advanceTimersByTime(1);
    await turn();
    expect(abort.ended).toBe(true);
    expect(abort.signal.reason).toMatchObject({ message: 'deadline' });
    expect(vi.getTimerCount()).toBe(0);
  });

  test("a timer run late by a blocked loop (more than half the timeout) makes the attempt wait its timeout once more, not twice; the deadline still ends it", async () => {
    fakeClock();
    const abort = new RequestAbort(Date.now(), 1_000, 100, undefined);
    const signal = abort.startAttempt(Date.now(), 100, false);
    // The loop blocked: both clocks move 250 ms past the attempt's moment before its timer runs.
    blockLoop(250);
    vi.advanceTimersByTime(100);
    await turn();
    expect(signal.aborted).toBe(false);
    vi.advanceTimersByTime(99);
    await turn();
    expect(signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    await turn();
    expect([signal.aborted, abort.attemptTimedOut]).toEqual([true, true]);

    // The next attempt, blocked past its moment twice: once more only.
    const next = abort.startAttempt(Date.now(), 100, false);
    blockLoop(250);
    vi.advanceTimersByTime(100);
    await turn();
    expect(next.aborted).toBe(false);
    blockLoop(250);
    vi.advanceTimersByTime(100);
    await turn();
    expect(next.aborted).toBe(true);
  });

  test('a timer run late by less than half the timeout times the attempt out (after the sockets were read)', async () => {
    fakeClock();
    const abort = new RequestAbort(Date.now(), 1_000, 100, undefined);
    const signal = abort.startAttempt(Date.now(), 100, false);
    blockLoop(40);
    vi.advanceTimersByTime(100);
    await turn();
    expect(signal.aborted).toBe(true);
  });

  test('a verdict pending after its timer fired is dropped with the timer when the request is over', async () => {
    fakeClock();
    const abort = new RequestAbort(Date.now(), 5_000, 1_000, undefined);
    const signal = abort.startAttempt(Date.now(), 1_000, false);
    vi.advanceTimersByTime(1_000);
    abort.endAttempt();
    abort.detach();
    await turn();

    expect(signal.aborted).toBe(false);
    expect(abort.attemptTimedOut).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  test("the caller's abort ends the request and the attempt's own controller with the caller's reason, once", () => {
    fakeClock();
    const caller = new AbortController();
    const abort = new RequestAbort(Date.now(), 5_000, 1_000, caller.signal);
    const own = abort.startAttempt(Date.now(), 1_000, true);
    expect(getEventListeners(caller.signal, 'abort')).toHaveLength(1);

    caller.abort('stop');
    expect(own.reason).toBe('stop');
    expect(abort.signal.reason).toBe('stop');
    abort.detach();
    expect(vi.getTimerCount()).toBe(0);
  });

  test('a deadline that no longer bounds a stream leaves no timer', () => {
    fakeClock();
    const abort = new RequestAbort(Date.now(), 5_000, 1_000, undefined);
    abort.startAttempt(Date.now(), 1_000, false);
    abort.endAttempt();
    abort.dropDeadline();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(10_000);
    expect(abort.ended).toBe(false);
  });
});
