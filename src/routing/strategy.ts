/**
 * Model routing strategies: in which order the deployments that can serve a
 * request are tried. A strategy is a small, pure object: it sees a read-only
 * view of each deployment and returns them best first. Built-ins are chosen by
 * name; an object implementing {@link RoutingStrategy} plugs in a custom one.
 */
import type { ModelPrice } from '../usage/pricing';
import { CostStrategy } from './cost';
import { LatencyStrategy } from './latency';
import { LeastBusyStrategy } from './least-busy';
import { OrderedStrategy } from './ordered';
import { WeightedStrategy } from './weighted';

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
 * on the hot path: keep it O(n log n) and free of I/O.
 */
export interface RoutingStrategy {
  order(deployments: readonly DeploymentView[], ctx: RouteContext): DeploymentView[];
}

/** Names of the built-in routing strategies. */
export type RoutingStrategyName = 'ordered' | 'cost' | 'latency' | 'least-busy' | 'weighted';

/** The built-in routing strategy names, in documentation order (`ordered` is the default). */
export const ROUTING_STRATEGY_NAMES: readonly RoutingStrategyName[] = Object.freeze(['ordered', 'cost', 'latency', 'least-busy', 'weighted'] as const);

/**
 * A fresh built-in strategy by name, or the given custom one as is.
 *
 * @throws {TypeError} for a name that is not one of {@link ROUTING_STRATEGY_NAMES}
 *   (only reachable from untyped callers; the config layer validates first).
 */
export function createRoutingStrategy(choice: RoutingStrategyName | RoutingStrategy): RoutingStrategy {
  if (typeof choice !== 'string') return choice;
  switch (choice) {
    case 'ordered':
      return new OrderedStrategy();
    case 'cost':
      return new CostStrategy();
    case 'latency':
      return new LatencyStrategy();
    case 'least-busy':
      return new LeastBusyStrategy();
    case 'weighted':
      return new WeightedStrategy();
    default:
      throw new TypeError(`keyplex: unknown routing strategy ${JSON.stringify(choice)}; expected one of ${ROUTING_STRATEGY_NAMES.join(', ')}`);
  }
}
