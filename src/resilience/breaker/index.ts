/**
 * Circuit breakers: a {@link BreakerPolicy} decides when a circuit opens, a
 * {@link Circuit} runs the closed → open → half-open states around it.
 *
 * The option checks (`validate.ts`) and the per-variant `…OptionsIssue`
 * helpers are left out on purpose: `breakerSpecIssue` covers them.
 */
export type { BreakerPolicy } from './policy';

export { ConsecutiveBreaker } from './consecutive';
export type { ConsecutiveBreakerOptions, ConsecutiveBreakerState } from './consecutive';
export { CountBreaker, MAX_COUNT_SIZE } from './count';
export type { CountBreakerOptions, CountBreakerState } from './count';
export { SamplingBreaker, MAX_SAMPLING_BUCKETS } from './sampling';
export type { SamplingBreakerOptions, SamplingBreakerState, SamplingBucketState } from './sampling';

export { BREAKER_KINDS, createBreakerPolicy, breakerSpecIssue, breakerSpecProblem } from './create';
export type { BreakerKind, BreakerSpec, BreakerSpecIssue } from './create';

export { Circuit } from './circuit';
export { JUDGED, NO_TICKET, REFUSED } from './order';
export type { CircuitState, CircuitOptions, CircuitChange, CircuitChangeReason, CircuitSnapshot } from './circuit';
