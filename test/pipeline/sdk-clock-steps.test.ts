/**
 * Durations when the wall clock steps back during a request (NTP, a VM
 * moved, a clock set by hand): latencies and times to first token are
 * differences of `Date.now()`, and none goes below 0 — not in the events,
 * not in an error's attempts. Through the real `openai` SDK
 * on a fake clock (vi.setSystemTime steps Date.now()).
 */
import { describe, expect, test, vi } from 'vitest';
import { getKeyplexDetails } from '../../src/index';
import { useManagers } from '../support/scaffold';
import { chatChunks, chatReply, errorReply, keyRing, provider, sseReply } from '../support/upstream';
import '../support/setup';
import { record } from '../support/events';
import { settle } from '../support/caught';
import { fakeClock, until } from '../support/time';

const ONE = 'https://api.one.test/v1';
const MODEL = 'gpt-4.1';
const BODY = { model: MODEL, messages: [{ role: 'user' as const, content: 'hi' }] };
const HOUR = 3_600_000;

const manage = useManagers({ retry: { baseDelayMs: 0, maxAttempts: 1 }, circuitBreaker: false });

/** A manager whose upstream steps the clock back an hour before it answers with `reply()`. */
function steppingBack(reply: () => Response) {
  fakeClock();
  vi.setSystemTime(new Date('2026-03-01T12:00:00Z'));
  const ring = keyRing('a');
  provider(ONE, () => {
    vi.setSystemTime(Date.now() - HOUR);
    return reply();
  });
  return manage({ providers: { one: { baseURL: ONE, keys: ring.keys, models: [MODEL] } } });
}

test('a reply: the success event holds no negative latency', async () => {
  const { manager, client } = steppingBack(() => chatReply(MODEL));
  const successes = record(manager, 'success');
  await client.chat.completions.create(BODY);
  expect(successes.map((e) => e.latencyMs)).toEqual([0]);
});

test('a stream: its time to first token is not negative', async () => {
  const { manager, client } = steppingBack(() => sseReply(chatChunks(MODEL, ['a', 'b'], true)));
  const successes = record(manager, 'success');
  const stream = await client.chat.completions.create({ ...BODY, stream: true });
  for await (const _chunk of stream);
  expect(successes.map((e) => [e.latencyMs, e.ttftMs])).toEqual([[0, 0]]);
});

test('a failure: the failure event and the error’s attempts hold no negative latency', async () => {
  const { manager, client } = steppingBack(() => errorReply(500, 'server_error'));
  const failures = record(manager, 'failure');
  const error = await client.chat.completions.create(BODY).catch((e: Error) => e);
  expect(failures.map((e) => e.latencyMs)).toEqual([0]);
  expect(getKeyplexDetails(error)?.attempts?.map((a) => a.latencyMs)).toEqual([0]);
});

describe('a clock stepped forward an hour: the deadline (60 s) ends the request when 60 s have passed, not at once', () => {
  const manageWaiting = useManagers({ retry: { baseDelayMs: 0, maxAttempts: 3 }, circuitBreaker: false, deadlineMs: 60_000 });

  test('waiting for a key cooling 10 s: served when it cools down', async () => {
    fakeClock();
    vi.setSystemTime(new Date('2026-03-01T12:00:00Z'));
    const seen = provider(ONE, (_call, index) => (index === 0 ? errorReply(429, 'rate_limit_exceeded', { 'retry-after': '10' }) : chatReply(MODEL)));
    const { client } = manageWaiting({ providers: { one: { baseURL: ONE, keys: keyRing('a').keys, models: [MODEL] } } });
    const request = settle(client.chat.completions.create(BODY));
    await until(() => seen.length === 1, 'the 429');
    vi.setSystemTime(Date.now() + HOUR);
    await vi.advanceTimersByTimeAsync(10_000);
    await until(request.done, 'the request is answered');
    expect(await request.result).not.toBeInstanceOf(Error);
    expect(seen).toHaveLength(2);
  });

  test('during a beforeAttempt hook: the attempt is sent and served', async () => {
    fakeClock();
    vi.setSystemTime(new Date('2026-03-01T12:00:00Z'));
    const seen = provider(ONE, () => chatReply(MODEL));
    const beforeAttempt = () => void vi.setSystemTime(Date.now() + HOUR);
    const { client } = manageWaiting({ providers: { one: { baseURL: ONE, keys: keyRing('a').keys, models: [MODEL] } }, hooks: { beforeAttempt } });
    await client.chat.completions.create(BODY);
    expect(seen).toHaveLength(1);
  });

  test('then a 429 asking for 10 s (well within the deadline): the request waits for the key and is served, not refused', async () => {
    fakeClock();
    vi.setSystemTime(new Date('2026-03-01T12:00:00Z'));
    const seen = provider(ONE, (_call, index) => (index === 0 ? errorReply(429, 'rate_limit_exceeded', { 'retry-after': '10' }) : chatReply(MODEL)));
    // The step comes before the first attempt: the wait for the key starts after it.
    let stepped = false;
    const beforeAttempt = () => void (stepped || ((stepped = true), vi.setSystemTime(Date.now() + HOUR)));
    const { client } = manageWaiting({ providers: { one: { baseURL: ONE, keys: keyRing('a').keys, models: [MODEL] } }, hooks: { beforeAttempt } });
    const request = settle(client.chat.completions.create(BODY));
    await until(() => seen.length === 1, 'the 429');
    await vi.advanceTimersByTimeAsync(10_000);
    await until(request.done, 'the request is answered');
    // Before: the 429 surfaced (the retry judged past the deadline by the clock's step), 1 send; with the retry's time
    // right, no_key_available ("usable again in 10 s, after this request's deadline"), 1 send.
    expect(getKeyplexDetails(await request.result)?.code).toBeUndefined();
    expect(seen).toHaveLength(2);
  });
});

test.each([
  ['back', -HOUR],
  ['forward', HOUR],
])('attempts timing out every 10 s, the clock stepped %s an hour at 5 s: the deadline (60 s) ends the request at 60 s, after 6 attempts', async (_way, step) => {
  fakeClock();
  vi.setSystemTime(new Date('2026-03-01T12:00:00Z'));
  const seen = provider(ONE, () => new Promise<Response>(() => undefined));
  const { client } = manage({
    providers: { one: { baseURL: ONE, keys: keyRing('a', 'b', 'c').keys, models: [MODEL] } },
    retry: { maxAttempts: 20, baseDelayMs: 0 },
    deadlineMs: 60_000,
    attemptTimeoutMs: 10_000,
  });
  const request = settle(client.chat.completions.create(BODY, { timeout: 10 * HOUR }));
  await until(() => seen.length === 1, 'the first attempt');
  await vi.advanceTimersByTimeAsync(5_000);
  vi.setSystemTime(Date.now() + step);
  for (let at = 5_000; at < 59_000; at += 1_000) await vi.advanceTimersByTimeAsync(1_000);
  expect(request.done()).toBe(false);
  await vi.advanceTimersByTimeAsync(1_000);
  await until(request.done, 'the request ends');
  expect(getKeyplexDetails(await request.result)?.code).toBe('deadline_exceeded');
  expect(seen).toHaveLength(6);
});
