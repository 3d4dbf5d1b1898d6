/**
 * Model routing: deployments, routing strategies, the model catalogue
 * (aliases, fallbacks, `auto`), latency averages and context-window fit.
 */
export { route, type Deployment } from './deployments';
export {
  createRoutingStrategy,
  ROUTING_STRATEGY_NAMES,
  type DeploymentView,
  type RouteContext,
  type RoutingStrategy,
  type RoutingStrategyName,
} from './strategy';
export { OrderedStrategy } from './ordered';
export { CostStrategy, estimatedCost } from './cost';
export { LatencyStrategy, rankingLatency } from './latency';
export { LeastBusyStrategy } from './least-busy';
export { WeightedStrategy } from './weighted';
export { DEFAULT_EWMA_ALPHA, DEFAULT_EWMA_CLIP_RATIO, DEFAULT_EWMA_HALF_LIFE_MS, Ewma, type EwmaOptions, type EwmaSnapshot } from './ewma';
export { fitsContext } from './context-window';
export {
  AUTO_MODEL,
  catalogueProblem,
  ComplexityAutoStrategy,
  contextFallbackChain,
  MAX_FEATURE_TEXT,
  requestFeatures,
  resolveModel,
  type AutoStrategy,
  type CatalogueOptions,
  type CatalogueProblem,
  type ComplexityThresholds,
  type RequestFeatures,
  type Resolution,
} from './catalogue';
