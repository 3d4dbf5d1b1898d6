/**
 * The model catalogue: aliases, fallbacks and automatic choice. `resolve.ts`
 * turns a requested name into tiers of models, `auto.ts` holds the
 * {@link AutoStrategy} plug point, `features.ts` what it sees of a request,
 * `validate.ts` the checks of the options.
 */
export { AUTO_MODEL, contextFallbackChain, resolveModel, type CatalogueOptions, type Resolution } from './resolve';
export { ComplexityAutoStrategy, DEFAULT_AUTO_STRATEGY, type AutoStrategy, type ComplexityThresholds } from './auto';
export { MAX_FEATURE_TEXT, requestFeatures, type RequestFeatures } from './features';
export { catalogueProblem, type CatalogueProblem } from './validate';
