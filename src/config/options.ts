/**
 * Option types of `new KeyManager(options)`, as given and after validation.
 * Validation lives in `sections/` (one file per option family), defaults in
 * `defaults.ts`, the checks they share in `check.ts`.
 */
import type { CacheOptions, ResolvedCache } from '../cache/types';
import type { HooksOptions, ResolvedHooks } from '../hooks/types';
import type { KeySelector } from '../keys/selector';
import type { KeySelectorName } from '../keys/create-selector';
import type { CircuitOptions } from '../resilience/breaker/index';
import type { LaneOptions } from '../resilience/lanes/index';
import type { RateLimitOptions, ResolvedRateLimits } from '../resilience/rate-limit/options';
import type { CatalogueOptions } from '../routing/catalogue/index';
import type { RoutingStrategy, RoutingStrategyName } from '../routing/strategy';
import type { StateStore } from '../store/types';
import type { BudgetOptions } from '../usage/budget/index';
import type { ModelPrice } from '../usage/pricing';

/**
 * A key as configured: the bare secret, or an object with a label, weight
 * and rate limits (`rpd`, `tpd`, `requests`, `tokens`, `rateLimitScope`,
 * `quotaGroup`: see {@link RateLimitOptions}; a key's windows replace the
 * provider's in the same dimension).
 */
export type KeyInput =
  | string
  | (RateLimitOptions & {
      /** The secret. Never leaves the manager except towards its own provider. */
      key: string;
      /**
       * A label for events, stats and errors. Default: a short fingerprint
       * (`fp_` + 10 hex digits of the key's SHA-256), which contains no part of the key.
       */
      id?: string;
      /** Relative share for the `weighted` selector: above 0, at most 1,000,000. Default 1. */
      weight?: number;
      /** This key's requests per minute, from 0.01 to 1e9; default: the provider's `rpm`, else learnt. */
      rpm?: number;
      /** This key's tokens per minute, from 1 to 1e12; default: the provider's `tpm`, else learnt. */
      tpm?: number;
    });

/** One model on one provider (a deployment), when more than its upstream name is to be said. */
export interface DeploymentOptions {
  /** The provider's name for the model. Default: the public name. */
  upstream?: string;
  /** Context window in tokens (input + output), an integer from 1 to 1e9; requests that cannot fit skip this deployment. */
  contextWindow?: number;
  /** Price for this deployment, over the price table (e.g. a gateway's markup). */
  price?: ModelPrice;
  /** Share for the `weighted` routing strategy: above 0, at most 1,000,000. Default 1. */
  weight?: number;
  /** Free-form labels, visible to custom routing strategies. */
  tags?: string[];
}

/**
 * One OpenAI-compatible provider: where to send requests and with which keys.
 * Rate limits (`rpm`, `rpd`, `tpm`, `tpd`, `requests`, `tokens`,
 * `rateLimitScope`, `quotaGroup`: see {@link RateLimitOptions}) apply to
 * each of its keys unless the key sets its own.
 */
export interface ProviderOptions extends RateLimitOptions {
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
   * provider serve any model that no other provider lists: a request for a
   * model some provider lists goes only to the providers that list it (unless
   * a fallback, `serveAnyModel: true` or a pinned `provider` says otherwise).
   */
  models?: string[] | Record<string, string | DeploymentOptions>;
  /**
   * `true`: the provider also serves models it does not list, even ones other
   * providers list — a catch-all tried after the providers that list the
   * model (e.g. a gateway that can serve everything). Default: `false` when
   * `models` is given; without `models`, the provider serves only the models
   * no provider lists. `false` needs `models`.
   */
  serveAnyModel?: boolean;
  /** Extra headers sent with every request to this provider (not `Authorization`). */
  headers?: Record<string, string>;
  /**
   * Requests per minute of each of its keys, when known. Leave it out to learn
   * limits from the provider's `x-ratelimit-*` headers (or from 429s). From
   * 0.01 (one request per 100 minutes) to 1e9.
   */
  rpm?: number;
  /** Tokens per minute of each of its keys, when known: from 1 to 1e12. */
  tpm?: number;
}

/** Retry and fail-over policy. */
export interface RetryOptions {
  /**
   * Attempts per request, counting the first: an integer from 1 to 100. The
   * first rotation away from each rate-limited or rejected key does not use
   * one up, but needs one left: `1` sends one attempt and nothing more, not
   * even to another key after a 401 (one key and repeated 429s make at most
   * `maxAttempts + 1` calls). Default 4.
   */
  maxAttempts?: number;
  /** First backoff delay after a transient failure (5xx, timeout, reset), in ms: 0 to 2^31 − 1. Default 250. */
  baseDelayMs?: number;
  /** Cap of one computed backoff delay, in ms: at least `baseDelayMs`, at most 2^31 − 1 (a wait the upstream asks for, `retry-after`, is kept as given, within the deadline). Default 8000. */
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
  /** Output tokens assumed for a request that sets no max-tokens field, when reserving tokens: an integer from 0 to 1e7. Default 256. */
  defaultOutputTokens?: number;
  /**
   * A key whose limits are not known yet (none configured, learnt or
   * estimated): `'probe'` (default) sends one request first and holds the
   * key's others until that reply's headers are read (at most 10 s), so a
   * first burst is paced by the limits they state; a reply that states none
   * opens the key. Per key, per model window and per quota group; other keys
   * stay usable. `'open'`: everything goes at once (a first burst may meet 429s).
   */
  coldStart?: 'probe' | 'open';
}

/** Model routing: which deployment serves a request, and what else may. */
export interface RoutingOptions extends CatalogueOptions {
  /** How the deployments of a model are ordered. Default `'ordered'` (configuration order). */
  strategy?: RoutingStrategyName | RoutingStrategy;
  /** A strategy per public model (or alias), over `strategy`. */
  perModel?: Record<string, RoutingStrategyName | RoutingStrategy>;
}

/**
 * Object affinity (`affinity`): a response, file, batch, conversation or
 * upload is known only to the project of the key that created it, so keyplex
 * remembers which key created each one (the `id` of a successful `POST` to
 * `/responses`, `/files`, `/batches`, `/conversations`, `/uploads`; a
 * stream's first event) and sends a later request that names it to that key
 * alone: a `/{collection}/{id}…` path, or in the JSON body
 * `previous_response_id`, a response's `conversation` (an id or `{ id }`),
 * a batch's `input_file_id`.
 */
export interface AffinityOptions {
  /** Most object ids remembered (least recently used go first): 1 to 10,000,000. Default 10,000 (about 200 bytes each). */
  maxIds?: number;
  /**
   * How long an id is remembered after its object was created, in ms:
   * above 0, at most 365 days. Default 30 days (how long OpenAI keeps a stored
   * response). An id forgotten (by age, by `maxIds`, or by a restart) is routed
   * as any request: the provider answers if the key chosen cannot see it.
   */
  ttlMs?: number;
}

/** @deprecated The older name of {@link AffinityOptions} (responses only then); the same options. */
export type ResponseAffinityOptions = AffinityOptions;

/** Options of `new KeyManager()`. Only `providers` is required. */
export interface KeyManagerOptions {
  /** Providers by id; the id appears in events and stats. At least one. */
  providers: Record<string, ProviderOptions>;
  /** How a key is picked among a provider's usable keys. Default `'headroom'`. */
  keySelection?: KeySelectorName | KeySelector;
  /** Retry and fail-over policy. */
  retry?: RetryOptions;
  /**
   * Timeout of one attempt until the response headers (for streams, the first
   * complete event), in ms. Default 300000. A Responses stream's events
   * before its first output (`response.created`, `response.in_progress`) are
   * then held back, so that a failure right after them still fails over, for
   * at most what is left of this timeout (and no longer than
   * `streamIdleTimeoutMs`): past it they are passed on, the stream healthy.
   * Every duration option is above 0 (or
   * at least 0 where 0 means "none") and at most 2^31 − 1 ms (about 24.8
   * days), the longest timer Node.js honours; others are refused at construction.
   */
  attemptTimeoutMs?: number;
  /** Total deadline of a request across all attempts, waits and backoff, in ms: above 0, at most 2^31 − 1. Default 600000. The SDK's `timeout` also bounds it. */
  deadlineMs?: number;
  /** How long a key cools down after a 429 that names no reset time, in ms: 0 to 2^31 − 1. Default 5000. */
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
  /**
   * Scan 2xx bodies (JSON replies and event streams) for pieces of the key
   * the attempt used, as status text, headers and error answers always are
   * (DESIGN.md §6: no 8-character piece of a key reaches the caller). The
   * scan costs CPU in proportion to the reply (about 0.08 µs per KiB of a
   * JSON reply, searched as bytes: README, Secrets); with
   * `false` a 2xx JSON body passes unscanned and a stream is scanned only
   * in reads that hold `error`. Default true.
   */
  redactReplies?: boolean;
  /**
   * Add keyplex's headers to every successful reply: `x-keyplex-request-id`
   * (the `requestId` of its events), `x-keyplex-provider`,
   * `x-keyplex-key-id` (the key's id, never the key) and
   * `x-keyplex-attempts`, read with the SDK's `.withResponse()`. Off by
   * default: the openai SDK formats every header of every reply for its
   * debug log, even with logging off, and these four cost it about 42,000
   * instructions (~5 µs of CPU) per request, a fifth of what keyplex adds;
   * the events carry the same facts. A failed request's answer carries
   * `x-keyplex-request-id` and keyplex's detail whatever this says. Default false.
   */
  replyHeaders?: boolean;
  /**
   * How many model names not known from configuration (names passed to a
   * provider that serves any model) keep their own state — deployments,
   * deployment circuits, latency averages, per-model stats — at once. The
   * least recently used idle name gives its place up; its stats move into
   * `stats().models['(other)']`. A name with an attempt in flight keeps its
   * place: with more names than this in flight at once, all keep their state
   * until their attempts end, and then those over the bound give their
   * places up, least recently used first. A whole number from 1 to 1000000.
   * Default 2000.
   */
  maxDynamicModels?: number;
  /**
   * How long a stream may go without data once its first bytes reached the
   * caller, in ms: 0 (no idle timeout) to 2^31 − 1. SSE comments (keep-alives
   * such as `: ping`) do not count as data. A stream idle that long ends with
   * a `StreamStalledError` (code `stream_idle_timeout`) in the caller's loop,
   * a `failure` event with what it used so far, and its lane slot freed.
   * Default 60000. A request can override it with `keyplex.options({ streamIdleTimeoutMs })`.
   */
  streamIdleTimeoutMs?: number;
  /**
   * What the request deadline (`deadlineMs`) bounds for a stream: `'whole'`
   * (default) — until its last byte, so a stream still running at the
   * deadline ends with a `DeadlineExceededError` (code `deadline_exceeded`);
   * `'first-byte'` — only until its first bytes, after which only
   * `streamIdleTimeoutMs` bounds it (for long generations that keep sending).
   */
  streamDeadline?: 'whole' | 'first-byte';
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
  /**
   * Request/response hooks: `beforeAttempt` (headers, and the JSON body when
   * asked for with `body: 'json'`) and `afterResponse` (status, headers,
   * latency, the body when asked for). A hook that throws fails that request
   * with code `hook_failed`. Default: none (no cost). See docs/hooks-and-cache.md.
   */
  hooks?: HooksOptions;
  /**
   * The exact response cache, off by default: identical non-streaming JSON
   * requests (method, path, canonical body, partition) within `ttlMs` are
   * answered from it (`x-keyplex-cache: hit`). `false` (as absent): no cache.
   * See docs/hooks-and-cache.md.
   */
  cache?: CacheOptions | false;
  /**
   * Keeps each response, file, batch, conversation and upload on the key
   * that created it (see {@link AffinityOptions}; README "Objects kept per
   * project"). On by default (`{ maxIds: 10000, ttlMs: 30 days }`); `false`
   * turns it off (every request is routed as if it named no object). Memory
   * only: each process remembers the objects it created.
   */
  affinity?: AffinityOptions | false;
  /** @deprecated The older name of {@link KeyManagerOptions.affinity} (the same option); give one of the two. */
  responseAffinity?: AffinityOptions | false;
}

/** A key after validation. */
export interface ResolvedKey {
  key: string;
  id: string;
  weight: number;
  rpm: number | undefined;
  tpm: number | undefined;
  /** The key's own rate-limit options (windows, scope, group), before the provider's are merged in. */
  rate: ResolvedRateLimits;
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
  /** Public name → upstream name; `undefined` when it lists none. */
  models: Map<string, string> | undefined;
  /**
   * Which models it serves besides those it lists: `'always'` any
   * (`serveAnyModel: true`), `'unclaimed'` those no provider lists (no
   * `models`), `false` none.
   */
  anyModel: 'always' | 'unclaimed' | false;
  /** Public name → what else its configuration says about that deployment. */
  deployments: Map<string, ResolvedDeployment>;
  headers: Record<string, string>;
  /** Rate-limit options for each of its keys; `scope` filled in (`defaultScope(baseURL)` unless configured). */
  rate: ResolvedRateLimits;
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
  redactReplies: boolean;
  replyHeaders: boolean;
  maxDynamicModels: number;
  streamIdleTimeoutMs: number;
  streamDeadline: 'whole' | 'first-byte';
  fetch: typeof globalThis.fetch | undefined;
  store: StateStore | undefined;
  lanes: Record<string, LaneOptions>;
  defaultLane: string;
  circuitBreaker: { key: CircuitOptions | false; deployment: CircuitOptions | false };
  rateLimiting: Required<RateLimitingOptions>;
  routing: { strategy: RoutingStrategyName | RoutingStrategy; perModel: Record<string, RoutingStrategyName | RoutingStrategy>; catalogue: CatalogueOptions };
  budgets: BudgetOptions[];
  /** Undefined when no hook is installed. */
  hooks: ResolvedHooks | undefined;
  /** Undefined when the cache is off. */
  cache: ResolvedCache | undefined;
  /** Undefined when object affinity is off. */
  affinity: Required<AffinityOptions> | undefined;
}
