/**
 * Route: the requested model (a concrete model, an alias group, or `auto`)
 * becomes the ordered list of deployments that may serve it.
 */
import { AUTO_MODEL, contextFallbackChain, requestFeatures, resolveModel, type Resolution } from '../routing/catalogue';
import { fitsContext } from '../routing/context-window';
import { route as deploymentsFor, type Deployment } from '../routing/deployments';
import { requestJson } from '../request';
import { describeThrown, describeType } from '../config/check';
import { HookFailedError } from '../errors';
import type { DeploymentView, RouteContext, RoutingStrategy } from '../routing/strategy';
import { objectCollection } from '../routing/affinity';
import { objectPin } from './affinity';
import type { RankLookup, RequestFacts, RequestContext, ObjectPin, RouteRank, RoutePlan } from './context';
import type { Core } from './core';

const RANKS = new Map<string, RouteRank[]>();

/** The one frozen `{ strategy, rank }` of its kind: requests share them. */
function rankOf(strategy: string, rank: number): RouteRank {
  let byRank = RANKS.get(strategy);
  if (byRank === undefined) RANKS.set(strategy, (byRank = []));
  return (byRank[rank] ??= Object.freeze({ strategy, rank }));
}

/**
 * A request's route: its deployments, best first, and the strategy that
 * placed each. It is its own {@link RankLookup}: a deployment's rank is its
 * place in the list, so no table is made per request.
 */
class Route implements RoutePlan, RankLookup {
  deployments: Deployment[] = NONE;
  readonly ranks: RankLookup = this;
  contextTooLong = false;
  excludedModels: Set<string> | undefined = undefined;
  affinity: ObjectPin | undefined = undefined;
  /** The provider the request is limited to: its `provider` option, or that of its response's key. */
  provider: string | undefined = undefined;
  /** The strategy of every deployment while they share one (undefined: none placed them); by place once they differ. */
  #strategy: string | undefined = undefined;
  #strategies: (string | undefined)[] | undefined = undefined;

  /** Appends `added` (a list of the route's own: it is copied), placed by `strategy`. */
  addAll(added: readonly Deployment[], strategy: string | undefined): void {
    const at = this.deployments.length;
    if (at === 0) {
      this.deployments = added.slice();
      this.#strategy = strategy;
      return;
    }
    for (const deployment of added) this.deployments.push(deployment);
    if (this.#strategies === undefined && strategy === this.#strategy) return;
    const strategies = (this.#strategies ??= new Array<string | undefined>(at).fill(this.#strategy));
    for (let i = 0; i < added.length; i++) strategies.push(strategy);
  }

  get(deployment: Deployment): RouteRank | undefined {
    // The last place, as a map set once per placing would answer.
    const at = this.deployments.lastIndexOf(deployment);
    const strategy = at === -1 ? undefined : this.#strategies === undefined ? this.#strategy : this.#strategies[at];
    return strategy === undefined ? undefined : rankOf(strategy, at + 1);
  }
}

/** The deployments of a route that has none yet (shared, never written: the first `addAll` replaces it). */
const NONE: Deployment[] = [];

/**
 * The deployments that may serve the request, best first: the model (or its
 * alias group, or what `auto` chose) ordered by its routing strategy, then
 * each fallback tier in turn. Deployments whose context window cannot hold
 * the request are left out (and sent on to the model's context fallbacks,
 * after everything else). Records each one's strategy and rank for the
 * `attempt` event. A request that names an object this manager created (a
 * response, file, batch, conversation, upload, vector store, fine-tuning
 * job) goes to that object's provider only (its key alone: see ./affinity.ts).
 *
 * @throws ResponseKeyUnavailableError when that object's key is removed or disabled.
 * @throws ObjectsOnDifferentKeysError when it names objects created with different keys.
 */
export function route(core: Core, facts: RequestFacts): RoutePlan {
  const { request, inputTokens, outputTokens } = facts;
  const plan = new Route();
  // Two character reads (and a string check at most) for requests outside the collections kept per key; a chat
  // completion's messages are looked into only once a file or vector store was remembered.
  const { affinity } = core;
  if (affinity !== undefined) {
    const collection = objectCollection(request.path);
    if (collection !== undefined || affinity.contentObjects > 0) plan.affinity = objectPin(core, facts, affinity, collection);
  }
  const pinned = (plan.provider = plan.affinity?.provider ?? request.options.provider);
  if (request.model === undefined) {
    plan.addAll(deploymentsFor(core.pools, undefined, pinned, core.makeDeployment), undefined);
    return plan;
  }
  const catalogue = core.options.routing.catalogue;
  const hasCatalogue = catalogue.aliases !== undefined || catalogue.fallbacks !== undefined || catalogue.auto !== undefined;
  // Without a catalogue, the one tier is the model itself (no lists made for it).
  let tooLong: string[] | undefined;
  if (!hasCatalogue) tooLong = addTier(core, facts, plan, request.model, tooLong);
  else for (const tier of resolved(request.model, catalogue, facts).tiers) tooLong = addTier(core, facts, plan, tier, tooLong);
  // Models too small for this request hand it to their context fallbacks (after everything else).
  if (catalogue.contextFallbacks !== undefined && tooLong !== undefined) {
    for (const small of tooLong) {
      for (const model of contextFallbackChain(small, catalogue)) {
        for (const deployment of deploymentsFor(core.pools, model, pinned, core.makeDeployment)) {
          if (plan.deployments.includes(deployment) || !fitsContext(deployment as DeploymentView, inputTokens, outputTokens)) continue;
          plan.addAll([deployment], 'context-fallback');
        }
      }
    }
  }
  if (plan.deployments.length === 0 && tooLong !== undefined) plan.contextTooLong = true;
  return plan;
}

/**
 * Adds one tier's deployments (of `tier`, one model or several) that fit the
 * request, in the order of their routing strategy. Returns `tooLong` with the
 * tier's models whose context window is too small added (made on first use).
 */
function addTier(core: Core, facts: RequestFacts, plan: Route, tier: string | readonly string[], tooLong: string[] | undefined): string[] | undefined {
  const { request, inputTokens, outputTokens } = facts;
  const one = typeof tier === 'string';
  const count = one ? 1 : tier.length;
  let candidates: Deployment[] | undefined;
  for (let i = 0; i < count; i++) {
    const model = one ? tier : tier[i]!;
    // A fresh list: the fitting ones are kept in place, and the first model's list becomes the candidates.
    const found = deploymentsFor(core.pools, model, plan.provider, core.makeDeployment);
    let kept = 0;
    for (const deployment of found) {
      if (fitsContext(deployment as DeploymentView, inputTokens, outputTokens)) found[kept++] = deployment;
      else if (tooLong === undefined) tooLong = [model];
      else if (!tooLong.includes(model)) tooLong.push(model);
    }
    found.length = kept;
    if (candidates === undefined) candidates = found;
    else for (const deployment of found) candidates.push(deployment);
  }
  if (candidates === undefined || candidates.length === 0) return tooLong;
  const model = request.model!;
  const chosen = (count === 1 ? core.perModel.get(one ? tier : tier[0]!) : undefined) ?? core.perModel.get(model) ?? core.strategy;
  const sorted =
    candidates.length === 1
      ? candidates
      : ordered(chosen.strategy, candidates, {
          model,
          inputTokens,
          outputTokens,
          stream: request.stream,
          requestId: facts.requestId,
        });
  plan.addAll(sorted, chosen.name);
  return tooLong;
}

/**
 * The model's tiers from the catalogue. `auto` asks the auto strategy, the
 * application's code when configured: one that throws or chooses a model
 * not in `auto.models` fails the request as `hook_failed` (500, nothing sent).
 */
function resolved(model: string, catalogue: Core['options']['routing']['catalogue'], facts: RequestFacts): Resolution {
  const features = requestFeatures(requestJson(facts.request), facts.inputTokens);
  if (model !== AUTO_MODEL || catalogue.auto?.strategy === undefined) return resolveModel(model, catalogue, features);
  try {
    return resolveModel(model, catalogue, features);
  } catch (error) {
    throw strategyFailed('AutoStrategy.choose', `the auto routing strategy failed, and the request is not sent: AutoStrategy.choose failed: ${quote(error)}. It must return one of auto.models.`, facts.requestId, error);
  }
}

/** Longest part of what a strategy threw that a failure quotes. */
const QUOTED = 200;

/**
 * `candidates` in `strategy`'s order. A strategy is the application's code:
 * one that throws, or gives back other than the deployments it was given
 * (each once), fails the request as `hook_failed` (500, nothing sent) rather
 * than as a connection error or a misleading `model_not_served`.
 */
function ordered(strategy: RoutingStrategy, candidates: Deployment[], ctx: RouteContext): Deployment[] {
  let sorted: readonly DeploymentView[];
  try {
    sorted = strategy.order(candidates as DeploymentView[], ctx);
  } catch (error) {
    throw orderFailed(ctx, `threw: ${quote(error)}`, error);
  }
  if (!Array.isArray(sorted)) throw orderFailed(ctx, `returned ${describeType(sorted)}, not a list of the deployments it was given`);
  if (sorted.length !== candidates.length) throw orderFailed(ctx, `returned ${sorted.length} deployments for the ${candidates.length} it was given`);
  // Each given one once (n is a handful: no set made per request).
  for (let i = 0; i < sorted.length; i++) {
    const d = sorted[i] as Deployment;
    if (!candidates.includes(d) || sorted.indexOf(d) !== i) throw orderFailed(ctx, 'gave back a deployment twice or one it was not given');
  }
  return sorted as Deployment[];
}

function orderFailed(ctx: RouteContext, what: string, cause?: unknown): HookFailedError {
  const message = `the routing strategy for model '${ctx.model}' failed, and the request is not sent: RoutingStrategy.order ${what}. It must return the deployments it is given, each once, best first.`;
  return strategyFailed('RoutingStrategy.order', message, ctx.requestId, cause);
}

function strategyFailed(name: string, message: string, requestId: string, cause: unknown): HookFailedError {
  return new HookFailedError(name, `keyplex: ${message}`, { requestId, cause });
}

/** What `error` says, cut at {@link QUOTED} characters. */
function quote(error: unknown): string {
  const said = describeThrown(error);
  return said.length > QUOTED ? `${said.slice(0, QUOTED)}…` : said;
}

/**
 * After a `context_length_exceeded` answer from `failed`: leaves that model
 * out of the rest of the request and adds the deployments of its next
 * context fallback not yet in the route. False when there is none.
 */
export function addContextFallback(core: Core, ctx: RequestContext, failed: Deployment): boolean {
  const catalogue = core.options.routing.catalogue;
  if (catalogue.contextFallbacks === undefined || failed.model === '') return false;
  // Only route() sets a request's route once routing ran (the one before it has no deployment to fail).
  const plan = ctx.route as Route;
  const excluded = (plan.excludedModels ??= new Set());
  excluded.add(failed.model);
  for (const model of contextFallbackChain(failed.model, catalogue)) {
    if (excluded.has(model)) continue;
    const added = deploymentsFor(core.pools, model, plan.provider, core.makeDeployment).filter((d) => !plan.deployments.includes(d));
    if (added.length === 0) continue;
    plan.addAll(added, 'context-fallback');
    return true;
  }
  return false;
}
