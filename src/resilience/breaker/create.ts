/** Breaker specs: how configuration names a policy, and making one from it. */
import { ConsecutiveBreaker, consecutiveOptionsIssue } from './consecutive';
import { CountBreaker, countOptionsIssue } from './count';
import type { BreakerPolicy } from './policy';
import { SamplingBreaker, samplingOptionsIssue } from './sampling';
import { assertNoIssue, describe, isPlainObject, issue, type OptionIssue } from './validate';

/** Names of the built-in breaker policies. */
export type BreakerKind = 'consecutive' | 'count' | 'sampling';

/** The built-in breaker policies by name. */
export const BREAKER_KINDS: readonly BreakerKind[] = ['consecutive', 'count', 'sampling'];

/**
 * How configuration chooses a breaker policy: a built-in by name (defaults),
 * a built-in with options, or a factory for a custom one — called once per
 * circuit, since a policy holds the memory of one scope.
 */
export type BreakerSpec =
  | BreakerKind
  | { kind: 'consecutive'; threshold?: number }
  | { kind: 'count'; threshold?: number; size?: number; minimumCalls?: number }
  | { kind: 'sampling'; threshold?: number; windowMs?: number; buckets?: number; minimumCalls?: number }
  | (() => BreakerPolicy);

/** A problem with a breaker spec, for configuration errors that name the field. */
export interface BreakerSpecIssue {
  /** Path inside the spec, e.g. `threshold`; `''` for the spec as a whole. */
  readonly field: string;
  /** `expected …; got …`. */
  readonly problem: string;
  /** The error class `createBreakerPolicy` throws for it. */
  readonly error: 'TypeError' | 'RangeError';
}

const EXPECTED_SPEC = "expected 'consecutive', 'count', 'sampling', an object { kind, …options } or a function returning a policy";

/**
 * Validates a spec without creating a policy (a factory is not called), and
 * says where the problem is. `undefined` when the spec is good.
 */
export function breakerSpecIssue(spec: unknown): BreakerSpecIssue | undefined {
  if (typeof spec === 'function') return undefined;
  if (typeof spec === 'string') {
    return (BREAKER_KINDS as readonly string[]).includes(spec) ? undefined : issue('', `${EXPECTED_SPEC}; got ${describe(spec)}`);
  }
  if (!isPlainObject(spec)) return issue('', `${EXPECTED_SPEC}; got ${describe(spec)}`);
  const kind = spec.kind;
  const found: OptionIssue | undefined =
    kind === 'consecutive'
      ? consecutiveOptionsIssue(spec, ['kind'])
      : kind === 'count'
        ? countOptionsIssue(spec, ['kind'])
        : kind === 'sampling'
          ? samplingOptionsIssue(spec, ['kind'])
          : issue('kind', `expected 'consecutive', 'count' or 'sampling'; got ${describe(kind)}`);
  return found;
}

/**
 * Validates a spec without creating a policy (for config validation): a
 * problem string — naming the field inside the spec when there is one, as in
 * ``"`threshold`: expected a failure ratio above 0 and up to 1; got 2"`` — or
 * `undefined` when the spec is good. A factory is not called, so what it
 * returns is only checked by `createBreakerPolicy`.
 */
export function breakerSpecProblem(spec: unknown): string | undefined {
  const found = breakerSpecIssue(spec);
  if (!found) return undefined;
  return found.field === '' ? found.problem : `\`${found.field}\`: ${found.problem}`;
}

/**
 * A fresh policy for one circuit: a built-in from its name or options, or
 * the result of calling the factory.
 *
 * @throws TypeError or RangeError naming the field for a bad spec, or when a
 *   factory returns something that is not a policy.
 */
export function createBreakerPolicy(spec: BreakerSpec): BreakerPolicy {
  return makeBreakerPolicy(spec, 'breaker spec', '');
}

/**
 * {@link createBreakerPolicy} with the error messages of a caller: `what` is
 * what the errors call the option (`circuit option`), `base` where the spec
 * sits (`policy`).
 */
export function makeBreakerPolicy(spec: BreakerSpec, what: string, base: string): BreakerPolicy {
  assertNoIssue(breakerSpecIssue(spec), what, base);
  if (typeof spec === 'function') {
    const policy: unknown = spec();
    if (!isPolicy(policy)) {
      const problem = `expected the factory to return a policy { success, failure, reset, state, restore }; got ${describe(policy)}`;
      assertNoIssue(issue('', problem), what, base);
    }
    return policy as BreakerPolicy;
  }
  const options: Extract<BreakerSpec, { kind: string }> = typeof spec === 'string' ? ({ kind: spec } as Extract<BreakerSpec, { kind: string }>) : spec;
  switch (options.kind) {
    case 'consecutive':
      return new ConsecutiveBreaker({ threshold: options.threshold });
    case 'count':
      return new CountBreaker({ threshold: options.threshold, size: options.size, minimumCalls: options.minimumCalls });
    case 'sampling':
      return new SamplingBreaker({
        threshold: options.threshold,
        windowMs: options.windowMs,
        buckets: options.buckets,
        minimumCalls: options.minimumCalls,
      });
  }
}

function isPolicy(value: unknown): value is BreakerPolicy {
  if (typeof value !== 'object' || value === null) return false;
  const p = value as Record<string, unknown>;
  return (
    typeof p.success === 'function' &&
    typeof p.failure === 'function' &&
    typeof p.reset === 'function' &&
    typeof p.restore === 'function' &&
    'state' in p
  );
}
