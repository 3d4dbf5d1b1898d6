/**
 * What a routing strategy sees and the interface it implements. Apart from
 * the registry (`strategy.ts`) so that the built-ins, which implement it, do
 * not import the registry that makes them.
 */
import type { ModelPrice } from '../usage/pricing';

/** What a routing strategy sees of one deployment (a provider × upstream model). */
export interface DeploymentView {
  /** Provider id. */
  readonly provider: string;
  /** Public model name it serves. */
  readonly model: string;
  /** Model name sent to the provider. */
  readonly upstreamModel: string;
  /** Configured weight, default 1. Zero, negative or non-finite weights count as 0 for `weighted`. */
  readonly weight: number;
  /** Price in USD per million tokens; `undefined` when unknown. */
  readonly price: Readonly<ModelPrice> | undefined;
  /** Context window in tokens (input + output); `undefined` when unknown. */
  readonly contextWindow: number | undefined;
  /** Free-form labels from configuration. */
  readonly tags: readonly string[];
  /** Attempts on this deployment that have not finished yet. */
  readonly inFlight: number;
  /** EWMA of full latency in ms, `undefined` until measured. */
  readonly latencyMs: number | undefined;
  /** EWMA of time to first token in ms (streams), `undefined` until measured. */
  readonly ttftMs: number | undefined;
}

/** What a routing strategy knows of the request being routed. */
export interface RouteContext {
  /** Public model (or alias) being routed. Strategies that keep state (weighted) keep it per `model`. */
  model: string;
  /** Estimated input tokens. */
  inputTokens: number;
  /** Expected output tokens (max tokens requested, or the configured assumption). */
  outputTokens: number;
  /** Whether the request streams. */
  stream: boolean;
  /** The request's id. */
  requestId: string;
}

/**
 * Orders deployments for one request. `order` must return a new array holding
 * exactly the given elements (same objects, none added or dropped), best
 * first, and must not modify its input. It is called once per routed request,
 * on the hot path: keep it O(n log n) and free of I/O. Deployments whose
 * context window is too small are already left out; one whose circuit is
 * open is not (keyplex passes over it when it picks a key, and waits for it
 * when every deployment's circuit is open).
 *
 * ```ts
 * const cheapestFirst: RoutingStrategy = {
 *   order: (deployments) => [...deployments].sort((a, b) => (a.price?.output ?? Infinity) - (b.price?.output ?? Infinity)),
 * };
 * new KeyManager({ providers, routing: { strategy: cheapestFirst } });
 * ```
 */
export interface RoutingStrategy {
  order(deployments: readonly DeploymentView[], ctx: RouteContext): DeploymentView[];
}
