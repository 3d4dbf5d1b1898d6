/**
 * A burst far over capacity, across lanes, through the real `openai` SDK:
 * 1,000 requests at once in three lanes on two keys of 10 requests a minute,
 * with upstream 500s, a failing `beforeAttempt` hook, callers that give up
 * and short deadlines. Every request settles with a typed outcome, the one
 * its `failure` event names; `stats()` and the events agree; nothing stays
 * held (lane slots, in-flight counts); no key is sent more than its limit in
 * any minute. On a fake clock: the figures do not move with the machine's load.
 */
import OpenAI from 'openai';
import { expect, test, vi } from 'vitest';
import { getKeyplexDetails, keyplex } from '../../../src/index';
import { fakeKey } from '../../support/fake-keys';
import { managedClients } from '../../support/manage';
import '../../support/setup';
import { fakeClock, quiesce } from '../../support/time';
import { chatReply, errorReply } from '../../support/upstream';
import { record } from '../../support/events';

const MODEL = 'gpt-4.1';
const RPM = 10;
const manage = managedClients();

/** Most sends in any window of `periodMs` among `times`. */
function busiest(times: readonly number[], periodMs: number): number {
  let most = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i]! - times[j]! >= periodMs) j++;
    most = Math.max(most, i - j + 1);
  }
  return most;
}

test('1,000 at once in three lanes on 2 keys of 10 rpm: every request settles as its failure event says, stats agree, nothing held, no key over 10 in any minute', async () => {
  fakeClock();
  const keys = [fakeKey('burst'), fakeKey('burst')];
  const sentBy = new Map<string, number[]>(keys.map((key) => [key, []]));
  let calls = 0;
  const fetch = (async (_url: string, init: RequestInit) => {
    const key = new Headers(init.headers).get('authorization')!.replace('Bearer ', '');
    sentBy.get(key)!.push(Date.now());
    // Every 7th call fails (a transient 500: retried on the other key while the deadline allows).
    return ++calls % 7 === 0 ? errorReply(500) : chatReply(MODEL);
  }) as typeof globalThis.fetch;
  let attempts = 0;
  const { manager, client } = manage({
    providers: { one: { baseURL: 'https://burst.test/v1', keys, models: [MODEL], rpm: RPM } },
    fetch,
    deadlineMs: 180_000,
    retry: { baseDelayMs: 0 },
    lanes: {
      critical: { concurrency: 4, maxQueue: 40, queueTimeoutMs: 30_000 },
      standard: { concurrency: 8, maxQueue: 150, queueTimeoutMs: 90_000 },
      batch: { concurrency: 8, maxQueue: 300, queueTimeoutMs: 150_000 },
    },
    hooks: {
      beforeAttempt: async () => {
        if (++attempts % 11 === 0) throw new Error('refused by the app');
      },
    },
  });
  const failures = record(manager, 'failure');
  const successes = record(manager, 'success');
  const rejections = record(manager, 'lane:rejected');
  const giveUp = new AbortController();

  const outcomes: { requestId?: string; code: string }[] = [];
  const requests = Array.from({ length: 1_000 }, (_, i) => {
    const lane = i % 10 === 0 ? 'critical' : i % 3 === 0 ? 'standard' : 'batch';
    const options = keyplex.options({ lane, ...(i % 13 === 0 && { deadlineMs: 20_000 }) }, i % 17 === 0 ? { signal: giveUp.signal } : {});
    return client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: `#${i}` }] }, options).then(
      () => outcomes.push({ code: 'served' }),
      (error: unknown) => {
        const detail = getKeyplexDetails(error);
        outcomes.push({ requestId: detail?.requestId, code: detail?.code ?? (error instanceof OpenAI.APIUserAbortError ? 'caller-abort' : String(error)) });
      },
    );
  });
  const sends = () => [...sentBy.values()].reduce((n, list) => n + list.length, 0);
  await quiesce(() => sends() * 10_000 + outcomes.length);
  for (let s = 1; s <= 300 && outcomes.length < requests.length; s++) {
    await vi.advanceTimersByTimeAsync(1_000);
    if (s === 40) giveUp.abort(new Error('the caller gave up'));
    await quiesce(() => sends() * 10_000 + outcomes.length, 3);
  }
  await Promise.all(requests);

  // Every request settled, each as its failure event says (a caller's abort: the SDK's own error, 'aborted' in the event).
  expect(outcomes).toHaveLength(1_000);
  const byCode: Record<string, number> = {};
  for (const { code } of outcomes) byCode[code] = (byCode[code] ?? 0) + 1;
  const failureById = new Map(failures.map((f) => [f.requestId, f.error.code]));
  for (const outcome of outcomes.filter((o) => o.requestId !== undefined)) expect(failureById.get(outcome.requestId!)).toBe(outcome.code);
  expect(Object.keys(byCode).sort()).toEqual(['caller-abort', 'deadline_exceeded', 'hook_failed', 'lane_full', 'no_key_available', 'queue_timeout', 'served', 'upstream_error'].filter((c) => byCode[c] !== undefined));
  expect(byCode.served).toBeGreaterThan(0);

  // stats() and the events agree with what the app saw.
  const stats = manager.stats();
  const { 'caller-abort': aborted = 0, served = 0, ...failed } = byCode;
  expect(stats.totals.requests).toBe(1_000);
  expect(stats.totals.successes).toBe(served);
  expect(successes).toHaveLength(served);
  expect(stats.totals.failures).toEqual({ ...failed, ...(aborted > 0 && { aborted }) });
  expect(failures).toHaveLength(1_000 - served);
  const lanes = Object.values(stats.lanes);
  expect(rejections).toHaveLength(byCode.lane_full ?? 0);
  expect(lanes.reduce((n, lane) => n + lane.rejected, 0)).toBe(byCode.lane_full ?? 0);
  expect(lanes.reduce((n, lane) => n + lane.timedOut, 0)).toBe(byCode.queue_timeout ?? 0);

  // Nothing held.
  for (const lane of lanes) expect({ running: lane.running, queued: lane.queued }).toEqual({ running: 0, queued: 0 });
  expect(stats.totals.inFlight).toBe(0);
  expect(stats.providers.one!.keys.map((key) => key.inFlight)).toEqual([0, 0]);
  expect(stats.deployments.map((d) => d.inFlight)).toEqual([0]);

  // Paced: no key over its limit in any minute, counted where the requests arrive.
  for (const times of sentBy.values()) expect(busiest(times, 60_000)).toBeLessThanOrEqual(RPM);
});
