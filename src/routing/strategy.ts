/**
 * Model routing strategies: in which order the deployments that can serve a
 * request are tried. A strategy is a small, pure object: it sees a read-only
 * view of each deployment and returns them best first. Built-ins are chosen by
 * name from the registry below (the one place a name maps to its factory); an
 * object implementing {@link RoutingStrategy} plugs in a custom one.
 */
import { safeName } from '../config/check';
import { CostStrategy } from './cost';
import { LatencyStrategy } from './latency';
import { LeastBusyStrategy } from './least-busy';
import { OrderedStrategy } from './ordered';
import type { RoutingStrategy } from './view';
import { WeightedStrategy } from './weighted';

export type { DeploymentView, RouteContext, RoutingStrategy } from './view';

/** Built-in strategies by name, in documentation order (`ordered`, the default, first). */
const BUILT_IN_STRATEGIES = {
  ordered: () => new OrderedStrategy(),
  cost: () => new CostStrategy(),
  latency: () => new LatencyStrategy(),
  'least-busy': () => new LeastBusyStrategy(),
  weighted: () => new WeightedStrategy(),
} as const satisfies Record<string, () => RoutingStrategy>;

/** Names of the built-in routing strategies. */
export type RoutingStrategyName = keyof typeof BUILT_IN_STRATEGIES;

/** The built-in routing strategy names, in documentation order (`ordered` is the default). */
export const ROUTING_STRATEGY_NAMES: readonly RoutingStrategyName[] = Object.freeze(Object.keys(BUILT_IN_STRATEGIES) as RoutingStrategyName[]);

/**
 * A fresh built-in strategy by name, or the given custom one as is.
 *
 * @throws {TypeError} for a name that is not one of {@link ROUTING_STRATEGY_NAMES}
 *   (only reachable from untyped callers; the config layer validates first).
 */
export function createRoutingStrategy(choice: RoutingStrategyName | RoutingStrategy): RoutingStrategy {
  if (typeof choice !== 'string') return choice;
  const make = Object.hasOwn(BUILT_IN_STRATEGIES, choice) ? BUILT_IN_STRATEGIES[choice] : undefined;
  if (make === undefined) {
    throw new TypeError(`keyplex: unknown routing strategy ${safeName(String(choice))}; expected one of ${ROUTING_STRATEGY_NAMES.join(', ')}`);
  }
  return make();
}
