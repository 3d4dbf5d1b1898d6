/**
 * A closed circuit holds a failure while calls sent before it are in flight,
 * for at most its hold (docs/resilience.md, "Circuit breakers"). When the
 * process's event loop was blocked past the hold (a long synchronous task, a
 * GC pause, a throttled container) while an earlier call's success had come,
 * Node runs the hold's timer before that success is read: the earlier call
 * must not be let go as hung then, or the failures behind it are judged in a
 * row that its success broke, and a healthy deployment's circuit opens.
 *
 * The upstream is a fetch whose answers the test gives by hand, on a fake
 * clock: the stall is the clock moved past the hold in one step with the
 * success answered, its reading still pending in microtasks.
 */
import OpenAI from 'openai';
import { afterEach, expect, test, vi } from 'vitest';
import { getKeyplexDetails, KeyManager } from '../../../src/index';
import { fakeKey } from '../../support/fake-keys';
import { fakeClock, quiesce } from '../../support/time';
import { oneKeyAnsweredByHand, chatReply, errorReply } from '../../support/upstream';

afterEach(() => {
  vi.useRealTimers();
});

const BODY = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hi' }], max_tokens: 8 };

test('a success that came during a stall longer than the hold is judged in its place: the failures around it are no run, the circuit stays closed', async () => {
  fakeClock();
  // Opens at 2 failures in a row.
  const { manager, client, answers } = oneKeyAnsweredByHand({ policy: { kind: 'consecutive', threshold: 2 } });
  const opened: string[] = [];
  manager.on('circuit:open', (e) => void opened.push(e.scope));
  const outcomes: string[] = [];
  const send = () =>
    void client.chat.completions.create(BODY).then(
      () => void outcomes.push('ok'),
      (error: unknown) => void outcomes.push(getKeyplexDetails(error)?.code ?? 'other'),
    );

  // Calls 0, 1, 2 go out in that order; 0 fails at once (judged: nothing earlier in flight), 2 fails and is held behind 1.
  for (let call = 0; call < 3; call++) {
    send();
    await vi.advanceTimersByTimeAsync(1);
  }
  expect(answers).toHaveLength(3);
  answers[0]!(errorReply(500, 'server_error'));
  await vi.advanceTimersByTimeAsync(1);
  answers[2]!(errorReply(500, 'server_error'));
  await vi.advanceTimersByTimeAsync(1);
  expect(outcomes).toEqual(['upstream_error', 'upstream_error']);

  // Call 1's success comes while the loop is blocked past the hold (5 s before any success): the hold's timer runs before it is read.
  answers[1]!(chatReply('gpt-4.1'));
  vi.advanceTimersByTime(6_000);
  await quiesce(() => outcomes.length);

  expect(outcomes).toEqual(['upstream_error', 'upstream_error', 'ok']);
  // Before: ['deployment', 'key'] (calls 0 and 2 judged a run of two failures, call 1 let go as hung).
  expect(opened).toEqual([]);
  await manager.close();
});
