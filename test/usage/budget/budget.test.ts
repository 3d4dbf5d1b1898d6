import { describe, expect, test } from 'vitest';
import { BudgetExceededError, KeyplexError } from '../../../src/errors';
import { Budgets, budgetExceededError } from '../../../src/usage/budget';
import type { BudgetExceededEvent, BudgetOptions, RequestBudgetInfo } from '../../../src/usage/budget';

/** Wednesday 2025-01-15 12:00:00 UTC. */
const START = Date.UTC(2025, 0, 15, 12, 0, 0);

function setup(options: BudgetOptions[], start = START) {
  const clock = { t: start };
  const events: BudgetExceededEvent[] = [];
  const budgets = new Budgets(options, (event) => events.push(event), () => clock.t);
  return { clock, events, budgets };
}

const req = (info: Partial<RequestBudgetInfo> = {}): RequestBudgetInfo => ({ model: 'gpt-4.1', tags: [], ...info });

/** A whole request: hold the cost as estimate, settle with it. */
function spend(budgets: Budgets, info: RequestBudgetInfo, usd: number): void {
  budgets.settle(budgets.hold(info, usd), info, usd);
}

const stat = (budgets: Budgets, id: string) => {
  const found = budgets.stats().find((s) => s.id === id);
  if (!found) throw new Error(`no budget ${id}`);
  return found;
};

const day = (scope: BudgetOptions['scope'], limitUsd = 1, extra: Partial<BudgetOptions> = {}): BudgetOptions => ({
  scope,
  limitUsd,
  window: 'day',
  ...extra,
});

describe('scopes', () => {
  test('an overall budget counts every request, whatever its provider, model or tags', () => {
    const { budgets } = setup([day({ overall: true })]);
    spend(budgets, req({ provider: 'openai', model: 'gpt-4.1' }), 0.1);
    spend(budgets, req({ provider: 'deepseek', model: 'deepseek-chat', tags: ['batch'] }), 0.2);
    spend(budgets, req({ model: undefined }), 0.3);
    expect(stat(budgets, 'overall/day').spentUsd).toBe(0.6);
  });

  test('a provider budget counts only requests served by that provider', () => {
    const { budgets } = setup([day({ provider: 'openai' })]);
    spend(budgets, req({ provider: 'openai', keyId: 'a' }), 0.1);
    spend(budgets, req({ provider: 'openai', keyId: 'b' }), 0.2);
    spend(budgets, req({ provider: 'anthropic' }), 5);
    spend(budgets, req({}), 5);
    expect(stat(budgets, 'provider:openai/day').spentUsd).toBeCloseTo(0.3, 12);
  });

  test('a key budget counts only that key of that provider', () => {
    const { budgets } = setup([day({ provider: 'openai', keyId: 'k1' })]);
    spend(budgets, req({ provider: 'openai', keyId: 'k1' }), 0.25);
    spend(budgets, req({ provider: 'openai', keyId: 'k2' }), 5);
    spend(budgets, req({ provider: 'azure', keyId: 'k1' }), 5);
    spend(budgets, req({ keyId: 'k1' }), 5);
    expect(stat(budgets, 'key:openai/k1/day').spentUsd).toBe(0.25);
  });

  test('a model budget counts only requests for that public model name, matched exactly', () => {
    const { budgets } = setup([day({ model: 'gpt-4.1' })]);
    spend(budgets, req({ model: 'gpt-4.1', provider: 'openai' }), 0.25);
    spend(budgets, req({ model: 'gpt-4.1', provider: 'azure' }), 0.25);
    spend(budgets, req({ model: 'gpt-4.1-mini' }), 5);
    spend(budgets, req({ model: 'GPT-4.1' }), 5);
    spend(budgets, req({ model: undefined }), 5);
    expect(stat(budgets, 'model:gpt-4.1/day').spentUsd).toBe(0.5);
  });

  test('a tag budget counts only requests carrying the tag', () => {
    const { budgets } = setup([day({ tag: 'batch' })]);
    spend(budgets, req({ tags: ['batch'] }), 0.5);
    spend(budgets, req({ tags: ['interactive'] }), 5);
    spend(budgets, req({ tags: [] }), 5);
    expect(stat(budgets, 'tag:batch/day').spentUsd).toBe(0.5);
  });

  test('a request with several tags counts against the budget of each of them', () => {
    const { budgets } = setup([day({ tag: 'team-a' }), day({ tag: 'nightly' }), day({ tag: 'other' })]);
    spend(budgets, req({ tags: ['team-a', 'nightly'] }), 0.5);
    expect(budgets.stats().map((s) => [s.id, s.spentUsd])).toEqual([
      ['tag:team-a/day', 0.5],
      ['tag:nightly/day', 0.5],
      ['tag:other/day', 0],
    ]);
  });

  test('a check consults only the budgets that apply: a crossed tag cap does not stop untagged requests', () => {
    const { budgets } = setup([day({ tag: 'batch' }, 1)]);
    spend(budgets, req({ tags: ['batch'] }), 1);
    expect(budgets.check(req({ tags: ['batch'] }), 0.01).ok).toBe(false);
    expect(budgets.check(req({ tags: [] }), 0.01)).toEqual({ ok: true, exceeded: [] });
  });

  test('settle records against the budgets its info names (the serving provider), and releases the hold where it was placed', () => {
    const { budgets } = setup([day({ overall: true }, 10), day({ provider: 'openai' }, 10)]);
    const hold = budgets.hold(req(), 1); // provider not known yet
    expect(budgets.stats().map((s) => s.heldUsd)).toEqual([1, 0]);
    budgets.settle(hold, req({ provider: 'openai', keyId: 'k1' }), 0.75);
    expect(budgets.stats().map((s) => [s.spentUsd, s.heldUsd])).toEqual([
      [0.75, 0],
      [0.75, 0],
    ]);
  });
});

describe('holds', () => {
  test('check counts the estimates held by requests in flight', () => {
    const { budgets } = setup([day({ overall: true }, 1)]);
    budgets.hold(req(), 0.6);
    const verdict = budgets.check(req(), 0.5);
    expect(verdict.ok).toBe(false);
    expect(verdict.exceeded[0]).toMatchObject({ id: 'overall/day', spentUsd: 0, heldUsd: 0.6, limitUsd: 1 });
  });

  test('a request that brings spent + held exactly to the limit is admitted; one nano-dollar more is not', () => {
    const { budgets } = setup([day({ overall: true }, 1)]);
    spend(budgets, req(), 0.7);
    budgets.hold(req(), 0.2);
    expect(budgets.check(req(), 0.1).ok).toBe(true);
    expect(budgets.check(req(), 0.100000001).ok).toBe(false);
  });

  test('settle releases the hold and records the actual cost instead of the estimate', () => {
    const { budgets } = setup([day({ overall: true }, 1)]);
    const hold = budgets.hold(req(), 0.5);
    budgets.settle(hold, req(), 0.2);
    expect(stat(budgets, 'overall/day')).toMatchObject({ spentUsd: 0.2, heldUsd: 0, remainingUsd: 0.8 });
    expect(budgets.holds).toBe(0);
  });

  test('a failed request settles with 0: its hold is released and nothing is spent', () => {
    const { budgets } = setup([day({ overall: true }, 1)]);
    budgets.settle(budgets.hold(req(), 0.9), req(), 0);
    expect(stat(budgets, 'overall/day')).toMatchObject({ spentUsd: 0, heldUsd: 0 });
    expect(budgets.check(req(), 1).ok).toBe(true);
  });

  test('settling the same hold twice counts it once', () => {
    const { budgets } = setup([day({ overall: true }, 1)]);
    const info = req();
    const hold = budgets.hold(info, 0.3);
    budgets.settle(hold, info, 0.3);
    budgets.settle(hold, info, 0.3);
    expect(stat(budgets, 'overall/day')).toMatchObject({ spentUsd: 0.3, heldUsd: 0 });
  });

  test('a hold placed in one window and settled in the next is released and its cost recorded in the new window', () => {
    const { budgets, clock } = setup([day({ overall: true }, 1)], Date.UTC(2025, 0, 15, 23, 59, 59));
    const hold = budgets.hold(req(), 0.5);
    clock.t = Date.UTC(2025, 0, 16, 0, 0, 1);
    expect(stat(budgets, 'overall/day')).toMatchObject({ spentUsd: 0, heldUsd: 0.5 });
    budgets.settle(hold, req(), 0.4);
    expect(stat(budgets, 'overall/day')).toMatchObject({ spentUsd: 0.4, heldUsd: 0 });
  });

  test('a request moving to a dearer deployment is checked without its own hold counted twice, and raise holds the difference', () => {
    const { budgets, events } = setup([day({ overall: true }, 1), day({ tag: 'other' }, 0.1)]);
    const hold = budgets.hold(req(), 0.3);
    budgets.hold(req(), 0.5);
    // 0.5 held by the other request + this one at 0.5 = 1.0: fits, though 0.3 + 0.5 + 0.5 would not.
    expect(budgets.check(req(), 0.5, hold).ok).toBe(true);
    expect(budgets.check(req(), 0.500000001, hold).exceeded[0]).toMatchObject({ heldUsd: 0.5, estimateUsd: 0.500000001 });
    budgets.raise(hold, 0.5);
    expect(stat(budgets, 'overall/day')).toMatchObject({ heldUsd: 1, remainingUsd: 0 });
    expect(stat(budgets, 'tag:other/day').heldUsd).toBe(0);
    expect(events.map((e) => e.budget)).toEqual(['overall/day']);
    budgets.raise(hold, 0.1); // never lowers
    expect(stat(budgets, 'overall/day').heldUsd).toBe(1);
    budgets.settle(hold, req(), 0.45);
    budgets.raise(hold, 0.9); // settled: ignored
    expect(stat(budgets, 'overall/day')).toMatchObject({ spentUsd: 0.45, heldUsd: 0.5 });
  });

  test('amounts that are negative, NaN or infinite are refused with a RangeError', () => {
    const { budgets } = setup([day({ overall: true })]);
    const hold = budgets.hold(req(), 0.1);
    expect(() => budgets.check(req(), -0.01)).toThrow(RangeError);
    expect(() => budgets.hold(req(), Number.NaN)).toThrow(/estimateUsd/);
    expect(() => budgets.settle(hold, req(), Number.POSITIVE_INFINITY)).toThrow(/actualUsd/);
    expect(() => budgets.record(req(), -1)).toThrow(/Budgets.record: `usd`/);
    expect(budgets.holds).toBe(1);
  });

  test('record counts spend no hold was taken for against the budgets its info names, and reports the crossing', () => {
    const { budgets, events } = setup([day({ overall: true }, 1), day({ tag: 'research' }, 1), day({ provider: 'openai', keyId: 'a' }, 1)]);
    const recorded = budgets.record(req({ provider: 'openai', keyId: 'a', tags: ['research'] }), 1.5);
    expect(recorded).toBe(true);
    expect(budgets.stats().map((s) => [s.id, s.spentUsd, s.heldUsd])).toEqual([
      ['overall/day', 1.5, 0],
      ['tag:research/day', 1.5, 0],
      ['key:openai/a/day', 1.5, 0],
    ]);
    expect(events.map((e) => e.budget)).toEqual(['overall/day', 'tag:research/day', 'key:openai/a/day']);
    expect(budgets.check(req(), 0.01).ok).toBe(false);
  });
});

describe('exceeded events', () => {
  test('fire once when spent + held first reaches the limit', () => {
    const { budgets, events } = setup([day({ model: 'gpt-4.1' }, 1)]);
    spend(budgets, req(), 0.5);
    expect(events).toHaveLength(0);
    budgets.hold(req(), 0.5);
    expect(events).toEqual([
      {
        budget: 'model:gpt-4.1/day',
        scope: { model: 'gpt-4.1' },
        limitUsd: 1,
        spentUsd: 0.5,
        heldUsd: 0.5,
        window: 'day',
        mode: 'calendar',
        onExceeded: 'reject',
        resetsInMs: 12 * 3_600_000,
      },
    ]);
  });

  test('do not fire again within the same window, however much more is spent', () => {
    const { budgets, events } = setup([day({ overall: true }, 1)]);
    spend(budgets, req(), 1);
    spend(budgets, req(), 1);
    budgets.hold(req(), 3);
    expect(events).toHaveLength(1);
  });

  test('fire again once the calendar window has reset and the limit is reached again', () => {
    const { budgets, events, clock } = setup([day({ overall: true }, 1)]);
    spend(budgets, req(), 1.5);
    clock.t += 24 * 3_600_000;
    spend(budgets, req(), 0.5);
    expect(events).toHaveLength(1);
    spend(budgets, req(), 0.5); // crosses when its hold is placed
    expect(events).toHaveLength(2);
    expect(events[1]).toMatchObject({ spentUsd: 0.5, heldUsd: 0.5 });
  });

  test('in a rolling window, fire again once spend has expired below the limit and the limit is reached again', () => {
    const { budgets, events, clock } = setup([{ scope: { overall: true }, limitUsd: 1, window: 'minute', mode: 'rolling' }]);
    spend(budgets, req(), 1);
    clock.t += 30_000;
    spend(budgets, req(), 0.5);
    expect(events).toHaveLength(1);
    clock.t += 30_000; // the first 1.00 expires; 0.50 remains
    spend(budgets, req(), 0.5);
    expect(events).toHaveLength(2);
  });

  test('are never fired by check', () => {
    const { budgets, events } = setup([day({ overall: true }, 1)]);
    spend(budgets, req(), 0.99);
    budgets.check(req(), 5);
    expect(events).toHaveLength(0);
  });

  test('a listener that throws breaks neither hold nor settle', () => {
    const budgets = new Budgets([day({ overall: true }, 1)], () => {
      throw new Error('listener bug');
    }, () => START);
    const hold = budgets.hold(req(), 2);
    expect(() => budgets.settle(hold, req(), 2)).not.toThrow();
    expect(stat(budgets, 'overall/day').spentUsd).toBe(2);
  });
});

describe('concurrency: holds bound the overshoot', () => {
  const ESTIMATE = 0.01;
  const CAP = 1;

  /** 200 requests started in the same tick; each checks, then holds, then (later) settles with `actual(i)`. */
  async function run200(actual: (i: number) => number) {
    const { budgets } = setup([day({ overall: true }, CAP)]);
    let admitted = 0;
    let refused = 0;
    let maxCommitted = 0;
    await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const info = req();
        if (!budgets.check(info, ESTIMATE).ok) {
          refused++;
          return;
        }
        const hold = budgets.hold(info, ESTIMATE);
        admitted++;
        const s = stat(budgets, 'overall/day');
        maxCommitted = Math.max(maxCommitted, s.spentUsd + s.heldUsd);
        await new Promise((resolve) => setTimeout(resolve, i % 7));
        budgets.settle(hold, info, actual(i));
      }),
    );
    return { budgets, admitted, refused, maxCommitted, spentUsd: stat(budgets, 'overall/day').spentUsd };
  }

  test('of 200 concurrent requests of 0.01 against a 1.00 cap, exactly 100 are admitted', async () => {
    const { admitted, refused, maxCommitted } = await run200(() => ESTIMATE);
    expect(admitted).toBe(100);
    expect(refused).toBe(100);
    expect(maxCommitted).toBeLessThanOrEqual(CAP);
  });

  test('with every actual cost at most its estimate, spend never exceeds the cap', async () => {
    const { spentUsd, admitted } = await run200((i) => (ESTIMATE * ((i * 37) % 101)) / 100);
    expect(admitted).toBe(100);
    expect(spentUsd).toBeLessThanOrEqual(CAP);
  });

  test('with actuals up to 1.5× the estimate, concurrent overshoot stays within 0.5 × the estimates in flight at the last admission — not within one estimate', async () => {
    const { spentUsd, admitted } = await run200(() => ESTIMATE * 1.5);
    expect(admitted).toBe(100);
    // Bound: limit + Σ (actual − estimate) over the 100 requests in flight = 1 + 100 × 0.005.
    expect(spentUsd).toBeLessThanOrEqual(CAP + 100 * ESTIMATE * 0.5 + 1e-9);
    expect(spentUsd - CAP).toBeGreaterThan(ESTIMATE); // concurrency defeats a one-estimate bound
  });

  test('with actuals up to 1.5× the estimate and one request in flight at a time, overshoot is at most half of one estimate', () => {
    const { budgets } = setup([day({ overall: true }, CAP)]);
    let admitted = 0;
    for (let i = 0; i < 200; i++) {
      if (!budgets.check(req(), ESTIMATE).ok) continue;
      admitted++;
      budgets.settle(budgets.hold(req(), ESTIMATE), req(), ESTIMATE * 1.5);
    }
    const { spentUsd } = stat(budgets, 'overall/day');
    expect(spentUsd).toBeGreaterThan(CAP);
    expect(spentUsd - CAP).toBeLessThanOrEqual(ESTIMATE * 0.5 + 1e-9);
    expect(admitted).toBe(67); // 66 × 0.015 = 0.99 ≤ 1 − 0.01; the 67th crosses; none after
  });
});

describe("onExceeded: 'cheaper'", () => {
  test('a crossed cheaper budget is reported in the check, which stays ok', () => {
    const { budgets } = setup([day({ model: 'gpt-4.1' }, 1, { onExceeded: 'cheaper' })]);
    spend(budgets, req(), 1);
    const verdict = budgets.check(req(), 0.1);
    expect(verdict.ok).toBe(true);
    expect(verdict.exceeded).toEqual([
      expect.objectContaining({ id: 'model:gpt-4.1/day', onExceeded: 'cheaper', spentUsd: 1, limitUsd: 1 }),
    ]);
    expect(budgetExceededError(verdict)).toBeUndefined();
  });

  test('a crossed cheaper budget fires the event with its onExceeded', () => {
    const { budgets, events } = setup([day({ overall: true }, 1, { onExceeded: 'cheaper' })]);
    spend(budgets, req(), 1);
    expect(events).toEqual([expect.objectContaining({ onExceeded: 'cheaper' })]);
  });

  test('a reject budget crossed alongside a cheaper one makes the check not ok', () => {
    const { budgets } = setup([
      day({ overall: true }, 1, { onExceeded: 'cheaper' }),
      day({ tag: 'batch' }, 1),
    ]);
    spend(budgets, req({ tags: ['batch'] }), 1);
    const verdict = budgets.check(req({ tags: ['batch'] }), 0.1);
    expect(verdict.ok).toBe(false);
    expect(verdict.exceeded.map((e) => e.onExceeded)).toEqual(['cheaper', 'reject']);
  });
});

describe('BudgetExceededError', () => {
  test('carries the budget, its limit, the spend and retryAfterMs, with code budget_exceeded and status 429', () => {
    const { budgets } = setup([day({ model: 'gpt-4.1' }, 2)]);
    spend(budgets, req(), 1.5);
    const error = budgetExceededError(budgets.check(req(), 1), { requestId: 'req_1' });
    expect(error).toBeInstanceOf(BudgetExceededError);
    expect(KeyplexError.is(error)).toBe(true);
    expect(error).toMatchObject({
      name: 'BudgetExceededError',
      code: 'budget_exceeded',
      status: 429,
      budget: 'model:gpt-4.1/day',
      limitUsd: 2,
      spentUsd: 1.5,
      heldUsd: 0,
      window: 'day',
      retryAfterMs: 12 * 3_600_000,
      requestId: 'req_1',
    });
    expect(error?.toDetail()).toMatchObject({ code: 'budget_exceeded', retryAfterMs: 12 * 3_600_000, status: 429 });
  });

  test('its message names the cap, the spend, when it resets and what to do', () => {
    const error = new BudgetExceededError('model:gpt-4.1/day', { limitUsd: 2, spentUsd: 1.5, heldUsd: 0.25, window: 'day', retryAfterMs: 12 * 3_600_000 + 5 * 60_000 });
    expect(error.message).toBe(
      "keyplex: budget 'model:gpt-4.1/day' would be exceeded: $1.50 spent (+$0.2500 held by requests in flight) of its $2.00 per-day cap; the window resets in 12 h 5 min. Raise its `limitUsd`, wait until then, or set `onExceeded: 'cheaper'` to route to cheaper deployments instead of failing.",
    );
  });

  test('names the reject budget that stays crossed longest, so a retry after retryAfterMs can pass', () => {
    const { budgets } = setup([
      { scope: { overall: true }, limitUsd: 1, window: 'minute' },
      { scope: { overall: true }, limitUsd: 1, window: 'month' },
      { scope: { overall: true }, limitUsd: 1, window: 'hour' },
    ]);
    spend(budgets, req(), 1);
    const error = budgetExceededError(budgets.check(req(), 0.5));
    expect(error?.budget).toBe('overall/month');
    expect(error?.retryAfterMs).toBe(Date.UTC(2025, 1, 1) - START);
  });
});

describe('stats', () => {
  test('report each budget with its derived id, spend, holds, remaining and reset time', () => {
    const { budgets } = setup([
      day({ overall: true }, 10),
      { scope: { provider: 'openai', keyId: 'k1' }, limitUsd: 5, window: 'hour', mode: 'rolling', onExceeded: 'cheaper' },
      { id: 'my-cap', scope: { tag: 'batch' }, limitUsd: 3, window: 'month' },
    ]);
    spend(budgets, req({ provider: 'openai', keyId: 'k1', tags: ['batch'] }), 1);
    budgets.hold(req({ provider: 'openai', keyId: 'k1' }), 2);
    expect(budgets.stats()).toEqual([
      { id: 'overall/day', scope: { overall: true }, window: 'day', mode: 'calendar', onExceeded: 'reject', limitUsd: 10, spentUsd: 1, heldUsd: 2, remainingUsd: 7, resetsInMs: 12 * 3_600_000 },
      { id: 'key:openai/k1/rolling-hour', scope: { provider: 'openai', keyId: 'k1' }, window: 'hour', mode: 'rolling', onExceeded: 'cheaper', limitUsd: 5, spentUsd: 1, heldUsd: 2, remainingUsd: 2, resetsInMs: 3_600_000 },
      { id: 'my-cap', scope: { tag: 'batch' }, window: 'month', mode: 'calendar', onExceeded: 'reject', limitUsd: 3, spentUsd: 1, heldUsd: 0, remainingUsd: 2, resetsInMs: Date.UTC(2025, 1, 1) - START },
    ]);
  });

  test('remainingUsd never goes below 0', () => {
    const { budgets } = setup([day({ overall: true }, 1)]);
    spend(budgets, req(), 3);
    expect(stat(budgets, 'overall/day').remainingUsd).toBe(0);
  });
});

describe('snapshot', () => {
  const config: BudgetOptions[] = [
    day({ overall: true }, 10),
    { scope: { model: 'gpt-4.1' }, limitUsd: 5, window: 'minute', mode: 'rolling' },
  ];

  test('toJSON → JSON → restore into a fresh instance reproduces the stats', () => {
    const a = setup(config);
    spend(a.budgets, req(), 1);
    a.clock.t += 20_000;
    spend(a.budgets, req(), 2);
    const b = setup(config, a.clock.t);
    b.budgets.restore(JSON.parse(JSON.stringify(a.budgets)));
    expect(b.budgets.stats()).toEqual(a.budgets.stats());
  });

  test('restored rolling spend expires on the original schedule', () => {
    const a = setup(config);
    spend(a.budgets, req(), 1);
    a.clock.t += 20_000;
    spend(a.budgets, req(), 2);
    const b = setup(config, a.clock.t);
    b.budgets.restore(a.budgets.toJSON());
    b.clock.t = START + 60_000;
    expect(stat(b.budgets, 'model:gpt-4.1/rolling-minute').spentUsd).toBe(2);
  });

  test('restored spend from an earlier calendar window is reset', () => {
    const a = setup(config);
    spend(a.budgets, req(), 1);
    const b = setup(config, START + 24 * 3_600_000);
    b.budgets.restore(a.budgets.toJSON());
    expect(stat(b.budgets, 'overall/day').spentUsd).toBe(0);
  });

  test('holds in flight are not in the snapshot, and restore keeps the local ones', () => {
    const a = setup(config);
    a.budgets.hold(req(), 4);
    const state = a.budgets.toJSON();
    expect(JSON.stringify(state)).not.toContain('held');
    a.budgets.restore({ version: 1, budgets: [] });
    expect(stat(a.budgets, 'overall/day').heldUsd).toBe(4);
  });

  test('a restored crossing does not fire again in the same window', () => {
    const a = setup(config);
    spend(a.budgets, req(), 10);
    expect(a.events.map((e) => e.budget)).toEqual(['overall/day', 'model:gpt-4.1/rolling-minute']);
    const b = setup(config);
    b.budgets.restore(a.budgets.toJSON());
    spend(b.budgets, req(), 1);
    expect(b.events).toHaveLength(0);
  });

  test('entries whose id is not configured, or whose window or mode changed, are skipped', () => {
    const a = setup([day({ overall: true }, 10), day({ tag: 'gone' }), day({ model: 'gpt-4.1' }, 5, { id: 'm' })]);
    spend(a.budgets, req({ tags: ['gone'] }), 1);
    const b = setup([day({ overall: true }, 10, { mode: 'rolling', id: 'overall/day' }), { id: 'm', scope: { model: 'gpt-4.1' }, limitUsd: 5, window: 'hour' }]);
    b.budgets.restore(a.budgets.toJSON());
    expect(b.budgets.stats().map((s) => s.spentUsd)).toEqual([0, 0]);
  });

  test('a malformed snapshot throws a TypeError naming the part, and changes nothing', () => {
    const a = setup(config);
    spend(a.budgets, req(), 1);
    const state = a.budgets.toJSON();
    const b = setup(config);
    spend(b.budgets, req(), 3);
    const broken = structuredClone(state);
    (broken.budgets[1]!.spend as { head: unknown }).head = 'soon';
    expect(() => b.budgets.restore(broken)).toThrow(/`budgets\[1\]\.spend\.head`/);
    expect(() => b.budgets.restore({ version: 2, budgets: [] })).toThrow(/`version`/);
    expect(() => b.budgets.restore('nope')).toThrow(TypeError);
    expect(stat(b.budgets, 'overall/day').spentUsd).toBe(3);
  });
});
