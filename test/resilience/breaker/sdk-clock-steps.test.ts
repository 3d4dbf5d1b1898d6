/**
 * An open circuit when the wall clock steps back (NTP, a VM moved, a clock
 * set by hand): it half-opens when its open time is over (its timer), and a
 * request arriving meanwhile waits for that, within its deadline — it is not
 * refused as if the circuit stayed open for the step. Through the real
 * `openai` SDK on a fake clock (vi.setSystemTime steps Date.now(); timers
 * keep their own time, as Node's monotonic timers do).
 */
import { expect, test, vi } from 'vitest';
import type { KeyManagerOptions } from '../../../src/index';
import { useManagers } from '../../support/scaffold';
import { chatReply, errorReply, keyRing, provider } from '../../support/upstream';
import '../../support/setup';
import { settle } from '../../support/caught';
import { fakeClock, until } from '../../support/time';

const ONE = 'https://api.one.test/v1';
const MODEL = 'gpt-4.1';
const BODY = { model: MODEL, messages: [{ role: 'user' as const, content: 'hi' }] };
const HOUR = 3_600_000;
const OPENING = { policy: { kind: 'consecutive' as const, threshold: 3 }, openMs: 10_000 };

const manage = useManagers({ retry: { baseDelayMs: 0, maxAttempts: 1 } });

test.each<[string, KeyManagerOptions['circuitBreaker']]>([
  ['a deployment circuit', { key: false, deployment: OPENING }],
  ['a key circuit', { deployment: false, key: OPENING }],
])('%s opened for 10 s, the clock stepped back an hour: a new request waits the 10 s and is served', async (_name, circuitBreaker) => {
  fakeClock();
  vi.setSystemTime(new Date('2026-03-01T12:00:00Z'));
  let up = false;
  const seen = provider(ONE, () => (up ? chatReply(MODEL) : errorReply(503, 'server_error')));
  const { client } = manage({ providers: { one: { baseURL: ONE, keys: keyRing('a').keys, models: [MODEL] } }, circuitBreaker, deadlineMs: 60_000 });
  for (let i = 0; i < 3; i++) await client.chat.completions.create(BODY).catch(() => undefined);
  up = true;
  vi.setSystemTime(Date.now() - HOUR);

  const request = settle(client.chat.completions.create(BODY));
  await vi.advanceTimersByTimeAsync(9_000);
  expect(request.done()).toBe(false);
  await vi.advanceTimersByTimeAsync(1_000);
  await until(request.done, 'the request is answered');
  expect(await request.result).not.toBeInstanceOf(Error);
  expect(seen).toHaveLength(4);
});
