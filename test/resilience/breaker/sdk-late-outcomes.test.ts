/**
 * A half-open circuit is decided by its probe (docs/resilience.md, "Circuit
 * breakers"): the outcome of a call sent while the circuit was still closed,
 * arriving once it has opened and gone half-open with its probe in flight,
 * neither closes nor re-opens it. The upstream is a fetch whose answers the
 * test gives by hand, on a fake clock: every transition is exact.
 */
import OpenAI from 'openai';
import { afterEach, expect, test, vi } from 'vitest';
import { getKeyplexDetails, KeyManager } from '../../../src/index';
import { fakeKey } from '../../support/fake-keys';
import { fakeClock } from '../../support/time';
import { oneKeyAnsweredByHand, chatChunks, chatReply, errorReply } from '../../support/upstream';

afterEach(() => {
  vi.useRealTimers();
});

const BODY = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hi' }], max_tokens: 8 };

/**
 * One provider, one key; both circuits open at one failure for 5 s. Every
 * call waits for the test to answer it (`answer(i, reply)`), or for its
 * abort.
 */
function setup() {
  fakeClock();
  const t0 = Date.now();
  const { manager, client, answers } = oneKeyAnsweredByHand({ policy: { kind: 'consecutive', threshold: 1 }, openMs: 5_000 });
  const circuits: string[] = [];
  for (const name of ['circuit:open', 'circuit:half-open', 'circuit:close'] as const) {
    manager.on(name, (e) => void circuits.push(`${Date.now() - t0} ${e.scope} ${e.to} ${e.reason}`));
  }
  const outcomes: string[] = [];
  const send = () =>
    void client.chat.completions.create(BODY).then(
      () => void outcomes.push('ok'),
      (error: unknown) => void outcomes.push(getKeyplexDetails(error)?.code ?? 'other'),
    );
  const answer = (call: number, reply: Response) => answers[call]!(reply);
  return { manager, client, circuits, outcomes, send, answer, sent: () => answers.length };
}

/**
 * Call 0 goes out and stays in flight; call 1 fails (2 ms): with call 0 holding
 * it, the circuits open at the hold (5 s before any success), and go
 * half-open 5 s later. Call 2 is the probe, left in flight.
 */
async function probeInFlight() {
  const made = setup();
  made.send();
  await vi.advanceTimersByTimeAsync(1);
  made.send();
  await vi.advanceTimersByTimeAsync(1);
  made.answer(1, errorReply(500, 'server_error'));
  await vi.advanceTimersByTimeAsync(10_000);
  expect(made.circuits).toEqual(['5002 deployment open failures', '5002 key open failures', '10002 deployment half-open open_elapsed', '10002 key half-open open_elapsed']);
  made.send();
  await vi.advanceTimersByTimeAsync(1);
  expect(made.sent()).toBe(3);
  made.circuits.length = 0;
  return made;
}

test('a late success of a call sent while closed does not close a half-open circuit: its probe does', async () => {
  const { manager, circuits, outcomes, answer } = await probeInFlight();

  answer(0, chatReply('gpt-4.1'));
  await vi.advanceTimersByTimeAsync(1);
  // Before: '10003 deployment closed probe_succeeded', '10003 key closed probe_succeeded' (the probe had not answered).
  expect(outcomes).toEqual(['upstream_error', 'ok']);
  expect(circuits).toEqual([]);

  answer(2, chatReply('gpt-4.1'));
  await vi.advanceTimersByTimeAsync(1);
  expect(outcomes).toEqual(['upstream_error', 'ok', 'ok']);
  expect(circuits).toEqual(['10004 deployment closed probe_succeeded', '10004 key closed probe_succeeded']);
  await manager.close();
});

test('a late failure of a call sent while closed does not re-open a half-open circuit: its probe decides', async () => {
  const { manager, circuits, outcomes, answer } = await probeInFlight();

  answer(0, errorReply(500, 'server_error'));
  await vi.advanceTimersByTimeAsync(1);
  // Before: '10003 deployment open probe_failed', '10003 key open probe_failed' (the probe had not answered).
  expect(outcomes).toEqual(['upstream_error', 'upstream_error']);
  expect(circuits).toEqual([]);

  answer(2, chatReply('gpt-4.1'));
  await vi.advanceTimersByTimeAsync(1);
  expect(circuits).toEqual(['10004 deployment closed probe_succeeded', '10004 key closed probe_succeeded']);
  await manager.close();
});

test('a stream whose first bytes came while closed and that breaks while half-open does not re-open it: its probe decides', async () => {
  const { manager, circuits, outcomes, send, answer, client } = setup();
  const encoder = new TextEncoder();
  let cut!: (error: Error) => void;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(`data: ${chatChunks('gpt-4.1', ['Hel'], false)[0]}\n\n`));
      cut = (error) => controller.error(error);
    },
  });
  const streamed = (async () => {
    try {
      for await (const _ of await client.chat.completions.create({ ...BODY, stream: true })) void _;
      return 'ok';
    } catch (error) {
      return getKeyplexDetails(error)?.code ?? 'other';
    }
  })();
  await vi.advanceTimersByTimeAsync(1);
  answer(0, new Response(body, { headers: { 'content-type': 'text/event-stream' } }));
  await vi.advanceTimersByTimeAsync(1);
  // Its first bytes were a success; the next call's failure opens both circuits at once, half-open 5 s later.
  send();
  await vi.advanceTimersByTimeAsync(1);
  answer(1, errorReply(500, 'server_error'));
  await vi.advanceTimersByTimeAsync(5_000);
  send();
  await vi.advanceTimersByTimeAsync(1);
  expect(circuits).toEqual(['3 deployment open failures', '3 key open failures', '5003 deployment half-open open_elapsed', '5003 key half-open open_elapsed']);

  cut(new Error('upstream connection reset'));
  await vi.advanceTimersByTimeAsync(1);
  expect(await streamed).toBe('stream_interrupted');
  // Before: '5004 deployment open probe_failed', '5004 key open probe_failed' (the probe had not answered).
  expect(circuits.slice(4)).toEqual([]);

  answer(2, chatReply('gpt-4.1'));
  await vi.advanceTimersByTimeAsync(1);
  expect(outcomes).toEqual(['upstream_error', 'ok']);
  expect(circuits.slice(4)).toEqual(['5005 deployment closed probe_succeeded', '5005 key closed probe_succeeded']);
  await manager.close();
});
