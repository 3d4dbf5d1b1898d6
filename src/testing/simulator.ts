/**
 * The provider simulator's core: options, validation, state and the answer
 * to one request. Transport-free: the msw transport (`./msw`) and the
 * loopback HTTP server (`./http-server`) both call {@link ProviderSimulator.handle}.
 */
import { describe } from '../config/check';
import { PriceTable, type ModelPrice } from '../usage/pricing';
import {
  completionWords,
  embeddingInputs,
  embeddingVector,
  float32Base64,
  hexId,
  promptTokens,
  randomFor,
  sampleLatency,
  type PromptEndpoint,
} from './content';
import { listenSimulator, type SimulatorServer } from './http-server';
import { ceilMs, formatDuration, TokenBucket } from './rate-window';
import { sleep } from '../resilience/backoff';

// ---------------------------------------------------------------------------
// Public option and result types
// ---------------------------------------------------------------------------

/** One API key a simulated provider accepts, with its own limits and state. */
export interface SimKeyOptions {
  /** The secret, as sent in `Authorization: Bearer <key>`. Use fake keys only. */
  key: string;
  /** Requests per minute for this key. Default: the provider's `rpm` (default `Infinity`). */
  rpm?: number;
  /**
   * Tokens per minute for this key, counted like OpenAI: prompt tokens plus
   * the request's max-tokens field (256 when absent). Default: the
   * provider's `tpm` (default `Infinity`).
   */
  tpm?: number;
  /** The key was revoked: every request answers 401 `invalid_api_key`. */
  revoked?: boolean;
  /** The key's account is out of credit: every request answers 429 `insufficient_quota` with `x-should-retry: false`. */
  quotaExceeded?: boolean;
}

/**
 * A log-normal latency distribution given by its median and 99th percentile,
 * in milliseconds (`σ = ln(p99 / median) / 2.326`). `{ medianMs: 0, p99Ms: 0 }`
 * answers at once.
 */
export interface LatencyOptions {
  /** Median latency in ms (>= 0). */
  medianMs: number;
  /** 99th-percentile latency in ms (>= `medianMs`). */
  p99Ms: number;
}

/**
 * What an injected fault does:
 * - `server_error`: a 500 JSON error (`status` overridable);
 * - `reset`: the connection is dropped before any answer (a network error);
 * - `hang`: no answer until the client aborts (or the server closes);
 * - `stream_cut`: a stream ends with an error after half of its events (for a JSON request, acts as `reset`);
 * - `malformed`: 200 with `content-type: application/json` and a body that is not JSON;
 * - `outage`: a 503 JSON error (`status` overridable), typically for a time window;
 * - `stream_stall`: a stream sends its first event, then nothing until the client goes away (for a JSON request, acts as `hang`);
 * - `stream_keepalive`: a stream sends its first event, then only SSE comments (`: keep-alive`) every 250 ms, for ever (for a JSON request, acts as `hang`);
 * - `stream_garbage`: a stream sends an event whose data is not JSON after half of its events, then the rest (for a JSON request, acts as `malformed`);
 * - `stream_truncate`: a stream ends cleanly after half of its events, before its finish and `[DONE]` (for a JSON request, acts as `malformed`);
 * - `wrong_content_type`: 200 with `content-type: text/plain` and a short text, to JSON and stream requests alike;
 * - `response_failed`: a Responses answer that fails part-way with a `server_error`: a stream sends half of its text, then
 *   `response.failed`; a JSON answer is 200 with `status: "failed"` and its `error` (other endpoints: acts as `server_error`).
 */
export type FaultKind =
  | 'server_error'
  | 'reset'
  | 'hang'
  | 'stream_cut'
  | 'malformed'
  | 'outage'
  | 'stream_stall'
  | 'stream_keepalive'
  | 'stream_garbage'
  | 'stream_truncate'
  | 'wrong_content_type'
  | 'response_failed';

/** Faults that change a stream after its first events (the ones a JSON request meets otherwise). */
type StreamFault = 'stream_cut' | 'stream_stall' | 'stream_keepalive' | 'stream_garbage' | 'stream_truncate';
const STREAM_FAULTS: ReadonlySet<FaultKind> = new Set<FaultKind>(['stream_cut', 'stream_stall', 'stream_keepalive', 'stream_garbage', 'stream_truncate']);
/** The interval of `stream_keepalive` comments, ms. */
const KEEPALIVE_MS = 250;

/**
 * A fault injected into a provider's answers. Its triggers combine with AND:
 * a request is faulted when it falls inside the time window (if any), its
 * index is listed in `requests` (if given) and a seeded draw falls below
 * `probability` (if given). A fault without any trigger hits every request.
 * When several faults match a request, the first one listed wins.
 *
 * Faults are checked after authentication (an unknown key still gets 401)
 * and before rate limits, and a faulted request does not consume the key's
 * rate-limit buckets.
 */
export interface FaultOptions {
  /** What the fault does. */
  kind: FaultKind;
  /** Chance per request, in `[0, 1]`, drawn from the seeded generator. */
  probability?: number;
  /** 0-based request indexes, counted per provider in order of arrival (every request counts, rejected ones too). */
  requests?: number[];
  /** Start of the time window, in ms after the simulator's start (or its last `reset()`), inclusive. Default 0. */
  fromMs?: number;
  /** End of the time window, in ms after the simulator's start, exclusive. Default: no end. */
  untilMs?: number;
  /** HTTP status for `server_error` (default 500) and `outage` (default 503). */
  status?: number;
}

/** Per-model settings of a simulated provider. */
export interface SimModelOptions {
  /** Price used for the `costUsd` tallies. Default: keyplex's built-in price for that model name, if any. */
  price?: ModelPrice;
  /** Largest prompt, in tokens; a larger one answers 400 `context_length_exceeded`. Default: no limit. */
  contextWindow?: number;
}

/** One simulated OpenAI-compatible provider. */
export interface SimProviderOptions {
  /** Provider id: a lower-case DNS label (`a`-`z`, `0`-`9`, `-`), used in its URLs. */
  id: string;
  /** The keys it accepts. Any other bearer token answers 401. */
  keys: (string | SimKeyOptions)[];
  /** The models it serves, by name, optionally with a price and a context window. Any other model answers 404 `model_not_found`. */
  models: string[] | Record<string, SimModelOptions>;
  /** Default requests per minute of each key. Default `Infinity`. */
  rpm?: number;
  /** Default tokens per minute of each key. Default `Infinity`. */
  tpm?: number;
  /** Time to headers of successful JSON answers. Default `{ medianMs: 0, p99Ms: 0 }`. Errors and faults answer at once. */
  latency?: LatencyOptions;
  /** Streams: time from the headers to the first event. Default: `latency`. */
  ttft?: LatencyOptions;
  /** Streams: pause between events after the first, in ms. Default 0. */
  tokenIntervalMs?: number;
  /** Injected faults, checked in order. */
  faults?: FaultOptions[];
  /** The part of every prompt reported as `cached_tokens` (rounded down), in `[0, 1]`. Default 0. */
  cachedRatio?: number;
  /**
   * Where the msw transport serves this provider. Default
   * `https://<id>.sim.keyplex.test/v1`. The loopback server always serves it
   * under `/<id>/v1`.
   */
  baseURL?: string;
}

/** Options of a {@link ProviderSimulator}. */
export interface SimulatorOptions {
  /** The simulated providers; ids must be distinct. */
  providers: SimProviderOptions[];
  /** Seed of every random choice (content, token counts, latencies, probability faults). Default 1. */
  seed?: number;
  /**
   * The clock, in ms, for rate-limit buckets, fault windows and `created`
   * timestamps. Default `Date.now`. Latency waits always use real timers
   * (`setTimeout`).
   */
  now?: () => number;
  /**
   * Length of the rate-limit window in ms: `rpm` and `tpm` are allowed per
   * this window (and headers, resets and `peakRequestsPerMinute` follow it).
   * Default 60000, a real minute; shorten it to run minute-scale limits in
   * seconds (the demo and benchmarks do).
   */
  rateWindowMs?: number;
}

/** Counters of one key. */
export interface KeyTally {
  /** Requests that presented this key (every answer, errors included). */
  requests: number;
  /** 2xx answers started. */
  successes: number;
  /** 429 answers from this key's rate limits (not `insufficient_quota`). */
  rateLimited: number;
  /** `inputTokens + outputTokens`. */
  tokens: number;
  /** Prompt tokens of successful answers. */
  inputTokens: number;
  /** Completion tokens of successful answers. */
  outputTokens: number;
  /** Cost of successful answers in USD at the model's price (0 for a model without a known price). */
  costUsd: number;
}

/** Counters of one provider. */
export interface ProviderTally {
  /** Every request that reached the provider, whatever its answer. */
  requests: number;
  /** 2xx answers started. */
  successes: number;
  /** 429 answers from rate limits (not `insufficient_quota`). */
  rateLimited: number;
  /** Injected faults, by kind. */
  faults: Record<FaultKind, number>;
  /** Counters by key string (the simulator is test-only and is given fake keys). Configured keys only. */
  keys: Record<string, KeyTally>;
  /** Every distinct bearer token received, in first-seen order, unknown ones included. */
  credentialsSeen: string[];
  /**
   * Per key: requests accepted (that passed the rate limits) in each
   * calendar minute of the simulator's clock, keyed by the minute's start
   * (ms, a multiple of 60 000).
   */
  acceptedPerMinute: Record<string, Record<number, number>>;
  /** Sum of the keys' `costUsd`. */
  costUsd: number;
}

/** A network-level outcome for a transport to produce instead of an HTTP answer. */
export type SimTransportAction = { kind: 'reset' } | { kind: 'hang' };

/**
 * The answer to one request: an HTTP `Response`, or an instruction to the
 * transport: `reset` (drop the connection) or `hang` (never answer; hold the
 * connection until the client aborts or the transport closes).
 */
export type SimResponse = Response | SimTransportAction;

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

const FAULT_KINDS: readonly FaultKind[] = [
  'server_error',
  'reset',
  'hang',
  'stream_cut',
  'malformed',
  'outage',
  'stream_stall',
  'stream_keepalive',
  'stream_garbage',
  'stream_truncate',
  'wrong_content_type',
  'response_failed',
];
const PROVIDER_ID = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const DEFAULT_TOKEN_ESTIMATE = 256;
const WINDOW_MS = 60_000;

/** Rejects with the signal's reason once it aborts; never resolves. */
function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

/** A 200 that claims JSON and is not: the `malformed` fault. */
function malformedJson(headers: Record<string, string>): Response {
  return new Response('{"id": "chatcmpl-malformed", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assist', {
    status: 200,
    headers: { ...headers, 'content-type': 'application/json' },
  });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function limitOption(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number (got ${describe(value)})`);
  if (value !== Infinity && !(Number.isInteger(value) && value > 0)) {
    throw new RangeError(`${name} must be a positive integer or Infinity (got ${describe(value)})`);
  }
  return value;
}

function finiteNonNegative(value: unknown, name: string): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number (got ${describe(value)})`);
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name} must be a finite number >= 0 (got ${describe(value)})`);
  return value;
}

function booleanOption(value: unknown, name: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw new TypeError(`${name} must be a boolean (got ${describe(value)})`);
  return value;
}

function latencyOption(value: unknown, name: string): LatencyOptions | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value)) throw new TypeError(`${name} must be an object { medianMs, p99Ms } (got ${describe(value)})`);
  const medianMs = finiteNonNegative(value.medianMs, `${name}.medianMs`);
  const p99Ms = finiteNonNegative(value.p99Ms, `${name}.p99Ms`);
  if (p99Ms < medianMs) throw new RangeError(`${name}.p99Ms must be >= ${name}.medianMs (got ${p99Ms} < ${medianMs})`);
  return { medianMs, p99Ms };
}

interface NormalizedFault {
  kind: FaultKind;
  probability: number | undefined;
  requests: ReadonlySet<number> | undefined;
  fromMs: number;
  untilMs: number;
  status: number;
}

function faultOption(value: unknown, name: string): NormalizedFault {
  if (!isObject(value)) throw new TypeError(`${name} must be an object (got ${describe(value)})`);
  const kind = value.kind;
  if (typeof kind !== 'string' || !(FAULT_KINDS as readonly string[]).includes(kind)) {
    throw new TypeError(`${name}.kind must be one of ${FAULT_KINDS.join(', ')} (got ${describe(kind)})`);
  }
  const k = kind as FaultKind;
  let probability: number | undefined;
  if (value.probability !== undefined) {
    if (typeof value.probability !== 'number') throw new TypeError(`${name}.probability must be a number (got ${describe(value.probability)})`);
    if (!(value.probability >= 0 && value.probability <= 1)) throw new RangeError(`${name}.probability must be between 0 and 1 (got ${value.probability})`);
    probability = value.probability;
  }
  let requests: Set<number> | undefined;
  if (value.requests !== undefined) {
    if (!Array.isArray(value.requests)) throw new TypeError(`${name}.requests must be an array of request indexes (got ${describe(value.requests)})`);
    requests = new Set();
    value.requests.forEach((index: unknown, i) => {
      if (typeof index !== 'number' || !Number.isInteger(index) || index < 0) {
        throw new RangeError(`${name}.requests[${i}] must be an integer >= 0 (got ${describe(index)})`);
      }
      requests!.add(index);
    });
  }
  const fromMs = value.fromMs === undefined ? 0 : finiteNonNegative(value.fromMs, `${name}.fromMs`);
  let untilMs = Infinity;
  if (value.untilMs !== undefined) {
    untilMs = finiteNonNegative(value.untilMs, `${name}.untilMs`);
    if (untilMs <= fromMs) throw new RangeError(`${name}.untilMs must be greater than ${name}.fromMs (got ${untilMs} <= ${fromMs})`);
  }
  let status = k === 'outage' ? 503 : 500;
  if (value.status !== undefined) {
    if (k !== 'server_error' && k !== 'outage') throw new TypeError(`${name}.status applies only to server_error and outage faults (kind is ${k})`);
    if (typeof value.status !== 'number' || !Number.isInteger(value.status) || value.status < 400 || value.status > 599) {
      throw new RangeError(`${name}.status must be an HTTP error status, an integer in 400..599 (got ${describe(value.status)})`);
    }
    status = value.status;
  }
  return { kind: k, probability, requests, fromMs, untilMs, status };
}

interface NormalizedModel {
  contextWindow: number;
}

interface NormalizedProvider {
  id: string;
  baseURL: string;
  keys: SimKeyOptions[];
  models: Map<string, NormalizedModel>;
  prices: PriceTable;
  latency: LatencyOptions;
  ttft: LatencyOptions;
  tokenIntervalMs: number;
  faults: NormalizedFault[];
  cachedRatio: number;
}

function providerOption(value: unknown, name: string): NormalizedProvider {
  if (!isObject(value)) throw new TypeError(`${name} must be an object (got ${describe(value)})`);
  const id = value.id;
  if (typeof id !== 'string') throw new TypeError(`${name}.id must be a string (got ${describe(id)})`);
  if (!PROVIDER_ID.test(id)) {
    throw new RangeError(`${name}.id must be a lower-case DNS label (a-z, 0-9, inner '-'; at most 63 characters), as it is used in URLs (got ${describe(id)})`);
  }
  const at = `${name} ("${id}")`;

  const rpm = limitOption(value.rpm, `${at}.rpm`) ?? Infinity;
  const tpm = limitOption(value.tpm, `${at}.tpm`) ?? Infinity;

  if (!Array.isArray(value.keys)) throw new TypeError(`${at}.keys must be an array of keys (got ${describe(value.keys)})`);
  const seen = new Set<string>();
  const keys = value.keys.map((entry: unknown, i): SimKeyOptions => {
    const keyName = `${at}.keys[${i}]`;
    const k = typeof entry === 'string' ? { key: entry } : entry;
    if (!isObject(k)) throw new TypeError(`${keyName} must be a string or an object { key } (got ${describe(entry)})`);
    if (typeof k.key !== 'string' || k.key.length === 0 || /\s/.test(k.key)) {
      throw new TypeError(`${keyName}.key must be a non-empty string without whitespace`);
    }
    if (seen.has(k.key)) throw new RangeError(`${keyName}.key is listed twice in provider "${id}"`);
    seen.add(k.key);
    return {
      key: k.key,
      rpm: limitOption(k.rpm, `${keyName}.rpm`) ?? rpm,
      tpm: limitOption(k.tpm, `${keyName}.tpm`) ?? tpm,
      revoked: booleanOption(k.revoked, `${keyName}.revoked`),
      quotaExceeded: booleanOption(k.quotaExceeded, `${keyName}.quotaExceeded`),
    };
  });

  const models = new Map<string, NormalizedModel>();
  const priceOverrides: Record<string, ModelPrice> = {};
  if (Array.isArray(value.models)) {
    value.models.forEach((model: unknown, i) => {
      if (typeof model !== 'string' || model.length === 0) throw new TypeError(`${at}.models[${i}] must be a non-empty string (got ${describe(model)})`);
      models.set(model, { contextWindow: Infinity });
    });
  } else if (isObject(value.models)) {
    for (const [model, settings] of Object.entries(value.models)) {
      const modelName = `${at}.models[${JSON.stringify(model)}]`;
      if (model.length === 0) throw new TypeError(`${at}.models has an empty model name`);
      if (settings === undefined || settings === null) {
        models.set(model, { contextWindow: Infinity });
        continue;
      }
      if (!isObject(settings)) throw new TypeError(`${modelName} must be an object { price?, contextWindow? } (got ${describe(settings)})`);
      let contextWindow = Infinity;
      if (settings.contextWindow !== undefined) {
        if (typeof settings.contextWindow !== 'number' || !Number.isInteger(settings.contextWindow) || settings.contextWindow < 1) {
          throw new RangeError(`${modelName}.contextWindow must be a positive integer (got ${describe(settings.contextWindow)})`);
        }
        contextWindow = settings.contextWindow;
      }
      if (settings.price !== undefined) {
        const price = settings.price;
        if (!isObject(price)) throw new TypeError(`${modelName}.price must be an object { input, output, cachedInput? } (got ${describe(price)})`);
        const input = finiteNonNegative(price.input, `${modelName}.price.input`);
        const output = finiteNonNegative(price.output, `${modelName}.price.output`);
        const cachedInput = price.cachedInput === undefined ? undefined : finiteNonNegative(price.cachedInput, `${modelName}.price.cachedInput`);
        priceOverrides[model] = cachedInput === undefined ? { input, output } : { input, output, cachedInput };
      }
      models.set(model, { contextWindow });
    }
  } else {
    throw new TypeError(`${at}.models must be an array of model names or an object by model name (got ${describe(value.models)})`);
  }
  if (models.size === 0) throw new RangeError(`${at}.models must name at least one model`);

  const latency = latencyOption(value.latency, `${at}.latency`) ?? { medianMs: 0, p99Ms: 0 };
  const ttft = latencyOption(value.ttft, `${at}.ttft`) ?? latency;
  const tokenIntervalMs = value.tokenIntervalMs === undefined ? 0 : finiteNonNegative(value.tokenIntervalMs, `${at}.tokenIntervalMs`);

  let cachedRatio = 0;
  if (value.cachedRatio !== undefined) {
    if (typeof value.cachedRatio !== 'number') throw new TypeError(`${at}.cachedRatio must be a number (got ${describe(value.cachedRatio)})`);
    if (!(value.cachedRatio >= 0 && value.cachedRatio <= 1)) throw new RangeError(`${at}.cachedRatio must be between 0 and 1 (got ${value.cachedRatio})`);
    cachedRatio = value.cachedRatio;
  }

  if (value.faults !== undefined && !Array.isArray(value.faults)) throw new TypeError(`${at}.faults must be an array (got ${describe(value.faults)})`);
  const faults = (value.faults ?? []).map((fault: unknown, i: number) => faultOption(fault, `${at}.faults[${i}]`));

  let baseURL = `https://${id}.sim.keyplex.test/v1`;
  if (value.baseURL !== undefined) {
    if (typeof value.baseURL !== 'string') throw new TypeError(`${at}.baseURL must be a string (got ${describe(value.baseURL)})`);
    let url: URL;
    try {
      url = new URL(value.baseURL);
    } catch {
      throw new TypeError(`${at}.baseURL must be an absolute http(s) URL (got ${describe(value.baseURL)})`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError(`${at}.baseURL must be an http(s) URL (got ${describe(value.baseURL)})`);
    if (url.search || url.hash) throw new TypeError(`${at}.baseURL must not have a query or fragment (got ${describe(value.baseURL)})`);
    baseURL = `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
  }

  return { id, baseURL, keys, models, prices: new PriceTable(priceOverrides), latency, ttft, tokenIntervalMs, faults, cachedRatio };
}

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

interface KeyState {
  options: SimKeyOptions;
  requests: TokenBucket;
  tokens: TokenBucket;
  tally: KeyTally;
  /** Clock readings of accepted requests. */
  accepted: number[];
  perMinute: Map<number, number>;
  /**
   * The Responses API objects created with this key, by id: each key is its
   * own project, so another key does not find them (as OpenAI answers a key of
   * another project or organization).
   */
  responses: Map<string, Body>;
}

interface ProviderState {
  options: NormalizedProvider;
  keys: Map<string, KeyState>;
  nextIndex: number;
  requests: number;
  successes: number;
  rateLimited: number;
  faults: Record<FaultKind, number>;
  credentials: Set<string>;
  /** Sum of the key costs at the moment they were added (kept separately to avoid re-summing). */
  costUsd: number;
}

function zeroKeyTally(): KeyTally {
  return { requests: 0, successes: 0, rateLimited: 0, tokens: 0, inputTokens: 0, outputTokens: 0, costUsd: 0 };
}

function zeroFaults(): Record<FaultKind, number> {
  return Object.fromEntries(FAULT_KINDS.map((kind) => [kind, 0])) as Record<FaultKind, number>;
}

// ---------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------

type Body = Record<string, unknown>;

function errorJson(message: string, type: string, code: string | null, param: string | null = null): Body {
  return { error: { message, type, param, code } };
}

function jsonResponse(status: number, body: unknown, headers: Record<string, string>): Response {
  return new Response(JSON.stringify(body), { status, headers: { ...headers, 'content-type': 'application/json' } });
}

/** OpenAI's way of naming a key in an error: first 3 and last 4 characters; short keys are fully masked. */
export function maskKey(key: string): string {
  return key.length >= 12 ? `${key.slice(0, 3)}***${key.slice(-4)}` : '***';
}


type Route =
  | { endpoint: PromptEndpoint; method: 'POST' }
  | { endpoint: 'models'; method: 'GET' }
  | { endpoint: 'model'; method: 'GET'; model: string }
  | { endpoint: 'response'; method: 'GET' | 'DELETE'; id: string };

function route(method: string, path: string): Route | undefined {
  if (method === 'POST') {
    if (path === '/chat/completions') return { endpoint: 'chat', method };
    if (path === '/responses') return { endpoint: 'responses', method };
    if (path === '/embeddings') return { endpoint: 'embeddings', method };
    if (path === '/completions') return { endpoint: 'completions', method };
  } else if (method === 'GET') {
    if (path === '/models') return { endpoint: 'models', method };
    const m = /^\/models\/(.+)$/.exec(path);
    if (m?.[1]) return { endpoint: 'model', method, model: decodeURIComponent(m[1]) };
  }
  const stored = method === 'GET' || method === 'DELETE' ? /^\/responses\/([^/]+)$/.exec(path) : null;
  if (stored?.[1]) return { endpoint: 'response', method: method as 'GET' | 'DELETE', id: decodeURIComponent(stored[1]) };
  return undefined;
}

/** The max-tokens field of each generating endpoint, in order of precedence. */
const MAX_TOKEN_FIELDS: Record<PromptEndpoint, readonly string[]> = {
  chat: ['max_completion_tokens', 'max_tokens'],
  responses: ['max_output_tokens'],
  completions: ['max_tokens'],
  embeddings: [],
};

/** Everything known about one accepted generation request. */
interface Generation {
  endpoint: PromptEndpoint;
  body: Body;
  model: string;
  stream: boolean;
  includeUsage: boolean;
  promptTokens: number;
  cachedTokens: number;
  words: string[];
  truncated: boolean;
  /** The answer fails part-way (the `response_failed` fault): its words are the half generated before. */
  failed: boolean;
  id: string;
  created: number;
}

/** One SSE event: an optional `event:` name and its `data:` payload. */
interface SseEvent {
  event?: string;
  data: string;
}

function chatUsage(g: Generation) {
  const completion = g.words.length;
  return {
    prompt_tokens: g.promptTokens,
    completion_tokens: completion,
    total_tokens: g.promptTokens + completion,
    prompt_tokens_details: { cached_tokens: g.cachedTokens, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
}

function responsesUsage(g: Generation) {
  const output = g.words.length;
  return {
    input_tokens: g.promptTokens,
    input_tokens_details: { cached_tokens: g.cachedTokens },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: g.promptTokens + output,
  };
}

function text(g: Generation): string {
  return g.words.join(' ');
}

/** The text pieces of a stream: one per word, each after the first with a leading space, so that they join to {@link text}. */
function pieces(g: Generation): string[] {
  return g.words.map((word, i) => (i === 0 ? word : ` ${word}`));
}

function finishReason(g: Generation): 'stop' | 'length' {
  return g.truncated ? 'length' : 'stop';
}

const FINGERPRINT = 'fp_keyplexsim';

function chatJson(g: Generation): Body {
  return {
    id: `chatcmpl-${g.id}`,
    object: 'chat.completion',
    created: g.created,
    model: g.model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: text(g), refusal: null, annotations: [] },
        logprobs: null,
        finish_reason: finishReason(g),
      },
    ],
    usage: chatUsage(g),
    service_tier: 'default',
    system_fingerprint: FINGERPRINT,
  };
}

function chatEvents(g: Generation): SseEvent[] {
  const base = { id: `chatcmpl-${g.id}`, object: 'chat.completion.chunk', created: g.created, model: g.model, service_tier: 'default', system_fingerprint: FINGERPRINT };
  const usageNull = g.includeUsage ? { usage: null } : {};
  const chunk = (delta: Body, finish: string | null) =>
    JSON.stringify({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...usageNull });
  const events: SseEvent[] = [{ data: chunk({ role: 'assistant', content: '', refusal: null }, null) }];
  for (const piece of pieces(g)) events.push({ data: chunk({ content: piece }, null) });
  events.push({ data: chunk({}, finishReason(g)) });
  if (g.includeUsage) events.push({ data: JSON.stringify({ ...base, choices: [], usage: chatUsage(g) }) });
  events.push({ data: '[DONE]' });
  return events;
}

function completionJson(g: Generation): Body {
  const completion = g.words.length;
  return {
    id: `cmpl-${g.id}`,
    object: 'text_completion',
    created: g.created,
    model: g.model,
    system_fingerprint: FINGERPRINT,
    choices: [{ index: 0, text: text(g), logprobs: null, finish_reason: finishReason(g) }],
    usage: {
      prompt_tokens: g.promptTokens,
      completion_tokens: completion,
      total_tokens: g.promptTokens + completion,
      prompt_tokens_details: { cached_tokens: g.cachedTokens },
    },
  };
}

function completionEvents(g: Generation): SseEvent[] {
  const base = { id: `cmpl-${g.id}`, object: 'text_completion', created: g.created, model: g.model, system_fingerprint: FINGERPRINT };
  const usageNull = g.includeUsage ? { usage: null } : {};
  const chunk = (piece: string, finish: string | null) =>
    JSON.stringify({ ...base, choices: [{ index: 0, text: piece, logprobs: null, finish_reason: finish }], ...usageNull });
  const events: SseEvent[] = pieces(g).map((piece) => ({ data: chunk(piece, null) }));
  events.push({ data: chunk('', finishReason(g)) });
  if (g.includeUsage) {
    const { usage } = completionJson(g);
    events.push({ data: JSON.stringify({ ...base, choices: [], usage }) });
  }
  events.push({ data: '[DONE]' });
  return events;
}

function responseObject(g: Generation, state: 'in_progress' | 'done'): Body {
  const done = state === 'done';
  const status = !done ? 'in_progress' : g.failed ? 'failed' : g.truncated ? 'incomplete' : 'completed';
  return {
    id: `resp_${g.id}`,
    object: 'response',
    created_at: g.created,
    status,
    background: false,
    error: done && g.failed ? { code: 'server_error', message: 'An error occurred while processing your request.' } : null,
    incomplete_details: done && g.truncated && !g.failed ? { reason: 'max_output_tokens' } : null,
    instructions: typeof g.body.instructions === 'string' ? g.body.instructions : null,
    max_output_tokens: typeof g.body.max_output_tokens === 'number' ? g.body.max_output_tokens : null,
    model: g.model,
    output: done && !g.failed ? [outputMessage(g, 'completed')] : [],
    parallel_tool_calls: true,
    previous_response_id: typeof g.body.previous_response_id === 'string' ? g.body.previous_response_id : null,
    reasoning: { effort: null, summary: null },
    service_tier: 'default',
    store: true,
    temperature: 1,
    text: { format: { type: 'text' } },
    tool_choice: 'auto',
    tools: [],
    top_p: 1,
    truncation: 'disabled',
    usage: done ? responsesUsage(g) : null,
    user: null,
    metadata: {},
  };
}

function outputText(g: Generation): Body {
  return { type: 'output_text', text: text(g), annotations: [], logprobs: [] };
}

function outputMessage(g: Generation, status: 'in_progress' | 'completed'): Body {
  return {
    id: `msg_${g.id}`,
    type: 'message',
    status,
    role: 'assistant',
    content: status === 'completed' ? [outputText(g)] : [],
  };
}

function responseEvents(g: Generation): SseEvent[] {
  let sequence = 0;
  const events: SseEvent[] = [];
  const push = (type: string, data: Body) => events.push({ event: type, data: JSON.stringify({ type, sequence_number: sequence++, ...data }) });
  const itemId = `msg_${g.id}`;
  push('response.created', { response: responseObject(g, 'in_progress') });
  push('response.in_progress', { response: responseObject(g, 'in_progress') });
  push('response.output_item.added', { output_index: 0, item: outputMessage(g, 'in_progress') });
  push('response.content_part.added', { item_id: itemId, output_index: 0, content_index: 0, part: { type: 'output_text', text: '', annotations: [], logprobs: [] } });
  for (const piece of pieces(g)) {
    push('response.output_text.delta', { item_id: itemId, output_index: 0, content_index: 0, delta: piece, logprobs: [] });
  }
  if (g.failed) {
    push('response.failed', { response: responseObject(g, 'done') });
    return events;
  }
  push('response.output_text.done', { item_id: itemId, output_index: 0, content_index: 0, text: text(g), logprobs: [] });
  push('response.content_part.done', { item_id: itemId, output_index: 0, content_index: 0, part: outputText(g) });
  push('response.output_item.done', { output_index: 0, item: outputMessage(g, 'completed') });
  push(g.truncated ? 'response.incomplete' : 'response.completed', { response: responseObject(g, 'done') });
  return events;
}

// ---------------------------------------------------------------------------
// The simulator
// ---------------------------------------------------------------------------

/**
 * A deterministic simulator of OpenAI-compatible providers, to test a
 * client's resilience offline: per-key rate limits with OpenAI's headers,
 * revoked and out-of-quota keys, latency, injected faults (server errors,
 * connection resets, hangs, cut streams, malformed bodies, outages) and
 * deterministic content and token usage.
 *
 * Serve it with msw (`simulatorHandlers(sim)` from `keyplex/testing/msw`,
 * needs the `msw` peer dependency) or on a real loopback port
 * ({@link ProviderSimulator.listen}), or call {@link ProviderSimulator.handle}
 * from a transport of your own.
 *
 * Endpoints, relative to a provider's base URL: `POST /chat/completions`
 * (JSON and SSE), `POST /responses` (JSON and SSE), `POST /embeddings`,
 * `POST /completions` (JSON and SSE), `GET /models`, `GET /models/{model}`,
 * `GET` and `DELETE /responses/{id}`. Each key stands for a project of its
 * own: a response is found (by `GET`, or as `previous_response_id`: else 400
 * `previous_response_not_found`) only with the key that created it.
 *
 * Checks, in order: route (404), authentication (401), quota (429
 * `insufficient_quota`), JSON body (400), faults, model (404
 * `model_not_found`), max-tokens field (400), context window (400
 * `context_length_exceeded`), rate limits (429 `rate_limit_exceeded`), then
 * latency and the answer.
 *
 * With the same `seed`, options and sequence of requests, every answer (ids,
 * text, token counts, latencies, probability faults) is the same. Random
 * choices are drawn per provider and request index, so concurrent requests
 * get the same answers whenever they arrive in the same order.
 *
 * @example
 * ```ts
 * import OpenAI from 'openai';
 * import { setupServer } from 'msw/node';
 * import { ProviderSimulator } from 'keyplex/testing';
 * import { simulatorHandlers } from 'keyplex/testing/msw';
 *
 * const sim = new ProviderSimulator({
 *   providers: [{ id: 'a', keys: [{ key: 'fake-key-1', rpm: 60 }], models: ['gpt-4.1'], faults: [{ kind: 'server_error', probability: 0.1 }] }],
 * });
 * const server = setupServer(...simulatorHandlers(sim));
 * server.listen();
 * const client = new OpenAI({ baseURL: sim.baseURL('a'), apiKey: 'fake-key-1' });
 * ```
 */
export class ProviderSimulator {
  readonly #seed: number;
  readonly #now: () => number;
  readonly #windowMs: number;
  readonly #providers = new Map<string, ProviderState>();
  #startedAt: number;

  /**
   * @throws TypeError or RangeError naming the offending option, e.g.
   *   `providers[0] ("a").keys[1].rpm must be a positive integer or Infinity (got -1)`.
   */
  constructor(options: SimulatorOptions) {
    if (!isObject(options)) throw new TypeError(`ProviderSimulator options must be an object (got ${describe(options)})`);
    const seed = options.seed ?? 1;
    if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) throw new TypeError(`seed must be a safe integer (got ${describe(seed)})`);
    const now = options.now ?? Date.now;
    if (typeof now !== 'function') throw new TypeError(`now must be a function returning milliseconds (got ${describe(now)})`);
    if (!Array.isArray(options.providers)) throw new TypeError(`providers must be an array (got ${describe(options.providers)})`);
    if (options.providers.length === 0) throw new RangeError('providers must list at least one provider');
    const windowMs = options.rateWindowMs ?? WINDOW_MS;
    if (!(typeof windowMs === 'number' && Number.isFinite(windowMs) && windowMs > 0)) {
      throw new RangeError(`rateWindowMs must be a number of milliseconds above 0 (got ${describe(windowMs)})`);
    }
    this.#windowMs = windowMs;
    this.#seed = seed;
    this.#now = now;
    options.providers.forEach((provider, i) => {
      const normalized = providerOption(provider, `providers[${i}]`);
      if (this.#providers.has(normalized.id)) throw new RangeError(`providers[${i}].id "${normalized.id}" is used by another provider`);
      this.#providers.set(normalized.id, this.#freshState(normalized));
    });
    this.#startedAt = now();
  }

  #freshState(options: NormalizedProvider): ProviderState {
    const keys = new Map<string, KeyState>();
    for (const key of options.keys) {
      keys.set(key.key, {
        options: key,
        requests: new TokenBucket(key.rpm ?? Infinity, this.#windowMs),
        tokens: new TokenBucket(key.tpm ?? Infinity, this.#windowMs),
        tally: zeroKeyTally(),
        accepted: [],
        perMinute: new Map(),
        responses: new Map(),
      });
    }
    return { options, keys, nextIndex: 0, requests: 0, successes: 0, rateLimited: 0, faults: zeroFaults(), credentials: new Set(), costUsd: 0 };
  }

  #provider(providerId: string): ProviderState {
    const provider = this.#providers.get(providerId);
    if (provider === undefined) {
      throw new RangeError(`unknown provider "${providerId}" (known: ${[...this.#providers.keys()].join(', ')})`);
    }
    return provider;
  }

  /** The ids of the simulated providers, in the order given. */
  providerIds(): string[] {
    return [...this.#providers.keys()];
  }

  /**
   * Where the msw transport serves a provider: its `baseURL` option, by
   * default `https://<id>.sim.keyplex.test/v1`. Give it to the SDK as `baseURL`.
   * @throws RangeError for an unknown provider.
   */
  baseURL(providerId: string): string {
    return this.#provider(providerId).options.baseURL;
  }

  /**
   * Serves every provider over real HTTP on the loopback interface
   * (127.0.0.1 only), under `/<id>/v1`. Port 0 (the default) picks a free
   * port. `close()` ends idle and active connections (hung requests included).
   *
   * @example
   * ```ts
   * const server = await sim.listen();
   * const client = new OpenAI({ baseURL: server.baseURL('a'), apiKey: 'fake-key-1' });
   * // ...
   * await server.close();
   * ```
   */
  listen(port = 0): Promise<SimulatorServer> {
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65_535) {
      return Promise.reject(new RangeError(`port must be an integer in 0..65535 (got ${describe(port)})`));
    }
    return listenSimulator(this, port);
  }

  /**
   * Zeroes the tallies, refills every rate-limit bucket, restarts the
   * request indexes and the fault clock: the simulator then answers as if
   * just built.
   */
  reset(): void {
    for (const [id, provider] of this.#providers) this.#providers.set(id, this.#freshState(provider.options));
    this.#startedAt = this.#now();
  }

  /** Counters by provider id: a deep copy, safe to keep. */
  tallies(): Record<string, ProviderTally> {
    const out: Record<string, ProviderTally> = {};
    for (const [id, p] of this.#providers) {
      const keys: Record<string, KeyTally> = {};
      const acceptedPerMinute: Record<string, Record<number, number>> = {};
      for (const [key, state] of p.keys) {
        keys[key] = { ...state.tally };
        acceptedPerMinute[key] = Object.fromEntries(state.perMinute);
      }
      out[id] = {
        requests: p.requests,
        successes: p.successes,
        rateLimited: p.rateLimited,
        faults: { ...p.faults },
        keys,
        credentialsSeen: [...p.credentials],
        acceptedPerMinute,
        costUsd: p.costUsd,
      };
    }
    return out;
  }

  /**
   * The highest number of requests each key had accepted (passed its rate
   * limits) within any 60 s sliding window (`(t − 60 000, t]` on the
   * simulator's clock), by provider id, then key string. Every configured
   * key is listed, 0 when unused.
   *
   * The simulator's token bucket lets a key burst its full `rpm` and then
   * refill continuously, so a key may be accepted up to about twice its
   * `rpm` within one sliding minute: compare this figure with what the
   * client under test promises, not with the simulator's own limit.
   */
  peakRequestsPerMinute(): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {};
    for (const [id, p] of this.#providers) {
      const perKey: Record<string, number> = {};
      for (const [key, state] of p.keys) {
        const times = [...state.accepted].sort((a, b) => a - b);
        let peak = 0;
        let start = 0;
        for (let end = 0; end < times.length; end++) {
          while ((times[start] ?? 0) <= (times[end] ?? 0) - this.#windowMs) start++;
          peak = Math.max(peak, end - start + 1);
        }
        perKey[key] = peak;
      }
      out[id] = perKey;
    }
    return out;
  }

  /**
   * Answers one request to provider `providerId`; transports call this.
   * The request's path is taken relative to the provider's msw base URL when
   * it starts with it, else relative to its first `/v1` segment.
   *
   * Resolves to a `Response`, or to `{ kind: 'reset' }` (drop the
   * connection) or `{ kind: 'hang' }` (hold it until the client aborts).
   * Rejects with the signal's reason when `request.signal` aborts during a
   * latency wait; a stream body errors the same way when aborted mid-stream.
   *
   * @throws RangeError for an unknown provider.
   */
  async handle(providerId: string, request: Request): Promise<SimResponse> {
    const p = this.#provider(providerId);
    const index = p.nextIndex++;
    p.requests++;
    const now = this.#now();
    const requestId = `req_${hexId(randomFor(this.#seed, providerId, 'request-id', index), 32)}`;
    const headers: Record<string, string> = { 'x-request-id': requestId };
    const url = new URL(request.url);
    const path = this.#relativePath(p, url);

    // Authentication.
    const authorization = request.headers.get('authorization');
    const token = authorization === null ? undefined : /^Bearer\s+(.+)$/i.exec(authorization.trim())?.[1] ?? authorization.trim();
    if (token !== undefined && token !== '') p.credentials.add(token);
    const key = token === undefined ? undefined : p.keys.get(token);
    if (key !== undefined) key.tally.requests++;

    const found = route(request.method, path);
    if (found === undefined) {
      return jsonResponse(404, errorJson(`Invalid URL (${request.method} ${url.pathname})`, 'invalid_request_error', null), key && !key.options.revoked ? { ...headers, ...this.#rateHeaders(key, now) } : headers);
    }
    if (token === undefined || token === '') {
      return jsonResponse(
        401,
        errorJson("You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", 'invalid_request_error', null),
        headers,
      );
    }
    if (key === undefined || key.options.revoked) {
      return jsonResponse(401, errorJson(`Incorrect API key provided: ${maskKey(token)}`, 'invalid_request_error', 'invalid_api_key'), headers);
    }
    const withLimits = () => ({ ...headers, ...this.#rateHeaders(key, now) });
    if (key.options.quotaExceeded) {
      return jsonResponse(
        429,
        errorJson('You exceeded your current quota, please check your plan and billing details.', 'insufficient_quota', 'insufficient_quota'),
        { ...withLimits(), 'x-should-retry': 'false' },
      );
    }

    // Body.
    let body: Body = {};
    if (found.method === 'POST') {
      let raw: string;
      try {
        raw = await request.text();
      } catch (error) {
        if (request.signal.aborted) throw request.signal.reason;
        throw error;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw);
      } catch {
        parsed = undefined;
      }
      if (!isObject(parsed)) {
        return jsonResponse(400, errorJson('We could not parse the JSON body of your request. The body must be a JSON object.', 'invalid_request_error', null), withLimits());
      }
      body = parsed;
    }
    const stream = found.method === 'POST' && found.endpoint !== 'embeddings' && body.stream === true;

    // Faults.
    const fault = this.#fault(p, index, now);
    if (fault !== undefined) {
      p.faults[fault.kind]++;
      switch (fault.kind) {
        case 'server_error':
          return jsonResponse(fault.status, errorJson('The server had an error while processing your request. Sorry about that!', 'server_error', null), withLimits());
        case 'outage':
          return jsonResponse(fault.status, errorJson('The service is temporarily unavailable. Please try again later.', 'server_error', 'service_unavailable'), withLimits());
        case 'reset':
          return { kind: 'reset' };
        case 'hang':
          return { kind: 'hang' };
        case 'malformed':
          return malformedJson(withLimits());
        case 'wrong_content_type':
          return new Response('upstream proxy: the service answered in an unexpected form', { status: 200, headers: { ...withLimits(), 'content-type': 'text/plain; charset=utf-8' } });
        case 'stream_cut':
          if (!stream || found.method !== 'POST') return { kind: 'reset' };
          break;
        case 'stream_stall':
        case 'stream_keepalive':
          if (!stream || found.method !== 'POST') return { kind: 'hang' };
          break;
        case 'stream_garbage':
        case 'stream_truncate':
          if (!stream || found.method !== 'POST') return malformedJson(withLimits());
          break;
        case 'response_failed':
          if (found.endpoint !== 'responses' || found.method !== 'POST') {
            return jsonResponse(500, errorJson('The server had an error while processing your request. Sorry about that!', 'server_error', null), withLimits());
          }
          break;
      }
    }

    // GET, DELETE /responses/{id}: found only with the key that created it.
    if (found.endpoint === 'response') return this.#storedResponse(p, key, found, now, withLimits);

    // GET /models, /models/{model}.
    if (found.method === 'GET') {
      const limited = this.#limit(p, key, 0, now, 'the models endpoint', withLimits);
      if (limited) return limited;
      const created = 1_700_000_000;
      const entry = (id: string) => ({ id, object: 'model', created, owned_by: providerId });
      if (found.endpoint === 'model') {
        if (!p.options.models.has(found.model)) {
          return jsonResponse(404, errorJson(`The model \`${found.model}\` does not exist or you do not have access to it.`, 'invalid_request_error', 'model_not_found', 'model'), withLimits());
        }
        p.successes++;
        key.tally.successes++;
        return jsonResponse(200, entry(found.model), withLimits());
      }
      p.successes++;
      key.tally.successes++;
      return jsonResponse(200, { object: 'list', data: [...p.options.models.keys()].map(entry) }, withLimits());
    }

    // Model, max tokens, context window.
    const endpoint = found.endpoint;
    const model = body.model;
    if (typeof model !== 'string' || model === '') {
      return jsonResponse(400, errorJson('You must provide a model parameter.', 'invalid_request_error', null, 'model'), withLimits());
    }
    const modelOptions = p.options.models.get(model);
    const failed = fault?.kind === 'response_failed';
    const faulted = (fault !== undefined && STREAM_FAULTS.has(fault.kind)) || failed;
    if (modelOptions === undefined && !faulted) {
      return jsonResponse(404, errorJson(`The model \`${model}\` does not exist or you do not have access to it.`, 'invalid_request_error', 'model_not_found', 'model'), withLimits());
    }
    let maxTokens: number | undefined;
    for (const field of MAX_TOKEN_FIELDS[endpoint]) {
      const value = body[field];
      if (value === undefined || value === null) continue;
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
        return jsonResponse(400, errorJson(`Invalid '${field}': expected an integer >= 1, got ${JSON.stringify(value)}.`, 'invalid_request_error', 'invalid_value', field), withLimits());
      }
      maxTokens = value;
      break;
    }
    const prompt = promptTokens(endpoint, body);
    const contextWindow = modelOptions?.contextWindow ?? Infinity;
    if (prompt > contextWindow && !faulted) {
      const param = endpoint === 'chat' ? 'messages' : endpoint === 'responses' ? 'input' : endpoint === 'completions' ? 'prompt' : 'input';
      return jsonResponse(
        400,
        errorJson(
          `This model's maximum context length is ${contextWindow} tokens. However, your ${param} resulted in ${prompt} tokens. Please reduce the length of the ${param}.`,
          'invalid_request_error',
          'context_length_exceeded',
          param,
        ),
        withLimits(),
      );
    }

    // A previous response this key did not create (another key is another project): not found.
    const previous = endpoint === 'responses' ? body.previous_response_id : undefined;
    if (typeof previous === 'string' && !key.responses.has(previous) && !faulted) {
      return jsonResponse(400, errorJson(`Previous response with id '${previous}' not found.`, 'invalid_request_error', 'previous_response_not_found', 'previous_response_id'), withLimits());
    }

    // Rate limits (a faulted request does not consume them).
    if (!faulted) {
      const estimate = endpoint === 'embeddings' ? prompt : prompt + (maxTokens ?? DEFAULT_TOKEN_ESTIMATE);
      const limited = this.#limit(p, key, estimate, now, model, withLimits);
      if (limited) return limited;
    }

    // The answer.
    const random = randomFor(this.#seed, providerId, 'content', index);
    const created = Math.floor(now / 1000);
    const id = hexId(randomFor(this.#seed, providerId, 'id', index), 24);
    const cachedTokens = Math.floor(prompt * p.options.cachedRatio);

    if (endpoint === 'embeddings') {
      await sleep(this.#latency(p, 'latency', index), request.signal);
      const inputs = embeddingInputs(body.input);
      const dimensions = typeof body.dimensions === 'number' && Number.isInteger(body.dimensions) && body.dimensions > 0 && body.dimensions <= 4096 ? body.dimensions : 8;
      const base64 = body.encoding_format === 'base64';
      const data = inputs.map((input, i) => {
        const vector = embeddingVector(this.#seed, model, input, dimensions);
        return { object: 'embedding', index: i, embedding: base64 ? float32Base64(vector) : vector };
      });
      this.#account(p, key, model, prompt, cachedTokens, 0);
      return jsonResponse(200, { object: 'list', data, model, usage: { prompt_tokens: prompt, total_tokens: prompt } }, withLimits());
    }

    const { words, truncated } = completionWords(random, maxTokens);
    const streamOptions = body.stream_options;
    const generation: Generation = {
      endpoint,
      body,
      model,
      stream,
      includeUsage: isObject(streamOptions) && streamOptions.include_usage === true,
      promptTokens: prompt,
      cachedTokens,
      words: failed ? words.slice(0, Math.ceil(words.length / 2)) : words,
      truncated,
      failed,
      id,
      created,
    };
    if (endpoint === 'responses') key.responses.set(`resp_${id}`, responseObject(generation, 'done'));

    if (!stream) {
      await sleep(this.#latency(p, 'latency', index), request.signal);
      if (!failed) this.#account(p, key, model, prompt, cachedTokens, words.length);
      const json = endpoint === 'chat' ? chatJson(generation) : endpoint === 'responses' ? responseObject(generation, 'done') : completionJson(generation);
      return jsonResponse(200, json, withLimits());
    }

    const events = endpoint === 'chat' ? chatEvents(generation) : endpoint === 'responses' ? responseEvents(generation) : completionEvents(generation);
    if (!faulted) this.#account(p, key, model, prompt, cachedTokens, words.length);
    const body$ = this.#eventStream(events, {
      ttftMs: this.#latency(p, 'ttft', index),
      intervalMs: p.options.tokenIntervalMs,
      fault: faulted && !failed ? (fault.kind as StreamFault) : undefined,
      signal: request.signal,
    });
    return new Response(body$, {
      status: 200,
      headers: { ...withLimits(), 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' },
    });
  }

  /** `GET` or `DELETE /responses/{id}`: the response when this key created it, else 404 as OpenAI answers. */
  #storedResponse(p: ProviderState, key: KeyState, found: Extract<Route, { endpoint: 'response' }>, now: number, withLimits: () => Record<string, string>): Response {
    const limited = this.#limit(p, key, 0, now, 'the responses endpoint', withLimits);
    if (limited) return limited;
    const stored = key.responses.get(found.id);
    if (stored === undefined) {
      return jsonResponse(404, errorJson(`No response found with id '${found.id}'.`, 'invalid_request_error', null), withLimits());
    }
    p.successes++;
    key.tally.successes++;
    if (found.method === 'GET') return jsonResponse(200, stored, withLimits());
    key.responses.delete(found.id);
    return jsonResponse(200, { id: found.id, object: 'response', deleted: true }, withLimits());
  }

  #relativePath(p: ProviderState, url: URL): string {
    const base = new URL(p.options.baseURL);
    let path: string;
    if (url.origin === base.origin && (url.pathname === base.pathname || url.pathname.startsWith(`${base.pathname}/`))) {
      path = url.pathname.slice(base.pathname.length);
    } else {
      const at = url.pathname.search(/\/v1(?:\/|$)/);
      path = at === -1 ? url.pathname : url.pathname.slice(at + 3);
    }
    return path.replace(/\/+$/, '') || '/';
  }

  #fault(p: ProviderState, index: number, now: number): NormalizedFault | undefined {
    const elapsed = now - this.#startedAt;
    return p.options.faults.find((fault, i) => {
      if (elapsed < fault.fromMs || elapsed >= fault.untilMs) return false;
      if (fault.requests !== undefined && !fault.requests.has(index)) return false;
      if (fault.probability !== undefined) return randomFor(this.#seed, p.options.id, 'fault', i, index)() < fault.probability;
      return true;
    });
  }

  #latency(p: ProviderState, which: 'latency' | 'ttft', index: number): number {
    const { medianMs, p99Ms } = which === 'latency' ? p.options.latency : p.options.ttft;
    return sampleLatency(randomFor(this.#seed, p.options.id, which, index), medianMs, p99Ms);
  }

  /** The `x-ratelimit-*` headers of a key at `now`, for each limited dimension. */
  #rateHeaders(key: KeyState, now: number): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, bucket] of [
      ['requests', key.requests],
      ['tokens', key.tokens],
    ] as const) {
      if (!bucket.limited) continue;
      out[`x-ratelimit-limit-${name}`] = String(bucket.capacity);
      out[`x-ratelimit-remaining-${name}`] = String(bucket.remaining(now));
      out[`x-ratelimit-reset-${name}`] = formatDuration(ceilMs(bucket.resetMs(now)));
    }
    return out;
  }

  /** Checks the key's buckets; a 429 when over, else takes one request and `tokens` tokens and records the acceptance. */
  #limit(p: ProviderState, key: KeyState, tokens: number, now: number, model: string, withLimits: () => Record<string, string>): Response | undefined {
    const over = (type: 'requests' | 'tokens', bucket: TokenBucket, requested: number, waitMs: number): Response => {
      p.rateLimited++;
      key.tally.rateLimited++;
      const used = Math.max(0, bucket.capacity - bucket.remaining(now));
      const label = type === 'requests' ? 'requests per min (RPM)' : 'tokens per min (TPM)';
      if (!Number.isFinite(waitMs)) {
        return jsonResponse(
          429,
          errorJson(
            `Request too large for ${model} on ${label}: Limit ${bucket.capacity}, Requested ${requested}. The input or output tokens must be reduced in order to run successfully.`,
            type,
            'rate_limit_exceeded',
          ),
          { ...withLimits(), 'x-should-retry': 'false' },
        );
      }
      const ms = Math.max(1, ceilMs(waitMs));
      return jsonResponse(
        429,
        errorJson(
          `Rate limit reached for ${model} in organization org-keyplexsim on ${label}: Limit ${bucket.capacity}, Used ${used}, Requested ${requested}. Please try again in ${formatDuration(ms)}. Visit https://platform.openai.com/account/rate-limits to learn more.`,
          type,
          'rate_limit_exceeded',
        ),
        { ...withLimits(), 'retry-after-ms': String(ms), 'retry-after': String(Math.ceil(ms / 1000)) },
      );
    };
    const requestWait = key.requests.waitMs(1, now);
    if (requestWait > 0) return over('requests', key.requests, 1, requestWait);
    const tokenWait = key.tokens.waitMs(tokens, now);
    if (tokenWait > 0) return over('tokens', key.tokens, tokens, tokenWait);
    key.requests.take(1, now);
    key.tokens.take(tokens, now);
    key.accepted.push(now);
    const minute = Math.floor(now / this.#windowMs) * this.#windowMs;
    key.perMinute.set(minute, (key.perMinute.get(minute) ?? 0) + 1);
    return undefined;
  }

  #account(p: ProviderState, key: KeyState, model: string, input: number, cached: number, output: number): void {
    p.successes++;
    const t = key.tally;
    t.successes++;
    t.inputTokens += input;
    t.outputTokens += output;
    t.tokens += input + output;
    const cost = p.options.prices.cost(model, { inputTokens: input, outputTokens: output, cachedInputTokens: cached, cacheWriteTokens: 0, reasoningTokens: 0, totalTokens: input + output }) ?? 0;
    t.costUsd += cost;
    p.costUsd += cost;
  }

  #eventStream(events: SseEvent[], o: { ttftMs: number; intervalMs: number; fault: StreamFault | undefined; signal: AbortSignal }): ReadableStream<Uint8Array> {
    const encoder = new TextEncoder();
    const cancelled = new AbortController();
    const signal = AbortSignal.any([o.signal, cancelled.signal]);
    const fault = o.fault;
    // Where the fault strikes: after the first event for stalls and keep-alives, half-way for the others.
    const faultAt = fault === undefined ? Infinity : fault === 'stream_stall' || fault === 'stream_keepalive' ? 1 : Math.floor(events.length / 2);
    let sent = 0;
    let garbageSent = false;
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        const faulting = sent >= faultAt && !(fault === 'stream_garbage' && garbageSent);
        const wait = faulting && fault === 'stream_keepalive' ? KEEPALIVE_MS : sent === 0 ? o.ttftMs : o.intervalMs;
        try {
          // A stall holds no timer: it waits for the client to go away.
          if (faulting && fault === 'stream_stall') await untilAborted(signal);
          else await sleep(wait, signal);
        } catch (reason) {
          if (!cancelled.signal.aborted) controller.error(reason);
          return;
        }
        if (faulting) {
          switch (fault) {
            case 'stream_cut':
              return controller.error(new Error('keyplex simulator: stream cut (injected stream_cut fault)'));
            case 'stream_truncate':
              return controller.close();
            case 'stream_keepalive':
              return controller.enqueue(encoder.encode(': keep-alive\n\n'));
            case 'stream_garbage':
              garbageSent = true;
              return controller.enqueue(encoder.encode('data: {"id": "chatcmpl-garbage", "choices": [{"delta": {"content": "\n\n'));
            default:
              return;
          }
        }
        const event = events[sent];
        if (event === undefined) {
          controller.close();
          return;
        }
        sent++;
        controller.enqueue(encoder.encode(`${event.event === undefined ? '' : `event: ${event.event}\n`}data: ${event.data}\n\n`));
      },
      cancel() {
        cancelled.abort();
      },
    });
  }
}
