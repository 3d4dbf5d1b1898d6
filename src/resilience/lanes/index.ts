/**
 * Bulkhead lanes (DESIGN.md step 2 "Admit", §3): bounded concurrency and a
 * bounded queue per lane. `bulkhead.ts` runs them, `options.ts` holds their
 * options and checks them.
 */
export { Bulkhead, type LaneRejection, type LaneStats } from './bulkhead';
export { DEFAULT_LANES, resolveLanes, type LaneOptions } from './options';
