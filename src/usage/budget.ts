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
import { BudgetExceededError, ConfigError } from '../errors';
import type { StoreBudgetRef } from '../store/types';
import { describe, isPlainObject } from '../values';
import { calendarBounds, createWindow, ROLLING_BUCKETS, ROLLING_WINDOW_MS, toNanos, toUsd, windowStateProblem, type BudgetMode, type BudgetWindow, type SpendWindow, type WindowState } from './budget-window';

export type { BudgetMode, BudgetWindow } from './budget-window';

/** A budget as a shared store keeps it: buckets of a 60th of its window, kept a window long (31 days for a calendar month). */
function sharedRef(id: string, window: BudgetWindow, mode: BudgetMode): StoreBudgetRef {
  const length = ROLLING_WINDOW_MS[window];
  return { id, bucketMs: length / ROLLING_BUCKETS, windowMs: mode === 'calendar' && window === 'month' ? 31 * 86_400_000 : length };
}

/**
 * What a budget counts:
 * - `{ overall: true }` — every request;
 * - `{ provider }` — requests served by that provider;
 * - `{ provider, keyId }` — requests served by that key of that provider;
 * - `{ model }` — requests for that public model name (as the caller asked, before aliasing), matched exactly;
 * - `{ tag }` — requests carrying that tag (a request with several tags counts against each tag's budgets).
 *
 * A provider or key scope applies only when the request's info names that
 * provider (and key); a request whose provider is not known yet is not
 * checked against them.
 */
export type BudgetScope =
  | { overall: true }
  | { provider: string }
  | { provider: string; keyId: string }
  | { model: string }
  | { tag: string };

/** One spend cap, as configured (`budgets: BudgetOptions[]`). */
export interface BudgetOptions {
  /**
   * Label in events, errors and stats. Default: derived from scope and window,
   * e.g. `overall/day`, `provider:openai/hour`, `key:openai/k1/day`,
   * `model:gpt-4.1/day`, `tag:batch/month`; a rolling window reads
   * `model:gpt-4.1/rolling-day`. Ids must be unique.
   */
  id?: string;
  /** What the cap counts. */
  scope: BudgetScope;
  /** The cap in USD per window; > 0 and ≤ 1,000,000. */
  limitUsd: number;
  /** The window's length. */
  window: BudgetWindow;
  /**
   * `'calendar'` (default): resets at UTC boundaries (the start of each UTC
   * minute, hour, day or month — month lengths and year ends as the calendar
   * has them). `'rolling'`: the last minute, hour, day or 30 days, kept in 60
   * buckets (1 s, 1 min, 24 min, 12 h): spend counts for between 59/60 of
   * the window and the whole window after it was recorded.
   */
  mode?: BudgetMode;
  /**
   * At the cap: `'reject'` (default) — the request fails with
   * {@link BudgetExceededError}; `'cheaper'` — the budget only reports it (the
   * pipeline routes to cheaper deployments); `check().ok` stays true.
   */
  onExceeded?: 'reject' | 'cheaper';
}

/** What a budget needs to know about a request to decide whether it applies. */
export interface RequestBudgetInfo {
  /** The provider serving it, when known. */
  provider?: string | undefined;
  /** The key serving it (a key id, never a secret), when known. */
  keyId?: string | undefined;
  /** The public model name the caller asked for. */
  model: string | undefined;
  /** The request's tags. */
  tags: readonly string[];
}

/** One budget the request would cross, in a {@link BudgetCheck}. */
export interface BudgetCrossing {
  /** The budget's id. */
  id: string;
  /** The cap, USD. */
  limitUsd: number;
  /** Spend recorded in the current window, USD. */
  spentUsd: number;
  /** Estimates of requests in flight held against the budget, USD. */
  heldUsd: number;
  /** The budget's window. */
  window: BudgetWindow;
  /** Calendar or rolling. */
  mode: BudgetMode;
  /** `'reject'`: the request must fail; `'cheaper'`: route it to cheaper deployments. */
  onExceeded: 'reject' | 'cheaper';
  /**
   * Ms until the request would fit, assuming no new spend and the holds in
   * flight unchanged: the end of a calendar window; in a rolling window, when
   * enough recorded spend has expired. When it cannot fit even with no spend
   * recorded (holds in flight, or an estimate above the cap), the time until
   * all recorded spend has left the window — for an empty rolling window, one
   * bucket (1/60 of the window).
   */
  resetsInMs: number;
}

/** The answer of {@link Budgets.check}. */
export interface BudgetCheck {
  /** False when a `'reject'` budget would be crossed: the request must not be sent. `'cheaper'` budgets never make it false. */
  ok: boolean;
  /** Every applicable budget (either `onExceeded`) for which spent + held + estimate > limit, in configuration order. */
  exceeded: BudgetCrossing[];
}

/** A request's estimate held against its budgets; give it back to {@link Budgets.settle}. */
export interface Hold {
  /** Unique per {@link Budgets} instance. */
  readonly id: number;
}

/** One budget in {@link Budgets.stats}. */
export interface BudgetStats {
  /** The budget's id (given or derived). */
  id: string;
  /** What it counts. */
  scope: BudgetScope;
  /** The window's length. */
  window: BudgetWindow;
  /** Calendar or rolling. */
  mode: BudgetMode;
  /** What happens at the cap. */
  onExceeded: 'reject' | 'cheaper';
  /** The cap, USD. */
  limitUsd: number;
  /** Spend recorded in the current window, USD. */
  spentUsd: number;
  /** Estimates of requests in flight, USD. */
  heldUsd: number;
  /** limit − spent − held, never below 0, USD. */
  remainingUsd: number;
  /**
   * Calendar: ms until the window resets. Rolling: ms until all spend
   * recorded now has left the window (0 when there is none).
   */
  resetsInMs: number;
}

/**
 * A budget's spent + held reached its limit (emitted as `budget:exceeded`).
 * Fired once per crossing: a calendar budget fires again only after its window
 * has reset and the limit is reached again; a rolling budget once spend has
 * expired from its window while spent + held was below the limit, and the
 * limit is reached again.
 */
export interface BudgetExceededEvent {
  /** The budget's id. */
  budget: string;
  /** What the budget counts. */
  scope: BudgetScope;
  /** The cap, USD. */
  limitUsd: number;
  /** Spend recorded in the window, USD. */
  spentUsd: number;
  /** Estimates of requests in flight, USD (spent + held ≥ limit). */
  heldUsd: number;
  /** The budget's window. */
  window: BudgetWindow;
  /** Calendar or rolling. */
  mode: BudgetMode;
  /** What happens at the cap: the pipeline rejects, or routes to cheaper deployments. */
  onExceeded: 'reject' | 'cheaper';
  /** As {@link BudgetStats.resetsInMs}. */
  resetsInMs: number;
}

/** The `toJSON()` shape of {@link Budgets}. Holds in flight are not part of it. */
export interface BudgetsState {
  /** Format version. */
  version: 1;
  /** Per budget: its id, whether its next crossing fires an event, and its window's spend. */
  budgets: { id: string; armed: boolean; spend: WindowState }[];
}

const WINDOWS: readonly BudgetWindow[] = ['minute', 'hour', 'day', 'month'];
const MODES: readonly BudgetMode[] = ['calendar', 'rolling'];
const ON_EXCEEDED: readonly ('reject' | 'cheaper')[] = ['reject', 'cheaper'];
const BUDGET_FIELDS = ['id', 'scope', 'limitUsd', 'window', 'mode', 'onExceeded'];
const MAX_LIMIT_USD = 1_000_000;
const MAX_LABEL = 200;
const CONTROL = /[\u0000-\u001f\u007f]/;

const enum Kind {
  Overall,
  Provider,
  Key,
  Model,
  Tag,
}

interface Budget {
  readonly id: string;
  readonly scope: BudgetScope;
  readonly kind: Kind;
  /** Provider, model or tag. */
  readonly a: string;
  /** Key id. */
  readonly b: string;
  readonly limitUsd: number;
  readonly limit: number;
  readonly window: BudgetWindow;
  readonly mode: BudgetMode;
  readonly onExceeded: 'reject' | 'cheaper';
  spend: SpendWindow;
  /** How a shared store keeps its spend. */
  readonly shared: StoreBudgetRef;
  /** Nano-dollars held by requests in flight. */
  held: number;
  /** Whether the next crossing fires an event. */
  armed: boolean;
}

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
   * @throws {RangeError} when `estimateUsd` is not a finite number ≥ 0.
   */
  check(info: RequestBudgetInfo, estimateUsd: number): BudgetCheck {
    const estimate = amount(estimateUsd, 'check', 'estimateUsd');
    const now = this.#now();
    const exceeded: BudgetCrossing[] = [];
    let ok = true;
    for (const budget of this.#budgets) {
      if (!applies(budget, info)) continue;
      const spent = this.#spent(budget, now);
      const over = spent + budget.held + estimate - budget.limit;
      if (over <= 0) continue;
      if (budget.onExceeded === 'reject') ok = false;
      exceeded.push({
        id: budget.id,
        limitUsd: budget.limitUsd,
        spentUsd: toUsd(spent),
        heldUsd: toUsd(budget.held),
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
   * The request ended: releases its hold from the budgets it was held against
   * and records `actualUsd` (0 when it failed; the estimate when the cost is
   * unknown, to stay conservative) against every budget applicable to `info`
   * — which may now name the provider and key that served it. A hold settled
   * already (or not from this instance) is ignored, so spend is never counted
   * twice. Fires `onExceeded` as {@link hold} does.
   *
   * @throws {RangeError} when `actualUsd` is not a finite number ≥ 0.
   */
  settle(hold: Hold, info: RequestBudgetInfo, actualUsd: number): void {
    const nanos = amount(actualUsd, 'settle', 'actualUsd');
    const record = this.#holds.get(hold.id);
    if (record === undefined) return;
    this.#holds.delete(hold.id);
    for (const budget of record.budgets) budget.held -= record.nanos;
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
      window: worst.window,
      mode: worst.mode,
      retryAfterMs: worst.resetsInMs,
    },
    options,
  );
}

/**
 * Why a `budgets` option is malformed, or undefined when it is fine
 * (`undefined` itself is fine: no budgets). Reports the first problem:
 * `field` is its path, e.g. `budgets[2].limitUsd` or `budgets[0].scope.keyId`;
 * `problem` reads `expected …; got …`. Ids (given or derived) must be unique.
 */
export function budgetsProblem(raw: unknown): { field: string; problem: string } | undefined {
  if (raw === undefined) return undefined;
  if (!Array.isArray(raw)) {
    return { field: 'budgets', problem: `expected an array of budgets such as [{ scope: { overall: true }, limitUsd: 10, window: 'day' }]; got ${describe(raw)}` };
  }
  const ids = new Map<string, number>();
  for (let index = 0; index < raw.length; index++) {
    const at = `budgets[${index}]`;
    const entry: unknown = raw[index];
    if (!isPlainObject(entry)) {
      return { field: at, problem: `expected a budget object such as { scope: { overall: true }, limitUsd: 10, window: 'day' }; got ${describe(entry)}` };
    }
    for (const key of Object.keys(entry)) {
      if (!BUDGET_FIELDS.includes(key)) return { field: `${at}.${key}`, problem: `expected one of ${BUDGET_FIELDS.map((f) => `\`${f}\``).join(', ')}; got an unknown option` };
    }
    const scopeFound = scopeProblem(entry.scope);
    if (scopeFound) return { field: scopeFound.field === '' ? `${at}.scope` : `${at}.scope.${scopeFound.field}`, problem: scopeFound.problem };
    const limit = entry.limitUsd;
    if (typeof limit !== 'number' || !Number.isFinite(limit) || toNanos(limit) < 1 || limit > MAX_LIMIT_USD) {
      return { field: `${at}.limitUsd`, problem: `expected a number of USD above 0 (at least 0.000000001) and at most ${MAX_LIMIT_USD}; got ${describe(limit)}` };
    }
    if (!WINDOWS.includes(entry.window as BudgetWindow)) {
      return { field: `${at}.window`, problem: `expected one of ${WINDOWS.map(quote).join(', ')}; got ${describe(entry.window)}` };
    }
    if (entry.mode !== undefined && !MODES.includes(entry.mode as BudgetMode)) {
      return { field: `${at}.mode`, problem: `expected one of ${MODES.map(quote).join(', ')} (default 'calendar'); got ${describe(entry.mode)}` };
    }
    if (entry.onExceeded !== undefined && !ON_EXCEEDED.includes(entry.onExceeded as 'reject')) {
      return { field: `${at}.onExceeded`, problem: `expected one of ${ON_EXCEEDED.map(quote).join(', ')} (default 'reject'); got ${describe(entry.onExceeded)}` };
    }
    let id: string;
    if (entry.id !== undefined) {
      const found = labelProblem(entry.id, 'a label for events, errors and stats');
      if (found) return { field: `${at}.id`, problem: found };
      id = entry.id as string;
    } else {
      id = defaultId(entry.scope as BudgetScope, entry.window as BudgetWindow, (entry.mode as BudgetMode | undefined) ?? 'calendar');
    }
    const first = ids.get(id);
    if (first !== undefined) {
      return {
        field: `${at}.id`,
        problem: `expected a unique id; got ${quote(id)}${entry.id === undefined ? ' (derived from scope and window)' : ''}, the id of budgets[${first}]. Give one of them an \`id\``,
      };
    }
    ids.set(id, index);
  }
  return undefined;
}

/** Why a scope is malformed; `field` is relative to the scope (`''` for the scope itself). */
function scopeProblem(scope: unknown): { field: string; problem: string } | undefined {
  const shapes = '{ overall: true }, { provider }, { provider, keyId }, { model } or { tag }';
  if (!isPlainObject(scope)) return { field: '', problem: `expected one of ${shapes}; got ${describe(scope)}` };
  const keys = Object.keys(scope);
  const unknown = keys.find((key) => !['overall', 'provider', 'keyId', 'model', 'tag'].includes(key));
  if (unknown !== undefined) return { field: unknown, problem: `expected one of ${shapes}; got an unknown scope field` };
  if (keys.length === 0) return { field: '', problem: `expected one of ${shapes}; got an empty object` };
  if ('overall' in scope) {
    if (scope.overall !== true) return { field: 'overall', problem: `expected true; got ${describe(scope.overall)}` };
    if (keys.length > 1) return { field: '', problem: `expected one of ${shapes}; got \`overall\` with other fields` };
    return undefined;
  }
  if ('keyId' in scope && !('provider' in scope)) return { field: 'provider', problem: 'expected the provider of `keyId` (key ids are per provider); got none' };
  const named = ['provider', 'model', 'tag'].filter((key) => key in scope);
  if (named.length > 1) return { field: '', problem: `expected one of ${shapes}; got ${named.map((key) => `\`${key}\``).join(' and ')} together` };
  for (const key of keys) {
    const found = labelProblem(scope[key], key === 'keyId' ? 'a key id (never the key itself)' : `a ${key} name`);
    if (found) return { field: key, problem: found };
  }
  return undefined;
}

function labelProblem(value: unknown, expected: string): string | undefined {
  if (typeof value !== 'string' || value === '' || value.length > MAX_LABEL || CONTROL.test(value)) {
    return `expected ${expected}: a non-empty string of at most ${MAX_LABEL} characters without control characters; got ${describe(value)}`;
  }
  return undefined;
}

function kindOf(scope: BudgetScope): { kind: Kind; a: string; b: string } {
  if ('overall' in scope) return { kind: Kind.Overall, a: '', b: '' };
  if ('keyId' in scope) return { kind: Kind.Key, a: scope.provider, b: scope.keyId };
  if ('provider' in scope) return { kind: Kind.Provider, a: scope.provider, b: '' };
  if ('model' in scope) return { kind: Kind.Model, a: scope.model, b: '' };
  return { kind: Kind.Tag, a: scope.tag, b: '' };
}

function copyScope(scope: BudgetScope): BudgetScope {
  if ('overall' in scope) return { overall: true };
  if ('keyId' in scope) return { provider: scope.provider, keyId: scope.keyId };
  if ('provider' in scope) return { provider: scope.provider };
  if ('model' in scope) return { model: scope.model };
  return { tag: scope.tag };
}

function defaultId(scope: BudgetScope, window: BudgetWindow, mode: BudgetMode): string {
  const period = mode === 'rolling' ? `rolling-${window}` : window;
  if ('overall' in scope) return `overall/${period}`;
  if ('keyId' in scope) return `key:${scope.provider}/${scope.keyId}/${period}`;
  if ('provider' in scope) return `provider:${scope.provider}/${period}`;
  if ('model' in scope) return `model:${scope.model}/${period}`;
  return `tag:${scope.tag}/${period}`;
}

function applies(budget: Budget, info: RequestBudgetInfo): boolean {
  switch (budget.kind) {
    case Kind.Overall:
      return true;
    case Kind.Provider:
      return info.provider === budget.a;
    case Kind.Key:
      return info.provider === budget.a && info.keyId === budget.b;
    case Kind.Model:
      return info.model === budget.a;
    case Kind.Tag:
      return info.tags?.includes(budget.a) === true;
  }
}

/** A USD amount in nano-dollars, or a RangeError naming the argument. */
function amount(usd: number, method: string, name: string): number {
  if (typeof usd !== 'number' || !Number.isFinite(usd) || usd < 0) {
    throw new RangeError(`keyplex: Budgets.${method}: \`${name}\` must be a finite number of USD ≥ 0; got ${describe(usd)}.`);
  }
  return toNanos(usd);
}

function quote(value: string): string {
  return `'${value}'`;
}

