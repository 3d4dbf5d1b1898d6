/**
 * Route: the requested model (a concrete model, an alias group, or `auto`)
 * becomes the ordered list of deployments that may serve it.
 */
import { contextFallbackChain, requestFeatures, resolveModel } from '../routing/catalogue';
import { fitsContext } from '../routing/context-window';
import { route as deploymentsFor, type Deployment } from '../routing/deployments';
import type { DeploymentView } from '../routing/strategy';
import type { RequestFacts, RequestContext, RoutePlan } from './context';
import type { Core } from './core';

type Rank = { readonly strategy: string; readonly rank: number };
const RANKS = new Map<string, Rank[]>();

/** The one frozen `{ strategy, rank }` of its kind: a route records one per deployment, and requests share them. */
function rankOf(strategy: string, rank: number): Rank {
  let byRank = RANKS.get(strategy);
  if (byRank === undefined) RANKS.set(strategy, (byRank = []));
  return (byRank[rank] ??= Object.freeze({ strategy, rank }));
}

/**
 * The deployments that may serve the request, best first: the model (or its
 * alias group, or what `auto` chose) ordered by its routing strategy, then
 * each fallback tier in turn. Deployments whose context window cannot hold
 * the request are left out (and sent on to the model's context fallbacks,
 * after everything else). Records each one's strategy and rank for the
 * `attempt` event.
 */
export function route(core: Core, facts: RequestFacts): RoutePlan {
  const { request, inputTokens, outputTokens } = facts;
  const ranks = new Map<Deployment, Rank>();
  const plan: RoutePlan = { deployments: [], ranks, contextTooLong: false, excludedModels: undefined };
  const pinned = request.options.provider;
  if (request.model === undefined) {
    plan.deployments.push(...deploymentsFor(core.pools, undefined, pinned, core.makeDeployment));
    return plan;
  }
  const catalogue = core.options.routing.catalogue;
  const hasCatalogue = catalogue.aliases !== undefined || catalogue.fallbacks !== undefined || catalogue.auto !== undefined;
  const tiers = hasCatalogue ? resolveModel(request.model, catalogue, requestFeatures(request.json, inputTokens)).tiers : [[request.model]];
  const ordered = plan.deployments;
  const tooLongModels: string[] = [];
  for (const tier of tiers) {
    const candidates: Deployment[] = [];
    for (const model of tier) {
      for (const deployment of deploymentsFor(core.pools, model, pinned, core.makeDeployment)) {
        if (fitsContext(deployment as DeploymentView, inputTokens, outputTokens)) candidates.push(deployment);
        else if (!tooLongModels.includes(model)) tooLongModels.push(model);
      }
    }
    if (candidates.length === 0) continue;
    const chosen = (tier.length === 1 ? core.perModel.get(tier[0]!) : undefined) ?? core.perModel.get(request.model) ?? core.strategy;
    const sorted =
      candidates.length === 1
        ? candidates
        : (chosen.strategy.order(candidates as DeploymentView[], {
            model: request.model,
            inputTokens,
            outputTokens,
            stream: request.stream,
            requestId: facts.requestId,
          }) as Deployment[]);
    for (const deployment of sorted) {
      ranks.set(deployment, rankOf(chosen.name, ordered.length + 1));
      ordered.push(deployment);
    }
  }
  // Models too small for this request hand it to their context fallbacks (after everything else).
  if (catalogue.contextFallbacks !== undefined) {
    for (const small of tooLongModels) {
      for (const model of contextFallbackChain(small, catalogue)) {
        for (const deployment of deploymentsFor(core.pools, model, pinned, core.makeDeployment)) {
          if (ordered.includes(deployment) || !fitsContext(deployment as DeploymentView, inputTokens, outputTokens)) continue;
          ranks.set(deployment, rankOf('context-fallback', ordered.length + 1));
          ordered.push(deployment);
        }
      }
    }
  }
  if (ordered.length === 0 && tooLongModels.length > 0) plan.contextTooLong = true;
  return plan;
}

/**
 * After a `context_length_exceeded` answer from `failed`: leaves that model
 * out of the rest of the request and adds the deployments of its next
 * context fallback not yet in the route. False when there is none.
 */
export function addContextFallback(core: Core, ctx: RequestContext, failed: Deployment): boolean {
  const catalogue = core.options.routing.catalogue;
  if (catalogue.contextFallbacks === undefined || failed.model === '') return false;
  const plan = ctx.route;
  const excluded = (plan.excludedModels ??= new Set());
  excluded.add(failed.model);
  for (const model of contextFallbackChain(failed.model, catalogue)) {
    if (excluded.has(model)) continue;
    const added = deploymentsFor(core.pools, model, ctx.request.options.provider, core.makeDeployment).filter((d) => !plan.deployments.includes(d));
    if (added.length === 0) continue;
    for (const deployment of added) {
      plan.ranks.set(deployment, rankOf('context-fallback', plan.deployments.length + 1));
      plan.deployments.push(deployment);
    }
    return true;
  }
  return false;
}
