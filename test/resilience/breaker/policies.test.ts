/**
 * Breaker policies: when each variant says "open", what it remembers, its
 * serialisable state, and the specs that configure it.
 */
import { describe, expect, test, vi } from 'vitest';
import {
  breakerSpecIssue,
  breakerSpecProblem,
  ConsecutiveBreaker,
  CountBreaker,
  createBreakerPolicy,
  SamplingBreaker,
  type BreakerPolicy,
  type BreakerSpec,
} from '../../../src/resilience/breaker/index';

/** Feeds outcomes (`F` failure, `S` success) at time 0; the verdict of each failure, `-` for a success. */
function feed(policy: BreakerPolicy, outcomes: string, now = 0): string {
  let verdicts = '';
  for (const o of outcomes) {
    if (o === 'F') verdicts += policy.failure(now) ? 'O' : '.';
    else {
      policy.success(now);
      verdicts += '-';
    }
  }
  return verdicts;
}

describe('ConsecutiveBreaker', () => {
  test.each([1, 2, 5, 8])('threshold %i: opens on that failure in a row, not before', (threshold) => {
    const breaker = new ConsecutiveBreaker({ threshold });
    expect(feed(breaker, 'F'.repeat(threshold))).toBe('.'.repeat(threshold - 1) + 'O');
  });

  test('defaults to 5 failures in a row', () => {
    expect(feed(new ConsecutiveBreaker(), 'FFFFF')).toBe('....O');
  });

  test('a success starts the count again', () => {
    expect(feed(new ConsecutiveBreaker({ threshold: 3 }), 'FFSFFSFFF')).toBe('..-..-..O');
  });

  test('reset forgets the failures so far', () => {
    const breaker = new ConsecutiveBreaker({ threshold: 3 });
    feed(breaker, 'FF');
    breaker.reset();
    expect(feed(breaker, 'FFF')).toBe('..O');
  });

  test('state is JSON-safe and restores into a fresh breaker', () => {
    const breaker = new ConsecutiveBreaker({ threshold: 3 });
    feed(breaker, 'FF');
    const state: unknown = JSON.parse(JSON.stringify(breaker.state));
    expect(state).toEqual({ kind: 'consecutive', failures: 2 });
    const fresh = new ConsecutiveBreaker({ threshold: 3 });
    fresh.restore(state);
    expect(feed(fresh, 'F')).toBe('O');
  });
});

describe('CountBreaker', () => {
  test('does not open before minimumCalls calls are remembered, even at 100% failures', () => {
    expect(feed(new CountBreaker({ threshold: 0.5, size: 10, minimumCalls: 4 }), 'FFFF')).toBe('...O');
  });

  test.each([
    { threshold: 0.5, before: 'SSF', opens: true }, // 2 of 4
    { threshold: 0.5, before: 'SSS', opens: false }, // 1 of 4
    { threshold: 0.75, before: 'SFF', opens: true }, // 3 of 4
    { threshold: 0.75, before: 'SSF', opens: false }, // 2 of 4
    { threshold: 1, before: 'FFF', opens: true }, // 4 of 4
    { threshold: 1, before: 'SFF', opens: false }, // 3 of 4
  ])('threshold $threshold: a failure after $before opens = $opens', ({ threshold, before, opens }) => {
    const breaker = new CountBreaker({ threshold, size: 4, minimumCalls: 4 });
    feed(breaker, before);
    expect(breaker.failure(0)).toBe(opens);
  });

  test('the ring buffer keeps only the last `size` calls', () => {
    const breaker = new CountBreaker({ threshold: 0.75, size: 4, minimumCalls: 4 });
    feed(breaker, 'SSSSFF');
    expect(breaker.state).toEqual({ kind: 'count', samples: [0, 0, 1, 1] });
  });

  test('old successes roll out until the failure ratio reaches the threshold', () => {
    const breaker = new CountBreaker({ threshold: 0.75, size: 4, minimumCalls: 4 });
    // Window after each failure: SSSF (.25), SSFF (.5), SFFF (.75).
    expect(feed(breaker, 'SSSSFFF')).toBe('----..O');
  });

  test('old failures roll out too', () => {
    const breaker = new CountBreaker({ threshold: 0.5, size: 4, minimumCalls: 4 });
    feed(breaker, 'FSSS');
    feed(breaker, 'SSS'); // the failure is gone: window SSSS
    expect(breaker.failure(0)).toBe(false); // SSSF: 0.25
  });

  test('minimumCalls defaults to 10, or to size when that is smaller', () => {
    expect(new CountBreaker().minimumCalls).toBe(10);
    expect(new CountBreaker({ size: 4 }).minimumCalls).toBe(4);
  });

  test('reset empties the window', () => {
    const breaker = new CountBreaker({ size: 4, minimumCalls: 2 });
    feed(breaker, 'FSS');
    breaker.reset();
    expect(breaker.state).toEqual({ kind: 'count', samples: [] });
  });

  test('state restores into a fresh breaker with the same window', () => {
    const breaker = new CountBreaker({ threshold: 0.5, size: 4, minimumCalls: 4 });
    feed(breaker, 'SSSFS');
    const fresh = new CountBreaker({ threshold: 0.5, size: 4, minimumCalls: 4 });
    fresh.restore(JSON.parse(JSON.stringify(breaker.state)));
    expect(fresh.state).toEqual(breaker.state);
    expect([fresh.failure(0), fresh.failure(0)]).toEqual([breaker.failure(0), breaker.failure(0)]);
  });

  test('restoring a longer history keeps its newest `size` calls', () => {
    const breaker = new CountBreaker({ size: 3, minimumCalls: 3 });
    breaker.restore({ kind: 'count', samples: [1, 1, 0, 0, 1] });
    expect(breaker.state).toEqual({ kind: 'count', samples: [0, 0, 1] });
  });
});

describe('SamplingBreaker', () => {
  /** 1 s window in 10 buckets of 100 ms. */
  const options = { threshold: 0.5, windowMs: 1000, buckets: 10, minimumCalls: 4 };

  test('counts calls from several buckets together', () => {
    const breaker = new SamplingBreaker(options);
    breaker.success(50);
    breaker.success(150);
    expect(breaker.failure(250)).toBe(false); // 1 of 3: below minimumCalls
    expect(breaker.failure(350)).toBe(true); // 2 of 4
  });

  test('state lists the live buckets, oldest first', () => {
    const breaker = new SamplingBreaker(options);
    breaker.success(50);
    breaker.failure(99);
    breaker.failure(100);
    breaker.success(730);
    expect(breaker.state).toEqual({
      kind: 'sampling',
      bucketMs: 100,
      buckets: [
        { slot: 0, successes: 1, failures: 1 },
        { slot: 1, successes: 0, failures: 1 },
        { slot: 7, successes: 1, failures: 0 },
      ],
    });
  });

  test.each([
    { at: 999, opens: false, why: 'the successes at 0 ms are still in the window: 2 of 5' },
    { at: 1000, opens: true, why: 'their bucket has left the window: 2 of 2' },
  ])('a failure at $at ms opens = $opens ($why)', ({ at, opens }) => {
    const breaker = new SamplingBreaker({ ...options, minimumCalls: 2 });
    breaker.success(0);
    breaker.success(0);
    breaker.success(0);
    breaker.failure(950);
    expect(breaker.failure(at)).toBe(opens);
  });

  test('failures in an expired bucket no longer count', () => {
    const breaker = new SamplingBreaker({ ...options, threshold: 0.6, minimumCalls: 2 });
    breaker.failure(300);
    breaker.failure(300);
    breaker.success(1350); // the window is now 400–1399 ms
    expect(breaker.failure(1360)).toBe(false); // 1 of 2, not 3 of 4
  });

  test('expired buckets leave the state', () => {
    const breaker = new SamplingBreaker(options);
    breaker.failure(0);
    breaker.failure(500);
    breaker.success(1400);
    expect(breaker.state.buckets).toEqual([
      { slot: 5, successes: 0, failures: 1 },
      { slot: 14, successes: 1, failures: 0 },
    ]);
  });

  test('a bucket reused by the ring starts from zero', () => {
    const breaker = new SamplingBreaker(options);
    breaker.failure(0);
    breaker.failure(0);
    breaker.success(1000); // slot 10 takes the ring place of slot 0
    expect(breaker.state.buckets).toEqual([{ slot: 10, successes: 1, failures: 0 }]);
  });

  test('does not open below minimumCalls calls in the window', () => {
    const breaker = new SamplingBreaker(options);
    expect([breaker.failure(0), breaker.failure(10), breaker.failure(20), breaker.failure(30)]).toEqual([false, false, false, true]);
  });

  test('a time before one already seen counts in the newest bucket', () => {
    const breaker = new SamplingBreaker(options);
    breaker.success(550);
    breaker.failure(120);
    expect(breaker.state.buckets).toEqual([{ slot: 5, successes: 1, failures: 1 }]);
  });

  test('state restores into a fresh breaker with the same window', () => {
    const breaker = new SamplingBreaker(options);
    breaker.success(0);
    breaker.success(420);
    breaker.failure(430);
    const fresh = new SamplingBreaker(options);
    fresh.restore(JSON.parse(JSON.stringify(breaker.state)));
    expect(fresh.state).toEqual(breaker.state);
    expect(fresh.failure(990)).toBe(breaker.failure(990));
  });

  test('restoring buckets of another length moves them to the bucket of their start time', () => {
    const breaker = new SamplingBreaker({ ...options, buckets: 5 }); // 200 ms buckets
    breaker.restore({
      kind: 'sampling',
      bucketMs: 100,
      buckets: [
        { slot: 2, successes: 1, failures: 0 },
        { slot: 3, successes: 0, failures: 2 },
        { slot: 4, successes: 1, failures: 1 },
      ],
    });
    expect(breaker.state.buckets).toEqual([
      { slot: 1, successes: 1, failures: 2 },
      { slot: 2, successes: 1, failures: 1 },
    ]);
  });

  test('reset empties every bucket', () => {
    const breaker = new SamplingBreaker(options);
    breaker.failure(0);
    breaker.reset();
    expect(breaker.state.buckets).toEqual([]);
  });
});

describe('restoring a state that is not the policy’s', () => {
  test.each([
    { name: 'consecutive', make: () => new ConsecutiveBreaker(), state: { kind: 'count', samples: [] } },
    { name: 'consecutive', make: () => new ConsecutiveBreaker(), state: { kind: 'consecutive', failures: -1 } },
    { name: 'count', make: () => new CountBreaker(), state: { kind: 'count', samples: [2] } },
    { name: 'count', make: () => new CountBreaker(), state: null },
    { name: 'sampling', make: () => new SamplingBreaker(), state: { kind: 'sampling', bucketMs: 0, buckets: [] } },
    { name: 'sampling', make: () => new SamplingBreaker(), state: { kind: 'sampling', bucketMs: 100, buckets: [{ slot: 1.5, successes: 0, failures: 0 }] } },
  ])('$name refuses $state with a TypeError and keeps its memory', ({ make, state }) => {
    const policy = make();
    policy.failure(0);
    const before = policy.state;
    expect(() => policy.restore(state)).toThrow(TypeError);
    expect(policy.state).toEqual(before);
  });
});

describe('bad options', () => {
  test.each([
    { make: () => new ConsecutiveBreaker({ threshold: 0 }), error: RangeError, field: 'threshold' },
    { make: () => new ConsecutiveBreaker({ threshold: 2.5 }), error: RangeError, field: 'threshold' },
    { make: () => new ConsecutiveBreaker({ threshold: '3' as unknown as number }), error: TypeError, field: 'threshold' },
    { make: () => new CountBreaker({ threshold: 0 }), error: RangeError, field: 'threshold' },
    { make: () => new CountBreaker({ threshold: 1.5 }), error: RangeError, field: 'threshold' },
    { make: () => new CountBreaker({ size: 0 }), error: RangeError, field: 'size' },
    { make: () => new CountBreaker({ size: 10_001 }), error: RangeError, field: 'size' },
    { make: () => new CountBreaker({ size: 5, minimumCalls: 6 }), error: RangeError, field: 'minimumCalls' },
    { make: () => new SamplingBreaker({ windowMs: Number.NaN }), error: RangeError, field: 'windowMs' },
    { make: () => new SamplingBreaker({ buckets: 0 }), error: RangeError, field: 'buckets' },
    { make: () => new SamplingBreaker({ windowMs: 5, buckets: 10 }), error: RangeError, field: 'buckets' },
    { make: () => new SamplingBreaker({ minimumCalls: 0 }), error: RangeError, field: 'minimumCalls' },
    { make: () => new SamplingBreaker({ treshold: 0.2 } as never), error: TypeError, field: 'treshold' },
  ])('$field: $error.name', ({ make, error, field }) => {
    expect(make).toThrow(error);
    expect(make).toThrow(`\`${field}\``);
  });
});

describe('createBreakerPolicy', () => {
  test.each([
    { spec: 'consecutive' as const, type: ConsecutiveBreaker },
    { spec: 'count' as const, type: CountBreaker },
    { spec: 'sampling' as const, type: SamplingBreaker },
  ])("'$spec' is a $type.name with defaults", ({ spec, type }) => {
    expect(createBreakerPolicy(spec)).toEqual(new type());
  });

  test.each([
    { spec: { kind: 'consecutive', threshold: 2 } as const, expected: { threshold: 2 } },
    { spec: { kind: 'count', threshold: 0.3, size: 8, minimumCalls: 4 } as const, expected: { threshold: 0.3, size: 8, minimumCalls: 4 } },
    {
      spec: { kind: 'sampling', threshold: 0.2, windowMs: 2000, buckets: 4, minimumCalls: 3 } as const,
      expected: { threshold: 0.2, windowMs: 2000, buckets: 4, minimumCalls: 3, bucketMs: 500 },
    },
  ])('$spec.kind with options takes them', ({ spec, expected }) => {
    expect(createBreakerPolicy(spec)).toMatchObject(expected);
  });

  test('a factory is called once per policy', () => {
    const factory = vi.fn(() => new ConsecutiveBreaker({ threshold: 1 }));
    const a = createBreakerPolicy(factory);
    const b = createBreakerPolicy(factory);
    expect(factory).toHaveBeenCalledTimes(2);
    expect(a).not.toBe(b);
  });

  test('a factory that returns no policy is a TypeError', () => {
    expect(() => createBreakerPolicy((() => ({ failure: () => true })) as unknown as BreakerSpec)).toThrow(TypeError);
  });

  test.each([
    { spec: 'circuit', error: TypeError, message: 'Invalid breaker spec: expected' },
    { spec: { kind: 'rolling' }, error: TypeError, message: '`kind`' },
    { spec: { kind: 'count', threshold: 2 }, error: RangeError, message: '`threshold`' },
    { spec: { kind: 'consecutive', size: 3 }, error: TypeError, message: '`size`' },
  ])('$spec is refused: $error.name naming the field', ({ spec, error, message }) => {
    expect(() => createBreakerPolicy(spec as BreakerSpec)).toThrow(error);
    expect(() => createBreakerPolicy(spec as BreakerSpec)).toThrow(message);
  });
});

describe('breakerSpecProblem', () => {
  test.each([
    ['consecutive'],
    [{ kind: 'count' }],
    [{ kind: 'sampling', windowMs: 10_000, buckets: 20 }],
    [() => new CountBreaker()],
  ])('%o is fine', (spec) => {
    expect(breakerSpecProblem(spec)).toBeUndefined();
  });

  test.each([
    { spec: undefined, problem: /^expected 'consecutive', 'count', 'sampling'.*; got undefined$/ },
    { spec: 5, problem: /; got 5$/ },
    { spec: { threshold: 3 }, problem: /^`kind`: expected 'consecutive', 'count' or 'sampling'; got undefined$/ },
    { spec: { kind: 'consecutive', threshold: 0 }, problem: /^`threshold`: expected a whole number of failures from 1 up; got 0$/ },
    { spec: { kind: 'count', size: 4, minimumCalls: 5 }, problem: /^`minimumCalls`: expected at most `size` \(4\)/ },
    { spec: { kind: 'sampling', windowMs: -1 }, problem: /^`windowMs`: .*got -1$/ },
  ])('$spec: $problem', ({ spec, problem }) => {
    expect(breakerSpecProblem(spec)).toMatch(problem);
  });

  test('does not call a factory', () => {
    const factory = vi.fn(() => new CountBreaker());
    breakerSpecProblem(factory);
    expect(factory).not.toHaveBeenCalled();
  });

  test('breakerSpecIssue gives the field and the error class apart', () => {
    expect(breakerSpecIssue({ kind: 'count', threshold: -0.5 })).toEqual({
      field: 'threshold',
      problem: 'expected a failure ratio above 0 and up to 1; got -0.5',
      error: 'RangeError',
    });
  });
});
