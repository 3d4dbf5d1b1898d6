/**
 * msw stand-ins for OpenAI-compatible providers, recording every call so a
 * test can assert which key went where.
 */
import { http, HttpResponse } from 'msw';
import { setupServer } from 'msw/node';

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
      const url = new URL(request.url);
      const base = new URL(baseURL);
      const text = request.method === 'GET' ? '' : await request.text();
      let body: Record<string, unknown> | undefined;
      try {
        body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
      } catch {
        body = undefined;
      }
      const call: UpstreamCall = {
        origin: url.origin,
        path: url.pathname.slice(base.pathname.length) + url.search,
        method: request.method,
        key: (request.headers.get('authorization') ?? '').replace(/^Bearer /, ''),
        headers: request.headers,
        body,
      };
      calls.push(call);
      mine.push(call);
      const reply = await handler(call, mine.length - 1);
      return reply === 'reset' ? HttpResponse.error() : reply;
    }),
  );
  return mine;
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
  return new HttpResponse(body, { headers: { 'content-type': 'text/event-stream' } });
}

/** Whether the request asked for stream usage. */
export function askedUsage(call: UpstreamCall): boolean {
  const options = call.body?.stream_options as { include_usage?: boolean } | undefined;
  return options?.include_usage === true;
}
