/**
 * msw stand-ins for OpenAI-compatible providers, recording every call so a
 * test can assert which key went where.
 */
import { http, HttpResponse } from 'msw';
import { setupServer } from 'msw/node';
import OpenAI from 'openai';
import { KeyManager, type CircuitBreakerScopeOptions } from '../../src/index';
import { fakeKey } from './fake-keys';
import { onLaterTurn } from './time';

export interface UpstreamCall {
  origin: string;
  /** Path relative to the provider base, e.g. `/chat/completions`. */
  path: string;
  method: string;
  /** The bearer token sent. */
  key: string;
  headers: Headers;
  /** Parsed JSON body, when JSON. */
  body: Record<string, unknown> | undefined;
}

export type UpstreamReply = Response | 'reset' | Promise<Response | 'reset'>;
export type UpstreamHandler = (call: UpstreamCall, index: number) => UpstreamReply;

export const server = setupServer();
export const calls: UpstreamCall[] = [];

/** Serves `baseURL/*` with `handler`; returns the calls made to that provider. */
export function provider(baseURL: string, handler: UpstreamHandler): UpstreamCall[] {
  const mine: UpstreamCall[] = [];
  server.use(
    http.all(`${baseURL}/*`, async ({ request }) => {
      const call = await callOf(request, baseURL);
      calls.push(call);
      mine.push(call);
      const reply = await handler(call, mine.length - 1);
      return reply === 'reset' ? HttpResponse.error() : reply;
    }),
  );
  return mine;
}

/**
 * What {@link provider} serves, as keyplex's `fetch` option instead of msw:
 * each request goes to the handler of the base URL it starts with and is
 * answered on a later turn of the real event loop, as a socket would
 * (`onLaterTurn`); `'reset'` rejects as a failed connection. For tests that
 * send hundreds of requests and do not pin the transport: msw's
 * interception was most of their time. Returns the `fetch` and, per base
 * URL, the calls it got (also recorded in {@link calls}).
 */
export function upstreamFetch(handlers: Record<string, UpstreamHandler>): { fetch: typeof globalThis.fetch; seen: Record<string, UpstreamCall[]> } {
  const seen: Record<string, UpstreamCall[]> = Object.fromEntries(Object.keys(handlers).map((baseURL) => [baseURL, []]));
  const fetch = onLaterTurn(async (input, init) => {
    const request = new Request(input, init);
    const baseURL = Object.keys(handlers).find((base) => request.url.startsWith(`${base}/`));
    if (baseURL === undefined) throw new Error(`upstreamFetch: no handler for ${request.url}`);
    const call = await callOf(request, baseURL);
    calls.push(call);
    seen[baseURL]!.push(call);
    const reply = await handlers[baseURL]!(call, seen[baseURL]!.length - 1);
    if (reply === 'reset') throw new TypeError('fetch failed');
    return reply;
  });
  return { fetch, seen };
}

/** The call `request` makes to the provider at `baseURL`, as recorded. */
async function callOf(request: Request, baseURL: string): Promise<UpstreamCall> {
  const url = new URL(request.url);
  const base = new URL(baseURL);
  const text = request.method === 'GET' ? '' : await request.text();
  let body: Record<string, unknown> | undefined;
  try {
    body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
  } catch {
    body = undefined;
  }
  return {
    origin: url.origin,
    path: url.pathname.slice(base.pathname.length) + url.search,
    method: request.method,
    key: (request.headers.get('authorization') ?? '').replace(/^Bearer /, ''),
    headers: request.headers,
    body,
  };
}

export interface UsageCounts {
  prompt?: number;
  completion?: number;
  cached?: number;
  reasoning?: number;
}

function chatUsage(u: UsageCounts) {
  const prompt = u.prompt ?? 10;
  const completion = u.completion ?? 5;
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: u.cached ?? 0 },
    completion_tokens_details: { reasoning_tokens: u.reasoning ?? 0 },
  };
}

/** A chat completion reply. */
export function chatReply(model: string, content = 'hello', usage: UsageCounts = {}, init: ResponseInit = {}): Response {
  return HttpResponse.json(
    {
      id: 'chatcmpl-test',
      object: 'chat.completion',
      created: 1_700_000_000,
      model,
      choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, finish_reason: 'stop', logprobs: null }],
      usage: chatUsage(usage),
    },
    init,
  );
}

/** An OpenAI-style error reply. */
export function errorReply(status: number, code: string | null = null, headers: Record<string, string> = {}, message = 'upstream error'): Response {
  return HttpResponse.json({ error: { message, type: code ?? 'error', code, param: null } }, { status, headers });
}

/** The SSE events of a streamed chat completion; the usage chunk only when `withUsage`. */
export function chatChunks(model: string, words: string[], withUsage: boolean, usage: UsageCounts = {}): string[] {
  const base = { id: 'chatcmpl-stream', object: 'chat.completion.chunk', created: 1_700_000_000, model };
  const events = words.map((word, i) =>
    JSON.stringify({ ...base, choices: [{ index: 0, delta: i === 0 ? { role: 'assistant', content: word } : { content: word }, finish_reason: null }], ...(withUsage ? { usage: null } : {}) }),
  );
  events.push(JSON.stringify({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], ...(withUsage ? { usage: null } : {}) }));
  if (withUsage) events.push(JSON.stringify({ ...base, choices: [], usage: chatUsage(usage) }));
  return events;
}

/**
 * A streamed reply of `events` (`data:` payloads) then `[DONE]`. With
 * `failAfter`, the body errors after that many events instead of finishing.
 */
export function sseReply(events: string[], options: { failAfter?: number } = {}): Response {
  const encoder = new TextEncoder();
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (options.failAfter !== undefined && sent >= options.failAfter) {
        controller.error(new Error('upstream stream cut'));
        return;
      }
      if (sent < events.length) {
        controller.enqueue(encoder.encode(`data: ${events[sent]}\n\n`));
        sent++;
        return;
      }
      controller.enqueue(encoder.encode('data: [DONE]\n\n'));
      controller.close();
    },
  });
  // Chunked framing: without it msw 3 ends a body that errors mid-way as if it had finished.
  return new HttpResponse(body, { headers: { 'content-type': 'text/event-stream', 'transfer-encoding': 'chunked' } });
}

/** Whether the request asked for stream usage. */
export function askedUsage(call: UpstreamCall): boolean {
  const options = call.body?.stream_options as { include_usage?: boolean } | undefined;
  return options?.include_usage === true;
}

// ---------------------------------------------------------------------------
// Responses API, embeddings, legacy completions, named SSE events.
// ---------------------------------------------------------------------------

/** One server-sent event with an `event:` line, as the Responses API streams them. */
export interface NamedEvent {
  event: string;
  data: Record<string, unknown>;
}

/**
 * A streamed reply of named events (`event: <name>` + `data: <json>`), with
 * no `[DONE]` (the Responses API ends with `response.completed`). With
 * `failAfter: 0` the connection fails before the headers. (A later
 * `failAfter` reads as a clean end under msw, as with `sseReply`: use
 * `cutSseReply` for a cut after data.)
 */
export function namedSseReply(events: NamedEvent[], options: { failAfter?: number } = {}): Response {
  const encoder = new TextEncoder();
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (options.failAfter !== undefined && sent >= options.failAfter) {
        controller.error(new Error('upstream stream cut'));
        return;
      }
      const next = events[sent];
      if (next === undefined) {
        controller.close();
        return;
      }
      controller.enqueue(encoder.encode(`event: ${next.event}\ndata: ${JSON.stringify(next.data)}\n\n`));
      sent++;
    },
  });
  return new HttpResponse(body, { headers: { 'content-type': 'text/event-stream; charset=utf-8', 'transfer-encoding': 'chunked' } });
}

/** A Responses API `usage` object. */
export function responsesUsage(u: UsageCounts = {}) {
  const input = u.prompt ?? 10;
  const output = u.completion ?? 5;
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: u.cached ?? 0 },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: u.reasoning ?? 0 },
    total_tokens: input + output,
  };
}

/** A Responses API `response` object. */
export function responseObject(model: string, text: string, status: 'in_progress' | 'completed', usage: UsageCounts | null) {
  return {
    id: 'resp_test',
    object: 'response',
    created_at: 1_700_000_000,
    status,
    model,
    output:
      status === 'completed'
        ? [{ id: 'msg_test', type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text, annotations: [] }] }]
        : [],
    parallel_tool_calls: true,
    tool_choice: 'auto',
    tools: [],
    error: null,
    incomplete_details: null,
    instructions: null,
    metadata: {},
    temperature: 1,
    top_p: 1,
    usage: usage === null ? null : responsesUsage(usage),
  };
}

/** The statuses of a background response (`background: true`). */
export type BackgroundStatus = 'queued' | 'in_progress' | 'completed' | 'incomplete' | 'failed' | 'cancelled';

/** A background response object of `id` in `status`, with `usage` (none while queued or in progress, unless given). */
export function backgroundResponse(model: string, id: string, status: BackgroundStatus, usage: UsageCounts | null = status === 'queued' || status === 'in_progress' ? null : {}) {
  const object = responseObject(model, status === 'completed' ? 'the report' : '', status === 'completed' ? 'completed' : 'in_progress', usage);
  return { ...object, id, status, background: true };
}

/** A Responses API JSON reply. */
export function responsesReply(model: string, text = 'hello', usage: UsageCounts = {}): Response {
  return HttpResponse.json(responseObject(model, text, 'completed', usage));
}

/** The named events of a streamed Responses API reply, usage in `response.completed`. */
export function responsesEvents(model: string, words: string[], usage: UsageCounts = {}): NamedEvent[] {
  let sequence = 0;
  const events: NamedEvent[] = [
    { event: 'response.created', data: { type: 'response.created', sequence_number: sequence++, response: responseObject(model, '', 'in_progress', null) } },
  ];
  for (const word of words) {
    events.push({
      event: 'response.output_text.delta',
      data: { type: 'response.output_text.delta', sequence_number: sequence++, item_id: 'msg_test', output_index: 0, content_index: 0, delta: word, logprobs: [] },
    });
  }
  events.push({
    event: 'response.completed',
    data: { type: 'response.completed', sequence_number: sequence++, response: responseObject(model, words.join(''), 'completed', usage) },
  });
  return events;
}

/** An embeddings reply with one float vector per input; `promptTokens` in its usage. */
export function embeddingReply(model: string, inputs: number, promptTokens: number): Response {
  return HttpResponse.json({
    object: 'list',
    model,
    data: Array.from({ length: inputs }, (_, index) => ({ object: 'embedding', index, embedding: [0.1, 0.2, 0.3] })),
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  });
}

/** A legacy (`/completions`) text completion reply. */
export function completionReply(model: string, text = 'hello', usage: UsageCounts = {}): Response {
  const prompt = usage.prompt ?? 10;
  const completion = usage.completion ?? 5;
  return HttpResponse.json({
    id: 'cmpl-test',
    object: 'text_completion',
    created: 1_700_000_000,
    model,
    choices: [{ index: 0, text, finish_reason: 'stop', logprobs: null }],
    usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion },
  });
}

/** A DeepSeek chat reply: usage with `prompt_cache_hit_tokens` / `prompt_cache_miss_tokens`. */
export function deepseekReply(model: string, usage: { hit: number; miss: number; completion: number }): Response {
  return HttpResponse.json({
    id: 'ds-test',
    object: 'chat.completion',
    created: 1_700_000_000,
    model,
    choices: [{ index: 0, message: { role: 'assistant', content: 'hello' }, finish_reason: 'stop', logprobs: null }],
    usage: {
      prompt_tokens: usage.hit + usage.miss,
      completion_tokens: usage.completion,
      total_tokens: usage.hit + usage.miss + usage.completion,
      prompt_cache_hit_tokens: usage.hit,
      prompt_cache_miss_tokens: usage.miss,
    },
  });
}

/** A promise with its resolver: lets a handler hold its reply until the test releases it. */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Fake keys with readable ids, and the way back from a recorded bearer token to its id. */
export interface KeyRing {
  /** `{ key, id }` entries, ready for a provider's `keys`. */
  keys: { key: string; id: string }[];
  /** The id of a recorded secret; `'?'` for a secret not on the ring. */
  idOf(secret: string): string;
  /** The key ids of `recorded`, in order. */
  ids(recorded: readonly UpstreamCall[]): string[];
}

export function keyRing(...ids: string[]): KeyRing {
  // The secret does not hold the id: replies that name it (`from anthropic`) would hold a piece of the key, which keyplex redacts.
  const keys = ids.map((id) => ({ key: fakeKey('ring'), id }));
  const byKey = new Map(keys.map((k) => [k.key, k.id]));
  const idOf = (secret: string) => byKey.get(secret) ?? '?';
  return { keys, idOf, ids: (recorded) => recorded.map((call) => idOf(call.key)) };
}

/**
 * A streamed reply whose connection dies after `after` events (chat `data:`
 * payloads, or named events), like a provider resetting mid-stream. Unlike
 * `sseReply`'s `failAfter` (whose unframed body reads as a clean end under
 * msw), the body is chunked, so the client sees the cut as a stream error.
 * With `gate`, the cut waits for it: a test can cut only once the caller has
 * read what was sent. `after: 0` without a gate dies before the headers (a
 * connection failure: msw sends headers with the first body bytes).
 */
export function cutSseReply(events: string[] | NamedEvent[], options: { after: number; gate?: Promise<unknown> }): Response {
  const encoder = new TextEncoder();
  let sent = 0;
  const frame = (event: string | NamedEvent) =>
    typeof event === 'string' ? `data: ${event}\n\n` : `event: ${event.event}\ndata: ${JSON.stringify(event.data)}\n\n`;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (sent >= options.after || sent >= events.length) {
        if (options.gate) await options.gate;
        controller.error(new Error('upstream connection reset'));
        return;
      }
      controller.enqueue(encoder.encode(frame(events[sent]!)));
      sent++;
    },
  });
  return new HttpResponse(body, { headers: { 'content-type': 'text/event-stream', 'transfer-encoding': 'chunked' } });
}

/** A promise and the function that resolves it. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** A streamed reply: `before`, then, once `later` resolves, `after` (then the end). */
export function inTwoParts(before: string, later: Promise<void>, after: string): Response {
  const encoder = new TextEncoder();
  let part = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      part++;
      if (part === 1) return controller.enqueue(encoder.encode(before));
      if (part > 2) return controller.close();
      await later;
      controller.enqueue(encoder.encode(after));
    },
  });
  return new HttpResponse(body, { headers: { 'content-type': 'text/event-stream', 'transfer-encoding': 'chunked' } });
}

/**
 * A streamed reply of `text` (already framed as SSE) sent in pieces of
 * `pieceBytes` bytes, so events and multi-byte characters straddle reads.
 */
export function rawSseReply(text: string, pieceBytes: number): Response {
  const bytes = new TextEncoder().encode(text);
  let offset = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.length) {
        controller.close();
        return;
      }
      controller.enqueue(bytes.slice(offset, offset + pieceBytes));
      offset += pieceBytes;
    },
  });
  return new HttpResponse(body, { headers: { 'content-type': 'text/event-stream', 'transfer-encoding': 'chunked' } });
}

/** A `fetch` option whose calls wait for the test to answer them (`answers[i](reply)`, in the order they were made), or for their abort. */
export function answeredByHand(): { fetch: typeof globalThis.fetch; answers: ((reply: Response) => void)[] } {
  const answers: ((reply: Response) => void)[] = [];
  const fetch = (_input: string | URL | Request, init?: RequestInit): Promise<Response> =>
    new Promise<Response>((resolve, reject) => {
      answers.push(resolve);
      init?.signal?.addEventListener('abort', () => reject(init.signal!.reason), { once: true });
    });
  return { fetch: fetch as typeof globalThis.fetch, answers };
}

/**
 * A manager of one provider `a` of one key whose calls the test answers by
 * hand ({@link answeredByHand}), one attempt per request, no cold-start
 * pacing, `circuit` for the deployment's and the key's breakers.
 */
export function oneKeyAnsweredByHand(circuit: CircuitBreakerScopeOptions) {
  const { fetch, answers } = answeredByHand();
  const manager = new KeyManager({
    providers: { a: { baseURL: 'https://a.example/v1', keys: [fakeKey('a')] } },
    fetch,
    retry: { maxAttempts: 1 },
    rateLimiting: { coldStart: 'open' },
    circuitBreaker: { deployment: circuit, key: circuit },
  });
  const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 }));
  return { manager, client, answers };
}
