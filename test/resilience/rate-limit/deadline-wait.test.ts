/**
 * A request waiting for room in a configured window, whose deadline comes
 * before the estimate of when the request ahead leaves the window (sent +
 * 250 ms + the period, as if never answered) but after the moment that
 * request's reply would free it. Through the real `openai` SDK and the public
 * API, on a fake clock: every figure is a moment of that clock, so load cannot
 * move them.
 */
import { afterEach, describe, expect, test, vi } from 'vitest';
import { getKeyplexDetails, keyplex } from '../../../src/index';
import { fakeKey } from '../../support/fake-keys';
import { managedClients } from '../../support/manage';
import '../../support/setup';
import { fakeClock, quiesce } from '../../support/time';
import { chatReply, deferred, type Deferred } from '../../support/upstream';

const BASE = 'https://window.test/v1';
const BODY = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hi' }] };

const manage = managedClients();
/** Replies still held when a test ends (it failed): released before its manager closes, which waits for them. */
const held: Deferred<void>[] = [];
afterEach(() => {
  for (const reply of held.splice(0)) reply.resolve();
});

/**
 * One key of 1 request per second (`requests: { limit: 1, periodMs: 1000 }`)
 * whose upstream holds its first reply until the test releases it and answers
 * the others at once; `sentAt`: when each call reached it.
 */
function oneASecond() {
  const sentAt: number[] = [];
  const first: Deferred<void> = deferred();
  held.push(first);
  const fetch = (async () => {
    sentAt.push(Date.now());
    if (sentAt.length === 1) await first.promise;
    return chatReply('gpt-4.1');
  }) as typeof globalThis.fetch;
  const { manager, client } = manage({
    providers: { one: { baseURL: BASE, keys: [fakeKey('window')], models: ['gpt-4.1'], requests: { limit: 1, periodMs: 1_000 } } },
    fetch,
  });
  return { manager, client, sentAt, answerFirst: () => first.resolve() };
}

/** When a request settled (fake ms from `start`) and how: served, or the keyplex code and `retryAfterMs` it failed with. */
function settled(request: Promise<unknown>, start: number) {
  const outcome: { at?: number; code?: string; retryAfterMs?: number } = {};
  const done = request.then(
    () => Object.assign(outcome, { at: Date.now() - start, code: 'served' }),
    (error: unknown) => Object.assign(outcome, { at: Date.now() - start, code: getKeyplexDetails(error)?.code, retryAfterMs: getKeyplexDetails(error)?.retryAfterMs }),
  );
  return { outcome, done };
}

describe('a wait that only the estimate for the request ahead puts past the deadline', () => {
  test('deadlineMs 1150, two at once: the second waits and goes at the first reply + 1 s (1000 ms), not refused at once', async () => {
    fakeClock();
    const { client, sentAt, answerFirst } = oneASecond();
    const start = Date.now();
    const [a, b] = [0, 1].map(() => settled(client.chat.completions.create(BODY, keyplex.options({ deadlineMs: 1_150 })), start));
    // Both have picked (the first sent and held, the second waiting or refused) with the fake clock still at 0.
    await quiesce(() => sentAt.length + (b!.outcome.at === undefined ? 0 : 10));
    expect(b!.outcome).toEqual({});
    answerFirst();
    await quiesce(() => sentAt.length + (a!.outcome.at === undefined ? 0 : 10));
    await vi.advanceTimersByTimeAsync(999);
    expect(sentAt.map((t) => t - start)).toEqual([0]);
    await vi.advanceTimersByTimeAsync(1);
    await Promise.all([a!.done, b!.done]);
    expect(sentAt.map((t) => t - start)).toEqual([0, 1_000]);
    expect([a!.outcome, b!.outcome]).toEqual([
      { at: 0, code: 'served' },
      { at: 1_000, code: 'served' },
    ]);
  });

  test('the reply comes too late to free the window by the deadline (at 200 ms): refused once it no longer can (151 ms), with no_key_available, before the deadline; no timer left', async () => {
    fakeClock();
    const { manager, client, sentAt, answerFirst } = oneASecond();
    const start = Date.now();
    const [a, b] = [0, 1].map(() => settled(client.chat.completions.create(BODY, keyplex.options({ deadlineMs: 1_150 })), start));
    await quiesce(() => sentAt.length);
    // A reply by 150 ms frees the window by 1150 ms (the reply + 1 s); from 151 ms nothing can.
    await vi.advanceTimersByTimeAsync(150);
    expect(b!.outcome).toEqual({});
    await vi.advanceTimersByTimeAsync(1);
    await b!.done;
    // The estimate stands: the first request leaves at the latest at 1250 ms (sent + 250 ms + 1 s), 1099 ms on.
    expect(b!.outcome).toEqual({ at: 151, code: 'no_key_available', retryAfterMs: 1_099 });
    await vi.advanceTimersByTimeAsync(49);
    answerFirst();
    await a!.done;
    expect(a!.outcome).toEqual({ at: 200, code: 'served' });
    expect(sentAt.map((t) => t - start)).toEqual([0]);
    await manager.close();
    expect(vi.getTimerCount()).toBe(0);
  });

  test('a deadline no reply could meet (900 ms, under the 1 s period): refused at once, as before', async () => {
    fakeClock();
    const { client, sentAt, answerFirst } = oneASecond();
    const start = Date.now();
    const a = settled(client.chat.completions.create(BODY), start);
    await quiesce(() => sentAt.length);
    const b = settled(client.chat.completions.create(BODY, keyplex.options({ deadlineMs: 900 })), start);
    await b.done;
    expect(b.outcome).toEqual({ at: 0, code: 'no_key_available', retryAfterMs: 1_250 });
    answerFirst();
    await a.done;
    // Answered: the window frees at 1000 ms for certain; a deadline before it is refused at once too.
    const c = settled(client.chat.completions.create(BODY, keyplex.options({ deadlineMs: 900 })), start);
    await c.done;
    expect(c.outcome).toEqual({ at: 0, code: 'no_key_available', retryAfterMs: 1_000 });
    expect(sentAt.map((t) => t - start)).toEqual([0]);
  });
});

describe('a deadline that comes before the request ahead in line can go', () => {
  test('1 a second, one served, one waiting for the refill at 1000 ms: a third with deadlineMs 900 is refused at once (no_key_available, retryAfterMs 1000), not at its deadline', async () => {
    fakeClock();
    const { client, sentAt, answerFirst } = oneASecond();
    const start = Date.now();
    const a = settled(client.chat.completions.create(BODY), start);
    answerFirst();
    await a.done;
    const b = settled(client.chat.completions.create(BODY), start);
    await quiesce(() => sentAt.length + (b.outcome.at === undefined ? 0 : 10));
    expect(b.outcome).toEqual({});

    const c = settled(client.chat.completions.create(BODY, keyplex.options({ deadlineMs: 900 })), start);
    await quiesce(() => (c.outcome.at === undefined ? 0 : 1));

    expect(c.outcome).toEqual({ at: 0, code: 'no_key_available', retryAfterMs: 1_000 });
    await vi.advanceTimersByTimeAsync(1_000);
    await b.done;
    expect(b.outcome).toEqual({ at: 1_000, code: 'served' });
    expect(sentAt.map((t) => t - start)).toEqual([0, 1_000]);
  });

  test('already in line when the request ahead learns how long it waits: refused then, not at its deadline', async () => {
    fakeClock();
    // A key of unknown limits: its first request goes alone (the probe, held); its reply states 1 a minute, used up.
    const sentAt: number[] = [];
    const probe: Deferred<void> = deferred();
    held.push(probe);
    const headers = { 'x-ratelimit-limit-requests': '1', 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '60s' };
    const fetch = (async () => {
      sentAt.push(Date.now());
      if (sentAt.length === 1) await probe.promise;
      return chatReply('gpt-4.1', 'hello', {}, { headers });
    }) as typeof globalThis.fetch;
    const { client } = manage({ providers: { one: { baseURL: BASE, keys: [fakeKey('window')], models: ['gpt-4.1'] } }, fetch });
    const start = Date.now();
    const a = settled(client.chat.completions.create(BODY), start);
    await quiesce(() => sentAt.length);
    const b = settled(client.chat.completions.create(BODY), start);
    const c = settled(client.chat.completions.create(BODY, keyplex.options({ deadlineMs: 5_000 })), start);
    await quiesce(() => sentAt.length + (c.outcome.at === undefined ? 0 : 10));
    expect([b.outcome, c.outcome]).toEqual([{}, {}]);

    await vi.advanceTimersByTimeAsync(100);
    probe.resolve();
    await a.done;
    await quiesce(() => (c.outcome.at === undefined ? 0 : 1));

    expect(c.outcome.code).toBe('no_key_available');
    expect(c.outcome.at).toBe(100);
    expect(b.outcome).toEqual({});
    expect(sentAt.map((t) => t - start)).toEqual([0]);
  });
});
