/**
 * Account: a successful reply's usage and cost, the request's budgets, the
 * stats and the `success` event; and the same bookkeeping for a request that
 * failed (`failure` event).
 */
import type { KeyplexErrorCode, KeyplexErrorDetail } from '../errors';
import type { SuccessEvent } from '../events';
import { costAt, isBuiltInPrice } from '../usage/pricing';
import type { TimedCounterSet } from '../usage/stats';
import type { Usage } from '../usage/usage';
import { estimateAt, settleKeyBudget, settleRequestBudget } from './admit';
import type { RequestContext } from './context';
import { modelStats, type Core } from './core';
import { elapsedMs } from '../wall-clock';
import type { Lease } from './lease';

/**
 * Records a successful reply (complete, or a stream that ended) at `now`:
 * its cost from the deployment's configured price or the price table, the
 * request's budgets (a reply without usage at its estimate; one that is no
 * new answer, see InterceptedRequest.bills, at nothing, its usage not read), the lease
 * settled, totals and model stats, `success`.
 * Returns the cost (USD; null when unknown).
 */
export function account(
  core: Core,
  ctx: RequestContext,
  lease: Lease,
  now: number,
  usage: Usage | null,
  ttftMs: number | undefined,
  stream: boolean,
  replyModel: string | undefined,
  partial = false,
): number | null {
  const { deployment, key } = lease;
  const model = ctx.request.model ?? replyModel;
  // A reply that reads, changes or cancels what was made before (a response, a stored completion, a batch) spends nothing: its usage was billed once.
  const bills = ctx.request.bills;
  if (!bills) usage = null;
  const costUsd = usage ? costOf(core, lease, model, usage, ctx.inputTokens) : null;
  if (usage?.statedCostUsd !== undefined) learnStatedRate(deployment, usage);
  // A reply that reports no usage spends its estimate on this deployment: budgets must not be spent for free.
  const charged = costUsd ?? (usage === null && bills ? estimateAt(ctx, deployment) : 0);
  const countedByRequest = settleRequestBudget(core, ctx, deployment.pool.id, key.id, charged);
  const countedByKey = settleKeyBudget(core, ctx, deployment, key, charged);
  if (costUsd === null && charged === 0 && bills && (countedByRequest || countedByKey)) warnUncounted(deployment.pool.id, model, deployment.upstreamModel);
  lease.settle('succeeded', now, usage, costUsd, stream);
  const latencyMs = elapsedMs(ctx.startedAt, now);
  // A stream's time to first token is the same kind of difference, made where the first bytes came.
  if (ttftMs !== undefined && ttftMs < 0) ttftMs = 0;
  succeeded(core.totals, usage, costUsd, latencyMs, ttftMs);
  const perModel = modelStats(core, ctx.request.model);
  if (perModel) succeeded(perModel, usage, costUsd, latencyMs, ttftMs);
  if (core.hub.wants('success')) {
    const event: SuccessEvent = {
      requestId: ctx.requestId,
      tags: ctx.tags,
      metadata: ctx.metadata,
      provider: deployment.pool.id,
      keyId: key.id,
      model,
      upstreamModel: deployment.upstreamModel ?? replyModel,
      attempts: ctx.history.outcomes.length,
      latencyMs,
      ttftMs,
      usage,
      costUsd,
      stream,
    };
    if (partial) event.partial = true;
    core.hub.emit('success', event);
  }
  return costUsd;
}

/** Provider × model pairs warned of by {@link warnUncounted}; bounded, as model names are the caller's. */
const warnedUncounted = new Set<string>();
const MAX_WARNED_UNCOUNTED = 1_000;

/**
 * A billed reply that budgets counted at 0 because its cost is unknown: its
 * model has no price (none configured, none built in) and the reply stated no
 * cost (or, reporting no usage, was estimated at that unknown price). No
 * figure would be right to spend in its place, so this says so — once per
 * provider and model, as a process warning (`KEYPLEX_UNPRICED_REPLY`) — for
 * the user to give the model a price; `stats()`' `unpricedReplies` counts
 * every such reply.
 */
function warnUncounted(provider: string, model: string | undefined, upstream: string | undefined): void {
  const id = `${provider}\u0000${model ?? ''}`;
  if (warnedUncounted.has(id) || warnedUncounted.size >= MAX_WARNED_UNCOUNTED) return;
  warnedUncounted.add(id);
  const name = model === undefined ? 'a request that names no model' : `model '${model}'${upstream !== undefined && upstream !== model ? ` (sent upstream as '${upstream}')` : ''}`;
  process.emitWarning(
    `keyplex: budgets counted nothing for a reply of ${name} from provider '${provider}': it has no price (none configured, none built in) and the reply stated no cost. Give it a price (the deployment's \`price\`, or the \`prices\` option) for budgets to count its replies; \`stats()\` counts them in \`unpricedReplies\`. Said once per provider and model.`,
    { type: 'KeyplexWarning', code: 'KEYPLEX_UNPRICED_REPLY' },
  );
}

/**
 * A deployment without a price (one that serves a named model) learns from a
 * reply that stated its cost what a token costs there, for the estimates of
 * later requests (admit.ts estimateAt).
 */
function learnStatedRate(deployment: Lease['deployment'], usage: Usage): void {
  if (deployment.price !== undefined || deployment.model === '') return;
  const tokens = usage.inputTokens + usage.outputTokens || usage.totalTokens;
  if (tokens > 0) deployment.statedUsdPerToken = usage.statedCostUsd! / tokens;
}

/** A request's success in the totals or its model's counters. */
function succeeded(scope: TimedCounterSet<KeyplexErrorCode>, usage: Usage | null, costUsd: number | null, latencyMs: number, ttftMs: number | undefined): void {
  scope.succeed(usage, costUsd);
  scope.latency.record(latencyMs);
  if (ttftMs !== undefined) scope.ttft.record(ttftMs);
}

/**
 * What a usage is priced as: itself, unless it counts only a total (some
 * self-hosted servers), which is split at the request's estimated input
 * tokens (the rest as output) so that it is priced, not free. The usage
 * reported in events and stats stays as the server counted it.
 */
function pricedParts(usage: Usage, estimatedInput: number): Usage {
  if (usage.inputTokens + usage.outputTokens > 0 || usage.totalTokens <= 0) return usage;
  const inputTokens = Math.min(usage.totalTokens, estimatedInput);
  return { ...usage, inputTokens, outputTokens: usage.totalTokens - inputTokens };
}

/**
 * The reply's cost: at a price configured for it (on its deployment, or the
 * `prices` option), else the cost the reply states (`usage.statedCostUsd`:
 * what the provider billed), else at the built-in list price; null when none
 * is known. A configured price is the user's own word (a gateway's markup, a
 * contract rate, internal charge-back) and keeps a cost equal to the
 * estimates made at that price; the built-in table is a dated guess. The
 * price is its deployment's (configured on it, else an override or the
 * built-in price of its upstream or public model: see PriceTable.priceFor);
 * a request that names no model (its deployment has none) is priced by the
 * reply's model. A usage that counts only a total is split at
 * `estimatedInput` ({@link pricedParts}).
 */
export function costOf(core: Core, lease: Pick<Lease, 'deployment'>, model: string | undefined, usage: Usage, estimatedInput: number): number | null {
  const { deployment } = lease;
  const price = deployment.model !== '' ? deployment.price : model === undefined ? undefined : core.prices.lookup(model);
  const stated = usage.statedCostUsd;
  if (stated !== undefined && (price === undefined || isBuiltInPrice(price))) return stated;
  return price === undefined ? null : costAt(price, pricedParts(usage, estimatedInput));
}

/** What a stream that failed part-way used before it broke. */
export interface PartialSpend {
  usage: Usage;
  costUsd: number | null;
  provider: string;
  keyId: string;
}

/**
 * Records a failed request: its budget hold settled (with what a broken
 * stream used, else released), totals and model stats, `failure`.
 */
export function failed(core: Core, ctx: RequestContext, error: KeyplexErrorDetail, spent?: PartialSpend): void {
  const last = ctx.history.last;
  if (!spent) settleRequestBudget(core, ctx, last?.pool.id, last?.key.id, 0);
  else if (settleRequestBudget(core, ctx, spent.provider, spent.keyId, spent.costUsd ?? 0) && spent.costUsd === null) warnUncounted(spent.provider, ctx.request.model, undefined);
  for (const scope of [core.totals, modelStats(core, ctx.request.model)]) {
    if (!scope) continue;
    scope.fail(error.code);
    if (spent) scope.spend(spent.usage, spent.costUsd);
  }
  if (core.hub.wants('failure')) {
    core.hub.emit('failure', {
      requestId: ctx.requestId,
      tags: ctx.tags,
      metadata: ctx.metadata,
      model: ctx.request.model,
      attempts: ctx.history.outcomes.length,
      error,
      latencyMs: elapsedMs(ctx.startedAt, Date.now()),
      ...(spent ? { usage: spent.usage, costUsd: spent.costUsd, ...(spent.usage.partial ? { partial: true as const } : {}) } : {}),
    });
  }
}
