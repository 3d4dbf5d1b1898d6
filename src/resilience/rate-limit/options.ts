/**
 * Rate-limit options of a provider or a key, and their validation: windows
 * with a capacity and a period, how windows are scoped (per key, per key ×
 * model) and shared (quota groups).
 */
import { ConfigError } from '../../errors';

/** A capacity and its period: `limit` units in any `periodMs`. */
export interface WindowSpec {
  /** Units (requests or tokens) per period: at least 1 (a smaller option is one unit per a longer period), at most 1e12. */
  readonly limit: number;
  /** The period in ms (a minute for rpm, a day for rpd, 3 s for some gateways). */
  readonly periodMs: number;
}

/** A window given whole: `limit` units per `periodMs`. */
export interface RateWindowOption {
  /** Units per period, above 0. */
  limit: number;
  /** The period in ms, from 100 ms to 31 days. */
  periodMs: number;
}

/** How a key's windows are kept. */
export type RateLimitScope = 'key' | 'model';

/** Rate-limit options, on a provider (for all its keys) or on one key. */
export interface RateLimitOptions {
  /** Requests per minute. */
  rpm?: number;
  /** Requests per day (Groq's free tier, OpenAI's lower tiers). */
  rpd?: number;
  /** Tokens (input + output) per minute. */
  tpm?: number;
  /** Tokens per day. */
  tpd?: number;
  /** More request windows, `{ limit, periodMs }` (a gateway's 20 per 3 s). */
  requests?: RateWindowOption | RateWindowOption[];
  /** More token windows. */
  tokens?: RateWindowOption | RateWindowOption[];
  /**
   * `'model'`: a key's windows are kept per upstream model (OpenAI's limits
   * are per key × model; an Azure deployment is a model). `'key'`: one set of
   * windows per key, whatever the model. Default: {@link defaultScope}.
   */
  rateLimitScope?: RateLimitScope;
  /**
   * Keys naming the same group share one set of windows (set on a provider:
   * all its keys): keys of one OpenAI project or one OpenRouter account draw
   * on one quota.
   * Default: none (each key its own).
   */
  quotaGroup?: string;
}

/** The option names of {@link RateLimitOptions}, for the provider and key field lists. */
export const RATE_LIMIT_FIELDS = ['rpm', 'rpd', 'tpm', 'tpd', 'requests', 'tokens', 'rateLimitScope', 'quotaGroup'] as const satisfies readonly (keyof RateLimitOptions)[];

/** {@link RateLimitOptions} validated: windows per dimension, shortest period first. */
export interface ResolvedRateLimits {
  requests: WindowSpec[];
  tokens: WindowSpec[];
  scope: RateLimitScope | undefined;
  quotaGroup: string | undefined;
}

/** No rate-limit option given. */
export const NO_RATE_LIMITS: ResolvedRateLimits = Object.freeze({ requests: [], tokens: [], scope: undefined, quotaGroup: undefined });

/**
 * A key's rate limits with its provider's: per dimension, the key's windows
 * when it has any, else the provider's; the key's scope and group, else the
 * provider's.
 */
export function keyRateLimits(provider: ResolvedRateLimits, key: ResolvedRateLimits): ResolvedRateLimits {
  return {
    requests: key.requests.length > 0 ? key.requests : provider.requests,
    tokens: key.tokens.length > 0 ? key.tokens : provider.tokens,
    scope: key.scope ?? provider.scope,
    quotaGroup: key.quotaGroup ?? provider.quotaGroup,
  };
}

export const MINUTE_MS = 60_000;
export const DAY_MS = 86_400_000;
const MIN_PERIOD_MS = 100;
const MAX_PERIOD_MS = 31 * DAY_MS;
const MAX_LIMIT = 1e12;

/** Names a value's type only: a value pasted into the wrong option may be a key, and is never echoed. */
function describe(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

function limitOf(value: unknown, field: string, unit: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > MAX_LIMIT) {
    throw new ConfigError(field, `expected a number of ${unit} above 0 and at most 1e12; got ${describe(value)}`);
  }
  return value;
}

/**
 * A window of `limit` units per `periodMs` as the limiter can honour it: a
 * limit below one unit (rpm 0.01: one request per 100 minutes) is one unit per
 * the longer period it stands for, which a request (one unit at least) can
 * fit; a window that would span more than 31 days is refused.
 */
function whole(limit: number, periodMs: number, field: string, unit: string): WindowSpec {
  if (limit >= 1) return { limit, periodMs };
  const longer = Math.round(periodMs / limit);
  if (longer > MAX_PERIOD_MS) {
    throw new ConfigError(field, `expected at least one of the ${unit.split(' ')[0]} in 31 days; got ${describe(limit)}, one per ${Math.round(longer / DAY_MS)} days`);
  }
  return { limit: 1, periodMs: longer };
}

function windowOf(value: unknown, field: string, unit: string): WindowSpec {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(field, `expected { limit, periodMs } (e.g. { limit: 20, periodMs: 3000 }); got ${describe(value)}`);
  }
  const record = value as Record<string, unknown>;
  for (const name of Object.keys(record)) {
    if (name !== 'limit' && name !== 'periodMs') throw new ConfigError(`${field}.${name}`, 'unknown field; a window has only `limit` and `periodMs`');
  }
  const limit = limitOf(record.limit, `${field}.limit`, unit);
  const periodMs = record.periodMs;
  if (typeof periodMs !== 'number' || !Number.isFinite(periodMs) || periodMs < MIN_PERIOD_MS || periodMs > MAX_PERIOD_MS) {
    throw new ConfigError(`${field}.periodMs`, `expected a period in ms from ${MIN_PERIOD_MS} to ${MAX_PERIOD_MS} (31 days); got ${describe(periodMs)}`);
  }
  return whole(limit, periodMs, `${field}.limit`, unit);
}

function windowsOf(value: unknown, field: string, unit: string): WindowSpec[] {
  if (value === undefined) return [];
  if (Array.isArray(value)) return value.map((item, i) => windowOf(item, `${field}[${i}]`, unit));
  return [windowOf(value, field, unit)];
}

/**
 * Validates the rate-limit fields of `raw` (a provider's or a key's options
 * object; other fields are left to their owner).
 *
 * @param field The option path of `raw`, for error messages (`providers.openai`).
 * @throws ConfigError naming the field when a value is out of range or of the wrong type.
 */
export function resolveRateLimits(raw: Partial<Record<keyof RateLimitOptions, unknown>>, field: string): ResolvedRateLimits {
  const at = (name: string) => (field === '' ? name : `${field}.${name}`);
  const requests: WindowSpec[] = [];
  const tokens: WindowSpec[] = [];
  const windowFor = (name: 'rpm' | 'rpd' | 'tpm' | 'tpd', periodMs: number, unit: string) => whole(limitOf(raw[name], at(name), unit), periodMs, at(name), unit);
  if (raw.rpm !== undefined) requests.push(windowFor('rpm', MINUTE_MS, 'requests per minute'));
  if (raw.rpd !== undefined) requests.push(windowFor('rpd', DAY_MS, 'requests per day'));
  if (raw.tpm !== undefined) tokens.push(windowFor('tpm', MINUTE_MS, 'tokens per minute'));
  if (raw.tpd !== undefined) tokens.push(windowFor('tpd', DAY_MS, 'tokens per day'));
  requests.push(...windowsOf(raw.requests, at('requests'), 'requests'));
  tokens.push(...windowsOf(raw.tokens, at('tokens'), 'tokens'));
  requests.sort((a, b) => a.periodMs - b.periodMs);
  tokens.sort((a, b) => a.periodMs - b.periodMs);
  const scope = raw.rateLimitScope;
  if (scope !== undefined && scope !== 'key' && scope !== 'model') {
    throw new ConfigError(at('rateLimitScope'), `expected 'key' or 'model'; got ${describe(scope)}`);
  }
  const group = raw.quotaGroup;
  if (group !== undefined && (typeof group !== 'string' || group.trim() === '' || group.length > 200)) {
    throw new ConfigError(at('quotaGroup'), `expected a non-empty name of at most 200 characters; got ${typeof group === 'string' ? `a string of ${group.length}` : describe(group)}`);
  }
  return { requests, tokens, scope, quotaGroup: group };
}

/**
 * The default scope of a provider's windows, by its base URL: per key × model
 * for OpenAI (`api.openai.com`) and Azure OpenAI (`*.openai.azure.com`, whose
 * deployments each have their own quota); per key elsewhere (Anthropic, Groq,
 * DeepSeek, gateways count a key's requests whatever the model).
 */
export function defaultScope(baseURL: string): RateLimitScope {
  let host: string;
  try {
    host = new URL(baseURL).hostname.toLowerCase();
  } catch {
    return 'key';
  }
  return host === 'api.openai.com' || host.endsWith('.openai.azure.com') ? 'model' : 'key';
}
