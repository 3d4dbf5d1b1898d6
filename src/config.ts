/**
 * Option types for `new KeyManager(options)` and their validation.
 * Everything is checked at construction: a malformed option throws a
 * {@link ConfigError} whose `field` names it.
 */
import { ConfigError } from './errors';
import { fingerprint } from './keys/fingerprint';
import { KEY_SELECTOR_NAMES } from './keys/selector';
import type { KeySelector, KeySelectorName } from './keys/selector';
import { breakerSpecIssue, type BreakerSpec, type CircuitOptions } from './resilience/breaker/index';
import { resolveLanes, type LaneOptions } from './resilience/bulkhead';
import { catalogueProblem, type CatalogueOptions } from './routing/catalogue';
import { budgetsProblem, type BudgetOptions } from './usage/budget';
import { ROUTING_STRATEGY_NAMES, type RoutingStrategy, type RoutingStrategyName } from './routing/strategy';
import type { ModelPrice } from './usage/pricing';
import type { StateStore } from './store/types';

/** A key as configured: the bare secret, or an object with a label and weight. */
export type KeyInput =
  | string
  | {
      /** The secret. Never leaves the manager except towards its own provider. */
      key: string;
      /**
       * A label for events, stats and errors. Default: a short fingerprint
       * (`fp_` + 10 hex digits of the key's SHA-256), which contains no part of the key.
       */
      id?: string;
      /** Relative share for the `weighted` selector. Default 1. */
      weight?: number;
      /** This key's requests per minute; default: the provider's `rpm`, else learnt. */
      rpm?: number;
      /** This key's tokens per minute; default: the provider's `tpm`, else learnt. */
      tpm?: number;
    };

/** One model on one provider (a deployment), when more than its upstream name is to be said. */
export interface DeploymentOptions {
  /** The provider's name for the model. Default: the public name. */
  upstream?: string;
  /** Context window in tokens (input + output); requests that cannot fit skip this deployment. */
  contextWindow?: number;
  /** Price for this deployment, over the price table (e.g. a gateway's markup). */
  price?: ModelPrice;
  /** Share for the `weighted` routing strategy. Default 1. */
  weight?: number;
  /** Free-form labels, visible to custom routing strategies. */
  tags?: string[];
}

/** One OpenAI-compatible provider: where to send requests and with which keys. */
export interface ProviderOptions {
  /**
   * The provider's API base, including its version segment, e.g.
   * `https://api.openai.com/v1` or `https://api.deepseek.com/v1`.
   */
  baseURL: string;
  /** The provider's keys; at least one. */
  keys: KeyInput[];
  /**
   * Models the provider serves. An array lists public model names sent as they
   * are; an object maps a public name to the provider's upstream name
   * (`{ 'claude-sonnet-4.5': 'claude-sonnet-4-5' }`). Leave it out to let the
   * provider serve any model (it is then tried after the providers that list
   * the model).
   */
  models?: string[] | Record<string, string | DeploymentOptions>;
  /** Extra headers sent with every request to this provider (not `Authorization`). */
  headers?: Record<string, string>;
  /**
   * Requests per minute of each of its keys, when known. Leave it out to learn
   * limits from the provider's `x-ratelimit-*` headers (or from 429s).
   */
  rpm?: number;
  /** Tokens per minute of each of its keys, when known. */
  tpm?: number;
}

/** Retry and fail-over policy. */
export interface RetryOptions {
  /** Attempts per request, counting the first. Rotations away from a rate-limited or rejected key do not count. Default 4. */
  maxAttempts?: number;
  /** First backoff delay after a transient failure (5xx, timeout, reset), in ms. Default 250. */
  baseDelayMs?: number;
  /** Cap of one backoff delay, in ms. Default 8000. */
  maxDelayMs?: number;
  /** Share of each delay that is randomised, from 0 (none) to 1 (full jitter). Default 0.25. */
  jitter?: number;
}

/** Circuit breakers of one scope; `false` turns them off. */
export type CircuitBreakerScopeOptions = false | CircuitOptions;

/** Circuit breakers per key and per deployment (provider × upstream model). */
export interface CircuitBreakerOptions {
  /** Default: 5 consecutive transient failures open it for 30 s, doubling up to 5 min while probes fail. */
  key?: CircuitBreakerScopeOptions;
  /** Default: 5 consecutive transient failures open it for 30 s, doubling up to 5 min while probes fail. */
  deployment?: CircuitBreakerScopeOptions;
}

/** Rate-limit pacing. */
export interface RateLimitingOptions {
  /** Estimate a limit with AIMD on 429s when none is configured or learnt. Default true. */
  adaptive?: boolean;
  /** Output tokens assumed for a request that sets no max-tokens field, when reserving tokens. Default 256. */
  defaultOutputTokens?: number;
}

/** Model routing: which deployment serves a request, and what else may. */
export interface RoutingOptions extends CatalogueOptions {
  /** How the deployments of a model are ordered. Default `'ordered'` (configuration order). */
  strategy?: RoutingStrategyName | RoutingStrategy;
  /** A strategy per public model (or alias), over `strategy`. */
  perModel?: Record<string, RoutingStrategyName | RoutingStrategy>;
}

/** Options of `new KeyManager()`. Only `providers` is required. */
export interface KeyManagerOptions {
  /** Providers by id; the id appears in events and stats. At least one. */
  providers: Record<string, ProviderOptions>;
  /** How a key is picked among a provider's usable keys. Default `'headroom'`. */
  keySelection?: KeySelectorName | KeySelector;
  /** Retry and fail-over policy. */
  retry?: RetryOptions;
  /** Timeout of one attempt until the response headers (for streams, the first body bytes), in ms. Default 300000. */
  attemptTimeoutMs?: number;
  /** Total deadline of a request across all attempts, waits and backoff, in ms. Default 600000. The SDK's `timeout` also bounds it. */
  deadlineMs?: number;
  /** How long a key cools down after a 429 that names no reset time, in ms. Default 5000. */
  cooldownMs?: number;
  /** Prices in USD per million tokens by model name, merged over the built-in table. */
  prices?: Record<string, ModelPrice>;
  /**
   * Ask for `stream_options.include_usage` on streamed chat and legacy
   * completions so that their usage and cost are known. The extra usage chunk
   * is removed from what the caller sees when the caller did not ask for it.
   * Default true.
   */
  streamUsage?: boolean;
  /** The `fetch` used to reach providers. Default: the global `fetch`, looked up at call time. */
  fetch?: typeof globalThis.fetch;
  /**
   * Bulkhead lanes by name, merged over the defaults `critical`, `standard`
   * and `batch`. A request picks its lane with `keyplex.options({ lane })`.
   */
  lanes?: Record<string, Partial<LaneOptions>>;
  /** The lane of a request that names none. Default `'standard'`. */
  defaultLane?: string;
  /** Circuit breakers; `false` turns both scopes off. */
  circuitBreaker?: false | CircuitBreakerOptions;
  /** Rate-limit pacing. */
  rateLimiting?: RateLimitingOptions;
  /** Model routing: strategies, aliases and groups, fallback chains, `auto`. */
  routing?: RoutingOptions;
  /** Spend caps in USD per overall / provider / key / model / tag, over a window. */
  budgets?: BudgetOptions[];
  /**
   * Where key state shared with other managers lives: rate windows and
   * reservations, cooldowns, disabled keys, circuit states, spend. Default: a
   * `MemoryStore` of this manager's own (nothing shared, nothing consulted).
   * Give managers in one process one `MemoryStore`, or replicas a
   * `RedisStore` (`keyplex/redis`).
   */
  store?: StateStore;
}

/** A key after validation. */
export interface ResolvedKey {
  key: string;
  id: string;
  weight: number;
  rpm: number | undefined;
  tpm: number | undefined;
}

/** A deployment's options after validation. */
export interface ResolvedDeployment {
  contextWindow: number | undefined;
  price: ModelPrice | undefined;
  weight: number;
  tags: string[];
}

/** A provider after validation. */
export interface ResolvedProvider {
  id: string;
  /** Base URL without a trailing slash. */
  baseURL: string;
  /** `URL.origin` of baseURL: the only origin its keys are sent to. */
  origin: string;
  keys: ResolvedKey[];
  /** Public name → upstream name; `undefined` when the provider serves any model. */
  models: Map<string, string> | undefined;
  /** Public name → what else its configuration says about that deployment. */
  deployments: Map<string, ResolvedDeployment>;
  headers: Record<string, string>;
}

/** Options after validation, defaults filled in. */
export interface ResolvedOptions {
  providers: ResolvedProvider[];
  keySelection: KeySelectorName | KeySelector;
  retry: Required<RetryOptions>;
  attemptTimeoutMs: number;
  deadlineMs: number;
  cooldownMs: number;
  prices: Record<string, ModelPrice>;
  streamUsage: boolean;
  fetch: typeof globalThis.fetch | undefined;
  store: StateStore | undefined;
  lanes: Record<string, LaneOptions>;
  defaultLane: string;
  circuitBreaker: { key: CircuitOptions | false; deployment: CircuitOptions | false };
  rateLimiting: Required<RateLimitingOptions>;
  routing: { strategy: RoutingStrategyName | RoutingStrategy; perModel: Record<string, RoutingStrategyName | RoutingStrategy>; catalogue: CatalogueOptions };
  budgets: BudgetOptions[];
}

/** Defaults of the optional options; {@link resolveOptions} fills them in. */
export const DEFAULTS = {
  keySelection: 'headroom',
  retry: { maxAttempts: 4, baseDelayMs: 250, maxDelayMs: 8000, jitter: 0.25 },
  attemptTimeoutMs: 300_000,
  deadlineMs: 600_000,
  cooldownMs: 5_000,
  streamUsage: true,
  defaultLane: 'standard',
  circuit: { policy: { kind: 'consecutive', threshold: 5 }, openMs: 30_000, maxOpenMs: 300_000, halfOpenProbes: 1 },
  rateLimiting: { adaptive: true, defaultOutputTokens: 256 },
} as const;

// ---------------------------------------------------------------------------
// Validation. Input is untrusted (JavaScript callers can pass anything), so it
// is handled as `unknown`. Problems say what was expected and what was got, but
// never echo a key, a header value or a URL (which may carry credentials).
// ---------------------------------------------------------------------------

type Obj = Record<string, unknown>;

const PROVIDER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$/;
/** RFC 9110 `token`: what a header name may be made of. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Longest delay `setTimeout` honours; a longer one fires at once. */
const MAX_TIMER_MS = 2_147_483_647;
const MAX_ATTEMPTS = 100;

const OPTION_FIELDS: Record<keyof KeyManagerOptions, true> = {
  providers: true,
  keySelection: true,
  retry: true,
  attemptTimeoutMs: true,
  deadlineMs: true,
  cooldownMs: true,
  prices: true,
  streamUsage: true,
  fetch: true,
  lanes: true,
  defaultLane: true,
  circuitBreaker: true,
  rateLimiting: true,
  routing: true,
  budgets: true,
  store: true,
};
const PROVIDER_FIELDS: Record<keyof ProviderOptions, true> = { baseURL: true, keys: true, models: true, headers: true, rpm: true, tpm: true };
const KEY_FIELDS: Record<keyof Exclude<KeyInput, string>, true> = { key: true, id: true, weight: true, rpm: true, tpm: true };
const CIRCUIT_FIELDS: Record<keyof CircuitOptions, true> = { policy: true, openMs: true, maxOpenMs: true, halfOpenProbes: true };
const CIRCUIT_SCOPE_FIELDS: Record<keyof CircuitBreakerOptions, true> = { key: true, deployment: true };
const RATE_LIMITING_FIELDS: Record<keyof RateLimitingOptions, true> = { adaptive: true, defaultOutputTokens: true };
const PER_MINUTE: NumberRule = { min: 0, exclusiveMin: true, max: Number.MAX_VALUE, unit: 'per minute' };
const RETRY_FIELDS: Record<keyof RetryOptions, true> = { maxAttempts: true, baseDelayMs: true, maxDelayMs: true, jitter: true };
const PRICE_FIELDS: Record<keyof ModelPrice, true> = { input: true, output: true, cachedInput: true, cacheWrite: true };

/** Where a key was first seen, to report a duplicate without naming the key. */
interface KeySeen {
  provider: string;
  index: number;
  id: string;
}

/**
 * Validates `new KeyManager()` options and fills in {@link DEFAULTS}.
 * The result shares nothing mutable with the input.
 *
 * @throws {ConfigError} on the first malformed option; its `field` is the
 * option's path, e.g. `providers.openai.keys[1].weight`.
 */
export function resolveOptions(options: KeyManagerOptions): ResolvedOptions {
  const input: unknown = options;
  if (!isPlainObject(input)) {
    throw new ConfigError('options', `expected an object such as { providers: { … } }; got ${describeType(input)}`);
  }
  checkFields(input, OPTION_FIELDS, '', 'option');

  // Providers, in the order the object lists them.
  const rawProviders = own(input, 'providers');
  if (!isPlainObject(rawProviders)) {
    throw new ConfigError(
      'providers',
      `expected an object of providers by id, e.g. { openai: { baseURL, keys } }; got ${describeType(rawProviders)}`,
    );
  }
  const providerIds = Object.keys(rawProviders);
  if (providerIds.length === 0) {
    throw new ConfigError('providers', 'expected at least one provider; got an empty object');
  }
  const seenKeys = new Map<string, KeySeen>();
  const providers: ResolvedProvider[] = [];
  for (const id of providerIds) {
    providers.push(resolveProvider(id, own(rawProviders, id), seenKeys));
  }
  // An id is shown in events, stats and errors: it must not be a secret.
  for (const provider of providers) {
    provider.keys.forEach((key, index) => {
      if (seenKeys.has(key.id)) {
        throw new ConfigError(
          `${prop('providers', provider.id)}.keys[${index}].id`,
          'expected a label; got one of the configured keys. Ids appear in events, stats and errors: never use a key as an id',
        );
      }
    });
  }

  const laneResult = resolveLanes(own(input, 'lanes') as Record<string, Partial<LaneOptions>> | undefined);
  if ('field' in laneResult) throw new ConfigError(laneResult.field, laneResult.problem);
  const rawDefaultLane = own(input, 'defaultLane');
  const defaultLane = rawDefaultLane === undefined ? DEFAULTS.defaultLane : rawDefaultLane;
  if (typeof defaultLane !== 'string' || !Object.hasOwn(laneResult.lanes, defaultLane)) {
    throw new ConfigError(
      'defaultLane',
      `expected the name of a lane (${Object.keys(laneResult.lanes).map(quote).join(', ')}); got ${typeof defaultLane === 'string' ? quote(defaultLane) : describeType(defaultLane)}`,
    );
  }

  return {
    providers,
    lanes: laneResult.lanes,
    defaultLane,
    circuitBreaker: resolveCircuitBreaker(own(input, 'circuitBreaker')),
    rateLimiting: resolveRateLimiting(own(input, 'rateLimiting')),
    routing: resolveRouting(own(input, 'routing'), providers),
    budgets: resolveBudgets(own(input, 'budgets')),
    keySelection: resolveKeySelection(own(input, 'keySelection')),
    retry: resolveRetry(own(input, 'retry')),
    attemptTimeoutMs: optionalNumber(own(input, 'attemptTimeoutMs'), 'attemptTimeoutMs', DEFAULTS.attemptTimeoutMs, MS_POSITIVE),
    deadlineMs: optionalNumber(own(input, 'deadlineMs'), 'deadlineMs', DEFAULTS.deadlineMs, MS_POSITIVE),
    cooldownMs: optionalNumber(own(input, 'cooldownMs'), 'cooldownMs', DEFAULTS.cooldownMs, MS_NON_NEGATIVE),
    prices: resolvePrices(own(input, 'prices')),
    streamUsage: resolveBoolean(own(input, 'streamUsage'), 'streamUsage', DEFAULTS.streamUsage),
    fetch: resolveFetch(own(input, 'fetch')),
    store: resolveStore(own(input, 'store')),
  };
}

function resolveStore(raw: unknown): StateStore | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== 'object' || raw === null || typeof (raw as { open?: unknown }).open !== 'function') {
    throw new ConfigError('store', `expected a state store (a MemoryStore, a RedisStore from 'keyplex/redis', or an object with an open() method); got ${describeType(raw)}`);
  }
  return raw as StateStore;
}

/**
 * Validates one key of `provider` (as configured, or given to `addKey` at run
 * time) and fills in its id (default: {@link fingerprint} of the key) and
 * weight (default 1). Checks the key alone: duplicates are the caller's to find.
 *
 * @param field Path of the key used in errors, e.g. `providers.openai.keys[2]`.
 * @throws {ConfigError} when the key is malformed; the message never contains the key.
 */
export function resolveKey(provider: string, input: KeyInput, field: string): ResolvedKey {
  const raw: unknown = input;
  if (typeof raw === 'string') {
    const key = checkSecret(raw, field, provider);
    return { key, id: fingerprint(key), weight: 1, rpm: undefined, tpm: undefined };
  }
  if (!isPlainObject(raw)) {
    throw new ConfigError(
      field,
      `expected a key of provider ${quote(provider)}: a string or an object { key, id?, weight? }; got ${describeType(raw)}`,
    );
  }
  checkFields(raw, KEY_FIELDS, field, 'key field');
  const key = checkSecret(own(raw, 'key'), prop(field, 'key'), provider);

  let id = fingerprint(key);
  const rawId = own(raw, 'id');
  if (rawId !== undefined) {
    const idField = prop(field, 'id');
    if (typeof rawId !== 'string' || !KEY_ID.test(rawId)) {
      throw new ConfigError(
        idField,
        `expected a label of 1 to 64 characters from A-Z, a-z, 0-9 and _ . : @ - that starts with a letter or digit; got ${describeId(rawId, false)}`,
      );
    }
    if (rawId === key) {
      throw new ConfigError(idField, 'expected a label; got the key itself. Ids appear in events, stats and errors: leave `id` out to use a fingerprint');
    }
    id = rawId;
  }

  const rawWeight = own(raw, 'weight');
  const weight =
    rawWeight === undefined ? 1 : checkNumber(rawWeight, prop(field, 'weight'), { min: 0, exclusiveMin: true, max: Number.MAX_VALUE });
  const rpm = own(raw, 'rpm') === undefined ? undefined : checkNumber(own(raw, 'rpm'), prop(field, 'rpm'), PER_MINUTE);
  const tpm = own(raw, 'tpm') === undefined ? undefined : checkNumber(own(raw, 'tpm'), prop(field, 'tpm'), PER_MINUTE);
  return { key, id, weight, rpm, tpm };
}

function resolveProvider(id: string, raw: unknown, seenKeys: Map<string, KeySeen>): ResolvedProvider {
  const field = prop('providers', id);
  if (!PROVIDER_ID.test(id)) {
    throw new ConfigError(
      field,
      `expected a provider id of 1 to 64 characters from A-Z, a-z, 0-9 and _ . - that starts with a letter or digit; got ${describeId(id)}`,
    );
  }
  if (!isPlainObject(raw)) {
    throw new ConfigError(field, `expected an object { baseURL, keys, models?, headers? }; got ${describeType(raw)}`);
  }
  checkFields(raw, PROVIDER_FIELDS, field, 'provider field');

  const { baseURL, origin } = resolveBaseURL(own(raw, 'baseURL'), `${field}.baseURL`);

  const keysField = `${field}.keys`;
  const rawKeys = own(raw, 'keys');
  if (!Array.isArray(rawKeys)) {
    throw new ConfigError(keysField, `expected an array of keys; got ${describeType(rawKeys)}`);
  }
  if (rawKeys.length === 0) {
    throw new ConfigError(keysField, 'expected at least one key; got an empty array');
  }
  const providerRpm = own(raw, 'rpm') === undefined ? undefined : checkNumber(own(raw, 'rpm'), `${field}.rpm`, PER_MINUTE);
  const providerTpm = own(raw, 'tpm') === undefined ? undefined : checkNumber(own(raw, 'tpm'), `${field}.tpm`, PER_MINUTE);
  const keys: ResolvedKey[] = [];
  const ids = new Map<string, number>();
  for (let index = 0; index < rawKeys.length; index++) {
    const keyField = `${keysField}[${index}]`;
    const rawKey: unknown = rawKeys[index];
    const key = resolveKey(id, rawKey as KeyInput, keyField);
    const objectForm = isPlainObject(rawKey);

    const earlier = seenKeys.get(key.key);
    if (earlier !== undefined) {
      const secretField = objectForm ? `${keyField}.key` : keyField;
      throw new ConfigError(
        secretField,
        earlier.provider === id
          ? `expected each key once; got the same key as keys[${earlier.index}] (id ${quote(earlier.id)})`
          : `expected a key that belongs to this provider only; got the same key as ${prop('providers', earlier.provider)}.keys[${earlier.index}] (id ${quote(earlier.id)}). A key is sent to one provider: list it there once`,
      );
    }
    const sameId = ids.get(key.id);
    if (sameId !== undefined) {
      const idField = objectForm && own(rawKey, 'id') !== undefined ? `${keyField}.id` : keyField;
      throw new ConfigError(idField, `expected an id unique within the provider; got ${quote(key.id)}, already the id of keys[${sameId}]`);
    }
    seenKeys.set(key.key, { provider: id, index, id: key.id });
    ids.set(key.id, index);
    keys.push({ ...key, rpm: key.rpm ?? providerRpm, tpm: key.tpm ?? providerTpm });
  }

  const deployments = new Map<string, ResolvedDeployment>();
  return {
    id,
    baseURL,
    origin,
    keys,
    models: resolveModels(own(raw, 'models'), `${field}.models`, deployments),
    deployments,
    headers: resolveHeaders(own(raw, 'headers'), `${field}.headers`),
  };
}

function resolveBaseURL(raw: unknown, field: string): { baseURL: string; origin: string } {
  const expected = 'expected an absolute http(s) URL such as "https://api.openai.com/v1"';
  if (typeof raw !== 'string') throw new ConfigError(field, `${expected}; got ${describeType(raw)}`);
  // The URL itself is not echoed: it may carry credentials or a key in its query.
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    const hint = raw.trim() === '' ? '' : raw.includes('://') ? '' : ' (it has no scheme: add "https://")';
    throw new ConfigError(field, `${expected}; got ${raw.trim() === '' ? 'an empty string' : 'a string that is not an absolute URL'}${hint}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(field, `${expected}; got a URL with protocol ${quote(url.protocol)}`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new ConfigError(field, `${expected} without user name or password; got a URL with credentials. Put secrets in \`keys\``);
  }
  if (url.href.includes('?') || url.href.includes('#')) {
    throw new ConfigError(field, `${expected} without query or fragment; got a URL with a "?" or "#" part`);
  }
  return { baseURL: url.href.replace(/\/+$/, ''), origin: url.origin };
}

const DEPLOYMENT_FIELDS: Record<keyof DeploymentOptions, true> = { upstream: true, contextWindow: true, price: true, weight: true, tags: true };

function resolveModels(raw: unknown, field: string, deployments: Map<string, ResolvedDeployment>): Map<string, string> | undefined {
  if (raw === undefined) return undefined;
  const models = new Map<string, string>();
  if (Array.isArray(raw)) {
    if (raw.length === 0) {
      throw new ConfigError(field, 'expected at least one model name; got an empty array. Leave `models` out to serve any model');
    }
    for (let index = 0; index < raw.length; index++) {
      const name: unknown = raw[index];
      if (typeof name !== 'string' || name === '') {
        throw new ConfigError(`${field}[${index}]`, `expected a non-empty model name; got ${describe(name)}`);
      }
      if (models.has(name)) {
        throw new ConfigError(`${field}[${index}]`, `expected each model once; got ${quote(name)} again`);
      }
      models.set(name, name);
    }
    return models;
  }
  if (!isPlainObject(raw)) {
    throw new ConfigError(
      field,
      `expected an array of model names or an object mapping public names to upstream names; got ${describeType(raw)}`,
    );
  }
  const names = Object.keys(raw);
  if (names.length === 0) {
    throw new ConfigError(field, 'expected at least one model; got an empty object. Leave `models` out to serve any model');
  }
  for (const name of names) {
    let upstream = own(raw, name);
    const entryField = prop(field, name);
    if (name === '') throw new ConfigError(entryField, 'expected a non-empty public model name; got an empty string');
    if (isPlainObject(upstream)) {
      const options = upstream;
      checkFields(options, DEPLOYMENT_FIELDS, entryField, 'deployment option');
      upstream = own(options, 'upstream') ?? name;
      if (typeof upstream !== 'string' || upstream === '') {
        throw new ConfigError(`${entryField}.upstream`, `expected the provider's non-empty model name; got ${describe(upstream)}`);
      }
      const rawWindow = own(options, 'contextWindow');
      const contextWindow = rawWindow === undefined ? undefined : checkNumber(rawWindow, `${entryField}.contextWindow`, { min: 1, max: 1e9, integer: true, unit: 'tokens' });
      const rawWeight = own(options, 'weight');
      const weight = rawWeight === undefined ? 1 : checkNumber(rawWeight, `${entryField}.weight`, { min: 0, exclusiveMin: true, max: Number.MAX_VALUE });
      const rawPrice = own(options, 'price');
      const price = rawPrice === undefined ? undefined : resolvePrice(rawPrice, `${entryField}.price`);
      const rawTags = own(options, 'tags');
      if (rawTags !== undefined && !(Array.isArray(rawTags) && rawTags.every((t) => typeof t === 'string' && t !== ''))) {
        throw new ConfigError(`${entryField}.tags`, `expected an array of non-empty strings; got ${describeType(rawTags)}`);
      }
      deployments.set(name, { contextWindow, price, weight, tags: rawTags === undefined ? [] : [...(rawTags as string[])] });
    }
    if (typeof upstream !== 'string' || upstream === '') {
      throw new ConfigError(
        entryField,
        `expected the provider's non-empty model name, or an object { upstream?, contextWindow?, price?, weight?, tags? }; got ${describe(upstream)}`,
      );
    }
    models.set(name, upstream);
  }
  return models;
}

function resolveHeaders(raw: unknown, field: string): Record<string, string> {
  const headers: Record<string, string> = {};
  if (raw === undefined) return headers;
  if (!isPlainObject(raw)) {
    throw new ConfigError(field, `expected an object of header names to string values; got ${describeType(raw)}`);
  }
  const lowerNames = new Map<string, string>();
  for (const name of Object.keys(raw)) {
    const nameField = prop(field, name);
    if (!HEADER_NAME.test(name)) {
      throw new ConfigError(nameField, `expected a valid HTTP header name (letters, digits and !#$%&'*+.^_\`|~-); got ${describeId(name)}`);
    }
    const lower = name.toLowerCase();
    if (lower === 'authorization') {
      throw new ConfigError(nameField, 'expected no `Authorization` header; it is set from the provider\'s keys: set `keys` instead');
    }
    const other = lowerNames.get(lower);
    if (other !== undefined) {
      throw new ConfigError(nameField, `expected each header once; got the same name as ${quote(other)} (header names ignore case)`);
    }
    // Header values are not echoed: they may be secrets (x-api-key, cookies).
    const value = own(raw, name);
    if (typeof value !== 'string') {
      throw new ConfigError(nameField, `expected a string value; got ${describeType(value)}`);
    }
    if (/[\r\n\0]/.test(value)) {
      throw new ConfigError(nameField, 'expected a header value on one line; got a string containing a line break or NUL');
    }
    lowerNames.set(lower, name);
    setOwn(headers, name, value);
  }
  return headers;
}

function resolveKeySelection(raw: unknown): KeySelectorName | KeySelector {
  if (raw === undefined) return DEFAULTS.keySelection;
  const expected = `expected one of ${KEY_SELECTOR_NAMES.map((n) => quote(n)).join(', ')} or an object with a select(keys, ctx) method`;
  if (typeof raw === 'string') {
    const name = KEY_SELECTOR_NAMES.find((n) => n === raw);
    if (name === undefined) throw new ConfigError('keySelection', `${expected}; got ${describe(raw)}`);
    return name;
  }
  if ((typeof raw === 'object' && raw !== null) || typeof raw === 'function') {
    if (typeof (raw as { select?: unknown }).select !== 'function') {
      throw new ConfigError('keySelection', `${expected}; got ${describeType(raw)} without a select function`);
    }
    return raw as KeySelector;
  }
  throw new ConfigError('keySelection', `${expected}; got ${describe(raw)}`);
}

function resolveRetry(raw: unknown): Required<RetryOptions> {
  const retry: Required<RetryOptions> = { ...DEFAULTS.retry };
  if (raw === undefined) return retry;
  if (!isPlainObject(raw)) {
    throw new ConfigError('retry', `expected an object { maxAttempts?, baseDelayMs?, maxDelayMs?, jitter? }; got ${describeType(raw)}`);
  }
  checkFields(raw, RETRY_FIELDS, 'retry', 'retry field');
  retry.maxAttempts = optionalNumber(own(raw, 'maxAttempts'), 'retry.maxAttempts', retry.maxAttempts, {
    min: 1,
    max: MAX_ATTEMPTS,
    integer: true,
  });
  retry.baseDelayMs = optionalNumber(own(raw, 'baseDelayMs'), 'retry.baseDelayMs', retry.baseDelayMs, MS_NON_NEGATIVE);
  retry.maxDelayMs = optionalNumber(own(raw, 'maxDelayMs'), 'retry.maxDelayMs', retry.maxDelayMs, MS_NON_NEGATIVE);
  retry.jitter = optionalNumber(own(raw, 'jitter'), 'retry.jitter', retry.jitter, { min: 0, max: 1 });
  if (retry.maxDelayMs < retry.baseDelayMs) {
    // Blame the value the caller gave; when both were given, the cap.
    const maxGiven = own(raw, 'maxDelayMs') !== undefined;
    throw maxGiven
      ? new ConfigError(
          'retry.maxDelayMs',
          `expected at least retry.baseDelayMs (${retry.baseDelayMs}${own(raw, 'baseDelayMs') === undefined ? ', the default' : ''}); got ${retry.maxDelayMs}`,
        )
      : new ConfigError(
          'retry.baseDelayMs',
          `expected at most retry.maxDelayMs (${retry.maxDelayMs}, the default); got ${retry.baseDelayMs}. Raise retry.maxDelayMs too`,
        );
  }
  return retry;
}

function resolveCircuitScope(raw: unknown, field: string): CircuitOptions | false {
  if (raw === false) return false;
  if (raw === undefined) return { ...DEFAULTS.circuit };
  if (!isPlainObject(raw)) {
    throw new ConfigError(field, `expected false or an object { policy?, openMs?, maxOpenMs?, halfOpenProbes? }; got ${describeType(raw)}`);
  }
  checkFields(raw, CIRCUIT_FIELDS, field, 'circuit option');
  const policy = own(raw, 'policy');
  if (policy !== undefined) {
    const issue = breakerSpecIssue(policy);
    if (issue) throw new ConfigError(issue.field ? `${field}.policy.${issue.field}` : `${field}.policy`, issue.problem);
  }
  const openMs = optionalNumber(own(raw, 'openMs'), `${field}.openMs`, DEFAULTS.circuit.openMs, MS_POSITIVE);
  const rawMax = own(raw, 'maxOpenMs');
  const maxOpenMs = rawMax === undefined ? Math.max(openMs, DEFAULTS.circuit.maxOpenMs) : checkNumber(rawMax, `${field}.maxOpenMs`, { ...MS_POSITIVE, min: openMs, exclusiveMin: false });
  const halfOpenProbes = optionalNumber(own(raw, 'halfOpenProbes'), `${field}.halfOpenProbes`, DEFAULTS.circuit.halfOpenProbes, { min: 1, max: 1000, integer: true });
  return { policy: (policy as BreakerSpec | undefined) ?? DEFAULTS.circuit.policy, openMs, maxOpenMs, halfOpenProbes };
}

function resolveCircuitBreaker(raw: unknown): ResolvedOptions['circuitBreaker'] {
  if (raw === false) return { key: false, deployment: false };
  if (raw === undefined) return { key: { ...DEFAULTS.circuit }, deployment: { ...DEFAULTS.circuit } };
  if (!isPlainObject(raw)) {
    throw new ConfigError('circuitBreaker', `expected false or an object { key?, deployment? }; got ${describeType(raw)}`);
  }
  checkFields(raw, CIRCUIT_SCOPE_FIELDS, 'circuitBreaker', 'circuitBreaker scope');
  return {
    key: resolveCircuitScope(own(raw, 'key'), 'circuitBreaker.key'),
    deployment: resolveCircuitScope(own(raw, 'deployment'), 'circuitBreaker.deployment'),
  };
}

function resolveStrategy(raw: unknown, field: string): RoutingStrategyName | RoutingStrategy {
  if (typeof raw === 'string' && (ROUTING_STRATEGY_NAMES as readonly string[]).includes(raw)) return raw as RoutingStrategyName;
  if (typeof raw === 'object' && raw !== null && typeof (raw as { order?: unknown }).order === 'function') return raw as RoutingStrategy;
  throw new ConfigError(field, `expected one of ${ROUTING_STRATEGY_NAMES.map(quote).join(', ')} or an object with an order(deployments, ctx) method; got ${describe(raw)}`);
}

function resolveRouting(raw: unknown, providers: ResolvedProvider[]): ResolvedOptions['routing'] {
  if (raw === undefined) return { strategy: 'ordered', perModel: {}, catalogue: {} };
  if (!isPlainObject(raw)) throw new ConfigError('routing', `expected an object { strategy?, perModel?, aliases?, fallbacks?, contextFallbacks?, auto? }; got ${describeType(raw)}`);
  checkFields(raw, { strategy: true, perModel: true, aliases: true, fallbacks: true, contextFallbacks: true, auto: true }, 'routing', 'routing option');
  const strategy = own(raw, 'strategy') === undefined ? 'ordered' : resolveStrategy(own(raw, 'strategy'), 'routing.strategy');
  const perModel: Record<string, RoutingStrategyName | RoutingStrategy> = {};
  const rawPerModel = own(raw, 'perModel');
  if (rawPerModel !== undefined) {
    if (!isPlainObject(rawPerModel)) throw new ConfigError('routing.perModel', `expected an object of strategies by model; got ${describeType(rawPerModel)}`);
    for (const name of Object.keys(rawPerModel)) setOwn(perModel, name, resolveStrategy(own(rawPerModel, name), prop('routing.perModel', name)));
  }
  // A model is known when a provider lists it; a provider that serves any model makes every name known.
  const known = new Set<string>();
  if (providers.every((p) => p.models !== undefined)) for (const p of providers) for (const name of p.models!.keys()) known.add(name);
  const catalogue: Obj = {};
  for (const name of ['aliases', 'fallbacks', 'contextFallbacks', 'auto'] as const) if (own(raw, name) !== undefined) catalogue[name] = own(raw, name);
  const problem = catalogueProblem(catalogue, known, 'routing');
  if (problem) throw new ConfigError(problem.field, problem.problem);
  // Copies: later changes to the caller's objects must not change routing.
  const copyLists = (lists: unknown) =>
    lists === undefined ? undefined : Object.fromEntries(Object.entries(lists as Record<string, string[]>).map(([name, list]) => [name, [...list]]));
  const resolved: CatalogueOptions = {};
  if (catalogue.aliases !== undefined) resolved.aliases = copyLists(catalogue.aliases);
  if (catalogue.fallbacks !== undefined) resolved.fallbacks = copyLists(catalogue.fallbacks);
  if (catalogue.contextFallbacks !== undefined) resolved.contextFallbacks = { ...(catalogue.contextFallbacks as Record<string, string>) };
  if (catalogue.auto !== undefined) {
    const auto = catalogue.auto as NonNullable<CatalogueOptions['auto']>;
    resolved.auto = { ...auto, models: [...auto.models] };
  }
  return { strategy, perModel, catalogue: resolved };
}

function resolveBudgets(raw: unknown): BudgetOptions[] {
  const problem = budgetsProblem(raw);
  if (problem) throw new ConfigError(problem.field, problem.problem);
  return raw === undefined ? [] : (raw as BudgetOptions[]).map((budget) => ({ ...budget }));
}

function resolveRateLimiting(raw: unknown): Required<RateLimitingOptions> {
  if (raw === undefined) return { ...DEFAULTS.rateLimiting };
  if (!isPlainObject(raw)) {
    throw new ConfigError('rateLimiting', `expected an object { adaptive?, defaultOutputTokens? }; got ${describeType(raw)}`);
  }
  checkFields(raw, RATE_LIMITING_FIELDS, 'rateLimiting', 'rateLimiting option');
  return {
    adaptive: resolveBoolean(own(raw, 'adaptive'), 'rateLimiting.adaptive', DEFAULTS.rateLimiting.adaptive),
    defaultOutputTokens: optionalNumber(own(raw, 'defaultOutputTokens'), 'rateLimiting.defaultOutputTokens', DEFAULTS.rateLimiting.defaultOutputTokens, {
      min: 0,
      max: 10_000_000,
      integer: true,
    }),
  };
}

function resolvePrices(raw: unknown): Record<string, ModelPrice> {
  const prices: Record<string, ModelPrice> = {};
  if (raw === undefined) return prices;
  if (!isPlainObject(raw)) {
    throw new ConfigError('prices', `expected an object of model name to { input, output, cachedInput?, cacheWrite? }; got ${describeType(raw)}`);
  }
  for (const model of Object.keys(raw)) {
    const field = prop('prices', model);
    if (model === '') throw new ConfigError(field, 'expected a non-empty model name; got an empty string');
    setOwn(prices, model, resolvePrice(own(raw, model), field));
  }
  return prices;
}

function resolvePrice(entry: unknown, field: string): ModelPrice {
  if (!isPlainObject(entry)) {
    throw new ConfigError(field, `expected { input, output, cachedInput?, cacheWrite? } in USD per million tokens; got ${describeType(entry)}`);
  }
  checkFields(entry, PRICE_FIELDS, field, 'price field');
  const price: ModelPrice = {
    input: checkNumber(own(entry, 'input'), `${field}.input`, USD),
    output: checkNumber(own(entry, 'output'), `${field}.output`, USD),
  };
  const cachedInput = own(entry, 'cachedInput');
  if (cachedInput !== undefined) price.cachedInput = checkNumber(cachedInput, `${field}.cachedInput`, USD);
  const cacheWrite = own(entry, 'cacheWrite');
  if (cacheWrite !== undefined) price.cacheWrite = checkNumber(cacheWrite, `${field}.cacheWrite`, USD);
  return price;
}

function resolveBoolean(raw: unknown, field: string, fallback: boolean): boolean {
  if (raw === undefined) return fallback;
  if (typeof raw !== 'boolean') throw new ConfigError(field, `expected true or false; got ${describe(raw)}`);
  return raw;
}

function resolveFetch(raw: unknown): typeof globalThis.fetch | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== 'function') {
    throw new ConfigError('fetch', `expected a fetch-compatible function; got ${describeType(raw)}`);
  }
  return raw as typeof globalThis.fetch;
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

interface NumberRule {
  min: number;
  exclusiveMin?: boolean;
  max: number;
  integer?: boolean;
  unit?: string;
}

const MS_POSITIVE: NumberRule = { min: 0, exclusiveMin: true, max: MAX_TIMER_MS, unit: 'ms' };
const MS_NON_NEGATIVE: NumberRule = { min: 0, max: MAX_TIMER_MS, unit: 'ms' };
const USD: NumberRule = { min: 0, max: Number.MAX_VALUE, unit: 'USD per million tokens' };

function checkNumber(raw: unknown, field: string, rule: NumberRule): number {
  if (
    typeof raw === 'number' &&
    Number.isFinite(raw) &&
    (!rule.integer || Number.isInteger(raw)) &&
    (rule.exclusiveMin ? raw > rule.min : raw >= rule.min) &&
    raw <= rule.max
  ) {
    return raw;
  }
  const kind = rule.integer ? 'an integer' : 'a finite number';
  const bounds = [`${rule.exclusiveMin ? '>' : '>='} ${rule.min}`];
  if (rule.max !== Number.MAX_VALUE) {
    bounds.push(`<= ${rule.max}${rule.max === MAX_TIMER_MS ? ' (about 24.8 days, the longest timer Node.js supports)' : ''}`);
  }
  const unit = rule.unit === undefined ? '' : ` (${rule.unit})`;
  throw new ConfigError(field, `expected ${kind}${unit} ${bounds.join(' and ')}; got ${describe(raw)}`);
}

function optionalNumber(raw: unknown, field: string, fallback: number, rule: NumberRule): number {
  return raw === undefined ? fallback : checkNumber(raw, field, rule);
}

function checkSecret(raw: unknown, field: string, provider: string): string {
  const expected = `expected a key of provider ${quote(provider)} as a non-empty string`;
  if (typeof raw !== 'string') throw new ConfigError(field, `${expected}; got ${describeType(raw)}`);
  if (raw === '') throw new ConfigError(field, `${expected}; got a string of 0 characters`);
  if (/\s/.test(raw)) {
    throw new ConfigError(
      field,
      `${expected} without whitespace; got a string of ${raw.length} characters containing whitespace (a stray space or line break?)`,
    );
  }
  if (/[^\x21-\x7e]/.test(raw)) {
    throw new ConfigError(
      field,
      `${expected} of printable ASCII characters; got a string of ${raw.length} characters containing another character (a smart quote or invisible character?)`,
    );
  }
  return raw;
}

/** Refuses a field not in `allowed`, naming it (and a likely intended one). */
function checkFields(obj: Obj, allowed: Record<string, true>, base: string, what: string): void {
  const known = Object.keys(allowed);
  for (const name of Object.keys(obj)) {
    if (Object.hasOwn(allowed, name)) continue;
    const guess = suggest(name, known);
    throw new ConfigError(
      prop(base, name),
      `expected a known ${what}${guess === undefined ? '' : ` (did you mean \`${guess}\`?)`}: one of ${known.join(', ')}; got ${describeId(name)}`,
    );
  }
}

/** A known name the unknown one is probably a typo of. */
function suggest(name: string, known: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  let best: string | undefined;
  let bestDistance = Math.min(2, Math.floor(name.length / 3));
  for (const candidate of known) {
    const c = candidate.toLowerCase();
    if (c === lower) return candidate;
    const distance = editDistance(lower, c);
    if (distance <= bestDistance) {
      best = candidate;
      bestDistance = distance - 1;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** A non-array object whose prototype is `Object.prototype` (of any realm) or null. */
function isPlainObject(value: unknown): value is Obj {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === null || Object.getPrototypeOf(proto) === null;
}

/** An own property only, never an inherited one such as `toString`. */
function own(obj: unknown, name: string): unknown {
  return typeof obj === 'object' && obj !== null && Object.hasOwn(obj, name) ? (obj as Obj)[name] : undefined;
}

/** Sets a property even when `name` is `__proto__`. */
function setOwn<T>(obj: Record<string, T>, name: string, value: T): void {
  Object.defineProperty(obj, name, { value, enumerable: true, writable: true, configurable: true });
}

/** Path of `name` under `base`: `a.b` for identifiers, `a["b-c"]` otherwise. */
function prop(base: string, name: string): string {
  if (/^[A-Za-z_$][\w$]*$/.test(name)) return base === '' ? name : `${base}.${name}`;
  return `${base}[${JSON.stringify(name)}]`;
}

function quote(text: string): string {
  return JSON.stringify(text);
}

/** The value's kind, without any of its content: safe for anything that may be a secret. */
function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined (missing)';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'string':
      return `a string of ${value.length} characters`;
    case 'object':
      return isPlainObject(value) ? 'an object' : 'an object that is not a plain object';
    default:
      return `a ${typeof value}`;
  }
}

/** The value, for non-secret values: numbers, booleans, short names. */
function describe(value: unknown): string {
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : String(value);
  if (typeof value === 'boolean') return String(value);
  if (typeof value === 'string') {
    if (value === '') return 'an empty string';
    return value.length <= 64 ? `the string ${quote(value)}` : `a string of ${value.length} characters`;
  }
  return describeType(value);
}

/**
 * A name that failed validation. With `echo`, a short printable one is quoted;
 * otherwise (a key id may be a key pasted in the wrong place) only its length
 * and its first offending character are given.
 */
function describeId(value: unknown, echo = true): string {
  if (typeof value !== 'string') return describeType(value);
  if (value === '') return 'an empty string';
  if (echo && value.length <= 64 && /^[\x20-\x7e]*$/.test(value)) return quote(value);
  if (value.length > 64) return `a string of ${value.length} characters`;
  const first = value[0] ?? '';
  const bad = /[A-Za-z0-9]/.test(first) ? [...value].find((c) => !/[A-Za-z0-9_.:@-]/.test(c)) : first;
  return `a string of ${value.length} characters ${bad === first ? 'starting with' : 'containing'} ${quote(bad ?? '')}`;
}
