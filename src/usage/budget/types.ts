/** The public types of budgets: scopes, options, checks, stats, events, state. */
import type { BudgetMode, BudgetWindow, WindowState } from './window';

export type { BudgetMode, BudgetWindow } from './window';

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
  /** The estimate of the request checked, USD (what it would add). */
  estimateUsd: number;
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
  /** The estimate of the request that would have crossed the cap, USD, when a request's did (absent when spend and holds reached it). */
  estimateUsd?: number;
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
