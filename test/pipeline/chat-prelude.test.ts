/**
 * A chat completion stream opens with chunks that carry no output: OpenAI's,
 * Anthropic's and OpenRouter's first chunk is the assistant's role with an
 * empty content (`delta: { role: 'assistant', content: '' }`), Azure's is
 * its prompt's filter results (`choices: []`). A provider that fails right
 * after it — overloaded before its first token (an `error` data event,
 * Anthropic's `event: error` `overloaded_error`, OpenRouter's error chunk
 * with `finish_reason: "error"`), a dropped connection, a body that ends —
 * has answered nothing, so keyplex holds those chunks back, as it holds a
 * Responses stream's prelude (test/pipeline/responses-prelude.test.ts), and
 * such a failure fails over. After the first output (text, reasoning, a tool
 * call, a finish reason) a failure reaches the caller as before.
 */
import OpenAI from 'openai';
import { describe, expect, test, vi } from 'vitest';
import { HttpResponse } from 'msw';
import { record } from '../support/events';
import { failoverPair } from '../support/managers';
import { fakeClock, until } from '../support/time';
import { chatChunks, cutSseReply, gate, provider, rawSseReply, sseReply, type UpstreamCall } from '../support/upstream';
import '../support/setup';

const ONE = 'https://api.one.test/v1';
const MODEL = 'gpt-4.1';
const N = 5;
/** Key `a` for every request's first attempt (OPTIONS), `b` after. */
const { ring, manage, OPTIONS } = failoverPair(ONE);
const ask = [{ role: 'user' as const, content: 'hi' }];

const base = { id: 'chatcmpl-a', object: 'chat.completion.chunk', created: 1_700_000_000, model: MODEL };
/** The opening chunk: the assistant's role, no text. */
const ROLE = JSON.stringify({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, finish_reason: null }] });
const text = (content: string) => JSON.stringify({ ...base, choices: [{ index: 0, delta: { content }, finish_reason: null }] });
const B_WORDS = ['Hel', 'lo'];

/** `events` as server-sent events: a comment or a named event as it is, a payload after `data: `. */
function sse(...events: string[]): string {
  return events.map((e) => `${e.startsWith(':') || e.startsWith('event:') ? e : `data: ${e}`}\n\n`).join('');
}

const OPENAI_ERROR = JSON.stringify({ error: { message: 'The server had an error while processing your request.', type: 'server_error', param: null, code: null } });
const ANTHROPIC_OVERLOADED = `event: error\ndata: ${JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } })}`;
const OPENROUTER_ERROR = JSON.stringify({ ...base, error: { code: 502, message: 'Provider returned error' }, choices: [{ index: 0, delta: { content: '' }, finish_reason: 'error' }] });

/** OpenRouter's `StreamingChoice.error`: the error in the choice that ends with finish_reason "error". */
const CHOICE_ERROR = JSON.stringify({ ...base, choices: [{ index: 0, delta: { content: '' }, finish_reason: 'error', native_finish_reason: 'error', error: { code: 502, message: 'Provider returned error' } }] });

/** Serves key `a` with `onA`, key `b` with a whole stream; returns the calls. */
function serve(onA: () => Response): UpstreamCall[] {
  return provider(ONE, (call) => (ring.idOf(call.key) === 'a' ? onA() : sseReply(chatChunks(MODEL, B_WORDS, false))));
}

/** Reads a chat stream whole: the text the app saw, and what its loop threw. */
async function readAll(stream: AsyncIterable<OpenAI.Chat.ChatCompletionChunk>) {
  let seen = '';
  try {
    for await (const chunk of stream) seen += chunk.choices[0]?.delta?.content ?? '';
    return { text: seen, error: undefined };
  } catch (error) {
    return { text: seen, error };
  }
}

describe.each([
  ['an `error` data event (OpenAI)', () => rawSseReply(sse(ROLE, OPENAI_ERROR), 1 << 20)],
  ["`event: error` overloaded_error (Anthropic's OpenAI-compatible endpoint)", () => rawSseReply(sse(ROLE, ANTHROPIC_OVERLOADED), 1 << 20)],
  ["an error chunk with finish_reason 'error' after `: OPENROUTER PROCESSING` (OpenRouter)", () => rawSseReply(sse(': OPENROUTER PROCESSING', ROLE, OPENROUTER_ERROR, '[DONE]'), 1 << 20)],
  // The cut waits a moment: at once, it would come before the headers (a connection failure, which failed over before).
  ["OpenRouter's error inside its choice (`choices[0].error`, finish_reason 'error', no top-level error)", () => rawSseReply(sse(': OPENROUTER PROCESSING', ROLE, CHOICE_ERROR, '[DONE]'), 1 << 20)],
  ['a dropped connection', () => cutSseReply([ROLE], { after: 1, gate: new Promise((resolve) => setTimeout(resolve, 20)) })],
  ['a body that ends', () => rawSseReply(sse(ROLE), 1 << 20)],
])('key a answers the role chunk then %s; key b the whole stream', (_name, onA) => {
  test(`${N} requests: each is served by key b, the app sees b's text only, 2 attempts, one success`, async () => {
    const calls = serve(onA);
    const { client, success, failure } = manage(OPTIONS);
    const seen: { text: string; threw: boolean }[] = [];
    for (let i = 0; i < N; i++) {
      const got = await readAll(await client.chat.completions.create({ model: MODEL, messages: ask, stream: true }));
      seen.push({ text: got.text, threw: got.error !== undefined });
    }
    // Before: 5 of 5 threw (or ended with nothing), 5 calls, all to key a, 0 successes.
    expect(seen).toEqual(Array.from({ length: N }, () => ({ text: 'Hello', threw: false })));
    expect(ring.ids(calls)).toEqual(Array.from({ length: N }, () => ['a', 'b']).flat());
    expect(success.map((e) => [e.keyId, e.attempts])).toEqual(Array.from({ length: N }, () => ['b', 2]));
    expect(failure).toHaveLength(0);
  });
});

describe('an overloaded provider before its first token', () => {
  test('counts against key a (server_error), not as a success of it', async () => {
    serve(() => rawSseReply(sse(ROLE, ANTHROPIC_OVERLOADED), 1 << 20));
    const { client, manager } = manage(OPTIONS);
    await readAll(await client.chat.completions.create({ model: MODEL, messages: ask, stream: true }));
    const keyA = manager.stats().providers.one!.keys.find((k) => k.id === 'a')!;
    // Before: a failure `stream_interrupted` of key a's (the stream had reached the caller).
    expect(keyA.failures).toEqual({ server_error: 1 });
    expect(keyA.successes).toBe(0);
  });
});

describe('the bytes the caller gets', () => {
  test("a healthy stream's opening chunks, held, reach the caller unchanged and in order (Azure's prompt filter results, the role)", async () => {
    const azure = JSON.stringify({ id: '', object: '', created: 0, model: '', choices: [], prompt_filter_results: [{ prompt_index: 0, content_filter_results: { hate: { filtered: false, severity: 'safe' } } }] });
    const body = sse(azure, ROLE, text('Hi'), JSON.stringify({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }), '[DONE]');
    const calls = provider(ONE, () => rawSseReply(body, 7));
    const { manager, success } = manage(OPTIONS);
    const reply = await manager.fetch('https://keyplex.invalid/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, messages: ask, stream: true, stream_options: { include_usage: true } }) });
    expect(await reply.text()).toBe(body);
    expect(calls).toHaveLength(1);
    expect(success).toHaveLength(1);
  });

  test("Azure's content filter ending the answer (finish_reason content_filter) is an answer: one call, success, no error counted", async () => {
    const filtered = JSON.stringify({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'content_filter', content_filter_results: { violence: { filtered: true, severity: 'high' } } }] });
    const calls = serve(() => rawSseReply(sse(ROLE, filtered, '[DONE]'), 1 << 20));
    const { client, manager, success, failure } = manage(OPTIONS);
    const got = await readAll(await client.chat.completions.create({ model: MODEL, messages: ask, stream: true }));
    expect(got).toEqual({ text: '', error: undefined });
    expect(ring.ids(calls)).toEqual(['a']);
    expect(success.map((e) => e.keyId)).toEqual(['a']);
    expect(failure).toHaveLength(0);
    expect(manager.stats().providers.one!.keys.find((k) => k.id === 'a')).toMatchObject({ failures: {}, successes: 1, status: 'active' });
  });
});

describe('after the first output, a failure reaches the caller as before (no retry, nothing repeated)', () => {
  test.each([
    ['text', text('Hi')],
    ['a tool call with no arguments yet', JSON.stringify({ ...base, choices: [{ index: 0, delta: { tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'f', arguments: '' } }] }, finish_reason: null }] })],
  ])('%s, then an `error` data event: the SDK raises it in the loop; one call, a failure', async (_name, output) => {
    const calls = serve(() => rawSseReply(sse(ROLE, output, OPENAI_ERROR), 1 << 20));
    const { client, failure } = manage(OPTIONS);
    const { error } = await readAll(await client.chat.completions.create({ model: MODEL, messages: ask, stream: true }));
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(ring.ids(calls)).toEqual(['a']);
    expect(failure.map((e) => e.error.code)).toEqual(['stream_interrupted']);
  });
});

describe('the hold is bounded', () => {
  test('a slow healthy stream: the role chunk is held until what was left of attemptTimeoutMs (1 s), then released; nothing lost', async () => {
    fakeClock();
    const later = gate();
    const body = sse(ROLE, text('Hi'), JSON.stringify({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }), '[DONE]');
    const calls = provider(ONE, () => {
      const encoder = new TextEncoder();
      let sent = 0;
      const stream = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (sent === 1) await later.promise;
          if (sent === 2) return controller.close();
          controller.enqueue(encoder.encode(sent++ === 0 ? sse(ROLE) : body.slice(sse(ROLE).length)));
        },
      });
      return new HttpResponse(stream, { headers: { 'content-type': 'text/event-stream', 'transfer-encoding': 'chunked' } });
    });
    const { manager, success } = manage({ ...OPTIONS, attemptTimeoutMs: 1_000 });
    let answered = false;
    const pending = manager
      .fetch('https://keyplex.invalid/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, messages: ask, stream: true }) })
      .then((reply) => ((answered = true), reply));
    await until(() => calls.length === 1, 'the attempt sent');
    await vi.advanceTimersByTimeAsync(999);
    expect(answered).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const reply = await pending;
    later.open();
    expect(await reply.text()).toBe(body);
    expect(ring.ids(calls)).toEqual(['a']);
    expect(success.map((e) => [e.keyId, e.attempts])).toEqual([['a', 1]]);
  });
});

describe("OpenRouter's error inside its choice after output reached the caller", () => {
  test('the app reads the chunk (finish_reason "error"); keyplex fires failure with the partial usage, not success, and counts it against key a', async () => {
    const calls = serve(() => rawSseReply(sse(ROLE, text('Hi'), CHOICE_ERROR, '[DONE]'), 1 << 20));
    const { client, manager, success, failure } = manage(OPTIONS);
    const reasons: (string | null)[] = [];
    const stream = await client.chat.completions.create({ model: MODEL, messages: ask, stream: true });
    for await (const chunk of stream) reasons.push(chunk.choices[0]?.finish_reason ?? null);
    // Before: success (key a, 1 attempt), no failure: the error read as the answer's end.
    expect(reasons).toEqual([null, null, 'error']);
    expect(ring.ids(calls)).toEqual(['a']);
    expect(success).toHaveLength(0);
    expect(failure.map((e) => [e.error.code, e.partial, e.usage?.outputTokens])).toEqual([['stream_interrupted', true, 1]]);
    expect(manager.stats().providers.one!.keys.find((k) => k.id === 'a')!.failures).toEqual({ stream_interrupted: 1 });
  });
});
