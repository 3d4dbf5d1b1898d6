import { describe, expect, test } from 'vitest';
import { fitsContext } from '../../src/routing/context-window';
import { CostStrategy, estimatedCost } from '../../src/routing/cost';
import { Ewma } from '../../src/routing/ewma';
import { LatencyStrategy } from '../../src/routing/latency';
import { LeastBusyStrategy } from '../../src/routing/least-busy';
import { OrderedStrategy } from '../../src/routing/ordered';
import {
  createRoutingStrategy,
  ROUTING_STRATEGY_NAMES,
  type DeploymentView,
  type RouteContext,
  type RoutingStrategy,
  type RoutingStrategyName,
} from '../../src/routing/strategy';
import { WeightedStrategy } from '../../src/routing/weighted';
import type { ModelPrice } from '../../src/usage/pricing';

/** A deployment named `provider`, with defaults for everything else. */
function dep(provider: string, fields: Partial<DeploymentView> = {}): DeploymentView {
  return {
    provider,
    model: 'm',
    upstreamModel: 'm',
    weight: 1,
    price: undefined,
    contextWindow: undefined,
    tags: [],
    inFlight: 0,
    latencyMs: undefined,
    ttftMs: undefined,
    ...fields,
  };
}

function ctx(fields: Partial<RouteContext> = {}): RouteContext {
  return { model: 'm', inputTokens: 1000, outputTokens: 1000, stream: false, requestId: 'req_1', ...fields };
}

const names = (list: readonly DeploymentView[]): string[] => list.map((d) => d.provider);
const price = (input: number, output: number): ModelPrice => ({ input, output });

describe('createRoutingStrategy', () => {
  test.each<[RoutingStrategyName, new () => RoutingStrategy]>([
    ['ordered', OrderedStrategy],
    ['cost', CostStrategy],
    ['latency', LatencyStrategy],
    ['least-busy', LeastBusyStrategy],
    ['weighted', WeightedStrategy],
  ])('builds %s', (name, kind) => {
    expect(createRoutingStrategy(name)).toBeInstanceOf(kind);
  });

  test('returns a custom strategy as is', () => {
    const custom: RoutingStrategy = { order: (d) => d.slice().reverse() };
    expect(createRoutingStrategy(custom)).toBe(custom);
  });

  test('builds a fresh instance per call', () => {
    expect(createRoutingStrategy('weighted')).not.toBe(createRoutingStrategy('weighted'));
  });

  test('rejects an unknown name', () => {
    expect(() => createRoutingStrategy('fastest' as RoutingStrategyName)).toThrow(TypeError);
  });

  test('ROUTING_STRATEGY_NAMES lists the five built-ins', () => {
    expect(ROUTING_STRATEGY_NAMES).toEqual(['ordered', 'cost', 'latency', 'least-busy', 'weighted']);
  });
});

describe.each(ROUTING_STRATEGY_NAMES.map((name) => [name]))('the %s strategy', (name) => {
  const input = (): DeploymentView[] => [
    dep('a', { weight: 1, price: price(3, 15), inFlight: 2, latencyMs: 300 }),
    dep('b', { weight: 3, price: price(1, 5), inFlight: 0, latencyMs: 100 }),
    dep('c', { weight: 2, price: undefined, inFlight: 1, latencyMs: undefined }),
  ];

  test('returns a new array', () => {
    const deployments = input();
    expect(createRoutingStrategy(name).order(deployments, ctx())).not.toBe(deployments);
  });

  test('returns the same elements, none added or dropped', () => {
    const deployments = input();
    const ordered = createRoutingStrategy(name).order(deployments, ctx());
    expect(ordered).toHaveLength(3);
    expect(new Set(ordered)).toEqual(new Set(deployments));
  });

  test('leaves its input untouched', () => {
    const deployments = input();
    const before = deployments.slice();
    createRoutingStrategy(name).order(deployments, ctx());
    expect(deployments).toEqual(before);
  });

  test('orders an empty list as empty', () => {
    expect(createRoutingStrategy(name).order([], ctx())).toEqual([]);
  });

  test('orders a single deployment as itself', () => {
    const only = dep('a');
    expect(createRoutingStrategy(name).order([only], ctx())).toEqual([only]);
  });
});

describe('ordered', () => {
  test('keeps configuration order', () => {
    const list = [dep('a', { inFlight: 9 }), dep('b'), dep('c', { price: price(0, 0) })];
    expect(names(new OrderedStrategy().order(list))).toEqual(['a', 'b', 'c']);
  });
});

describe('cost', () => {
  test.each<[string, DeploymentView[], Partial<RouteContext>, string[]]>([
    ['cheapest first', [dep('a', { price: price(3, 15) }), dep('b', { price: price(0.3, 2.5) }), dep('c', { price: price(1, 5) })], {}, ['b', 'c', 'a']],
    [
      'input-heavy request favours cheap input',
      [dep('a', { price: price(0.1, 10) }), dep('b', { price: price(1, 1) })],
      { inputTokens: 10_000, outputTokens: 100 },
      ['a', 'b'],
    ],
    [
      'output-heavy request favours cheap output',
      [dep('a', { price: price(0.1, 10) }), dep('b', { price: price(1, 1) })],
      { inputTokens: 100, outputTokens: 10_000 },
      ['b', 'a'],
    ],
    ['unknown price goes last', [dep('a'), dep('b', { price: price(15, 75) })], {}, ['b', 'a']],
    ['unknown prices keep order among themselves', [dep('a'), dep('b', { price: price(1, 1) }), dep('c')], {}, ['b', 'a', 'c']],
    ['ties keep order', [dep('a', { price: price(1, 2) }), dep('b', { price: price(1, 2) }), dep('c', { price: price(1, 2) })], {}, ['a', 'b', 'c']],
    ['equal cost from different prices is a tie', [dep('a', { price: price(2, 1) }), dep('b', { price: price(1, 2) })], { inputTokens: 100, outputTokens: 100 }, ['a', 'b']],
    ['a free deployment comes first', [dep('a', { price: price(1, 1) }), dep('b', { price: price(0, 0) })], {}, ['b', 'a']],
    ['a non-finite price counts as unknown', [dep('a', { price: price(Number.NaN, 1) }), dep('b', { price: price(100, 100) })], {}, ['b', 'a']],
  ])('%s', (_, list, context, expected) => {
    expect(names(new CostStrategy().order(list, ctx(context)))).toEqual(expected);
  });

  test('estimatedCost is input × input price + output × output price, per million', () => {
    expect(estimatedCost(dep('a', { price: price(2, 8) }), { inputTokens: 1_000_000, outputTokens: 500_000 })).toBe(6);
  });
});

describe('latency', () => {
  test.each<[string, DeploymentView[], Partial<RouteContext>, string[]]>([
    ['fastest first', [dep('a', { latencyMs: 900 }), dep('b', { latencyMs: 200 }), dep('c', { latencyMs: 500 })], {}, ['b', 'c', 'a']],
    ['never measured goes first, to be explored', [dep('a', { latencyMs: 50 }), dep('b')], {}, ['b', 'a']],
    ['several unmeasured keep order, ahead of measured', [dep('a', { latencyMs: 50 }), dep('b'), dep('c')], {}, ['b', 'c', 'a']],
    ['ties keep order', [dep('a', { latencyMs: 100 }), dep('b', { latencyMs: 100 }), dep('c', { latencyMs: 100 })], {}, ['a', 'b', 'c']],
    [
      'streams rank by time to first token',
      [dep('a', { latencyMs: 100, ttftMs: 90 }), dep('b', { latencyMs: 5000, ttftMs: 40 })],
      { stream: true },
      ['b', 'a'],
    ],
    [
      'streams use full latency where time to first token is unknown',
      [dep('a', { latencyMs: 300, ttftMs: 400 }), dep('b', { latencyMs: 200 })],
      { stream: true },
      ['b', 'a'],
    ],
    [
      'non-streaming requests ignore time to first token',
      [dep('a', { latencyMs: 100, ttftMs: 90 }), dep('b', { latencyMs: 5000, ttftMs: 40 })],
      { stream: false },
      ['a', 'b'],
    ],
    ['a non-streaming request counts only full latency as measured', [dep('a', { latencyMs: 10 }), dep('b', { ttftMs: 5 })], { stream: false }, ['b', 'a']],
  ])('%s', (_, list, context, expected) => {
    expect(names(new LatencyStrategy().order(list, ctx(context)))).toEqual(expected);
  });

  test('puts a measured deployment first once, to measure it again, after it was passed over `afterRequests` times and `afterMs`', () => {
    const strategy = new LatencyStrategy({ afterMs: 0, afterRequests: 2 });
    const list = [dep('a', { latencyMs: 50 }), dep('b', { latencyMs: 100 }), dep('c', { latencyMs: 200 })];

    const orders = Array.from({ length: 6 }, () => names(strategy.order(list, ctx())).join(''));

    // b and c are passed over twice; then b (waiting longest, ties to the faster) once, then c, whose count went on.
    expect(orders).toEqual(['abc', 'abc', 'bac', 'cab', 'abc', 'bac']);
  });

  test('measures again no sooner than `afterMs` after a deployment was last first', () => {
    const strategy = new LatencyStrategy({ afterMs: 60_000, afterRequests: 0 });
    const list = [dep('a', { latencyMs: 50 }), dep('b', { latencyMs: 100 })];

    expect(Array.from({ length: 5 }, () => names(strategy.order(list, ctx()))[0])).toEqual(['a', 'a', 'a', 'a', 'a']);
  });

  test.each([{ afterMs: -1 }, { afterRequests: Number.NaN }])('rejects remeasure options %o', (remeasure) => {
    expect(() => new LatencyStrategy(remeasure)).toThrow(RangeError);
  });
});

describe('least-busy', () => {
  test.each<[string, DeploymentView[], string[]]>([
    ['fewest in flight first', [dep('a', { inFlight: 5 }), dep('b', { inFlight: 1 }), dep('c', { inFlight: 3 })], ['b', 'c', 'a']],
    ['ties keep order', [dep('a', { inFlight: 2 }), dep('b', { inFlight: 2 }), dep('c', { inFlight: 0 })], ['c', 'a', 'b']],
    ['all idle keeps order', [dep('a'), dep('b'), dep('c')], ['a', 'b', 'c']],
  ])('%s', (_, list, expected) => {
    expect(names(new LeastBusyStrategy().order(list))).toEqual(expected);
  });
});

describe('weighted', () => {
  const firsts = (strategy: WeightedStrategy, list: DeploymentView[], calls: number, context = ctx()): string[] =>
    Array.from({ length: calls }, () => strategy.order(list, context)[0]!.provider);
  const count = (picks: string[]): Record<string, number> => {
    const counts: Record<string, number> = {};
    for (const p of picks) counts[p] = (counts[p] ?? 0) + 1;
    return counts;
  };

  test.each<[string, number[], Record<string, number>]>([
    ['5:3:2', [5, 3, 2], { a: 50, b: 30, c: 20 }],
    ['equal weights', [1, 1, 1, 1], { a: 25, b: 25, c: 25, d: 25 }],
    ['3:1', [3, 1], { a: 75, b: 25 }],
    ['fractional 0.5:0.3:0.2', [0.5, 0.3, 0.2], { a: 50, b: 30, c: 20 }],
    ['weight 0 is never first', [1, 0], { a: 100 }],
  ])('over 100 calls the first element follows weights %s exactly', (_, weights, expected) => {
    const list = weights.map((weight, i) => dep('abcd'[i]!, { weight }));
    expect(count(firsts(new WeightedStrategy(), list, 100))).toEqual(expected);
  });

  test('interleaves a heavy deployment instead of bunching it (nginx sequence)', () => {
    const list = [dep('a', { weight: 5 }), dep('b', { weight: 1 }), dep('c', { weight: 1 })];
    expect(firsts(new WeightedStrategy(), list, 7)).toEqual(['a', 'a', 'b', 'a', 'c', 'a', 'a']);
  });

  test('orders the rest by descending current weight', () => {
    const strategy = new WeightedStrategy();
    const list = [dep('a', { weight: 5 }), dep('b', { weight: 3 }), dep('c', { weight: 2 })];
    strategy.order(list, ctx()); // currents now a -5, b 3, c 2
    // Second call: a 0, b 6, c 4 → b first, then c (4), then a (0).
    expect(names(strategy.order(list, ctx()))).toEqual(['b', 'c', 'a']);
  });

  test('ties among the rest keep configuration order', () => {
    const list = [dep('a'), dep('b'), dep('c')];
    expect(names(new WeightedStrategy().order(list, ctx()))).toEqual(['a', 'b', 'c']);
  });

  test('all weights 0 keeps configuration order', () => {
    const list = [dep('a', { weight: 0 }), dep('b', { weight: 0 })];
    expect(firsts(new WeightedStrategy(), list, 3)).toEqual(['a', 'a', 'a']);
  });

  test('keeps its rotation when views are rebuilt for every call', () => {
    const strategy = new WeightedStrategy();
    const picks = Array.from({ length: 4 }, () => strategy.order([dep('a'), dep('b')], ctx())[0]!.provider);
    expect(picks).toEqual(['a', 'b', 'a', 'b']);
  });

  test('keeps a separate rotation per public model', () => {
    const strategy = new WeightedStrategy();
    const list = [dep('a'), dep('b')];
    strategy.order(list, ctx({ model: 'x' }));
    expect(strategy.order(list, ctx({ model: 'y' }))[0]!.provider).toBe('a');
  });

  test('tells deployments of one provider apart by upstream model', () => {
    const list = [dep('p', { upstreamModel: 'u1' }), dep('p', { upstreamModel: 'u2' })];
    const strategy = new WeightedStrategy();
    const picks = Array.from({ length: 2 }, () => strategy.order(list, ctx())[0]!.upstreamModel);
    expect(picks).toEqual(['u1', 'u2']);
  });
});

describe('fitsContext', () => {
  test.each<[string, number | undefined, number, number, boolean]>([
    ['an unknown window fits anything', undefined, 10_000_000, 10_000_000, true],
    ['input + output equal to the window fits', 128_000, 120_000, 8_000, true],
    ['one token over does not fit', 128_000, 120_001, 8_000, false],
    ['output tokens count', 8_000, 1_000, 7_001, false],
    ['a window of 0 counts as unknown', 0, 1_000, 1_000, true],
  ])('%s', (_, contextWindow, input, output, fits) => {
    expect(fitsContext(dep('a', { contextWindow }), input, output)).toBe(fits);
  });
});

describe('Ewma', () => {
  /** Feeds `samples` back to back (all at time 0) and returns the values after each. */
  const backToBack = (ewma: Ewma, value: number, samples: number): number[] =>
    Array.from({ length: samples }, () => ewma.update(value, 0)!);

  test('is undefined until the first sample', () => {
    expect(new Ewma().value).toBeUndefined();
  });

  test('takes the first sample as is', () => {
    const ewma = new Ewma();
    ewma.update(250, 1_000);
    expect(ewma.value).toBe(250);
  });

  test('each back-to-back sample weighs alpha (0.3 by default)', () => {
    const ewma = new Ewma();
    ewma.update(100, 0);
    expect(ewma.update(200, 0)).toBeCloseTo(130, 10);
  });

  // The weighting alone, without the clip (the next block).
  test('after a 100 → 1000 ms step, one back-to-back sample ranks it behind a 300 ms deployment (unclipped)', () => {
    const ewma = new Ewma({ clipRatio: Infinity });
    ewma.update(100, 0);
    expect(backToBack(ewma, 1000, 1)[0]).toBeGreaterThan(300);
  });

  test('after a step, back-to-back samples pass the midpoint at the 2nd sample, not the 1st', () => {
    const ewma = new Ewma({ clipRatio: Infinity });
    ewma.update(100, 0);
    const values = backToBack(ewma, 1000, 2);
    expect([values[0]! > 550, values[1]! > 550]).toEqual([false, true]);
  });

  test('after a step, back-to-back samples come within 10% of the new level at the 7th sample, not the 6th', () => {
    const ewma = new Ewma({ clipRatio: Infinity });
    ewma.update(100, 0);
    const values = backToBack(ewma, 1000, 7);
    expect([values[5]! >= 900, values[6]! >= 900]).toEqual([false, true]);
  });

  test('a sample one half-life after the last weighs half', () => {
    const ewma = new Ewma(60_000);
    ewma.update(100, 0);
    expect(ewma.update(200, 60_000)).toBeCloseTo(150, 10);
  });

  test('after five half-lives of quiet a new sample weighs about 97%', () => {
    const ewma = new Ewma({ halfLifeMs: 1_000 });
    ewma.update(100, 0);
    expect(ewma.update(1100, 5_000)).toBeCloseTo(100 + 1000 * (1 - 2 ** -5), 10);
  });

  test('a number argument is the half-life', () => {
    expect(new Ewma(5_000).halfLifeMs).toBe(5_000);
  });

  test('halfLifeMs Infinity with alpha 0.5 is a plain per-sample EWMA', () => {
    const ewma = new Ewma({ halfLifeMs: Infinity, alpha: 0.5 });
    ewma.update(100, 0);
    expect(ewma.update(200, 1e12)).toBe(150);
  });

  test('a clock that goes backwards counts as no time passed', () => {
    const ewma = new Ewma();
    ewma.update(100, 10_000);
    expect(ewma.update(200, 0)).toBeCloseTo(130, 10);
  });

  test('ignores a non-finite sample', () => {
    const ewma = new Ewma();
    ewma.update(100, 0);
    ewma.update(Number.NaN, 0);
    expect(ewma.value).toBe(100);
  });

  test.each<[string, ConstructorParameters<typeof Ewma>[0]]>([
    ['a zero half-life', 0],
    ['a negative half-life', { halfLifeMs: -1 }],
    ['a NaN half-life', Number.NaN],
    ['alpha above 1', { alpha: 1.5 }],
    ['a negative alpha', { alpha: -0.1 }],
    ['a clipRatio under 1', { clipRatio: 0.5 }],
    ['a NaN clipRatio', { clipRatio: Number.NaN }],
  ])('rejects %s', (_, options) => {
    expect(() => new Ewma(options)).toThrow(RangeError);
  });

  describe('clip (one sample enters as at most clipRatio × the average, 3 by default)', () => {
    /** An average of 30 ms over two samples (clipping starts at the third). */
    const at30 = () => {
      const ewma = new Ewma();
      ewma.update(30, 0);
      ewma.update(30, 0);
      return ewma;
    };

    test('one 2 s sample among 30 ms ones moves the average to 48 ms (90 ms entering), not 627', () => {
      expect(at30().update(2_000, 0)).toBeCloseTo(48, 10);
    });

    test('the average is back under 40 ms after 2 more 30 ms samples (39: 48 → 43 → 39)', () => {
      const ewma = at30();
      ewma.update(2_000, 0);
      ewma.update(30, 0);
      expect(ewma.update(30, 0)).toBeLessThan(40);
    });

    test('a lasting step to 2 s passes an 89 ms deployment at the 3rd sample, not the 2nd', () => {
      const ewma = at30();
      const values = backToBack(ewma, 2_000, 3);
      expect(values.map((v) => v > 89)).toEqual([false, false, true]);
    });

    test('the second sample enters whole: one sample is no estimate to judge an outlier by', () => {
      const ewma = new Ewma();
      ewma.update(1, 0);
      expect(ewma.update(150, 0)).toBeCloseTo(45.7, 10);
    });

    test('a falling sample is not limited', () => {
      const ewma = at30();
      expect(ewma.update(0, 0)).toBeCloseTo(21, 10);
    });

    test('an average under 1 clips as 1, so an average of 0 can still rise', () => {
      const ewma = new Ewma();
      ewma.update(0, 0);
      ewma.update(0, 0);
      expect(ewma.update(100, 0)).toBeCloseTo(0.9, 10);
    });

    test('an unclipped sample (a failure) enters whole', () => {
      expect(at30().update(2_000, 0, true)).toBeCloseTo(621, 10);
    });

    test('a restored average clips from the first sample', () => {
      const ewma = new Ewma().restore({ value: 30, at: 0 });
      expect(ewma.update(2_000, 0)).toBeCloseTo(48, 10);
    });

    test('clipRatio Infinity takes every sample whole', () => {
      const ewma = new Ewma({ clipRatio: Infinity });
      ewma.update(30, 0);
      ewma.update(30, 0);
      expect(ewma.update(2_000, 0)).toBeCloseTo(621, 10);
    });
  });

  test('toJSON is null before the first sample', () => {
    expect(JSON.stringify(new Ewma())).toBe('null');
  });

  test('restore takes a JSON round trip of toJSON', () => {
    const a = new Ewma();
    a.update(100, 0);
    a.update(200, 30_000);
    const b = new Ewma().restore(JSON.parse(JSON.stringify(a)));
    expect([b.value, b.updatedAt]).toEqual([a.value, a.updatedAt]);
  });

  test('a restored average decays from the restored time', () => {
    const b = new Ewma(60_000).restore({ value: 100, at: 0 });
    expect(b.update(200, 60_000)).toBeCloseTo(150, 10);
  });

  test('restore(null) forgets the average', () => {
    const ewma = new Ewma();
    ewma.update(100, 0);
    expect(ewma.restore(null).value).toBeUndefined();
  });

  test('restore of a malformed snapshot leaves it unmeasured', () => {
    const ewma = new Ewma();
    ewma.update(100, 0);
    expect(ewma.restore({ value: Number.NaN, at: 0 }).value).toBeUndefined();
  });
});
