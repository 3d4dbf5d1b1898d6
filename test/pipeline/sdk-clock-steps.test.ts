/**
 * Durations when the wall clock steps back during a request (NTP, a VM
 * moved, a clock set by hand): latencies and times to first token are
 * differences of `Date.now()`, and none goes below 0 — not in the events,
 * not in an error's attempts. Through the real `openai` SDK
 * on a fake clock (vi.setSystemTime steps Date.now()).
 */
import { expect, test, vi } from 'vitest';
import { getKeyplexDetails } from '../../src/index';
import { useManagers } from '../support/scaffold';
import { chatChunks, chatReply, errorReply, keyRing, provider, sseReply } from '../support/upstream';
import '../support/setup';
import { record } from '../support/events';
import { fakeClock } from '../support/time';

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
