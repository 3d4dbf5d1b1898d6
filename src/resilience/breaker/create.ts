/**
 * Breaker specs: how configuration names a policy, and making one from it.
 * The registry below is the one place a built-in's name maps to its option
 * check and its constructor.
 */
import { ConsecutiveBreaker, consecutiveOptionsIssue, type ConsecutiveBreakerOptions } from './consecutive';
import { CountBreaker, countOptionsIssue, type CountBreakerOptions } from './count';
import type { BreakerPolicy } from './policy';
import { SamplingBreaker, samplingOptionsIssue, type SamplingBreakerOptions } from './sampling';
import { assertNoIssue, describe, isPlainObject, issue, type OptionIssue } from './validate';

/** One built-in policy: how its options are checked and how it is made. */
interface BuiltInBreaker<O> {
  issue(options: unknown, extraKeys: readonly string[]): OptionIssue | undefined;
  make(options: O): BreakerPolicy;
}

/** Built-in breaker policies by name. */
const BUILT_IN_BREAKERS = {
  consecutive: { issue: consecutiveOptionsIssue, make: (options: ConsecutiveBreakerOptions) => new ConsecutiveBreaker(options) },
  count: { issue: countOptionsIssue, make: (options: CountBreakerOptions) => new CountBreaker(options) },
  sampling: { issue: samplingOptionsIssue, make: (options: SamplingBreakerOptions) => new SamplingBreaker(options) },
} as const satisfies Record<string, BuiltInBreaker<never>>;

/** Names of the built-in breaker policies. */
export type BreakerKind = keyof typeof BUILT_IN_BREAKERS;

/** The built-in breaker policies by name. */
export const BREAKER_KINDS: readonly BreakerKind[] = Object.freeze(Object.keys(BUILT_IN_BREAKERS) as BreakerKind[]);

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
  if (typeof kind !== 'string' || !Object.hasOwn(BUILT_IN_BREAKERS, kind)) {
    return issue('kind', `expected 'consecutive', 'count' or 'sampling'; got ${describe(kind)}`);
  }
  return BUILT_IN_BREAKERS[kind as BreakerKind].issue(spec, ['kind']);
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
  const { kind, ...options } = typeof spec === 'string' ? { kind: spec } : spec;
  return (BUILT_IN_BREAKERS[kind].make as (options: object) => BreakerPolicy)(options);
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
