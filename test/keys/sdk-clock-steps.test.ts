/**
 * A key's cooldown when the wall clock steps back (NTP, a VM moved, a clock
 * set by hand) while it cools: it lasts what the upstream asked for, measured
 * by its timer, not until the stepped-back clock catches up. Through the real
 * `openai` SDK on a fake clock (vi.setSystemTime steps Date.now(), timers keep
 * their own time, as Node's monotonic timers do).
 */
import { expect, test, vi } from 'vitest';
import { getKeyplexDetails, keyplex } from '../../src/index';
import { useManagers } from '../support/scaffold';
import { chatReply, errorReply, keyRing, provider } from '../support/upstream';
import '../support/setup';
import { record } from '../support/events';
import { fakeClock, until } from '../support/time';
import { settle } from '../support/caught';

const ONE = 'https://api.one.test/v1';
const MODEL = 'gpt-4.1';
const BODY = { model: MODEL, messages: [{ role: 'user' as const, content: 'hi' }] };
const HOUR = 3_600_000;

const manage = useManagers({ retry: { baseDelayMs: 0, maxAttempts: 3 }, circuitBreaker: false });

/** One key; its first call answers 429 with `retry-after: 10`, later ones 200. */
function oneKeyCooling() {
  fakeClock();
  vi.setSystemTime(new Date('2026-03-01T12:00:00Z'));
  const ring = keyRing('a');
  const seen = provider(ONE, (_call, index) => (index === 0 ? errorReply(429, 'rate_limit_exceeded', { 'retry-after': '10' }) : chatReply(MODEL)));
  const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys, models: [MODEL] } }, deadlineMs: 60_000 });
  return { seen, manager, client, recovered: record(manager, 'key:recovered') };
}

test('a request waiting for a cooling key is served when the cooldown ends, the clock stepped back an hour meanwhile', async () => {
  const s = oneKeyCooling();
  const waiting = settle(s.client.chat.completions.create(BODY));
  await until(() => s.seen.length === 1, 'the 429');
  vi.setSystemTime(Date.now() - HOUR);

  await vi.advanceTimersByTimeAsync(9_000);
  expect(waiting.done()).toBe(false);
  await vi.advanceTimersByTimeAsync(1_000);
  await until(waiting.done, 'the request is served');
  expect(await waiting.result).not.toBeInstanceOf(Error);
  expect(s.seen).toHaveLength(2);
  expect(s.recovered).toHaveLength(1);
});

test('a request arriving after the step waits for the cooldown left, not the hour the clock went back', async () => {
  const s = oneKeyCooling();
  // Its deadline is shorter than the cooldown: it fails at once, leaving the key cooling for 10 s.
  await s.client.chat.completions.create(BODY, keyplex.options({ deadlineMs: 5_000 })).catch(() => undefined);
  expect(s.seen).toHaveLength(1);
  vi.setSystemTime(Date.now() - HOUR);

  const later = settle(s.client.chat.completions.create(BODY));
  await vi.advanceTimersByTimeAsync(9_000);
  expect(later.done()).toBe(false);
  await vi.advanceTimersByTimeAsync(1_000);
  await until(later.done, 'the request is served');
  const result = await later.result;
  expect(result instanceof Error ? getKeyplexDetails(result)?.retryAfterMs : 'served').toBe('served');
  expect(s.seen).toHaveLength(2);
});
