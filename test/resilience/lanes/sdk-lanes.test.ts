/**
 * Bulkhead lanes end to end (DESIGN.md §2 step 2 "Admit", §3 "bulkhead"):
 * bounded concurrency and bounded queues per lane, load shedding, queue
 * timeouts, aborts and closing, driven through the real `openai` SDK wrapped
 * by `manager.wrap()`.
 */
import OpenAI from 'openai';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { useManagers } from '../../support/scaffold';
import { getKeyplexDetails, keyplex, REQUEST_ID_HEADER, type KeyManager, type KeyManagerOptions } from '../../../src/index';
import { chatReply, deferred, keyRing, provider, type Deferred, type UpstreamCall } from '../../support/upstream';
import '../../support/setup';
import { fakeClock, until, realSetImmediate } from '../../support/time';
import { record } from '../../support/events';

const ONE = 'https://api.one.test/v1';
const MODEL = 'gpt-4.1';

const managed = useManagers({});
const holds: Deferred<void>[] = [];

/**
 * Cold start open: the held calls stand for slow replies, and on a key of unknown limits keyplex would send
 * one first and hold the others for its headers (docs/rate-limits.md); these tests are about lanes.
 */
function manage(options: Omit<KeyManagerOptions, 'providers'>) {
  return managed({ providers: { one: { baseURL: ONE, keys: keyRing('k1', 'k2').keys, models: [MODEL] } }, rateLimiting: { coldStart: 'open' }, ...options });
}

afterEach(() => {
  for (const hold of holds.splice(0)) hold.resolve();
});

const tick = () => new Promise<void>((resolve) => realSetImmediate(resolve));

/** A chat body whose message names its kind, so the upstream stand-in can tell them apart. */
function body(kind: string) {
  return { model: MODEL, messages: [{ role: 'user' as const, content: kind }] };
}
const kindOf = (call: UpstreamCall) => ((call.body?.messages as { content?: string }[] | undefined)?.[0]?.content ?? '');

/**
 * The upstream: calls whose message is `held` wait until `release()`; every
 * other call answers at once.
 */
function upstream() {
  const gate = deferred();
  holds.push(gate);
  const seen = provider(ONE, async (call) => {
    if (kindOf(call) === 'held') await gate.promise;
    return chatReply(MODEL);
  });
  return { seen, release: () => gate.resolve(), count: (kind: string) => seen.filter((call) => kindOf(call) === kind).length };
}

/** Sends `n` held requests in `lane`; their promises settle (never reject unhandled). */
function flood(client: OpenAI, n: number, lane: string, options: { signal?: AbortSignal } = {}) {
  return Array.from({ length: n }, () =>
    client.chat.completions.create(body('held'), keyplex.options({ lane }, options)).then(
      (reply) => ({ ok: true as const, reply }),
      (error: unknown) => ({ ok: false as const, error }),
    ),
  );
}

describe('lanes isolate work', () => {
  test('a flood of 50 batch requests does not delay critical ones: they reach upstream at once while batch runs 2 and queues 48', async () => {
    fakeClock();
    const up = upstream();
    const { manager, client } = manage({ lanes: { batch: { concurrency: 2, maxQueue: 100 } } });
    const batch = flood(client, 50, 'batch');
    await until(() => up.count('held') === 2 && manager.lanes.batch?.queued === 48, 'batch: 2 running, 48 queued');

    const critical = await Promise.all(Array.from({ length: 5 }, () => client.chat.completions.create(body('critical'), keyplex.options({ lane: 'critical' }))));

    expect(critical.map((r) => r.choices[0]?.message.content)).toEqual(Array<string>(5).fill('hello'));
    expect(up.count('critical')).toBe(5);
    expect(up.count('held')).toBe(2);
    expect(manager.lanes.batch).toEqual({ running: 2, queued: 48, concurrency: 2, maxQueue: 100, rejected: 0, timedOut: 0 });
    up.release();
    await Promise.all(batch);
  });

  test('manager.onIdle() resolves once the flood has drained, not before', async () => {
    fakeClock();
    const up = upstream();
    const { manager, client } = manage({ lanes: { batch: { concurrency: 2, maxQueue: 100 } } });
    const batch = flood(client, 50, 'batch');
    await until(() => manager.lanes.batch?.queued === 48, '48 queued');
    let idle = false;
    const idlePromise = manager.onIdle().then(() => (idle = true));
    for (let i = 0; i < 20; i++) await tick();
    expect(idle).toBe(false);

    up.release();
    await idlePromise;

    expect(up.count('held')).toBe(50);
    expect(manager.lanes.batch).toMatchObject({ running: 0, queued: 0 });
    const settled = await Promise.all(batch);
    expect(settled.every((s) => s.ok)).toBe(true);
  });
});

/** A batch lane of 1 slot and 1 place in its queue, its slot taken by a held request. */
async function heldBatch() {
  const up = upstream();
  const { manager, client } = manage({ lanes: { batch: { concurrency: 1, maxQueue: 1, queueTimeoutMs: 5_000 } } });
  const held = flood(client, 1, 'batch');
  await until(() => manager.lanes.batch?.running === 1, 'one running');
  return { up, manager, client, held };
}

/**
 * In {@link heldBatch}'s lane: a request that waits in the queue until it
 * times out (5 s on the fake clock), and one refused as full meanwhile;
 * `alsoSend` is sent after them, before the timeout. Their errors.
 */
async function fullAndTimedOut(manager: KeyManager, client: OpenAI, alsoSend?: () => Promise<unknown>) {
  const waiting = client.chat.completions.create(body('late'), keyplex.options({ lane: 'batch' })).catch((e: unknown) => e);
  await until(() => manager.lanes.batch?.queued === 1, 'one queued');
  const full = await client.chat.completions.create(body('extra'), keyplex.options({ lane: 'batch' })).catch((e: unknown) => e);
  const also = await alsoSend?.();
  await vi.advanceTimersByTimeAsync(5_000);
  return { full, timedOut: await waiting, also };
}

describe('load shedding and refusals', () => {
  test('a full lane rejects at once: the SDK raises RateLimitError with code lane_full, and nothing is sent upstream', async () => {
    fakeClock();
    const up = upstream();
    const { manager, client } = manage({ lanes: { batch: { concurrency: 1, maxQueue: 2 } } });
    const held = flood(client, 3, 'batch');
    await until(() => up.count('held') === 1 && manager.lanes.batch?.queued === 2, 'batch full');

    // Fake timers never advance here: a wait would hang the call.
    const error = await client.chat.completions.create(body('extra'), keyplex.options({ lane: 'batch' })).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    expect(getKeyplexDetails(error)).toMatchObject({ code: 'lane_full' });
    expect(up.count('extra')).toBe(0);
    expect(up.seen).toHaveLength(1);
    up.release();
    await Promise.all(held);
  });

  test('a full lane emits lane:rejected with its load and capacities', async () => {
    fakeClock();
    const up = upstream();
    const { manager, client } = manage({ lanes: { batch: { concurrency: 1, maxQueue: 2 } } });
    const rejected = record(manager, 'lane:rejected');
    const held = flood(client, 3, 'batch');
    await until(() => manager.lanes.batch?.queued === 2, 'batch full');

    await client.chat.completions.create(body('extra'), keyplex.options({ lane: 'batch' })).catch(() => undefined);

    expect(rejected).toEqual([{ lane: 'batch', reason: 'full', running: 1, queued: 2, concurrency: 1, maxQueue: 2 }]);
    expect(manager.lanes.batch?.rejected).toBe(1);
    up.release();
    await Promise.all(held);
  });

  test('a request that waits longer than queueTimeoutMs fails with queue_timeout (SDK InternalServerError, 503) and is never sent', async () => {
    fakeClock();
    const up = upstream();
    const { manager, client } = manage({ lanes: { batch: { concurrency: 1, maxQueue: 10, queueTimeoutMs: 5_000 } } });
    const held = flood(client, 1, 'batch');
    await until(() => manager.lanes.batch?.running === 1, 'one running');
    const waiting = client.chat.completions.create(body('late'), keyplex.options({ lane: 'batch' })).catch((e: unknown) => e);
    await until(() => manager.lanes.batch?.queued === 1, 'one queued');

    await vi.advanceTimersByTimeAsync(4_999);
    expect(manager.lanes.batch?.queued).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    const error = await waiting;

    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect(getKeyplexDetails(error)).toMatchObject({ code: 'queue_timeout' });
    expect(up.count('late')).toBe(0);
    expect(manager.lanes.batch).toMatchObject({ queued: 0, timedOut: 1 });
    up.release();
    await Promise.all(held);
  });

  test('an unknown lane gives BadRequestError with code unknown_lane, and nothing is sent', async () => {
    const up = upstream();
    const { client } = manage({});

    const error = await client.chat.completions.create(body('lost'), keyplex.options({ lane: 'nope' })).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect(getKeyplexDetails(error)).toMatchObject({ code: 'unknown_lane' });
    expect(up.seen).toHaveLength(0);
  });
  test('stats({ reset: true }) starts the lanes\' rejected and timedOut counts from zero too, like the failures they count in totals', async () => {
    fakeClock();
    const { up, manager, client, held } = await heldBatch();
    await fullAndTimedOut(manager, client);

    const interval = manager.stats({ reset: true });
    expect(interval.totals.failures).toEqual({ lane_full: 1, queue_timeout: 1 });
    expect(interval.lanes.batch).toMatchObject({ rejected: 1, timedOut: 1 });
    const next = manager.stats();
    expect(next.totals.failures).toEqual({});
    expect(next.lanes.batch).toMatchObject({ running: 1, queued: 0, rejected: 0, timedOut: 0 });
    expect(manager.lanes.batch).toMatchObject({ rejected: 0, timedOut: 0 });
    up.release();
    await Promise.all(held);
  });

  test('a lane refusal (full, queue timeout, unknown lane) names its request: the SDK error carries the requestId of its failure event (detail and x-keyplex-request-id)', async () => {
    fakeClock();
    const { up, manager, client, held } = await heldBatch();
    const failures = record(manager, 'failure');
    const unknownLane = () => client.chat.completions.create(body('lost'), keyplex.options({ lane: 'nope' })).catch((e: unknown) => e);
    const { full, timedOut, also: unknown } = await fullAndTimedOut(manager, client, unknownLane);

    const errors = [full, unknown, timedOut];
    expect(errors.map((e) => getKeyplexDetails(e)?.code)).toEqual(['lane_full', 'unknown_lane', 'queue_timeout']);
    expect(failures.map((f) => f.error.code)).toEqual(['lane_full', 'unknown_lane', 'queue_timeout']);
    expect(errors.map((e) => getKeyplexDetails(e)?.requestId)).toEqual(failures.map((f) => f.requestId));
    expect(errors.map((e) => (e as InstanceType<typeof OpenAI.APIError>).headers?.get(REQUEST_ID_HEADER))).toEqual(failures.map((f) => f.requestId));
    expect(up.seen).toHaveLength(1);
    up.release();
    await Promise.all(held);
  });
});

describe('waiting in a lane', () => {
  test('a caller abort while queued rejects with APIUserAbortError and frees the place in the queue', async () => {
    fakeClock();
    const up = upstream();
    const { manager, client } = manage({ lanes: { batch: { concurrency: 1, maxQueue: 1 } } });
    const rejected = record(manager, 'lane:rejected');
    const held = flood(client, 1, 'batch');
    await until(() => manager.lanes.batch?.running === 1, 'one running');
    const controller = new AbortController();
    const [queued] = flood(client, 1, 'batch', { signal: controller.signal });
    await until(() => manager.lanes.batch?.queued === 1, 'one queued');

    controller.abort();
    const outcome = await queued!;

    expect(outcome.ok).toBe(false);
    expect(!outcome.ok && outcome.error).toBeInstanceOf(OpenAI.APIUserAbortError);
    expect(manager.lanes.batch?.queued).toBe(0);
    // The place is free again: the next request queues instead of being shed.
    const next = flood(client, 1, 'batch');
    await until(() => manager.lanes.batch?.queued === 1, 'next queued');
    expect(rejected).toEqual([]);
    up.release();
    await Promise.all([...held, ...next]);
    expect(up.count('held')).toBe(2);
  });

  test('the request deadline covers time spent queued: a request queued past its deadline fails with deadline_exceeded, unsent', async () => {
    fakeClock();
    const up = upstream();
    const { manager, client } = manage({ lanes: { batch: { concurrency: 1, maxQueue: 10, queueTimeoutMs: 60_000 } } });
    const failures = record(manager, 'failure');
    const held = flood(client, 1, 'batch');
    await until(() => manager.lanes.batch?.running === 1, 'one running');
    const waiting = client.chat.completions.create(body('late'), keyplex.options({ lane: 'batch', deadlineMs: 3_000 })).catch((e: unknown) => e);
    await until(() => manager.lanes.batch?.queued === 1, 'one queued');

    await vi.advanceTimersByTimeAsync(3_000);
    const error = await waiting;

    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect(getKeyplexDetails(error)?.code).toBe('deadline_exceeded');
    expect(failures.map((f) => f.error.code)).toEqual(['deadline_exceeded']);
    expect(up.count('late')).toBe(0);
    expect(manager.lanes.batch).toMatchObject({ queued: 0, timedOut: 0 });
    up.release();
    await Promise.all(held);
  });
  test('a burst sharing one deadline, queued behind slow replies, sends none of its queued requests when the deadline comes', async () => {
    // Every request's deadline is due at the same moment: the first to end frees its slot before the
    // timers of the queued ones have run. Each freed slot used to send the next one, past its deadline.
    fakeClock();
    const up = upstream();
    const { manager, client } = manage({ lanes: { batch: { concurrency: 2, maxQueue: 50, queueTimeoutMs: 60_000 } } });
    const attempts = record(manager, 'attempt');
    const failures = record(manager, 'failure');
    const burst = Array.from({ length: 20 }, () => client.chat.completions.create(body('held'), keyplex.options({ lane: 'batch', deadlineMs: 3_000 })).catch((e: unknown) => e));
    await until(() => up.count('held') === 2 && manager.lanes.batch?.queued === 18, '2 sent, 18 queued');

    await vi.advanceTimersByTimeAsync(3_000);
    const errors = await Promise.all(burst);

    expect(errors.map((e) => getKeyplexDetails(e)?.code)).toEqual(Array(20).fill('deadline_exceeded'));
    expect(failures).toHaveLength(20);
    expect(up.count('held')).toBe(2);
    expect(attempts).toHaveLength(2);
    expect(manager.lanes.batch).toMatchObject({ running: 0, queued: 0 });
    expect(manager.stats().totals.inFlight).toBe(0);
  });
});

describe('closing', () => {
  test('close({ drain: true }) lets queued work finish while new requests are refused with manager_closed', async () => {
    fakeClock();
    const up = upstream();
    const { manager, client } = manage({ lanes: { batch: { concurrency: 1, maxQueue: 10 } } });
    const held = flood(client, 3, 'batch');
    await until(() => manager.lanes.batch?.running === 1 && manager.lanes.batch.queued === 2, '1 running, 2 queued');

    let closed = false;
    const closing = manager.close({ drain: true }).then(() => (closed = true));
    const refused = await client.chat.completions.create(body('new'), keyplex.options({ lane: 'batch' })).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.InternalServerError);
    expect(getKeyplexDetails(refused)).toMatchObject({ code: 'manager_closed' });
    expect(closed).toBe(false);

    up.release();
    await closing;
    const settled = await Promise.all(held);

    expect(settled.map((s) => s.ok)).toEqual([true, true, true]);
    expect(up.count('held')).toBe(3);
    expect(up.count('new')).toBe(0);
  });

  test('close() during a close({ drain: true }) ends what the drain waits for (a shutdown whose grace period ran out)', async () => {
    fakeClock();
    const up = upstream();
    const { manager, client } = manage({ lanes: { batch: { concurrency: 1, maxQueue: 10 } } });
    const failures = record(manager, 'failure');
    const held = flood(client, 3, 'batch');
    await until(() => up.count('held') === 1 && manager.lanes.batch?.queued === 2, '1 running upstream, 2 queued');
    let drained = false;
    const draining = manager.close({ drain: true }).then(() => (drained = true));
    await tick();

    await manager.close();
    const settled = await Promise.all(held);
    await draining;

    expect(drained).toBe(true);
    expect(settled.map((s) => getKeyplexDetails(!s.ok && s.error)?.code)).toEqual(['manager_closed', 'manager_closed', 'manager_closed']);
    expect(failures.map((f) => f.error.code)).toEqual(['manager_closed', 'manager_closed', 'manager_closed']);
    expect(up.count('held')).toBe(1);
    expect(manager.lanes.batch).toMatchObject({ running: 0, queued: 0 });
  });

  test('close() by default rejects queued work with manager_closed; it is never sent', async () => {
    fakeClock();
    const up = upstream();
    const { manager, client } = manage({ lanes: { batch: { concurrency: 1, maxQueue: 10 } } });
    const held = flood(client, 3, 'batch');
    await until(() => up.count('held') === 1 && manager.lanes.batch?.queued === 2, '1 running upstream, 2 queued');

    await manager.close();
    const settled = await Promise.all(held);

    expect(settled.map((s) => s.ok)).toEqual([false, false, false]);
    for (const s of settled) {
      expect(!s.ok && s.error).toBeInstanceOf(OpenAI.InternalServerError);
      expect(getKeyplexDetails(!s.ok && s.error)).toMatchObject({ code: 'manager_closed' });
    }
    expect(up.count('held')).toBe(1);
    expect(manager.lanes.batch).toMatchObject({ running: 0, queued: 0 });
  });
});

describe('lanes in the line for a key', () => {
  /** One key of 2 rpm: 2 requests go at once, the rest wait in the line for it. */
  function paced(lanes?: KeyManagerOptions['lanes']) {
    fakeClock();
    const seen = provider(ONE, () => chatReply(MODEL));
    const { manager, client } = managed({ providers: { one: { baseURL: ONE, keys: keyRing('k1').keys, models: [MODEL], rpm: 2 } }, rateLimiting: { coldStart: 'open' }, ...(lanes ? { lanes } : {}) });
    const send = (kind: string, lane: string) => client.chat.completions.create(body(kind), keyplex.options({ lane }));
    return { seen, manager, send, order: () => seen.map(kindOf) };
  }

  test('a critical request waits behind at most the first in line, not behind every batch request that came before it', async () => {
    const { send, order } = paced();
    const batch = Array.from({ length: 8 }, (_, i) => send(`batch ${i + 1}`, 'batch'));
    await until(() => order().length === 2, 'two sent, six in the line');
    await vi.advanceTimersByTimeAsync(1_000);
    const critical = send('critical', 'critical');

    await vi.advanceTimersByTimeAsync(60_000);

    expect(order()).toEqual(['batch 1', 'batch 2', 'batch 3', 'critical']);
    await critical;
    await vi.advanceTimersByTimeAsync(180_000);
    await Promise.all(batch);
    expect(order().slice(4)).toEqual(['batch 4', 'batch 5', 'batch 6', 'batch 7', 'batch 8']);
  });

  test('standard goes before batch, in arrival order within a lane; a lane given `priority` takes its place', async () => {
    const { send, order } = paced({ realtime: { priority: 0 }, bulk: { priority: 5 } });
    const first = [send('batch 1', 'batch'), send('batch 2', 'batch'), send('batch 3', 'batch')];
    await until(() => order().length === 2, 'two sent, the third first in line');
    const rest = [send('bulk', 'bulk'), send('batch 4', 'batch'), send('standard 1', 'standard'), send('realtime', 'realtime'), send('standard 2', 'standard')];

    await vi.advanceTimersByTimeAsync(4 * 60_000);
    await Promise.all([...first, ...rest]);

    expect(order()).toEqual(['batch 1', 'batch 2', 'batch 3', 'realtime', 'standard 1', 'standard 2', 'batch 4', 'bulk']);
  });
});
