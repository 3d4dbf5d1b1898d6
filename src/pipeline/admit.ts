/**
 * Admit: the request's budgets, then its lane (bulkhead). Also the budget
 * helpers the later stages use: provider and key budgets judged when a key is
 * picked, and the holds settled when an attempt or the request ends.
 */
import type { KeyplexError } from '../errors';
import type { Key } from '../keys/key';
import type { Deployment } from '../routing/deployments';
import { estimatedCost } from '../routing/cost';
import type { DeploymentView } from '../routing/strategy';
import { budgetExceededError, type BudgetCheck, type BudgetExceededEvent } from '../usage/budget';
import type { Core } from './core';
import type { RequestContext } from './context';

/** A budget crossing as Budgets reports it. */
export interface BudgetCrossing {
  id?: string;
  budget?: string;
  limitUsd: number;
  spentUsd: number;
  heldUsd: number;
  estimateUsd?: number;
  window: BudgetExceededEvent['window'];
  mode: BudgetExceededEvent['mode'];
  onExceeded: 'reject' | 'cheaper';
  resetsInMs: number;
  scope?: BudgetExceededEvent['scope'];
}

/**
 * Budgets: the request's cost is estimated at its first deployment's price
 * (its token estimate × price). Over a cap with `onExceeded: 'reject'` it is
 * refused; over a cap with `'cheaper'` its route is re-ordered cheapest
 * first. Otherwise the estimate is held until the request ends, so
 * concurrent requests see each other's spend before it is known.
 */
export function admitBudget(core: Core, ctx: RequestContext): KeyplexError | undefined {
  const budgets = core.budgets;
  if (!budgets) return undefined;
  const deployments = ctx.route.deployments;
  let estimate = deployments[0] ? estimateAt(ctx, deployments[0]) : 0;
  const info = { model: ctx.request.model, tags: ctx.tags };
  let check = budgets.check(info, estimate);
  if (check.exceeded.some((crossing) => crossing.onExceeded === 'cheaper')) {
    // A 'cheaper' cap is crossed: cheapest deployments first (stable: ties keep
    // their order), and every cap judged again at the cheaper price.
    const tokens = { inputTokens: ctx.inputTokens, outputTokens: ctx.outputTokens };
    const sortKey = (d: Deployment) => estimatedCost(d as DeploymentView, tokens); // unknown prices last
    deployments.sort((a, b) => sortKey(a) - sortKey(b));
    estimate = deployments[0] ? estimateAt(ctx, deployments[0]) : 0;
    for (const crossing of check.exceeded) budgetCrossed(core, crossing);
    check = budgets.check(info, estimate);
  }
  for (const crossing of check.exceeded) budgetCrossed(core, crossing);
  if (!check.ok) {
    const refused = budgetExceededError(check, { requestId: ctx.requestId });
    if (refused) return refused;
  }
  ctx.budgetHold = budgets.hold(info, estimate);
  ctx.budgetHeldUsd = estimate;
  return undefined;
}

/**
 * The request's lane slot; its release is kept on the context. Taken at once
 * when the lane has one free (no promise, no turn of the event loop: the usual
 * case), else the returned promise resolves once it is taken.
 */
export function admitLane(core: Core, ctx: RequestContext, signal: AbortSignal): Promise<void> | undefined {
  const lane = ctx.request.options.lane ?? core.options.defaultLane;
  const release = core.bulkhead.tryAcquire(lane, signal);
  if (release !== undefined) {
    ctx.releaseLane = release;
    return undefined;
  }
  return core.bulkhead.acquire(lane, signal).then((taken) => {
    ctx.releaseLane = taken;
  });
}

/**
 * `budget:exceeded`, once per budget and window: when a request is refused or
 * re-routed by a cap, or spend and holds reach it, whichever comes first.
 */
export function budgetCrossed(core: Core, crossing: BudgetCrossing): void {
  const id = crossing.budget ?? crossing.id!;
  const now = Date.now();
  const until = core.budgetAnnounced.get(id);
  if (until !== undefined && now < until) return;
  core.budgetAnnounced.set(id, now + Math.max(crossing.resetsInMs, 1));
  if (!core.hub.wants('budget:exceeded')) return;
  const scope = crossing.scope ?? [...(core.budgets?.stats() ?? []), ...(core.keyBudgets?.stats() ?? [])].find((b) => b.id === id)?.scope;
  if (!scope) return;
  core.hub.emit('budget:exceeded', {
    budget: id,
    scope,
    limitUsd: crossing.limitUsd,
    spentUsd: crossing.spentUsd,
    heldUsd: crossing.heldUsd,
    ...(crossing.estimateUsd !== undefined && { estimateUsd: crossing.estimateUsd }),
    window: crossing.window,
    mode: crossing.mode,
    onExceeded: crossing.onExceeded,
    resetsInMs: crossing.resetsInMs,
  });
}

function keyBudgetInfo(ctx: RequestContext, deployment: Deployment, key: Key) {
  return { provider: deployment.pool.id, keyId: key.id, model: ctx.request.model, tags: ctx.tags };
}

/**
 * The request's estimated cost on `deployment`: at its price; without one, at
 * the cost per token its replies last stated (Deployment.statedUsdPerToken),
 * so that concurrent requests to a model priced only by what its replies say
 * are held against budgets too; else 0.
 */
export function estimateAt(ctx: RequestContext, deployment: Deployment): number {
  const cost = estimatedCost(deployment as DeploymentView, { inputTokens: ctx.inputTokens, outputTokens: ctx.outputTokens });
  if (Number.isFinite(cost)) return cost;
  const rate = deployment.statedUsdPerToken;
  return rate === undefined ? 0 : (ctx.inputTokens + ctx.outputTokens) * rate;
}

/**
 * Whether the budgets let this key take the request: its provider and key
 * budgets, and — when the request costs more on this deployment than its
 * hold (a failover to a dearer provider) — its own budgets at the dearer
 * estimate. A crossed 'reject' cap rules the key out (remembered, to refuse
 * the request when no key is left); a crossed 'cheaper' provider or key cap
 * rules it out in the first pass only, so other keys and providers go first.
 */
export function budgetsAllow(core: Core, ctx: RequestContext, deployment: Deployment, key: Key, lastPass: boolean): boolean {
  const estimate = estimateAt(ctx, deployment);
  if (core.keyBudgets && !allows(core, ctx, core.keyBudgets.check(keyBudgetInfo(ctx, deployment, key), estimate), lastPass)) return false;
  const hold = ctx.budgetHold;
  if (hold === undefined || estimate <= ctx.budgetHeldUsd) return true;
  // A crossed 'cheaper' cap of the request's own has had its say (its route is cheapest first): only 'reject' caps rule a dearer deployment out.
  return allows(core, ctx, core.budgets!.check({ model: ctx.request.model, tags: ctx.tags }, estimate, hold), true);
}

function allows(core: Core, ctx: RequestContext, check: BudgetCheck, lastPass: boolean): boolean {
  for (const crossing of check.exceeded) budgetCrossed(core, crossing);
  if (!check.ok) {
    ctx.history.budgetRefusal ??= budgetExceededError(check, { requestId: ctx.requestId });
    return false;
  }
  return lastPass || check.exceeded.length === 0;
}

/**
 * Holds the attempt's estimated cost against its provider and key budgets,
 * and raises the request's own hold to it when it is dearer than the hold.
 */
export function holdBudgets(core: Core, ctx: RequestContext, deployment: Deployment, key: Key): void {
  if (!core.keyBudgets && ctx.budgetHold === undefined) return;
  const estimate = estimateAt(ctx, deployment);
  if (core.keyBudgets) ctx.keyBudgetHold = core.keyBudgets.hold(keyBudgetInfo(ctx, deployment, key), estimate);
  if (ctx.budgetHold !== undefined && estimate > ctx.budgetHeldUsd) {
    core.budgets!.raise(ctx.budgetHold, estimate);
    ctx.budgetHeldUsd = estimate;
  }
}

/** Settles the attempt's provider/key budget hold (0 when it failed); whether a budget recorded it. */
export function settleKeyBudget(core: Core, ctx: RequestContext, deployment: Deployment, key: Key, costUsd: number): boolean {
  const hold = ctx.keyBudgetHold;
  if (!hold || !core.keyBudgets) return false;
  ctx.keyBudgetHold = undefined;
  return core.keyBudgets.settle(hold, keyBudgetInfo(ctx, deployment, key), costUsd);
}

/** Settles the request's budget hold with what it really cost (0 when it failed); whether a budget recorded it. */
export function settleRequestBudget(core: Core, ctx: RequestContext, provider: string | undefined, keyId: string | undefined, costUsd: number): boolean {
  const hold = ctx.budgetHold;
  if (!hold || !core.budgets) return false;
  ctx.budgetHold = undefined;
  return core.budgets.settle(hold, { provider, keyId, model: ctx.request.model, tags: ctx.tags }, costUsd);
}

/**
 * An answer the upstream gave (and billed) but keyplex dropped (an
 * `afterResponse` hook threw): its usage is not read, so the request's and
 * the attempt's budgets are settled at its estimate on that deployment.
 */
export function settleDroppedAnswer(core: Core, ctx: RequestContext, deployment: Deployment, key: Key): void {
  const estimate = estimateAt(ctx, deployment);
  settleKeyBudget(core, ctx, deployment, key, estimate);
  settleRequestBudget(core, ctx, deployment.pool.id, key.id, estimate);
}
