/**
 * Spend caps ("budgets"): a limit in USD per window (a minute, hour, day or
 * month; calendar or rolling) on all requests, a provider, one key, a public
 * model name or a tag.
 *
 * {@link Budgets} is pure and deterministic: it reads time only from the clock
 * it is given, sets no timers (windows reset lazily when next looked at) and
 * does no I/O. The pipeline drives it per request:
 *
 * 1. `check(info, estimate)` — would this request cross a cap? (a query; it
 *    changes nothing that can be observed and emits nothing);
 * 2. if `check(...).ok`, `hold(info, estimate)` in the same synchronous step —
 *    the estimate counts against every applicable cap while the request runs;
 * 3. `settle(hold, info, actual)` when it ends — the hold is released and the
 *    actual cost recorded.
 *
 * ## What is guaranteed
 *
 * For one budget, within one window, counting only requests that the budget
 * applied to both when they were checked and held and when they were settled,
 * and with check → hold done without an `await` between them:
 *
 * - **Admission**: a request is admitted (`ok`) only if
 *   spent + held + its estimate ≤ limit. So N concurrent requests with equal
 *   estimates e are admitted while N·e ≤ limit − spent (e.g. 100 of 200
 *   concurrent 0.01 requests against 1.00).
 * - **No overshoot when estimates are upper bounds**: if every actual cost is
 *   ≤ its estimate, recorded spend never exceeds the limit (spent + held ≤
 *   limit holds after every call, also across window resets, since holds are
 *   not reset and new windows only lower spend).
 * - **Bounded overshoot otherwise**: recorded spend never exceeds
 *   limit + Σ max(0, actual − estimate) over the requests in flight at the last
 *   admission (that request included). With actual ≤ k·estimate this is at
 *   most (k − 1) × the estimates in flight then, hence ≤ (k − 1) × limit; with
 *   one request in flight at a time it is at most (k − 1) × one estimate
 *   (e.g. half an estimate for actuals up to 1.5× their estimate). It is NOT
 *   bounded by one estimate under concurrency: 100 concurrent requests that
 *   each cost 1.5× their estimate overshoot by 50 estimates.
 * - Spend that no check ever saw (a budget that applies only once `settle`
 *   names the provider or key, spend restored from another process) is
 *   recorded but was not admitted against, so it is outside these bounds.
 *
 * Amounts are counted in whole nano-dollars (1e-9 USD), so sums, comparisons
 * and expiries are exact; each amount is rounded to the nearest nano-dollar.
 */
import { BudgetExceededError, ConfigError } from '../../errors';
import type { StoreBudgetRef } from '../../store/types';
import { assertNoProblem, describe, isPlainObject } from '../../config/check';
import { DEFAULTS } from '../../config/defaults';
import { applies, copyScope, defaultId, kindOf, sharedRef, type Budget } from './scope';
import type { BudgetCheck, BudgetCrossing, BudgetExceededEvent, BudgetOptions, BudgetsState, BudgetStats, Hold, RequestBudgetInfo } from './types';
import { budgetsProblem } from './validate';
import { calendarBounds, createWindow, ROLLING_WINDOW_MS, toNanos, toUsd, windowStateProblem, type WindowState } from './window';

interface HoldRecord {
  readonly nanos: number;
  readonly budgets: readonly Budget[];
}

/**
 * A set of spend caps: checks, holds and records spend, and reports each
 * crossing once. See the module comment for what it guarantees.
 *
 * ```ts
 * const budgets = new Budgets([{ scope: { overall: true }, limitUsd: 50, window: 'day' }], (e) => emit('budget:exceeded', e));
 * const verdict = budgets.check(info, estimate);
 * if (!verdict.ok) throw budgetExceededError(verdict);
 * const hold = budgets.hold(info, estimate);
 * try { … } finally { budgets.settle(hold, servedInfo, costUsd ?? 0); }
 * ```
 */
export class Budgets {
  readonly #budgets: Budget[];
  readonly #onExceeded: (event: BudgetExceededEvent) => void;
  readonly #now: () => number;
  readonly #holds = new Map<number, HoldRecord>();
  #nextHold = 1;
  /**
   * Told of every spend recorded by {@link settle} (the manager passes it to a
   * shared store); not called for spend added with {@link addShared}.
   */
  onRecorded: ((budgets: readonly StoreBudgetRef[], nanos: number, at: number) => void) | undefined;

  /**
   * @param budgets The caps, validated as {@link budgetsProblem} does.
   * @param onExceeded Called once per crossing (see {@link BudgetExceededEvent}),
   *   synchronously after the state changed; what it throws is swallowed.
   * @param now The clock, epoch ms. Default `Date.now`.
   * @throws {ConfigError} naming the field, e.g. `budgets[2].limitUsd`.
   */
  constructor(budgets: BudgetOptions[], onExceeded: (event: BudgetExceededEvent) => void, now: () => number = Date.now) {
    const found = budgetsProblem(budgets);
    if (found) throw new ConfigError(found.field, found.problem);
    if (typeof onExceeded !== 'function') throw new TypeError('keyplex: Budgets needs an onExceeded listener function.');
    if (typeof now !== 'function') throw new TypeError('keyplex: Budgets needs a clock function returning epoch ms.');
    this.#onExceeded = onExceeded;
    this.#now = now;
    this.#budgets = budgets.map((options) => {
      const window = options.window;
      const mode = options.mode ?? 'calendar';
      const { kind, a, b } = kindOf(options.scope);
      const id = options.id ?? defaultId(options.scope, window, mode);
      return {
        id,
        scope: copyScope(options.scope),
        kind,
        a,
        b,
        limitUsd: options.limitUsd,
        limit: toNanos(options.limitUsd),
        window,
        mode,
        onExceeded: options.onExceeded ?? 'reject',
        spend: createWindow(window, mode),
        shared: sharedRef(id, window, mode),
        held: 0,
        armed: true,
      };
    });
  }

  /** Number of holds not settled yet. */
  get holds(): number {
    return this.#holds.size;
  }

  /**
   * Would spending `estimateUsd` more on this request cross any applicable
   * cap? Counts recorded spend plus every hold in flight plus the estimate; a
   * budget is crossed when that sum exceeds its limit (reaching it exactly is
   * allowed). Emits nothing. O(number of budgets).
   *
   * @param replacing The request's own hold, when it has one and asks whether
   *   it may grow to `estimateUsd` (see {@link raise}): its amount is not
   *   counted twice (nor reported in the crossings' `heldUsd`).
   * @throws {RangeError} when `estimateUsd` is not a finite number ≥ 0.
   */
  check(info: RequestBudgetInfo, estimateUsd: number, replacing?: Hold): BudgetCheck {
    const estimate = amount(estimateUsd, 'check', 'estimateUsd');
    const now = this.#now();
    const exceeded: BudgetCrossing[] = [];
    const own = replacing === undefined ? undefined : this.#holds.get(replacing.id);
    let ok = true;
    for (const budget of this.#budgets) {
      if (!applies(budget, info)) continue;
      const spent = this.#spent(budget, now);
      const mine = own !== undefined && own.budgets.includes(budget) ? own.nanos : 0;
      const over = spent + budget.held - mine + estimate - budget.limit;
      if (over <= 0) continue;
      if (budget.onExceeded === 'reject') ok = false;
      exceeded.push({
        id: budget.id,
        limitUsd: budget.limitUsd,
        spentUsd: toUsd(spent),
        heldUsd: toUsd(budget.held - mine),
        estimateUsd: toUsd(estimate),
        window: budget.window,
        mode: budget.mode,
        onExceeded: budget.onExceeded,
        resetsInMs: budget.spend.freesInMs(now, over),
      });
    }
    return { ok, exceeded };
  }

  /**
   * Holds `estimateUsd` against every budget applicable to `info` until
   * {@link settle}. Never refuses (call {@link check} first, in the same
   * synchronous step); fires `onExceeded` for each budget whose spent + held
   * reaches its limit for the first time in its window. O(number of budgets).
   *
   * @throws {RangeError} when `estimateUsd` is not a finite number ≥ 0.
   */
  hold(info: RequestBudgetInfo, estimateUsd: number): Hold {
    const nanos = amount(estimateUsd, 'hold', 'estimateUsd');
    const now = this.#now();
    const held: Budget[] = [];
    for (const budget of this.#budgets) {
      if (!applies(budget, info)) continue;
      this.#spent(budget, now);
      budget.held += nanos;
      held.push(budget);
    }
    const id = this.#nextHold++;
    this.#holds.set(id, { nanos, budgets: held });
    this.#notify(held, now);
    return Object.freeze({ id });
  }

  /**
   * Raises a hold in flight to `estimateUsd` (a request moving to a dearer
   * deployment): the difference is held too, against the budgets the hold was
   * placed on. Never lowers a hold; a hold settled already is ignored. Call
   * `check(info, estimateUsd, hold)` first, in the same synchronous step.
   * Fires `onExceeded` as {@link hold} does.
   *
   * @throws {RangeError} when `estimateUsd` is not a finite number ≥ 0.
   */
  raise(hold: Hold, estimateUsd: number): void {
    const nanos = amount(estimateUsd, 'raise', 'estimateUsd');
    const record = this.#holds.get(hold.id);
    if (record === undefined || nanos <= record.nanos) return;
    const now = this.#now();
    for (const budget of record.budgets) {
      this.#spent(budget, now);
      budget.held += nanos - record.nanos;
    }
    this.#holds.set(hold.id, { nanos, budgets: record.budgets });
    this.#notify(record.budgets, now);
  }

  /**
   * The request ended: releases its hold from the budgets it was held against
   * and records `actualUsd` (0 when it failed; the estimate when the cost is
   * unknown, to stay conservative) against every budget applicable to `info`
   * — which may now name the provider and key that served it. A hold settled
   * already (or not from this instance) is ignored, so spend is never counted
   * twice. Fires `onExceeded` as {@link hold} does. Returns whether any
   * budget recorded it (false for a hold settled already).
   *
   * @throws {RangeError} when `actualUsd` is not a finite number ≥ 0.
   */
  settle(hold: Hold, info: RequestBudgetInfo, actualUsd: number): boolean {
    const nanos = amount(actualUsd, 'settle', 'actualUsd');
    const record = this.#holds.get(hold.id);
    if (record === undefined) return false;
    this.#holds.delete(hold.id);
    for (const budget of record.budgets) budget.held -= record.nanos;
    return this.#record(info, nanos);
  }

  /**
   * Records `usd` against every budget applicable to `info`, for spend that
   * no hold was taken for: a background response's cost, learnt when its
   * terminal status was read, after its request ended (less what its request
   * was settled at). Fires `onExceeded` and tells {@link onRecorded} as
   * {@link settle} does. Returns whether any budget recorded it.
   *
   * @throws {RangeError} when `usd` is not a finite number ≥ 0.
   */
  record(info: RequestBudgetInfo, usd: number): boolean {
    return this.#record(info, amount(usd, 'record', 'usd'));
  }

  /** Records `nanos` against the budgets applicable to `info`, and tells the shared store. */
  #record(info: RequestBudgetInfo, nanos: number): boolean {
    const now = this.#now();
    const recorded = this.#budgets.filter((budget) => applies(budget, info));
    this.#add(recorded, nanos, now);
    if (this.onRecorded !== undefined && nanos > 0 && recorded.length > 0) {
      this.onRecorded(
        recorded.map((budget) => budget.shared),
        nanos,
        now,
      );
    }
    return recorded.length > 0;
  }

  /** Records `nanos` against each of `budgets` and reports the crossings. */
  #add(budgets: readonly Budget[], nanos: number, now: number): void {
    for (const budget of budgets) {
      budget.spend.add(now, nanos);
      this.#spent(budget, now);
    }
    this.#notify(budgets, now);
  }

  /** How a shared store keeps each budget's spend. */
  sharedRefs(): StoreBudgetRef[] {
    return this.#budgets.map((budget) => budget.shared);
  }

  /**
   * Spend another manager recorded (through a shared store) against the
   * budgets named `ids`. Fires `onExceeded` as {@link settle} does.
   */
  addShared(ids: readonly string[], nanos: number): void {
    if (!(nanos > 0)) return;
    this.#add(
      this.#budgets.filter((budget) => ids.includes(budget.id)),
      nanos,
      this.#now(),
    );
  }

  /**
   * Replaces a budget's recorded spend with a shared store's buckets
   * (`[bucket start, nano-dollars]`, as the store keeps them), keeping holds in
   * flight. Buckets outside the budget's current window are left out.
   */
  replaceShared(id: string, buckets: readonly (readonly [number, number])[]): void {
    const budget = this.#budgets.find((b) => b.id === id);
    if (budget === undefined) return;
    const now = this.#now();
    const from = budget.mode === 'calendar' ? calendarBounds(budget.window, now)[0] : now - ROLLING_WINDOW_MS[budget.window];
    const spend = createWindow(budget.window, budget.mode);
    for (const [at, nanos] of [...buckets].sort((x, y) => x[0] - y[0])) {
      if (at + budget.shared.bucketMs > from && at <= now && nanos > 0) spend.add(Math.max(at, from), nanos);
    }
    spend.spent(now);
    spend.freed = false;
    budget.spend = spend;
    this.#spent(budget, now);
    this.#notify([budget], now);
  }

  /** A snapshot per budget, in configuration order. */
  stats(): BudgetStats[] {
    const now = this.#now();
    return this.#budgets.map((budget) => {
      const spent = this.#spent(budget, now);
      return {
        id: budget.id,
        scope: copyScope(budget.scope),
        window: budget.window,
        mode: budget.mode,
        onExceeded: budget.onExceeded,
        limitUsd: budget.limitUsd,
        spentUsd: toUsd(spent),
        heldUsd: toUsd(budget.held),
        remainingUsd: toUsd(Math.max(0, budget.limit - spent - budget.held)),
        resetsInMs: budget.spend.clearsInMs(now),
      };
    });
  }

  /**
   * The recorded spend of every budget as plain JSON data (see
   * {@link BudgetsState}), for a shared store. Holds in flight are local to
   * this instance and left out.
   */
  toJSON(): BudgetsState {
    const now = this.#now();
    return {
      version: 1,
      budgets: this.#budgets.map((budget) => {
        this.#spent(budget, now);
        return { id: budget.id, armed: budget.armed, spend: budget.spend.toJSON() };
      }),
    };
  }

  /**
   * Replaces recorded spend with a {@link toJSON} snapshot, all or nothing.
   * Budgets are matched by id; a snapshot entry whose id is not configured, or
   * whose window or mode differs from the budget's now, is skipped, and a
   * budget missing from the snapshot keeps its state. Holds in flight are
   * kept. Windows that ended since the snapshot reset as usual.
   *
   * @throws {TypeError} naming the malformed part, e.g. `budgets[0].spend.head`;
   *   nothing is changed then.
   */
  restore(state: unknown): void {
    const fail = (field: string, problem: string): never => {
      throw new TypeError(`keyplex: cannot restore budgets: \`${field}\` ${problem}.`);
    };
    if (!isPlainObject(state)) return fail('state', 'expected the object Budgets.toJSON() returned');
    if (state.version !== 1) return fail('version', 'expected 1');
    const entries = state.budgets;
    if (!Array.isArray(entries)) return fail('budgets', 'expected an array');
    const byId = new Map(this.#budgets.map((budget) => [budget.id, budget]));
    const seen = new Set<string>();
    const apply: [Budget, boolean, WindowState][] = [];
    entries.forEach((entry: unknown, index) => {
      const at = `budgets[${index}]`;
      if (!isPlainObject(entry)) return fail(at, 'expected an object');
      if (typeof entry.id !== 'string') return fail(`${at}.id`, 'expected a string');
      if (seen.has(entry.id)) return fail(`${at}.id`, `repeats the id ${JSON.stringify(entry.id)}`);
      seen.add(entry.id);
      if (typeof entry.armed !== 'boolean') return fail(`${at}.armed`, 'expected a boolean');
      const spend = entry.spend;
      if (!isPlainObject(spend)) return fail(`${at}.spend`, 'expected an object');
      const budget = byId.get(entry.id);
      if (budget === undefined || spend.mode !== budget.mode || spend.window !== budget.window) return;
      const found = windowStateProblem(spend, budget.window, budget.mode);
      if (found) return fail(`${at}.spend.${found.field}`, found.problem);
      apply.push([budget, entry.armed, spend as unknown as WindowState]);
    });
    const now = this.#now();
    for (const [budget, armed, spend] of apply) {
      budget.armed = armed;
      budget.spend.freed = false;
      budget.spend.restore(spend, now);
      this.#spent(budget, now);
    }
  }

  /** Spend in the budget's window at `now`; re-arms its event when the window freed spend. */
  #spent(budget: Budget, now: number): number {
    const spent = budget.spend.spent(now);
    if (budget.spend.freed) {
      budget.spend.freed = false;
      if (budget.mode === 'calendar' || spent + budget.held < budget.limit) budget.armed = true;
    }
    return spent;
  }

  /** Fires `onExceeded` for each armed budget of `budgets` at or over its limit. */
  #notify(budgets: readonly Budget[], now: number): void {
    let events: BudgetExceededEvent[] | undefined;
    for (const budget of budgets) {
      if (!budget.armed) continue;
      const spent = budget.spend.spent(now);
      if (spent + budget.held < budget.limit) continue;
      budget.armed = false;
      (events ??= []).push({
        budget: budget.id,
        scope: copyScope(budget.scope),
        limitUsd: budget.limitUsd,
        spentUsd: toUsd(spent),
        heldUsd: toUsd(budget.held),
        window: budget.window,
        mode: budget.mode,
        onExceeded: budget.onExceeded,
        resetsInMs: budget.spend.clearsInMs(now),
      });
    }
    if (events === undefined) return;
    for (const event of events) {
      try {
        this.#onExceeded(event);
      } catch {
        // A listener that throws never breaks a request.
      }
    }
  }
}

/**
 * The error for a check that is not `ok`: it names the `'reject'` budget that
 * stays crossed longest (so `retryAfterMs` is when a retry can first pass).
 * undefined when the check is ok.
 */
export function budgetExceededError(check: BudgetCheck, options: { requestId?: string } = {}): BudgetExceededError | undefined {
  let worst: BudgetCrossing | undefined;
  for (const crossing of check.exceeded) {
    if (crossing.onExceeded !== 'reject') continue;
    if (worst === undefined || crossing.resetsInMs > worst.resetsInMs) worst = crossing;
  }
  if (worst === undefined) return undefined;
  return new BudgetExceededError(
    worst.id,
    {
      limitUsd: worst.limitUsd,
      spentUsd: worst.spentUsd,
      heldUsd: worst.heldUsd,
      estimateUsd: worst.estimateUsd,
      window: worst.window,
      mode: worst.mode,
      retryAfterMs: worst.resetsInMs,
    },
    options,
  );
}

/** A USD amount in nano-dollars, or a RangeError naming the argument. */
function amount(usd: number, method: string, name: string): number {
  if (typeof usd !== 'number' || !Number.isFinite(usd) || usd < 0) {
    throw new RangeError(`keyplex: Budgets.${method}: \`${name}\` must be a finite number of USD ≥ 0; got ${describe(usd)}.`);
  }
  return toNanos(usd);
}
