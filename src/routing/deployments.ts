/**
 * Deployments: a provider × an upstream model. Routing turns a request's
 * public model into the ordered list of deployments that may serve it.
 */
import type { ProviderPool } from '../keys/key-state';
import type { ModelPrice } from '../usage/pricing';
import { TimedCounterSet } from '../usage/stats';
import { Ewma } from './ewma';
/**
 * One deployment, kept for the manager's life: routing strategies read its
 * live figures (in flight, latency and time-to-first-token averages). For a
 * request that names a model it is a `DeploymentView` (its `upstreamModel`
 * is then set).
 */
export class Deployment {
  readonly pool: ProviderPool;
  /** The public model name it serves (`''` for requests that name none). */
  readonly model: string;
  /** The model name sent upstream; `undefined` for requests that name none. */
  readonly upstreamModel: string | undefined;
  readonly weight: number;
  readonly price: Readonly<ModelPrice> | undefined;
  readonly contextWindow: number | undefined;
  readonly tags: readonly string[];
  inFlight = 0;
  readonly latency = new Ewma();
  readonly ttft = new Ewma();
  /** Its attempts, with latency and time-to-first-token histograms, for stats(). */
  readonly stats = new TimedCounterSet();
  /**
   * It refused the `stream_options.include_usage` keyplex adds to streamed
   * requests (Mistral's 422, Groq's and older Azure's 400): keyplex adds it
   * here no more.
   */
  streamOptionsRefused = false;
  /**
   * For a deployment without a price: the USD per token that its last reply
   * stating its cost stated (`Usage.statedCostUsd` over the reply's tokens),
   * at which a request's budget estimate is made before sending (see
   * pipeline/admit.ts estimateAt); undefined until such a reply came.
   */
  statedUsdPerToken: number | undefined = undefined;

  /** @param price the table's price for the model; a price configured on the deployment wins. */
  constructor(pool: ProviderPool, model: string, upstreamModel: string | undefined, price: Readonly<ModelPrice> | undefined) {
    this.pool = pool;
    this.model = model;
    this.upstreamModel = upstreamModel;
    const options = pool.deploymentOptions.get(model);
    this.price = options?.price ?? price;
    this.contextWindow = options?.contextWindow;
    this.weight = options?.weight ?? 1;
    this.tags = options?.tags ?? [];
  }

  get provider(): string {
    return this.pool.id;
  }

  get latencyMs(): number | undefined {
    return this.latency.value;
  }

  get ttftMs(): number | undefined {
    return this.ttft.value;
  }

  /**
   * A failed attempt (a transient failure: 5xx, timeout, reset, broken
   * reply) took `elapsedMs`: it counts in the averages as that slow, but
   * never as faster than they stand — a 500 that comes back in 1 ms is no
   * sign of speed, and counted as one it would draw latency routing to the
   * deployment that fails. Time to first token too, once measured (a
   * stream that fails before its first byte waited at least that long).
   * Unclipped (see {@link Ewma}): a failure is a verdict, not an outlier among
   * replies — a deployment whose calls time out goes behind the others at
   * the first timeout, as before.
   */
  failedAfter(elapsedMs: number, now: number): void {
    const latency = this.latency.value;
    this.latency.update(latency === undefined || elapsedMs > latency ? elapsedMs : latency, now, true);
    const ttft = this.ttft.value;
    if (ttft !== undefined) this.ttft.update(elapsedMs > ttft ? elapsedMs : ttft, now, true);
  }
}

/**
 * The deployments for `model`, in configuration order: providers that list
 * the model, then those with `serveAnyModel: true`, then — only when no
 * provider lists the model, or the request is pinned to one — providers
 * without `models`. So a prompt never goes to a provider that did not claim
 * its model unless the configuration (or the request) asked for it. A
 * request that names no model (files, model lists) goes to the first
 * provider only, since such resources live with one provider. `pinned`
 * restricts to one provider. Deployments are made once per provider and
 * model (`make`) and reused.
 */
export function route(
  pools: readonly ProviderPool[],
  model: string | undefined,
  pinned: string | undefined,
  make: (pool: ProviderPool, model: string, upstreamModel: string | undefined) => Deployment,
): Deployment[] {
  const candidates = pinned === undefined ? pools : pools.filter((p) => p.id === pinned);
  if (model === undefined) {
    const first = candidates[0];
    return first ? [deploymentOf(first, '', undefined, make)] : [];
  }
  const listed: Deployment[] = [];
  const catchAll: Deployment[] = [];
  let unclaimed: ProviderPool[] | undefined;
  for (const pool of candidates) {
    const upstream = pool.models?.get(model);
    if (upstream !== undefined) listed.push(deploymentOf(pool, model, upstream, make));
    else if (pool.anyModel === 'always') catchAll.push(deploymentOf(pool, model, model, make));
    else if (pool.anyModel === 'unclaimed') (unclaimed ??= []).push(pool);
  }
  // Unpinned, the candidates are every provider: none listed the model when `listed` is empty.
  if (unclaimed !== undefined && (pinned !== undefined || listed.length === 0)) {
    for (const pool of unclaimed) catchAll.push(deploymentOf(pool, model, model, make));
  }
  return listed.length === 0 ? catchAll : catchAll.length === 0 ? listed : listed.concat(catchAll);
}

function deploymentOf(
  pool: ProviderPool,
  model: string,
  upstreamModel: string | undefined,
  make: (pool: ProviderPool, model: string, upstreamModel: string | undefined) => Deployment,
): Deployment {
  // The pool holds only the deployments routing made, so this is one of ours.
  let deployment = pool.deployments.get(model) as Deployment | undefined;
  if (deployment === undefined) {
    deployment = make(pool, model, upstreamModel);
    pool.deployments.set(model, deployment);
  }
  return deployment;
}
