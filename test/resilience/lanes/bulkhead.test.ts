import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ConfigError, LaneFullError, ManagerClosedError, QueueTimeoutError, UnknownLaneError } from '../../../src/errors';
import { Bulkhead, DEFAULT_LANES, resolveLanes, type LaneOptions, type LaneRejection } from '../../../src/resilience/bulkhead';

/** A task that resolves when told to, and records when it started. */
function gated<T = string>(value?: T) {
  let open!: () => void;
  let fail!: (error: unknown) => void;
  const done = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  const gate = {
    started: false,
    open,
    fail,
    task: async () => {
      gate.started = true;
      await done;
      return value as T;
    },
  };
  return gate;
}

/** Lets every pending promise callback run (setImmediate is not faked). */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

const lane = (concurrency: number, maxQueue: number, queueTimeoutMs = 1_000): LaneOptions => ({ concurrency, maxQueue, queueTimeoutMs });

describe('Bulkhead admission', () => {
  it('starts tasks at once up to the lane concurrency and queues the rest', async () => {
    const bulkhead = new Bulkhead({ work: lane(2, 10) });
    const gates = [gated(), gated(), gated()];
    const runs = gates.map((gate) => bulkhead.run('work', gate.task));
    await flush();
    expect(gates.map((gate) => gate.started)).toEqual([true, true, false]);
    for (const gate of gates) gate.open();
    await Promise.all(runs);
  });

  it('starts a task synchronously when a slot is free', () => {
    const bulkhead = new Bulkhead({ work: lane(1, 0) });
    const gate = gated();
    void bulkhead.run('work', gate.task);
    expect(gate.started).toBe(true);
    gate.open();
  });

  it('starts queued tasks in FIFO order', async () => {
    const bulkhead = new Bulkhead({ work: lane(1, 10) });
    const order: number[] = [];
    const first = gated();
    const runs = [bulkhead.run('work', first.task)];
    for (let index = 1; index <= 4; index++) {
      runs.push(
        bulkhead.run('work', async () => {
          order.push(index);
          return '';
        }),
      );
    }
    first.open();
    await Promise.all(runs);
    expect(order).toEqual([1, 2, 3, 4]);
  });

  it('resolves with the task result', async () => {
    const bulkhead = new Bulkhead({ work: lane(1, 0) });
    await expect(bulkhead.run('work', async () => 42)).resolves.toBe(42);
  });

  it('frees the slot when the task rejects', async () => {
    const bulkhead = new Bulkhead({ work: lane(1, 0) });
    await expect(bulkhead.run('work', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(bulkhead.run('work', async () => 'next')).resolves.toBe('next');
  });

  it('rejects at once with LaneFullError carrying the load when the queue is full', async () => {
    const bulkhead = new Bulkhead({ batch: lane(2, 1) });
    const gates = [gated(), gated(), gated()];
    const runs = gates.map((gate) => bulkhead.run('batch', gate.task));
    const error = await bulkhead.run('batch', async () => 'never').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(LaneFullError);
    expect(error).toMatchObject({ code: 'lane_full', lane: 'batch', running: 2, queued: 1, concurrency: 2, maxQueue: 1, status: 429 });
    expect((error as Error).message).toContain("lane 'batch' is full: 2 running, 1 queued");
    expect((error as Error).message).toContain('lanes.batch.maxQueue');
    for (const gate of gates) gate.open();
    await Promise.all(runs);
  });

  it('calls onRejected with the lane load when it sheds a request', async () => {
    const rejections: LaneRejection[] = [];
    const bulkhead = new Bulkhead({ batch: lane(1, 0) }, (rejection) => rejections.push(rejection));
    const gate = gated();
    const running = bulkhead.run('batch', gate.task);
    await bulkhead.run('batch', async () => 'never').catch(() => undefined);
    expect(rejections).toEqual([{ lane: 'batch', reason: 'full', running: 1, queued: 0, concurrency: 1, maxQueue: 0 }]);
    gate.open();
    await running;
  });

  it('still rejects with LaneFullError when onRejected throws', async () => {
    const bulkhead = new Bulkhead({ batch: lane(1, 0) }, () => {
      throw new Error('listener bug');
    });
    const gate = gated();
    const running = bulkhead.run('batch', gate.task);
    await expect(bulkhead.run('batch', async () => 'never')).rejects.toBeInstanceOf(LaneFullError);
    gate.open();
    await running;
  });

  it('counts rejected requests in stats', async () => {
    const bulkhead = new Bulkhead({ batch: lane(1, 0) });
    const gate = gated();
    const running = bulkhead.run('batch', gate.task);
    await bulkhead.run('batch', async () => 'never').catch(() => undefined);
    expect(bulkhead.stats().batch?.rejected).toBe(1);
    gate.open();
    await running;
  });

  it('rejects an unknown lane with UnknownLaneError listing the lanes', async () => {
    const bulkhead = new Bulkhead({ critical: lane(1, 0), batch: lane(1, 0) });
    const error = await bulkhead.run('bulk', async () => 'never').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(UnknownLaneError);
    expect(error).toMatchObject({ code: 'unknown_lane', lane: 'bulk', lanes: ['critical', 'batch'] });
    expect((error as Error).message).toContain("'critical', 'batch'");
  });

  it('reports running and queued requests per lane in stats', async () => {
    const bulkhead = new Bulkhead({ a: lane(2, 5), b: lane(1, 5) });
    const gates = [gated(), gated(), gated(), gated()];
    const runs = [...gates.slice(0, 3).map((gate) => bulkhead.run('a', gate.task)), bulkhead.run('b', gates[3]!.task)];
    expect(bulkhead.stats()).toEqual({
      a: { running: 2, queued: 1, concurrency: 2, maxQueue: 5, rejected: 0, timedOut: 0 },
      b: { running: 1, queued: 0, concurrency: 1, maxQueue: 5, rejected: 0, timedOut: 0 },
    });
    for (const gate of gates) gate.open();
    await Promise.all(runs);
  });

  it('tells which lanes exist with has()', () => {
    const bulkhead = new Bulkhead({ critical: lane(1, 0) });
    expect([bulkhead.has('critical'), bulkhead.has('batch'), bulkhead.has('toString')]).toEqual([true, false, false]);
  });
});

describe('Bulkhead lane isolation', () => {
  it('starts critical tasks at once while batch has 1000 queued', async () => {
    const bulkhead = new Bulkhead(resolveLanesOrThrow(undefined));
    const batchGates = Array.from({ length: DEFAULT_LANES.batch.concurrency + 1_000 }, () => gated());
    const batchRuns = batchGates.map((gate) => bulkhead.run('batch', gate.task));
    expect(bulkhead.stats().batch).toMatchObject({ running: DEFAULT_LANES.batch.concurrency, queued: 1_000 });

    const criticalGates = Array.from({ length: 10 }, () => gated());
    const criticalRuns = criticalGates.map((gate) => bulkhead.run('critical', gate.task));
    expect(criticalGates.every((gate) => gate.started)).toBe(true);
    expect(bulkhead.stats().critical).toMatchObject({ running: 10, queued: 0 });

    for (const gate of [...batchGates, ...criticalGates]) gate.open();
    await Promise.all([...batchRuns, ...criticalRuns]);
  });
});

describe('Bulkhead queue timeout', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('rejects a request that waited longer than queueTimeoutMs with QueueTimeoutError', async () => {
    const bulkhead = new Bulkhead({ batch: lane(1, 5, 500) });
    const gate = gated();
    const running = bulkhead.run('batch', gate.task);
    const waiting = bulkhead.run('batch', async () => 'never').catch((caught: unknown) => caught);
    await vi.advanceTimersByTimeAsync(499);
    expect(bulkhead.stats().batch?.queued).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    const error = await waiting;
    expect(error).toBeInstanceOf(QueueTimeoutError);
    expect(error).toMatchObject({ code: 'queue_timeout', lane: 'batch', waitedMs: 500 });
    gate.open();
    await running;
  });

  it('never runs a task whose wait timed out', async () => {
    const bulkhead = new Bulkhead({ batch: lane(1, 5, 500) });
    const gate = gated();
    const late = gated();
    const running = bulkhead.run('batch', gate.task);
    const waiting = bulkhead.run('batch', late.task).catch(() => undefined);
    await vi.advanceTimersByTimeAsync(500);
    await waiting;
    gate.open();
    await running;
    await bulkhead.onIdle();
    expect(late.started).toBe(false);
    expect(bulkhead.stats().batch).toMatchObject({ running: 0, queued: 0, timedOut: 1 });
  });

  it('clears the queue timer when the task starts', async () => {
    const bulkhead = new Bulkhead({ batch: lane(1, 5, 500) });
    const gate = gated();
    const running = bulkhead.run('batch', gate.task);
    const next = bulkhead.run('batch', async () => 'next');
    expect(vi.getTimerCount()).toBe(1);
    gate.open();
    await expect(next).resolves.toBe('next');
    await running;
    expect(vi.getTimerCount()).toBe(0);
  });

  it('sets no timer for a request that starts at once', async () => {
    const bulkhead = new Bulkhead({ batch: lane(1, 5, 500) });
    const gate = gated();
    const running = bulkhead.run('batch', gate.task);
    expect(vi.getTimerCount()).toBe(0);
    gate.open();
    await running;
  });
});

describe('Bulkhead queue timer with real timers', () => {
  it('does not keep the process alive (the timer is unref’d)', async () => {
    const spy = vi.spyOn(globalThis, 'setTimeout');
    const bulkhead = new Bulkhead({ batch: lane(1, 5, 60_000) });
    const gate = gated();
    const running = bulkhead.run('batch', gate.task);
    const waiting = bulkhead.run('batch', async () => 'next');
    const timer = spy.mock.results[0]?.value as NodeJS.Timeout;
    expect(timer.hasRef()).toBe(false);
    gate.open();
    await Promise.all([running, waiting]);
  });
});

describe('Bulkhead abort', () => {
  it('rejects a queued request with the signal reason when it aborts', async () => {
    const bulkhead = new Bulkhead({ work: lane(1, 5) });
    const gate = gated();
    const running = bulkhead.run('work', gate.task);
    const controller = new AbortController();
    const waiting = bulkhead.run('work', async () => 'never', controller.signal);
    const reason = new Error('caller gave up');
    controller.abort(reason);
    await expect(waiting).rejects.toBe(reason);
    gate.open();
    await running;
  });

  it('never runs a task aborted while queued', async () => {
    const bulkhead = new Bulkhead({ work: lane(1, 5) });
    const gate = gated();
    const aborted = gated();
    const running = bulkhead.run('work', gate.task);
    const controller = new AbortController();
    const waiting = bulkhead.run('work', aborted.task, controller.signal).catch(() => undefined);
    controller.abort();
    await waiting;
    gate.open();
    await running;
    await bulkhead.onIdle();
    expect(aborted.started).toBe(false);
  });

  it('gives back the queue place of an aborted request (no leak)', async () => {
    const bulkhead = new Bulkhead({ work: lane(1, 1) });
    const gate = gated();
    const running = bulkhead.run('work', gate.task);
    const controller = new AbortController();
    const aborted = bulkhead.run('work', async () => 'never', controller.signal).catch(() => undefined);
    controller.abort();
    await aborted;
    expect(bulkhead.stats().work).toMatchObject({ running: 1, queued: 0 });
    const next = bulkhead.run('work', async () => 'next');
    gate.open();
    await expect(next).resolves.toBe('next');
    await running;
    expect(bulkhead.stats().work).toMatchObject({ running: 0, queued: 0 });
  });

  it('rejects at once without running when the signal is already aborted', async () => {
    const bulkhead = new Bulkhead({ work: lane(1, 5) });
    const gate = gated();
    const reason = new Error('already');
    await expect(bulkhead.run('work', gate.task, AbortSignal.abort(reason))).rejects.toBe(reason);
    expect(gate.started).toBe(false);
  });

  it('keeps the slot of a started task when its signal aborts', async () => {
    const bulkhead = new Bulkhead({ work: lane(1, 5) });
    const gate = gated();
    const controller = new AbortController();
    const running = bulkhead.run('work', gate.task, controller.signal);
    const next = gated();
    const waiting = bulkhead.run('work', next.task);
    controller.abort();
    await flush();
    expect(next.started).toBe(false);
    expect(bulkhead.stats().work).toMatchObject({ running: 1, queued: 1 });
    gate.open();
    await running;
    next.open();
    await waiting;
  });

  it('adds one listener to a signal shared by many queued requests', async () => {
    const bulkhead = new Bulkhead({ work: lane(1, 100) });
    const gate = gated();
    const running = bulkhead.run('work', gate.task);
    const controller = new AbortController();
    const add = vi.spyOn(controller.signal, 'addEventListener');
    const waiting = Array.from({ length: 50 }, () => bulkhead.run('work', async () => 'never', controller.signal).catch(() => 'aborted'));
    expect(add).toHaveBeenCalledTimes(1);
    controller.abort();
    expect(await Promise.all(waiting)).toEqual(Array(50).fill('aborted'));
    gate.open();
    await running;
  });
});

describe('Bulkhead acquire', () => {
  it('resolves with release once admitted and holds the slot until release', async () => {
    const bulkhead = new Bulkhead({ stream: lane(1, 5) });
    const release = await bulkhead.acquire('stream');
    const next = gated();
    const waiting = bulkhead.run('stream', next.task);
    await flush();
    expect(next.started).toBe(false);
    release();
    await flush();
    expect(next.started).toBe(true);
    next.open();
    await waiting;
  });

  it('shows the slot free in stats as soon as release is called', async () => {
    const bulkhead = new Bulkhead({ stream: lane(1, 5) });
    const release = await bulkhead.acquire('stream');
    expect(bulkhead.stats().stream?.running).toBe(1);
    release();
    expect(bulkhead.stats().stream?.running).toBe(0);
  });

  it('treats a second release as harmless', async () => {
    const bulkhead = new Bulkhead({ stream: lane(2, 5) });
    const first = await bulkhead.acquire('stream');
    const second = await bulkhead.acquire('stream');
    first();
    first();
    expect(bulkhead.stats().stream?.running).toBe(1);
    const gates = [gated(), gated()];
    const runs = gates.map((gate) => bulkhead.run('stream', gate.task));
    await flush();
    expect(gates.map((gate) => gate.started)).toEqual([true, false]);
    second();
    for (const gate of gates) gate.open();
    await Promise.all(runs);
  });

  it('waits in the queue like run and rejects like run when the lane is full', async () => {
    const bulkhead = new Bulkhead({ stream: lane(1, 1) });
    const release = await bulkhead.acquire('stream');
    const queued = bulkhead.acquire('stream');
    await expect(bulkhead.acquire('stream')).rejects.toBeInstanceOf(LaneFullError);
    release();
    const second = await queued;
    second();
  });

  it('rejects an acquire of an unknown lane', async () => {
    const bulkhead = new Bulkhead({ stream: lane(1, 1) });
    await expect(bulkhead.acquire('nope')).rejects.toBeInstanceOf(UnknownLaneError);
  });
});

describe('Bulkhead onIdle', () => {
  it('resolves once every lane has no running or queued work', async () => {
    const bulkhead = new Bulkhead({ a: lane(1, 5), b: lane(1, 5) });
    const gates = [gated(), gated(), gated()];
    const runs = [bulkhead.run('a', gates[0]!.task), bulkhead.run('a', gates[1]!.task), bulkhead.run('b', gates[2]!.task)];
    let idle = false;
    const waiting = bulkhead.onIdle().then(() => {
      idle = true;
    });
    gates[0]!.open();
    gates[2]!.open();
    await flush();
    expect(idle).toBe(false);
    gates[1]!.open();
    await Promise.all(runs);
    await waiting;
    expect(idle).toBe(true);
  });

  it('resolves at once when nothing runs', async () => {
    const bulkhead = new Bulkhead({ a: lane(1, 5) });
    await expect(bulkhead.onIdle()).resolves.toBeUndefined();
  });
});

describe('Bulkhead close', () => {
  it("drain: runs queued work and resolves when it is done", async () => {
    const bulkhead = new Bulkhead({ work: lane(1, 5) });
    const gate = gated();
    const running = bulkhead.run('work', gate.task);
    const queued = bulkhead.run('work', async () => 'queued ran');
    const closed = bulkhead.close();
    gate.open();
    await closed;
    await expect(queued).resolves.toBe('queued ran');
    await running;
  });

  it('rejects new requests with ManagerClosedError and reports them to onRejected as closed', async () => {
    const rejections: LaneRejection[] = [];
    const bulkhead = new Bulkhead({ work: lane(1, 5) }, (rejection) => rejections.push(rejection));
    await bulkhead.close();
    await expect(bulkhead.run('work', async () => 'never')).rejects.toBeInstanceOf(ManagerClosedError);
    expect(rejections).toEqual([{ lane: 'work', reason: 'closed', running: 0, queued: 0, concurrency: 1, maxQueue: 5 }]);
  });

  it('reject: rejects queued work with the given error and lets running work finish', async () => {
    const bulkhead = new Bulkhead({ work: lane(1, 5) });
    const gate = gated('finished');
    const queuedTask = gated();
    const running = bulkhead.run('work', gate.task);
    const queued = bulkhead.run('work', queuedTask.task).catch((caught: unknown) => caught);
    const shutdown = new Error('shutting down');
    const closed = bulkhead.close('reject', shutdown);
    expect(await queued).toBe(shutdown);
    gate.open();
    await closed;
    await expect(running).resolves.toBe('finished');
    expect(queuedTask.started).toBe(false);
  });

  it('reject: uses ManagerClosedError when no error is given', async () => {
    const bulkhead = new Bulkhead({ work: lane(1, 5) });
    const release = await bulkhead.acquire('work');
    const queued = bulkhead.acquire('work');
    const closed = bulkhead.close('reject');
    await expect(queued).rejects.toBeInstanceOf(ManagerClosedError);
    release();
    await closed;
  });
});

function resolveLanesOrThrow(user: Parameters<typeof resolveLanes>[0]): Record<string, LaneOptions> {
  const result = resolveLanes(user);
  if ('field' in result) throw new Error(`${result.field}: ${result.problem}`);
  return result.lanes;
}

describe('resolveLanes', () => {
  it('returns the default lanes when none are given', () => {
    expect(resolveLanes(undefined)).toEqual({
      lanes: {
        critical: { concurrency: 128, maxQueue: 1_000, queueTimeoutMs: 10_000, priority: 0 },
        standard: { concurrency: 256, maxQueue: 10_000, queueTimeoutMs: 60_000, priority: 1 },
        batch: { concurrency: 16, maxQueue: 100_000, queueTimeoutMs: 600_000, priority: 2 },
      },
    });
  });

  it('merges a partial default lane over its defaults', () => {
    expect(resolveLanesOrThrow({ batch: { concurrency: 2 } }).batch).toEqual({ concurrency: 2, maxQueue: 100_000, queueTimeoutMs: 600_000, priority: 2 });
  });

  it('keeps the other default lanes when one is changed', () => {
    const lanes = resolveLanesOrThrow({ batch: { concurrency: 2 } });
    expect(lanes.critical).toEqual(DEFAULT_LANES.critical);
    expect(lanes.standard).toEqual(DEFAULT_LANES.standard);
  });

  it("fills a new lane's missing options from standard's defaults", () => {
    expect(resolveLanesOrThrow({ realtime: { concurrency: 4 } }).realtime).toEqual({ concurrency: 4, maxQueue: 10_000, queueTimeoutMs: 60_000, priority: 1 });
  });

  it('accepts Infinity concurrency and maxQueue 0', () => {
    expect(resolveLanesOrThrow({ batch: { concurrency: Infinity, maxQueue: 0 } }).batch).toMatchObject({ concurrency: Infinity, maxQueue: 0 });
  });

  it('does not change DEFAULT_LANES', () => {
    const lanes = resolveLanesOrThrow({ batch: { concurrency: 2 } });
    lanes.critical!.concurrency = 1;
    expect(DEFAULT_LANES.critical.concurrency).toBe(128);
    expect(DEFAULT_LANES.batch.concurrency).toBe(16);
  });

  it.each<[string, unknown, string, RegExp]>([
    ['lanes not an object', [], 'lanes', /expected an object of lane names.*got an array/],
    ['a lane not an object', { batch: 8 }, 'lanes.batch', /expected an object .*got 8/],
    ['a lane that is null', { batch: null }, 'lanes.batch', /got null/],
    ['an empty lane name', { '': { concurrency: 1 } }, 'lanes[""]', /non-empty lane name/],
    ['an unknown option', { batch: { concurency: 2 } }, 'lanes.batch.concurency', /did you mean `concurrency`\?/],
    ['a priority that is not a finite number', { batch: { priority: '2' } }, 'lanes.batch.priority', /expected a finite number.*lower goes first/],
    ['concurrency 0', { batch: { concurrency: 0 } }, 'lanes.batch.concurrency', /integer >= 1.*got 0/],
    ['fractional concurrency', { batch: { concurrency: 1.5 } }, 'lanes.batch.concurrency', /got 1.5/],
    ['concurrency as a string', { batch: { concurrency: '8' } }, 'lanes.batch.concurrency', /got the string "8"/],
    ['concurrency NaN', { batch: { concurrency: NaN } }, 'lanes.batch.concurrency', /got NaN/],
    ['negative maxQueue', { batch: { maxQueue: -1 } }, 'lanes.batch.maxQueue', /integer >= 0.*got -1/],
    ['fractional maxQueue', { batch: { maxQueue: 2.5 } }, 'lanes.batch.maxQueue', /got 2.5/],
    ['infinite maxQueue', { batch: { maxQueue: Infinity } }, 'lanes.batch.maxQueue', /unbounded queue/],
    ['queueTimeoutMs 0', { batch: { queueTimeoutMs: 0 } }, 'lanes.batch.queueTimeoutMs', /> 0.*got 0/],
    ['negative queueTimeoutMs', { batch: { queueTimeoutMs: -5 } }, 'lanes.batch.queueTimeoutMs', /got -5/],
    ['infinite queueTimeoutMs', { batch: { queueTimeoutMs: Infinity } }, 'lanes.batch.queueTimeoutMs', /got Infinity/],
    ['queueTimeoutMs past the longest timer', { batch: { queueTimeoutMs: 2 ** 31 } }, 'lanes.batch.queueTimeoutMs', /<= 2147483647/],
    ['a bad option of a new lane', { 'my lane': { maxQueue: -1 } }, 'lanes["my lane"].maxQueue', /got -1/],
  ])('reports %s', (_name, user, field, problem) => {
    const result = resolveLanes(user as Parameters<typeof resolveLanes>[0]);
    expect(result).toMatchObject({ field });
    expect('problem' in result && result.problem).toMatch(problem);
  });
});

describe('Bulkhead construction', () => {
  it('throws ConfigError naming the field for malformed lane options', () => {
    expect(() => new Bulkhead({ batch: lane(0, 1) })).toThrow(ConfigError);
    expect(() => new Bulkhead({ batch: lane(0, 1) })).toThrow(/lanes\.batch\.concurrency/);
  });

  it('copies the lane options it is given', () => {
    const options = lane(1, 1);
    const bulkhead = new Bulkhead({ work: options });
    options.concurrency = 5;
    expect(bulkhead.stats().work?.concurrency).toBe(1);
  });
});
