/**
 * Rate-limit windows when the wall clock steps back (NTP, a VM moved, a
 * clock set by hand): a window of a minute holds what was sent for a minute,
 * not for a minute plus the step. Through the real `openai` SDK on a fake
 * clock (vi.setSystemTime steps Date.now(); timers keep their own time, as
 * Node's monotonic timers do).
 */
import { expect, test, vi } from 'vitest';
import { useManagers } from '../../support/scaffold';
import { chatReply, keyRing, provider } from '../../support/upstream';
import '../../support/setup';
import { fakeClock, until } from '../../support/time';

const ONE = 'https://api.one.test/v1';
const MODEL = 'gpt-4.1';
const BODY = { model: MODEL, messages: [{ role: 'user' as const, content: 'hi' }] };
const HOUR = 3_600_000;

const manage = useManagers();

test('rpm 1: the request after a step back of an hour is sent a minute after the first, not an hour and a minute', async () => {
  fakeClock();
  vi.setSystemTime(new Date('2026-03-01T12:00:00Z'));
  const ring = keyRing('a');
  const seen = provider(ONE, () => chatReply(MODEL));
  const { client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys.map((k) => ({ ...k, rpm: 1 })), models: [MODEL] } }, deadlineMs: 120_000 });
  await client.chat.completions.create(BODY);
  vi.setSystemTime(Date.now() - HOUR);

  let done = false;
  const second = client.chat.completions.create(BODY).then(
    () => (done = true),
    (error: Error) => ((done = true), error),
  );
  await vi.advanceTimersByTimeAsync(59_000);
  expect(seen).toHaveLength(1);
  await vi.advanceTimersByTimeAsync(2_000);
  await until(() => done, 'the second request is answered');
  expect(await second).toBe(true);
  expect(seen).toHaveLength(2);
});
