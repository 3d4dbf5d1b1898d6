/**
 * Attribute and label values shared by the OpenTelemetry and Prometheus
 * adapters: the GenAI operation of a path, the GenAI provider name and server
 * of a provider, model names bounded for metrics, and durations as recorded.
 * No optional peer is imported here.
 */

import { withoutQuery } from '../request';

/**
 * A duration of an event (ms) as histogram seconds: never below 0. Event
 * durations are differences of `Date.now()`, which a clock stepped back (NTP,
 * a resumed VM) makes negative: Prometheus would read the falling `_sum` as a
 * counter reset, and the OpenTelemetry SDK drops the measurement.
 */
export function secondsOf(ms: number): number {
  return ms > 0 ? ms / 1000 : 0;
}

/** The GenAI semantic conventions' `gen_ai.operation.name` of an API path (relative to the base, e.g. `/chat/completions`). */
export function operationName(path: string): string {
  const bare = withoutQuery(path);
  if (bare === '/chat/completions' || bare === '/responses') return 'chat';
  if (bare === '/completions') return 'text_completion';
  if (bare === '/embeddings') return 'embeddings';
  // Other endpoints (images, audio, files…): their first path segment when it is an API's, else _OTHER (a
  // gateway passing its users' paths on must not make a metric attribute value of each).
  const segment = /^\/([a-z_]{1,32})(?:\/|$)/.exec(bare)?.[1];
  return segment !== undefined && API_SEGMENTS.has(segment) ? segment : '_OTHER';
}

/** First path segments of the OpenAI API's (and compatible providers') other endpoints: a fixed set. */
const API_SEGMENTS: ReadonlySet<string> = new Set([
  'audio',
  'images',
  'videos',
  'files',
  'uploads',
  'batches',
  'fine_tuning',
  'models',
  'moderations',
  'assistants',
  'threads',
  'vector_stores',
  'realtime',
  'evals',
  'containers',
  'conversations',
  'rerank',
]);

/** Well-known API hosts and their `gen_ai.provider.name` (the conventions' list of values). */
const PROVIDER_HOSTS: readonly [RegExp, string][] = [
  [/(^|\.)api\.openai\.com$/, 'openai'],
  [/\.openai\.azure\.com$/, 'azure.ai.openai'],
  [/(^|\.)api\.anthropic\.com$/, 'anthropic'],
  [/(^|\.)generativelanguage\.googleapis\.com$/, 'gcp.gemini'],
  [/(^|\.)aiplatform\.googleapis\.com$/, 'gcp.vertex_ai'],
  [/(^|\.)api\.deepseek\.com$/, 'deepseek'],
  [/(^|\.)api\.groq\.com$/, 'groq'],
  [/(^|\.)api\.mistral\.ai$/, 'mistral_ai'],
  [/(^|\.)api\.x\.ai$/, 'x_ai'],
  [/(^|\.)api\.perplexity\.ai$/, 'perplexity'],
  [/(^|\.)api\.moonshot\.(ai|cn)$/, 'moonshot_ai'],
  [/(^|\.)api\.cohere\.(ai|com)$/, 'cohere'],
];

/** Where a provider is reached, and what the GenAI conventions call it. */
export interface ProviderInfo {
  /** `gen_ai.provider.name`: the well-known name of its host, else the override, else keyplex's provider id. */
  name: string;
  /** `server.address`. */
  address: string | undefined;
  /** `server.port` (the scheme's default when the URL names none). */
  port: number | undefined;
}

/** The {@link ProviderInfo} of every provider of a manager, by keyplex provider id. */
export function providerInfo(
  providers: readonly { id: string; baseURL: string }[],
  overrides: Readonly<Record<string, string>> = {},
): Map<string, ProviderInfo> {
  const out = new Map<string, ProviderInfo>();
  for (const { id, baseURL } of providers) {
    let address: string | undefined;
    let port: number | undefined;
    try {
      const url = new URL(baseURL);
      address = url.hostname;
      port = url.port !== '' ? Number(url.port) : url.protocol === 'http:' ? 80 : 443;
    } catch {
      // A base URL the manager accepted always parses; nothing to say otherwise.
    }
    const known = address === undefined ? undefined : PROVIDER_HOSTS.find(([host]) => host.test(address))?.[1];
    out.set(id, { name: overrides[id] ?? known ?? id, address, port });
  }
  return out;
}

/** Longest model name kept as a label value; longer ones read as `other`. */
const MAX_MODEL_LABEL_LENGTH = 128;

/**
 * Model names as metric label values, with a bounded number of distinct
 * values: a known model (configured, an alias, in the catalogue or the price
 * table) is itself; any other name is itself only while fewer than `max`
 * such names were seen, and `other` after that. A million distinct model
 * names asked for make at most `known + max + 1` values.
 */
export class ModelLabels {
  readonly #known: ReadonlySet<string>;
  readonly #admitted = new Set<string>();
  readonly #max: number;
  readonly #other: string;

  constructor(known: Iterable<string>, max: number, other: string) {
    this.#known = new Set(known);
    this.#max = max;
    this.#other = other;
  }

  /** The label value of a model name; undefined when the request named none. */
  label(model: string | undefined): string | undefined {
    if (model === undefined) return undefined;
    if (this.#known.has(model) || this.#admitted.has(model)) return model;
    if (this.#admitted.size < this.#max && model.length <= MAX_MODEL_LABEL_LENGTH) {
      this.#admitted.add(model);
      return model;
    }
    return this.#other;
  }
}

/** What {@link knownModels} reads of `new KeyManager(options)`'s options (`KeyManagerOptions` fits). */
export interface ModelSource {
  // `baseURL`, `keys`, `strategy` and `perModel` are not read, but listed: TypeScript refuses an object that has no
  // property in common with a type whose properties are all optional, so without them a provider that lists no
  // `models`, or routing options with only a `strategy`, would not compile here, written as for `new KeyManager()`.
  providers: Readonly<
    Record<string, { baseURL?: unknown; keys?: unknown; models?: readonly string[] | Readonly<Record<string, unknown>> | undefined }>
  >;
  routing?:
    | {
        strategy?: unknown;
        perModel?: unknown;
        aliases?: Readonly<Record<string, readonly string[]>> | undefined;
        fallbacks?: Readonly<Record<string, readonly string[]>> | undefined;
        contextFallbacks?: Readonly<Record<string, string>> | undefined;
        auto?: { models: readonly string[] } | undefined;
      }
    | undefined;
}

/**
 * Every public model name a manager's options know: the providers' models,
 * aliases and their members, fallback chains, context fallbacks, `auto` and
 * its models. Give it to the adapters' `models` option so that these names
 * are always their own metric label.
 */
export function knownModels(options: ModelSource): string[] {
  const names = new Set<string>();
  for (const provider of Object.values(options.providers)) {
    const models = provider.models;
    if (Array.isArray(models)) for (const name of models) names.add(name);
    else if (models !== undefined) for (const name of Object.keys(models)) names.add(name);
  }
  const routing = options.routing;
  for (const group of [routing?.aliases, routing?.fallbacks]) {
    for (const [name, members] of Object.entries(group ?? {})) {
      names.add(name);
      for (const member of members) names.add(member);
    }
  }
  for (const [name, target] of Object.entries(routing?.contextFallbacks ?? {})) names.add(name).add(target);
  if (routing?.auto) {
    names.add('auto');
    for (const name of routing.auto.models) names.add(name);
  }
  return [...names];
}
