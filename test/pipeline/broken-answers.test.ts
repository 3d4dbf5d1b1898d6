/**
 * A broken 200 is what it is (issue 12 item 3; DESIGN.md's outcome table):
 * malformed JSON, a malformed or empty stream, garbage SSE data, an error
 * event inside a stream, a stream that stops before its end, a body of the
 * wrong content type. Before anything reached the caller it is a transient
 * failure, retried on another key; as the last answer it surfaces as an SDK
 * `APIError` (502) with keyplex's detail; after data reached the caller it
 * ends the caller's loop with a keyplex stream error. The events always say
 * what the app saw.
 */
import OpenAI from 'openai';
import { HttpResponse } from 'msw';
import { describe, expect, test } from 'vitest';
import { getKeyplexDetails, keyplex, StreamInterruptedError } from '../../src/index';
import { record } from '../support/events';
import { managedClients } from '../support/managers';
import { fakeKey } from '../support/fake-keys';
import { chatChunks, chatReply, gate, inTwoParts, provider, rawSseReply, sseReply } from '../support/upstream';
import '../support/setup';

const ONE = 'https://api.one.test/v1';
const TWO = 'https://api.two.test/v1';
const ask = [{ role: 'user' as const, content: 'hi' }];
const WORDS = ['Hel', 'lo', ' wor', 'ld'];

const manage = managedClients({ one: { baseURL: ONE, keys: [fakeKey('one')] }, two: { baseURL: TWO, keys: [fakeKey('two')] } });

const malformedJson = () => new Response('{"id": "chatcmpl-1", "choices": [{"message": {"role": "assist', { status: 200, headers: { 'content-type': 'application/json' } });
const plainText = () => new Response('Hello from a proxy that lost its way', { status: 200, headers: { 'content-type': 'text/plain' } });
const sse = (text: string | ReadableStream<Uint8Array>) => new HttpResponse(text, { headers: { 'content-type': 'text/event-stream', 'transfer-encoding': 'chunked' } });
const frames = (events: string[]) => events.map((e) => `data: ${e}\n\n`).join('');

/** Runs `call`; what it threw (undefined when it did not). */
async function caught(call: () => Promise<unknown>): Promise<unknown> {
  try {
    await call();
    return undefined;
  } catch (error) {
    return error;
  }
}

/** Reads a whole stream: its chunks and what its loop threw; `onChunk` hears each chunk's count. */
async function readAll(stream: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>, onChunk?: (count: number) => void) {
  const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
  const error = await caught(async () => {
    for await (const chunk of stream) {
      const count = chunks.push(chunk);
      onChunk?.(count);
    }
  });
  return { chunks, error };
}

/**
 * A stream call whose first provider answers `reply` (a broken answer) and the
 * second a good stream: the app reads the good one whole, after one failover
 * for `invalid_response`, with no failure.
 */
async function expectServedBySecond(reply: () => Response) {
  provider(ONE, reply);
  provider(TWO, () => sseReply(chatChunks('gpt-4.1', WORDS, false)));
  const { client, manager, success, failure } = manage();
  const failover = record(manager, 'failover');

  const { chunks, error } = await readAll(await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true }));

  expect(error).toBeUndefined();
  expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('Hello world');
  expect(success.map((e) => e.provider)).toEqual(['two']);
  expect(failover.map((e) => e.reason)).toEqual(['invalid_response']);
  expect(failure).toEqual([]);
}

/** A stream call answered `text` (framed SSE) in one read: the app reads the whole answer, and keyplex says success. */
async function expectWholeAnswer(text: string) {
  provider(ONE, () => rawSseReply(text, 10_000));
  const { client, success, failure } = manage();

  const { chunks, error } = await readAll(await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true }));

  expect(error).toBeUndefined();
  expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('Hello world');
  expect(success).toHaveLength(1);
  expect(failure).toEqual([]);
}

describe('a JSON call', () => {
  test('malformed JSON as the last answer surfaces as an SDK APIError (502) with keyplex detail malformed_response', async () => {
    provider(ONE, malformedJson);
    const { client, failure, success } = manage({ retry: { maxAttempts: 1 } });

    const error = await caught(() => client.chat.completions.create({ model: 'gpt-4.1', messages: ask }));

    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
    expect(getKeyplexDetails(error)?.code).toBe('malformed_response');
    expect(failure.map((e) => e.error.code)).toEqual(['malformed_response']);
    expect(success).toEqual([]);
  });

  test.each([false, true])('a broken 200 after which no key is left (stream: %s) surfaces as an APIError (no_key_available), not as the broken 200 handed to the app', async (stream) => {
    // Each key's last request for a minute: after its broken answer no key has room before the deadline.
    const spent = { 'x-ratelimit-limit-requests': '1', 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '60s' };
    const broken = () => new Response('{"id": "chatcmpl-1", "choi', { status: 200, headers: { 'content-type': 'application/json', ...spent } });
    provider(ONE, broken);
    provider(TWO, broken);
    const { client, failure, success } = manage({});

    const error = await caught(async () => {
      const reply = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, ...(stream ? { stream: true as const } : {}) }, keyplex.options({ deadlineMs: 5_000 }));
      if (stream) for await (const _ of reply as AsyncIterable<unknown>);
    });

    // The keys' limits reset in a minute: 429, with the wait.
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    expect((error as InstanceType<typeof OpenAI.APIError>).headers?.get('retry-after')).toMatch(/^\d+$/);
    expect((error as Error).message).toMatch(/1 × 200 invalid_response.*1 × 200 invalid_response.*then no usable key/);
    expect(getKeyplexDetails(error)?.code).toBe('no_key_available');
    expect(failure.map((e) => e.error.code)).toEqual(['no_key_available']);
    expect(success).toEqual([]);
  });

  test('malformed JSON that is not the last answer is retried on another key, and the app gets the good answer', async () => {
    const first = provider(ONE, malformedJson);
    const second = provider(TWO, () => chatReply('gpt-4.1', 'fine'));
    const { client, failure, success } = manage();

    const answer = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask });

    expect(answer.choices[0]?.message.content).toBe('fine');
    expect([first.length, second.length]).toEqual([1, 1]);
    expect(success).toHaveLength(1);
    expect(failure).toEqual([]);
  });

  test('a text/plain 200 on a JSON endpoint is retried on another key', async () => {
    provider(ONE, plainText);
    provider(TWO, () => chatReply('gpt-4.1', 'fine'));
    const { client, success } = manage();

    const answer = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask });

    expect(answer.choices[0]?.message.content).toBe('fine');
    expect(success[0]?.provider).toBe('two');
  });

  test('an event stream answering a request that did not ask to stream is retried on another key, not handed to the app as a string', async () => {
    provider(ONE, () => sse(frames(chatChunks('gpt-4.1', WORDS, false))));
    provider(TWO, () => chatReply('gpt-4.1', 'fine'));
    const { client, success } = manage();

    const answer = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask });

    expect(answer.choices[0]?.message.content).toBe('fine');
    expect(success[0]?.provider).toBe('two');
  });

  test('a text/plain 200 as the last answer surfaces as an APIError (502, malformed_response) and a failure, not a string and a success', async () => {
    provider(ONE, plainText);
    const { client, failure, success } = manage({ retry: { maxAttempts: 1 } });

    const error = await caught(() => client.chat.completions.create({ model: 'gpt-4.1', messages: ask }));

    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(getKeyplexDetails(error)?.code).toBe('malformed_response');
    expect(failure.map((e) => e.error.code)).toEqual(['malformed_response']);
    expect(success).toEqual([]);
  });
});

describe('a stream call', () => {
  test('a malformed (JSON) answer as the last one rejects the call with an APIError (502), not an empty stream', async () => {
    provider(ONE, malformedJson);
    const { client, failure } = manage({ retry: { maxAttempts: 1 } });

    const error = await caught(() => client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true }));

    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(getKeyplexDetails(error)?.code).toBe('malformed_response');
    expect(failure.map((e) => e.error.code)).toEqual(['malformed_response']);
  });

  test('an empty event stream is a broken answer: retried on another key', async () => {
    provider(ONE, () => sse(''));
    provider(TWO, () => sseReply(chatChunks('gpt-4.1', WORDS, false)));
    const { client, success, failure } = manage();

    const { chunks, error } = await readAll(await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true }));

    expect(error).toBeUndefined();
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('Hello world');
    expect(success[0]?.provider).toBe('two');
    expect(failure).toEqual([]);
  });

  // A stream that ends before any data event (keep-alive comments, `retry:` or `id:` fields, a bare `[DONE]`) answered nothing: as an empty one.
  test.each([
    ["keep-alive comments (OpenRouter's), then the end", ': OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\n'],
    ['only `retry:` and `id:` fields, then the end', 'retry: 1000\nid: 1\n\n'],
    ['only `[DONE]`', ': comment\n\ndata: [DONE]\n\n'],
  ])('a stream of %s is an empty answer: retried on another key, not a stream error after nothing reached the caller', async (_name, text) => {
    await expectServedBySecond(() => sse(text));
  });

  test('a stream of keep-alive comments that ends, as the last answer, is a broken answer (502, malformed_response) at the call', async () => {
    provider(ONE, () => sse(': OPENROUTER PROCESSING\n\n'));
    const { client, success, failure } = manage({ retry: { maxAttempts: 1 } });

    const error = await caught(() => client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true }));

    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect(getKeyplexDetails(error)?.code).toBe('malformed_response');
    expect(failure.map((e) => e.error.code)).toEqual(['malformed_response']);
    expect(success).toEqual([]);
  });

  test('garbage data in the first event is a broken answer: retried on another key', async () => {
    provider(ONE, () => sse('data: {"id": "chatcmpl-1", "choi\n\n'));
    provider(TWO, () => sseReply(chatChunks('gpt-4.1', WORDS, false)));
    const { client, success } = manage();

    const { error } = await readAll(await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true }));

    expect(error).toBeUndefined();
    expect(success[0]?.provider).toBe('two');
  });

  test('garbage data after the first events ends the loop with a keyplex stream error (malformed_response) and a failure, no success', async () => {
    const good = chatChunks('gpt-4.1', WORDS, false).slice(0, 2);
    const read = gate();
    provider(ONE, () => inTwoParts(frames(good), read.promise, `data: not json at all\n\n${frames(['[DONE]'])}`));
    const { client, success, failure } = manage();

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    const { error } = await readAll(stream, (count) => count === 2 && read.open());

    expect(error).toBeInstanceOf(StreamInterruptedError);
    expect(error).not.toBeInstanceOf(SyntaxError);
    expect(getKeyplexDetails(error)?.code).toBe('malformed_response');
    expect(failure.map((e) => e.error.code)).toEqual(['malformed_response']);
    expect(success).toEqual([]);
  });

  // The SDK dispatches an event with a name and no `data:` line (or a bare `data` field) with empty data, and fails to parse it.
  test.each([
    ['a named event without data', 'event: ping\nid: 3\n\n'],
    ['a `data` field without its colon', 'data\n\n'],
  ])('%s after the first events ends the loop with a keyplex stream error (malformed_response) and a failure, not a SyntaxError and a success', async (_name, bad) => {
    const good = chatChunks('gpt-4.1', WORDS, false);
    const read = gate();
    provider(ONE, () => inTwoParts(frames(good.slice(0, 2)), read.promise, `${bad}${frames([...good.slice(2), '[DONE]'])}`));
    const { client, success, failure } = manage();

    const { error } = await readAll(await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true }), (count) => count === 2 && read.open());

    expect(error).toBeInstanceOf(StreamInterruptedError);
    expect(getKeyplexDetails(error)?.code).toBe('malformed_response');
    expect(failure.map((e) => e.error.code)).toEqual(['malformed_response']);
    expect(success).toEqual([]);
  });

  test('a named event without data as the first event is a broken answer: retried on another key', async () => {
    await expectServedBySecond(() => sse(`event: message\n\n${frames(chatChunks('gpt-4.1', WORDS, false))}`));
  });

  test('an error event inside a stream: the SDK raises it in the loop, and keyplex emits failure, not success', async () => {
    const good = chatChunks('gpt-4.1', WORDS, false).slice(0, 2);
    const problem = JSON.stringify({ error: { message: 'The server overloaded mid-stream', type: 'server_error', code: null } });
    provider(ONE, () => rawSseReply(frames([...good, problem]), 10_000));
    const { client, success, failure } = manage();

    const { error } = await readAll(await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true }));

    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(failure.map((e) => e.error.code)).toEqual(['stream_interrupted']);
    expect(success).toEqual([]);
  });

  test('a chat stream whose body ends cleanly before its finish chunk and [DONE] ends the loop with an error and a failure', async () => {
    const good = chatChunks('gpt-4.1', WORDS, false).slice(0, 2);
    provider(ONE, () => rawSseReply(frames(good), 10_000));
    const { client, success, failure } = manage();

    const { chunks, error } = await readAll(await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true }));

    expect(chunks.length).toBeLessThanOrEqual(2);
    expect(error).toBeInstanceOf(StreamInterruptedError);
    expect(getKeyplexDetails(error)?.code).toBe('stream_interrupted');
    expect(failure.map((e) => e.error.code)).toEqual(['stream_interrupted']);
    expect(success).toEqual([]);
  });

  // The SDK reads nothing after `[DONE]`: whatever follows it in the same read is not judged either (passed on as it came).
  test.each([
    ['garbage data', 'data: not json at all\n\n'],
    ['an error event', 'event: error\ndata: {"error":{"message":"late","type":"server_error"}}\n\n'],
  ])('%s after [DONE] in the same read: the app has its whole answer, and keyplex says success', async (_name, after) => {
    await expectWholeAnswer(`${frames([...chatChunks('gpt-4.1', WORDS, false), '[DONE]'])}${after}`);
  });

  test('what follows [DONE] reaches a caller reading the raw body as the upstream sent it', async () => {
    const text = `${frames([...chatChunks('gpt-4.1', WORDS, false), '[DONE]'])}data: not json\n\n: and a comment`;
    provider(ONE, () => rawSseReply(text, 10_000));
    const { client, success } = manage();

    const response = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true, stream_options: { include_usage: true } }).asResponse();

    expect(await response.text()).toBe(text);
    expect(success).toHaveLength(1);
  });

  test('a chat stream that ends after its finish chunk without [DONE] is complete: success', async () => {
    await expectWholeAnswer(frames(chatChunks('gpt-4.1', WORDS, false)));
  });
});

describe('a first event that never ends', () => {
  const MiB = 1024 * 1024;

  /**
   * An SSE body that sends `total` bytes of one event's data line, 1 MiB a
   * read, never its blank line, then fails; `pulled` counts what was read.
   */
  function endlessFirstEvent(total: number, before = '') {
    const seen = { pulled: 0, cancelled: false };
    const piece = new Uint8Array(MiB).fill(0x61);
    piece.set(new TextEncoder().encode('data: {"b64_json":"'));
    let first = before === '' ? undefined : new TextEncoder().encode(before);
    const body = new ReadableStream<Uint8Array>(
      {
        pull(controller) {
          if (first !== undefined) {
            controller.enqueue(first);
            first = undefined;
            return;
          }
          if (seen.pulled >= total) return controller.error(new TypeError('terminated'));
          seen.pulled += piece.length;
          controller.enqueue(seen.pulled === MiB ? piece : piece.slice().fill(0x61));
        },
        cancel() {
          seen.cancelled = true;
        },
      },
      { highWaterMark: 0 },
    );
    return { seen, reply: () => sse(body) };
  }

  test('past 16 MiB without an event boundary the attempt is a broken answer: the upstream is let go, and another key serves the stream', async () => {
    const endless = endlessFirstEvent(64 * MiB);
    await expectServedBySecond(endless.reply);
    // Read up to the limit (16 MiB, plus what the transport reads ahead), not the 64 MiB the upstream had.
    expect(endless.seen.pulled).toBeLessThan(24 * MiB);
    expect(endless.seen.cancelled).toBe(true);
  });

  test('past 16 MiB without an event boundary after events reached the caller, the stream ends (malformed_response) and the upstream is let go', async () => {
    const endless = endlessFirstEvent(64 * MiB, frames(chatChunks('gpt-4.1', WORDS, false).slice(0, 1)));
    provider(ONE, endless.reply);
    const { client, failure } = manage();

    const { chunks, error } = await readAll(await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true }));

    expect(chunks).toHaveLength(1);
    expect(getKeyplexDetails(error)?.code).toBe('malformed_response');
    expect((error as Error).message).toContain('larger than 16 MiB');
    expect(failure.map((e) => e.error.code)).toEqual(['malformed_response']);
    // Held up to the limit, not the 64 MiB the upstream had (it took ~2.2 bytes of memory per byte held).
    expect(endless.seen.pulled).toBeLessThan(24 * MiB);
    expect(endless.seen.cancelled).toBe(true);
  });

  test('as the last answer it surfaces as an SDK APIError (502) with keyplex detail malformed_response', async () => {
    const endless = endlessFirstEvent(64 * MiB);
    provider(ONE, endless.reply);
    const { client, failure } = manage({ retry: { maxAttempts: 1 } });

    const error = await caught(() => client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true }));

    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
    expect(getKeyplexDetails(error)?.code).toBe('malformed_response');
    expect(failure.map((e) => e.error.code)).toEqual(['malformed_response']);
    expect(String((error as Error).message)).not.toContain(fakeKey('one').slice(-8));
    expect(endless.seen.pulled).toBeLessThan(24 * MiB);
  });
});

describe('a large first event', () => {
  test('a streamed image whose first event is a 6 MiB image (base64) reaches the caller whole: the limit leaves room for it', async () => {
    const b64 = 'iVBO'.repeat((6 * 1024 * 1024) / 4);
    const completed = { type: 'image_generation.completed', b64_json: b64, created_at: 1, size: '1536x1024', quality: 'high', background: 'opaque', output_format: 'png', usage: null };
    provider(ONE, () => rawSseReply(`event: image_generation.completed\ndata: ${JSON.stringify(completed)}\n\n`, 256 * 1024));
    const { client, success, failure } = manage();

    const stream = await client.images.generate({ model: 'gpt-image-1', prompt: 'a lighthouse', stream: true });
    const images: string[] = [];
    for await (const event of stream) if (event.type === 'image_generation.completed') images.push(event.b64_json);

    expect(images).toEqual([b64]);
    expect(success.map((e) => e.provider)).toEqual(['one']);
    expect(failure).toEqual([]);
  });
});

describe('a redirect (keyplex does not follow one: it would take the key and the body to another address)', () => {
  test('surfaces at once as the SDK error, saying where it points and to set the baseURL; no other key is tried, none is penalised', async () => {
    const calls = provider(ONE, () => new Response(null, { status: 301, headers: { location: 'https://api.moved.test/v1/chat/completions?sig=secret' } }));
    const second = provider(TWO, () => chatReply('gpt-4.1', 'ok'));
    const { client, manager, failure } = manage();
    const error = await caught(() => client.chat.completions.create({ model: 'gpt-4.1', messages: ask }));
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(301);
    const message = (error as Error).message;
    expect(message).toContain("Provider 'one' redirected the request (301) to https://api.moved.test/v1/chat/completions");
    expect(message).not.toContain('secret');
    expect(message).toContain('`baseURL`');
    expect(getKeyplexDetails(error)).toMatchObject({ code: 'upstream_error', status: 301, attempts: [{ provider: 'one', kind: 'redirect', status: 301 }] });
    expect(failure).toHaveLength(1);
    expect(calls).toHaveLength(1);
    expect(second).toHaveLength(0);
    expect(manager.stats().providers.one!.keys[0]).toMatchObject({ status: 'active', circuit: 'closed' });
  });
});

describe("an error in a 200's body (OpenRouter: an error after the model started is answered 200 with `error`)", () => {
  const embedded = (code: number) => HttpResponse.json({ error: { code, message: 'Upstream provider returned 502', metadata: { provider_name: 'X' } }, user_id: 'u' });

  test('is a failure of its kind, not a success: retried on another provider, and the app gets the good answer', async () => {
    const one = provider(ONE, () => embedded(502));
    provider(TWO, () => chatReply('gpt-4.1', 'ok'));
    const { client, success, failure } = manage();
    const reply = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask });
    expect(reply.choices[0]!.message.content).toBe('ok');
    expect(one).toHaveLength(1);
    expect(success).toHaveLength(1);
    expect(success[0]).toMatchObject({ attempts: 2 });
    expect(failure).toHaveLength(0);
  });

  test('as the last answer it surfaces as the SDK error of its code, with the upstream message and keyplex detail', async () => {
    provider(ONE, () => embedded(502));
    provider(TWO, () => embedded(502));
    const { client, success, failure } = manage();
    const error = await caught(() => client.chat.completions.create({ model: 'gpt-4.1', messages: ask }));
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
    expect((error as Error).message).toContain('Upstream provider returned 502');
    expect(getKeyplexDetails(error)).toMatchObject({ code: 'upstream_error', status: 502 });
    expect(success).toHaveLength(0);
    expect(failure).toHaveLength(1);
  });

  test('`error: null` beside the answer is no error', async () => {
    provider(ONE, async () => HttpResponse.json({ ...((await chatReply('gpt-4.1', 'ok').json()) as object), error: null }));
    const { client, success } = manage();
    const reply = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask });
    expect(reply.choices[0]!.message.content).toBe('ok');
    expect(success).toHaveLength(1);
  });
});

describe('a stream that opens with an error event (OpenRouter: an error after processing started, before any token)', () => {
  const opensWithError = () => rawSseReply(`: OPENROUTER PROCESSING\n\n${frames([JSON.stringify({ error: { code: 502, message: 'Provider returned error' } })])}`, 10_000);

  test('nothing reached the caller: another provider serves the stream, and the app reads it whole', async () => {
    const one = provider(ONE, opensWithError);
    provider(TWO, () => sseReply(chatChunks('gpt-4.1', WORDS, true)));
    const { client, success, failure } = manage();
    const { chunks, error } = await readAll(await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true }));
    expect(error).toBeUndefined();
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(WORDS.join(''));
    expect(one).toHaveLength(1);
    expect(success).toHaveLength(1);
    expect(success[0]).toMatchObject({ attempts: 2 });
    expect(failure).toHaveLength(0);
  });

  test('the comment and the error in separate reads (as a network delivers them): still nothing reached the caller, another provider serves it', async () => {
    // A fetch of its own: msw would hand the body over in one read.
    const encoder = new TextEncoder();
    let firstCalls = 0;
    const fetch = (async (url: string | URL | Request) => {
      if (!String(url).startsWith(ONE)) return sseReply(chatChunks('gpt-4.1', WORDS, true));
      firstCalls++;
      const parts = [': OPENROUTER PROCESSING\n\n', ': OPENROUTER PROCESSING\n\n', frames([JSON.stringify({ error: { code: 502, message: 'Provider returned error' } })])];
      const body = new ReadableStream<Uint8Array>({ pull: (c) => void (parts.length > 0 ? c.enqueue(encoder.encode(parts.shift()!)) : c.close()) }, { highWaterMark: 0 });
      return new Response(body, { headers: { 'content-type': 'text/event-stream' } });
    }) as typeof globalThis.fetch;
    const { client, success } = manage({ fetch });
    const { chunks, error } = await readAll(await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true }));
    expect(error).toBeUndefined();
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(WORDS.join(''));
    expect(firstCalls).toBe(1);
    expect(success[0]).toMatchObject({ provider: 'two', attempts: 2 });
  });

  test("an error event naming its code in words (`rate_limit_exceeded`, `insufficient_quota`) counts as that status: the quota one takes the key out", async () => {
    const quota = () => rawSseReply(frames([JSON.stringify({ error: { code: 'insufficient_quota', message: 'You exceeded your current quota', type: 'insufficient_quota' } })]), 10_000);
    provider(ONE, quota);
    provider(TWO, () => sseReply(chatChunks('gpt-4.1', WORDS, true)));
    const { client, manager } = manage();
    const disabled = record(manager, 'key:disabled');
    const { error } = await readAll(await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true }));
    expect(error).toBeUndefined();
    expect(disabled.map((e) => [e.provider, e.reason])).toEqual([['one', 'quota']]);
  });

  test('as the last answer it is raised at the call as the SDK error of its code, with the provider message', async () => {
    provider(ONE, opensWithError);
    provider(TWO, opensWithError);
    const { client, success, failure } = manage();
    const error = await caught(() => client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true }));
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
    expect((error as Error).message).toContain('Provider returned error');
    expect(getKeyplexDetails(error)).toMatchObject({ code: 'upstream_error', status: 502 });
    expect(success).toHaveLength(0);
    expect(failure.map((e) => e.error.code)).toEqual(['upstream_error']);
  });
});
