/** Retries, timeouts, circuit breakers, bulkhead lanes and rate-limit pacing. */
import { ConfigError } from '../../errors';
import { breakerSpecIssue, type BreakerSpec, type CircuitOptions } from '../../resilience/breaker/index';
import { resolveLanes, type LaneOptions } from '../../resilience/lanes/index';
import {
  assertNoProblem,
  checkBoolean,
  checkFields,
  checkNumber,
  describe,
  describeType,
  isPlainObject,
  MS_NON_NEGATIVE,
  MS_POSITIVE,
  optionalNumber,
  own,
  safeName,
} from '../check';
import { DEFAULTS } from '../defaults';
import type { RateLimitingOptions, ResolvedOptions, RetryOptions } from '../options';

/** Attempts per request: at most this many. */
export const MAX_ATTEMPTS = 100;

/** `retry`, with the defaults filled in; the delay cap may not be below the first delay. */
export function resolveRetry(raw: unknown): Required<RetryOptions> {
  const retry: Required<RetryOptions> = { ...DEFAULTS.retry };
  if (raw === undefined) return retry;
  if (!isPlainObject(raw)) {
    throw new ConfigError('retry', `expected an object { maxAttempts?, baseDelayMs?, maxDelayMs?, jitter? }; got ${describeType(raw)}`);
  }
  checkFields(raw, Object.keys(DEFAULTS.retry), 'retry', 'retry field');
  retry.maxAttempts = optionalNumber(own(raw, 'maxAttempts'), 'retry.maxAttempts', retry.maxAttempts, { min: 1, max: MAX_ATTEMPTS, integer: true });
  retry.baseDelayMs = optionalNumber(own(raw, 'baseDelayMs'), 'retry.baseDelayMs', retry.baseDelayMs, MS_NON_NEGATIVE);
  retry.maxDelayMs = optionalNumber(own(raw, 'maxDelayMs'), 'retry.maxDelayMs', retry.maxDelayMs, MS_NON_NEGATIVE);
  retry.jitter = optionalNumber(own(raw, 'jitter'), 'retry.jitter', retry.jitter, { min: 0, max: 1 });
  if (retry.maxDelayMs < retry.baseDelayMs) {
    // Blame the value the caller gave; when both were given, the cap.
    throw own(raw, 'maxDelayMs') !== undefined
      ? new ConfigError(
          'retry.maxDelayMs',
          `expected at least retry.baseDelayMs (${retry.baseDelayMs}${own(raw, 'baseDelayMs') === undefined ? ', the default' : ''}); got ${retry.maxDelayMs}`,
        )
      : new ConfigError('retry.baseDelayMs', `expected at most retry.maxDelayMs (${retry.maxDelayMs}, the default); got ${retry.baseDelayMs}. Raise retry.maxDelayMs too`);
  }
  return retry;
}

/** The request timeouts and the default cooldown, each at most the longest timer (2^31 − 1 ms). */
export function resolveTimeouts(input: Record<string, unknown>): Pick<ResolvedOptions, 'attemptTimeoutMs' | 'deadlineMs' | 'cooldownMs'> {
  return {
    attemptTimeoutMs: optionalNumber(own(input, 'attemptTimeoutMs'), 'attemptTimeoutMs', DEFAULTS.attemptTimeoutMs, MS_POSITIVE),
    deadlineMs: optionalNumber(own(input, 'deadlineMs'), 'deadlineMs', DEFAULTS.deadlineMs, MS_POSITIVE),
    cooldownMs: optionalNumber(own(input, 'cooldownMs'), 'cooldownMs', DEFAULTS.cooldownMs, MS_NON_NEGATIVE),
  };
}

/** `streamIdleTimeoutMs` (0 = none) and `streamDeadline` (what the deadline bounds of a stream). */
export function resolveStreamBounds(input: Record<string, unknown>): Pick<ResolvedOptions, 'streamIdleTimeoutMs' | 'streamDeadline'> {
  const deadline = own(input, 'streamDeadline');
  if (deadline !== undefined && deadline !== 'whole' && deadline !== 'first-byte') {
    throw new ConfigError('streamDeadline', `expected 'whole' (the deadline bounds the whole stream) or 'first-byte' (only until its first bytes); got ${describeType(deadline)}`);
  }
  return {
    streamIdleTimeoutMs: optionalNumber(own(input, 'streamIdleTimeoutMs'), 'streamIdleTimeoutMs', DEFAULTS.streamIdleTimeoutMs, MS_NON_NEGATIVE),
    streamDeadline: deadline ?? DEFAULTS.streamDeadline,
  };
}

function resolveCircuitScope(raw: unknown, field: string): CircuitOptions | false {
  if (raw === false) return false;
  if (raw === undefined) return { ...DEFAULTS.circuit };
  if (!isPlainObject(raw)) {
    throw new ConfigError(field, `expected false or an object { policy?, openMs?, maxOpenMs?, halfOpenProbes? }; got ${describeType(raw)}`);
  }
  checkFields(raw, ['policy', 'openMs', 'maxOpenMs', 'halfOpenProbes'], field, 'circuit option');
  const policy = own(raw, 'policy');
  if (policy !== undefined) {
    const issue = breakerSpecIssue(policy);
    if (issue) throw new ConfigError(issue.field ? `${field}.policy.${issue.field}` : `${field}.policy`, issue.problem);
  }
  // From 1 ms, as the circuit itself takes it (a smaller one passed this check, then failed there without naming the field).
  const openMs = optionalNumber(own(raw, 'openMs'), `${field}.openMs`, DEFAULTS.circuit.openMs, { ...MS_POSITIVE, min: 1, exclusiveMin: false });
  const rawMax = own(raw, 'maxOpenMs');
  const maxOpenMs =
    rawMax === undefined ? Math.max(openMs, DEFAULTS.circuit.maxOpenMs) : checkNumber(rawMax, `${field}.maxOpenMs`, { ...MS_POSITIVE, min: openMs, exclusiveMin: false });
  const halfOpenProbes = optionalNumber(own(raw, 'halfOpenProbes'), `${field}.halfOpenProbes`, DEFAULTS.circuit.halfOpenProbes, { min: 1, max: 1000, integer: true });
  return { policy: (policy as BreakerSpec | undefined) ?? DEFAULTS.circuit.policy, openMs, maxOpenMs, halfOpenProbes };
}

/** `circuitBreaker`: both scopes, each off (`false`) or with its options. */
export function resolveCircuitBreaker(raw: unknown): ResolvedOptions['circuitBreaker'] {
  if (raw === false) return { key: false, deployment: false };
  if (raw === undefined) return { key: { ...DEFAULTS.circuit }, deployment: { ...DEFAULTS.circuit } };
  if (!isPlainObject(raw)) throw new ConfigError('circuitBreaker', `expected false or an object { key?, deployment? }; got ${describeType(raw)}`);
  checkFields(raw, ['key', 'deployment'], 'circuitBreaker', 'circuitBreaker scope');
  return {
    key: resolveCircuitScope(own(raw, 'key'), 'circuitBreaker.key'),
    deployment: resolveCircuitScope(own(raw, 'deployment'), 'circuitBreaker.deployment'),
  };
}

/** `rateLimiting`, with the defaults filled in. */
export function resolveRateLimiting(raw: unknown): Required<RateLimitingOptions> {
  if (raw === undefined) return { ...DEFAULTS.rateLimiting };
  if (!isPlainObject(raw)) throw new ConfigError('rateLimiting', `expected an object { adaptive?, defaultOutputTokens?, coldStart? }; got ${describeType(raw)}`);
  checkFields(raw, Object.keys(DEFAULTS.rateLimiting), 'rateLimiting', 'rateLimiting option');
  const coldStart = own(raw, 'coldStart') ?? DEFAULTS.rateLimiting.coldStart;
  if (coldStart !== 'probe' && coldStart !== 'open') {
    throw new ConfigError(
      'rateLimiting.coldStart',
      `expected 'probe' (a key of unknown limits sends one request first) or 'open' (everything at once); got ${describe(coldStart)}`,
    );
  }
  return {
    coldStart,
    adaptive: checkBoolean(own(raw, 'adaptive'), 'rateLimiting.adaptive', DEFAULTS.rateLimiting.adaptive),
    defaultOutputTokens: optionalNumber(own(raw, 'defaultOutputTokens'), 'rateLimiting.defaultOutputTokens', DEFAULTS.rateLimiting.defaultOutputTokens, {
      min: 0,
      max: 10_000_000,
      integer: true,
    }),
  };
}

/** `lanes` merged over the defaults, and `defaultLane`, which must name one of them. */
export function resolveLaneOptions(input: Record<string, unknown>): Pick<ResolvedOptions, 'lanes' | 'defaultLane'> {
  const result = resolveLanes(own(input, 'lanes') as Record<string, Partial<LaneOptions>> | undefined);
  if ('field' in result) assertNoProblem(result);
  const lanes = (result as { lanes: Record<string, LaneOptions> }).lanes;
  const raw = own(input, 'defaultLane');
  const defaultLane = raw === undefined ? DEFAULTS.defaultLane : raw;
  if (typeof defaultLane !== 'string' || !Object.hasOwn(lanes, defaultLane)) {
    throw new ConfigError(
      'defaultLane',
      `expected the name of a lane (${Object.keys(lanes).map(safeName).join(', ')}); got ${typeof defaultLane === 'string' ? safeName(defaultLane) : describeType(defaultLane)}`,
    );
  }
  return { lanes, defaultLane };
}
