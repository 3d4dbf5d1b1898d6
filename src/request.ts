/**
 * Step 1 of the pipeline: what the SDK asked for, read once from the fetch
 * call. Nothing here is sent anywhere.
 */
import { UnknownBaseUrlError } from './errors';
import { decodeRequestOptions, OPTIONS_HEADER, type KeyplexRequestOptions } from './request-options';

/**
 * The base URL `wrap()` gives the SDK. The `.invalid` top-level domain never
 * resolves, so a request that somehow bypassed keyplex could not reach anyone.
 */
export const KEYPLEX_BASE_URL = 'https://keyplex.invalid/v1';

/** What a fetch body may be. */
export type Body = NonNullable<RequestInit['body']>;

/**
 * Headers never forwarded as the SDK (or a hook) set them: the key's, the
 * key's organization and project, keyplex's options, and the framing and
 * hop-by-hop ones, which are the transport's to set (fetch refuses to send
 * `keep-alive`, `transfer-encoding`, `expect`, `upgrade`: an attempt would
 * fail before it left, as a connection failure on every key).
 */
const DROPPED_HEADERS = new Set([
  'authorization',
  'api-key',
  OPTIONS_HEADER,
  'openai-organization',
  'openai-project',
  'content-length',
  'host',
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'expect',
]);

/** Whether a request header (lower-case name) is passed on upstream. */
export function forwarded(name: string): boolean {
  return !DROPPED_HEADERS.has(name);
}

/**
 * The endpoints that answer a prompt, always with JSON (or SSE when
 * streamed): chat and legacy completions, responses, embeddings,
 * moderations. The others create, change or fetch something (files,
 * batches, vector stores, jobs) or answer other than JSON (speech).
 */
const ANSWER_PATHS = new Set(['/chat/completions', '/completions', '/responses', '/embeddings', '/moderations']);

/** Whether the request is a JSON request to an endpoint that answers a prompt ({@link ANSWER_PATHS}). */
export function asksAnswer(request: InterceptedRequest): boolean {
  return request.isJson && ANSWER_PATHS.has(withoutQuery(request.path));
}

/**
 * Paths whose replies are no new answer, though they may carry a usage: they
 * read, change or cancel a stored chat completion (`/chat/completions/{id}`),
 * a response (`/responses/{id}…`) or a batch (`/batches…`, whose object
 * counts the usage of all its requests, billed apart), or count tokens for
 * free (`/responses/input_tokens`). `/responses/compact` is a model call.
 */
const NOT_BILLED = /^\/(?:chat\/completions\/|responses\/(?!compact$)|batches(?:\/|$))/;

/** A path relative to the API base without its query (`/responses?x=1` → `/responses`). */
export function withoutQuery(path: string): string {
  const query = path.indexOf('?');
  return query === -1 ? path : path.slice(0, query);
}

/** Paths whose streamed replies can be asked for usage with `stream_options`. */
const STREAM_USAGE_PATHS = new Set(['/chat/completions', '/completions']);

export interface InterceptedRequest {
  method: string;
  /** Path relative to the API base, with the query, e.g. `/chat/completions`. */
  path: string;
  /** The SDK's headers less the dropped ones, by lower-case name. */
  headers: Record<string, string>;
  /** The body as given, for bodies that are not JSON. */
  rawBody: Body | null | undefined;
  /** Whether the body is a JSON object (a string: `rawBody`). */
  isJson: boolean;
  /**
   * The parsed JSON body, when the body is a JSON object, until routing,
   * the token estimate and the cache key have read it ({@link releaseJson},
   * before the request waits for a slot, a key or its upstream): a request
   * waiting holds its text once, not twice. Read it with {@link requestJson},
   * which parses the text again (and keeps nothing) once it was let go.
   */
  json: Record<string, unknown> | undefined;
  /** Whether the JSON body has a `stream_options` member. */
  hasStreamOptions: boolean;
  /** The public model the request names (JSON `model`, or a multipart `model` field). */
  model: string | undefined;
  stream: boolean;
  /** Whether the JSON body asks `store: true` (a chat completion kept in the key's project: object affinity). */
  stored: boolean;
  /** Whether this is a `POST /responses` whose JSON body asks `background: true` (its cost comes later: pipeline/background.ts). */
  background: boolean;
  /**
   * Whether the reply is a new answer the provider bills, so that its usage
   * is spend (and a reply without usage spends the request's estimate): a
   * POST, but none of {@link NOT_BILLED}. A GET or DELETE never is: a
   * response, stored completion or batch read again was billed once, when
   * it was made.
   */
  bills: boolean;
  /** Whether the caller asked for `stream_options.include_usage` itself. */
  callerAskedUsage: boolean;
  /** Whether `stream_options.include_usage` applies to this path. */
  streamUsagePath: boolean;
  /** False for one-shot bodies (streams): such a request gets a single attempt. */
  replayable: boolean;
  options: KeyplexRequestOptions;
  signal: AbortSignal | undefined;
}

/** The part of `full` after `base` (KEYPLEX_BASE_URL by default), when it starts with it (and a path or query follows). */
function relativeToBase(full: string, base = KEYPLEX_BASE_URL): string | undefined {
  if (!full.startsWith(base)) return undefined;
  const rest = full.slice(base.length);
  return rest === '' || rest.startsWith('/') || rest.startsWith('?') ? rest : undefined;
}

/** A version segment (`/v1`, `/v1beta`, `/v2`) left in a path relative to the API base: the base is longer than keyplex took it for. */
const VERSION_SEGMENT = /\/v\d+(?:alpha|beta)?\d*(?=\/|$)/;

/** What `manager.fetch` knows of the providers: their base URLs. */
export interface KnownBases {
  readonly baseURL: string;
}

/**
 * The path relative to the API base: after KEYPLEX_BASE_URL, else after the
 * longest configured provider's base URL it starts with (`https://openrouter.ai/api/v1`
 * given to another library), then after a leading `/v1`.
 * @throws UnknownBaseUrlError when no such base matched and a version segment is left (`/api/v1/…`): sent on, it would reach no endpoint.
 */
function relativePath(url: URL, bases: readonly KnownBases[]): string {
  const rest = relativeToBase(url.href);
  if (rest !== undefined) return rest;
  let known: string | undefined;
  for (const { baseURL } of bases) {
    if (baseURL.length > (known?.length ?? 0) && relativeToBase(url.href, baseURL) !== undefined) known = baseURL;
  }
  const full = known === undefined ? url.pathname : new URL(known).pathname.replace(/\/+$/, '');
  const path = url.pathname.slice(known === undefined ? 0 : full.length).replace(/^\/v1(?=\/|$)/, '');
  if (known === undefined && VERSION_SEGMENT.test(path)) throw new UnknownBaseUrlError(url.origin + url.pathname, KEYPLEX_BASE_URL);
  return path + url.search;
}

function isOneShot(body: unknown): boolean {
  return (
    body instanceof ReadableStream ||
    (typeof body === 'object' && body !== null && Symbol.asyncIterator in body && !(body instanceof FormData))
  );
}

/** The caller's headers as read: those forwarded, and the keyplex options header. */
interface ReadHeaders {
  headers: Record<string, string>;
  options: string | null;
}

/**
 * The headers as a plain object by lower-case name, less the dropped ones,
 * and the keyplex options header. One pass; plain objects are much cheaper
 * than `Headers` on the hot path.
 */
function readHeaders(given: RequestInit['headers'] | Headers | undefined): ReadHeaders {
  const read: ReadHeaders = { headers: {}, options: null };
  // A Headers object (what the SDK gives) has its names lower-cased, each once (values already joined).
  // Any iteration sorts a copy first; a for-of loop measured no cheaper than forEach here (2026-12-01).
  if (given instanceof Headers) given.forEach(takeLower, read);
  else if (Array.isArray(given)) for (const [name, value] of given as [string, string][]) take(read, String(value), name);
  else if (given) for (const [name, value] of Object.entries(given)) if (value !== undefined && value !== null) take(read, String(value), name);
  return read;
}

/** One header of a Headers object (`this`: the headers read so far): no closure made per request. */
function takeLower(this: ReadHeaders, value: string, name: string): void {
  if (name === OPTIONS_HEADER) this.options = value;
  else if (!DROPPED_HEADERS.has(name)) this.headers[name] = value;
}

/** One header of a list or record, its name in any case and possibly repeated. */
function take(read: ReadHeaders, value: string, rawName: string): void {
  const name = rawName.toLowerCase();
  const headers = read.headers;
  if (name === OPTIONS_HEADER) read.options = value;
  else if (!DROPPED_HEADERS.has(name)) headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
}

/** A URL that names no server (`data:`, `blob:`): its contents are in it, or in this process. */
const LOCAL_URL = /^(?:data|blob):/i;

/**
 * Whether a fetch call is for a `data:` or `blob:` URL: no provider's request,
 * but a local read (the openai SDK fetches `data:,` once per `fetch` before
 * its first multipart upload, to learn its `Response` class). Such a call is
 * fetched as it is, not routed to a provider with a key.
 */
export function isLocalFetch(input: string | URL | Request): boolean {
  if (typeof input === 'string') return !input.startsWith(KEYPLEX_BASE_URL) && LOCAL_URL.test(input);
  return LOCAL_URL.test(input instanceof URL ? input.protocol : input.url);
}

/**
 * The fetch options of a call given as a `Request` with a JSON body (and no
 * body in `init`), its body read as text: routing needs its `model`, and text
 * can be sent again on another key (the `Request`'s stream could be sent
 * once). Undefined for other calls, which are intercepted as given.
 */
export async function jsonRequestInit(input: Request, init: RequestInit | undefined): Promise<RequestInit | undefined> {
  if ((init?.body !== undefined && init.body !== null) || input.body === null || input.bodyUsed) return undefined;
  const type = new Headers(init?.headers ?? input.headers).get('content-type') ?? '';
  if (!type.includes('json')) return undefined;
  return { ...init, body: await input.text() };
}

/** Reads a fetch call into an {@link InterceptedRequest}. */
export function intercept(input: string | URL | Request, init: RequestInit | undefined, bases: readonly KnownBases[] = []): InterceptedRequest {
  let url: URL | undefined;
  let method: string;
  let body: Body | null | undefined;
  let signal: AbortSignal | undefined;
  let given: RequestInit['headers'] | Headers | undefined;
  if (input instanceof Request) {
    url = new URL(input.url);
    method = (init?.method ?? input.method).toUpperCase();
    given = init?.headers ?? input.headers;
    body = init?.body ?? input.body;
    signal = init?.signal ?? input.signal ?? undefined;
  } else {
    // What wrap() gives the SDK needs no URL parsing.
    url = typeof input === 'string' && input.startsWith(KEYPLEX_BASE_URL) ? undefined : new URL(input);
    method = (init?.method ?? 'GET').toUpperCase();
    given = init?.headers;
    body = init?.body;
    signal = init?.signal ?? undefined;
  }
  const read = readHeaders(given);
  const headers = read.headers;
  const options = decodeRequestOptions(read.options);
  const path = url === undefined ? relativeToBase(input as string) ?? relativePath(new URL(input as string), bases) : relativePath(url, bases);
  const pathOnly = withoutQuery(path);

  let json: Record<string, unknown> | undefined;
  let model: string | undefined;
  if (typeof body === 'string' && body.length > 0 && body.charCodeAt(0) === 123 /* { */) {
    try {
      const parsed: unknown = JSON.parse(body);
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
        json = parsed as Record<string, unknown>;
        if (typeof json.model === 'string') model = json.model;
      }
    } catch {
      // Not JSON after all: forwarded untouched.
    }
  } else if (body instanceof FormData) {
    const field = body.get('model');
    if (typeof field === 'string') model = field;
  }
  const stream = json?.stream === true;
  const streamOptions = json?.stream_options;
  const callerAskedUsage =
    typeof streamOptions === 'object' && streamOptions !== null && (streamOptions as { include_usage?: unknown }).include_usage === true;

  return {
    method,
    path,
    headers,
    rawBody: body,
    isJson: json !== undefined,
    json,
    hasStreamOptions: streamOptions !== undefined,
    model,
    stream,
    stored: json?.store === true,
    background: json?.background === true && method === 'POST' && pathOnly === '/responses',
    bills: method === 'POST' && !NOT_BILLED.test(pathOnly),
    callerAskedUsage,
    streamUsagePath: STREAM_USAGE_PATHS.has(pathOnly),
    replayable: typeof body === 'string' || !isOneShot(body),
    options,
    signal,
  };
}

/**
 * The body to send to a deployment: the model renamed to its upstream name,
 * and usage asked for on streams when `injectUsage`. Returns the original body
 * when nothing changes.
 */
export function bodyFor(request: InterceptedRequest, upstreamModel: string | undefined, injectUsage: boolean): Body | null | undefined {
  if (request.isJson) {
    const rename = upstreamModel !== undefined && upstreamModel !== request.model;
    if (!rename && !injectUsage) return request.rawBody;
    // Usage asked for on a body without `stream_options`: the field spliced in before its closing brace, the
    // caller's text kept as it is (re-serialising it cost as much as its length on every attempt).
    if (!rename && !request.hasStreamOptions) return withUsage(request.rawBody as string);
    const json = requestJson(request)!;
    const copy: Record<string, unknown> = { ...json };
    if (rename) copy.model = upstreamModel;
    if (injectUsage) {
      const given = typeof json.stream_options === 'object' && json.stream_options !== null ? json.stream_options : {};
      copy.stream_options = { ...given, include_usage: true };
    }
    return JSON.stringify(copy);
  }
  const raw = request.rawBody;
  if (raw instanceof FormData && upstreamModel !== undefined && upstreamModel !== request.model) {
    const copy = new FormData();
    for (const [name, value] of raw) copy.append(name, name === 'model' ? upstreamModel : value);
    return copy;
  }
  return raw;
}

/** The request's parsed JSON body (parsed again, and not kept, once it was let go), or undefined when the body is not a JSON object. */
export function requestJson(request: InterceptedRequest): Record<string, unknown> | undefined {
  if (!request.isJson) return undefined;
  return request.json ?? (JSON.parse(request.rawBody as string) as Record<string, unknown>);
}

/** Lets the parsed body go (routing, the estimate and the cache key have read it); {@link requestJson} parses it again if needed. */
export function releaseJson(request: InterceptedRequest): void {
  request.json = undefined;
}

/** The member a streamed request gets to be told its usage. */
const USAGE_MEMBER = ',"stream_options":{"include_usage":true}';

/** A JSON object's text with {@link USAGE_MEMBER} before its closing brace (the object has members: it asks to stream). */
function withUsage(text: string): string {
  const end = text.lastIndexOf('}');
  return text.slice(0, end) + USAGE_MEMBER + text.slice(end);
}
