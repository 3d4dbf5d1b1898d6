import OpenAI from 'openai';
import { describe, expect, test } from 'vitest';
import { getKeyplexDetails, type KeyManagerOptions, type KeyplexEventName, type KeyplexEvents } from '../../src/index';
import { fakeKey } from '../support/fake-keys';
import { askedUsage, chatChunks, cutSseReply, errorReply, gate, namedSseReply, provider, rawSseReply, responsesEvents, sseReply } from '../support/upstream';
import '../support/setup';
import { NO_BACKOFF, useManagers } from '../support/scaffold';

const ONE = 'https://api.one.test/v1';
const TWO = 'https://api.two.test/v1';
const WORDS = ['Hel', 'lo', ' wor', 'ld'];

const managed = useManagers({
  ...NO_BACKOFF,
  providers: {
    one: { baseURL: ONE, keys: [fakeKey('one')] },
    two: { baseURL: TWO, keys: [fakeKey('two')] },
  },
});

/** A manager over providers `one` then `two` (one key each), with every event recorded. */
function manage(options: Partial<KeyManagerOptions> = {}) {
  const made = managed(options);
  const events: { [E in KeyplexEventName]: KeyplexEvents[E][] } = {
    request: [],
    attempt: [],
    retry: [],
    failover: [],
    success: [],
    failure: [],
    'key:cooldown': [],
    'key:disabled': [],
    'key:recovered': [],
    'key:limits': [],
    'key:added': [],
    'key:removed': [],
    'circuit:open': [],
    'circuit:half-open': [],
    'circuit:close': [],
    'lane:rejected': [],
    'budget:exceeded': [],
    'store:error': [],
    'store:recovered': [],
    'store:lost': [],
    'cache:hit': [],
    'cache:miss': [],
    'background:settled': [],
  };
  for (const name of Object.keys(events) as KeyplexEventName[]) {
    made.manager.on(name, (payload) => void (events[name] as unknown[]).push(payload));
  }
  return { ...made, events };
}

const ask = [{ role: 'user' as const, content: 'hi' }];

/** The text of a streamed chat completion. */
function textOf(chunks: OpenAI.Chat.Completions.ChatCompletionChunk[]): string {
  return chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
}

describe('fail-over before the first byte', () => {
  test('a 500 to the stream request: the whole stream comes from the second provider, with one failover event', async () => {
    const first = provider(ONE, () => errorReply(500, 'server_error'));
    const second = provider(TWO, (call) => sseReply(chatChunks('gpt-4.1', WORDS, askedUsage(call))));
    const { client, events } = manage();

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);

    expect(textOf(chunks)).toBe('Hello world');
    expect(first).toHaveLength(1);
    expect(second).toHaveLength(1);
    expect(events.failover).toHaveLength(1);
    expect(events.failover[0]).toMatchObject({ from: { provider: 'one' }, to: { provider: 'two' }, reason: 'server_error' });
  });

  test('a stream that errors before its first event: the whole stream comes from the second provider, with one failover event', async () => {
    const first = provider(ONE, (call) => sseReply(chatChunks('gpt-4.1', WORDS, askedUsage(call)), { failAfter: 0 }));
    const second = provider(TWO, (call) => sseReply(chatChunks('gpt-4.1', WORDS, askedUsage(call))));
    const { client, events } = manage();

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);

    expect(textOf(chunks)).toBe('Hello world');
    expect(first).toHaveLength(1);
    expect(second).toHaveLength(1);
    expect(events.failover).toHaveLength(1);
    expect(events.failover[0]).toMatchObject({ from: { provider: 'one' }, to: { provider: 'two' } });
    expect(events.failure).toHaveLength(0);
    expect(events.success).toHaveLength(1);
    expect(events.success[0]).toMatchObject({ provider: 'two', stream: true });
  });
});

describe('fail-over when the body fails before its first byte', () => {
  /**
   * A transport whose provider-one answers deliver their headers, then `part`
   * (when given), then reset. msw sends headers together with the first body
   * bytes, so this needs the `fetch` option.
   */
  const resetsAfter =
    (part?: string): typeof fetch =>
    async (input, init) => {
      const response = await globalThis.fetch(input, init);
      if (new URL(String(input)).origin !== new URL(ONE).origin) return response;
      await response.body?.cancel();
      let sent = part === undefined;
      const body = new ReadableStream<Uint8Array>({
        pull(c) {
          if (sent) return c.error(new TypeError('terminated'));
          sent = true;
          c.enqueue(new TextEncoder().encode(part));
        },
      });
      return new Response(body, { status: response.status, headers: response.headers });
    };

  test.each([
    ['errors on its first read', undefined],
    ['sends part of its first line, then resets', 'data: {"id":"chatcmpl-1","object":"chat.'],
    ['sends its first line without the blank line that ends the event, then resets', `data: ${chatChunks('gpt-4.1', WORDS, false)[0]}\n`],
  ])('headers arrive but the body %s: nothing reached the caller, so the whole stream comes from the second provider', async (_name, part) => {
    const first = provider(ONE, (call) => sseReply(chatChunks('gpt-4.1', WORDS, askedUsage(call))));
    const second = provider(TWO, (call) => sseReply(chatChunks('gpt-4.1', WORDS, askedUsage(call))));
    const { client, events } = manage({ fetch: resetsAfter(part) });

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);

    expect(textOf(chunks)).toBe('Hello world');
    expect(first).toHaveLength(1);
    expect(second).toHaveLength(1);
    expect(events.failover).toHaveLength(1);
    expect(events.failure).toHaveLength(0);
    expect(events.success).toHaveLength(1);
    expect(events.success[0]?.provider).toBe('two');
  });
});

describe('no fail-over after the first byte', () => {
  /** Provider one cuts its stream once the caller has read 2 chunks; provider two would answer whole. */
  function cutAfterTwo() {
    const cut = gate();
    const first = provider(ONE, (call) => cutSseReply(chatChunks('gpt-4.1', WORDS, askedUsage(call)), { after: 2, gate: cut.promise }));
    const second = provider(TWO, (call) => sseReply(chatChunks('gpt-4.1', WORDS, askedUsage(call))));
    return { first, second, cut };
  }

  /** Reads the stream, opening the gate after 2 chunks; returns the chunks read and what was thrown. */
  async function readUntilCut(stream: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>, open: () => void) {
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    try {
      for await (const chunk of stream) {
        chunks.push(chunk);
        if (chunks.length === 2) open();
      }
    } catch (error) {
      return { chunks, error: error as unknown, threw: true };
    }
    return { chunks, error: undefined, threw: false };
  }

  test("a stream cut after 2 events makes the caller's for-await throw after the data it got, with exactly one upstream call", async () => {
    const { first, second, cut } = cutAfterTwo();
    const { client, events } = manage();

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    const { chunks, threw } = await readUntilCut(stream, cut.open);

    expect(threw).toBe(true);
    expect(textOf(chunks)).toBe('Hello');
    expect(first).toHaveLength(1);
    expect(second).toHaveLength(0);
    expect(events.failover).toHaveLength(0);
    expect(events.retry).toHaveLength(0);
    expect(events.success).toHaveLength(0);
  });

  test('a stream cut after 2 events emits one failure event with code stream_interrupted', async () => {
    const { cut } = cutAfterTwo();
    const { client, events } = manage();

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    await readUntilCut(stream, cut.open);

    expect(events.failure).toHaveLength(1);
    expect(events.failure[0]?.error.code).toBe('stream_interrupted');
  });

  test('the error a cut stream throws carries keyplex detail with code stream_interrupted', async () => {
    const { cut } = cutAfterTwo();
    const { client } = manage();

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    const { error, threw } = await readUntilCut(stream, cut.open);

    expect(threw).toBe(true);
    expect(getKeyplexDetails(error)?.code).toBe('stream_interrupted');
  });

  test('a cut stream is counted as a stream_interrupted failure in stats, with nothing left in flight', async () => {
    const { cut } = cutAfterTwo();
    const { manager, client } = manage();

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    await readUntilCut(stream, cut.open);

    const stats = manager.stats();
    expect(stats.totals.failures.stream_interrupted).toBe(1);
    expect(stats.totals.successes).toBe(0);
    expect(stats.totals.inFlight).toBe(0);
    expect(stats.providers.one?.keys[0]?.inFlight).toBe(0);
  });

  test('a Responses API stream cut after its first events throws to the caller without failing over', async () => {
    const cut = gate();
    const first = provider(ONE, () => cutSseReply(responsesEvents('gpt-4.1', WORDS), { after: 2, gate: cut.promise }));
    const second = provider(TWO, () => namedSseReply(responsesEvents('gpt-4.1', WORDS)));
    const { client, events } = manage();

    const stream = await client.responses.create({ model: 'gpt-4.1', input: 'hi', stream: true });
    const types: string[] = [];
    let caught: unknown;
    try {
      for await (const event of stream) {
        types.push(event.type);
        if (types.length === 2) cut.open();
      }
    } catch (error) {
      caught = error;
    }

    expect(caught).toBeDefined();
    expect(types).toEqual(['response.created', 'response.output_text.delta']);
    expect(first).toHaveLength(1);
    expect(second).toHaveLength(0);
    expect(events.failure.map((e) => e.error.code)).toEqual(['stream_interrupted']);
  });
});

describe('stream usage chunk', () => {
  test("keyplex asks upstream for stream usage when the caller did not, and removes the usage-only chunk from the caller's stream", async () => {
    const seen = provider(ONE, (call) => sseReply(chatChunks('gpt-4.1', WORDS, askedUsage(call), { prompt: 12, completion: 4 })));
    const { client } = manage();

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);

    expect(askedUsage(seen[0]!)).toBe(true);
    expect(textOf(chunks)).toBe('Hello world');
    expect(chunks.filter((c) => c.choices.length === 0)).toEqual([]);
    expect(chunks.some((c) => c.usage)).toBe(false);
  });

  test('the usage of a stream the caller did not ask usage for still reaches the success event', async () => {
    provider(ONE, (call) => sseReply(chatChunks('gpt-4.1', WORDS, askedUsage(call), { prompt: 12, completion: 4 })));
    const { client, events } = manage();

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    for await (const _ of stream);

    expect(events.success[0]?.usage).toMatchObject({ inputTokens: 12, outputTokens: 4, totalTokens: 16 });
  });

  test('the usage-only chunk is kept when the caller asked for stream_options.include_usage', async () => {
    const seen = provider(ONE, (call) => sseReply(chatChunks('gpt-4.1', WORDS, askedUsage(call), { prompt: 12, completion: 4 })));
    const { client, events } = manage();

    const stream = await client.chat.completions.create({
      model: 'gpt-4.1',
      messages: ask,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);

    expect(askedUsage(seen[0]!)).toBe(true);
    const usageChunks = chunks.filter((c) => c.choices.length === 0);
    expect(usageChunks).toHaveLength(1);
    expect(usageChunks[0]?.usage).toMatchObject({ prompt_tokens: 12, completion_tokens: 4, total_tokens: 16 });
    expect(chunks.at(-1)).toBe(usageChunks[0]);
    expect(events.success[0]?.usage).toMatchObject({ inputTokens: 12, outputTokens: 4 });
  });

  test('with streamUsage off, keyplex does not ask upstream for stream usage and the success event has usage null', async () => {
    const seen = provider(ONE, (call) => sseReply(chatChunks('gpt-4.1', WORDS, askedUsage(call))));
    const { client, events } = manage({ streamUsage: false });

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);

    expect(askedUsage(seen[0]!)).toBe(false);
    expect(textOf(chunks)).toBe('Hello world');
    expect(events.success).toHaveLength(1);
    expect(events.success[0]?.usage).toBeNull();
    expect(events.success[0]?.costUsd).toBeNull();
  });

  test('with streamUsage off, a usage-only chunk the upstream sends unasked reaches the caller (keyplex removes only the one it asked for), and is counted', async () => {
    const seen = provider(ONE, () => sseReply(chatChunks('gpt-4.1', WORDS, true, { prompt: 12, completion: 4 })));
    const { client, events } = manage({ streamUsage: false });

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);

    expect(askedUsage(seen[0]!)).toBe(false);
    expect(chunks).toHaveLength(WORDS.length + 2);
    expect(chunks.at(-1)?.usage).toMatchObject({ prompt_tokens: 12, completion_tokens: 4 });
    expect(events.success[0]?.usage).toMatchObject({ inputTokens: 12, outputTokens: 4 });
  });
});

describe('stream usage chunk, on the wire', () => {
  test('a usage-only chunk split across network reads, with CRLF framing and multi-byte text, is still removed and read', async () => {
    const words = ['héllo ', '🌍', ' wörld'];
    provider(ONE, (call) => {
      const events = chatChunks('gpt-4.1', words, askedUsage(call), { prompt: 21, completion: 7 });
      const text = [...events, '[DONE]'].map((e) => `data: ${e}\r\n\r\n`).join('');
      return rawSseReply(text, 7);
    });
    const { client, events } = manage();

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);

    expect(textOf(chunks)).toBe('héllo 🌍 wörld');
    expect(chunks.filter((c) => c.choices.length === 0)).toEqual([]);
    expect(events.success[0]?.usage).toMatchObject({ inputTokens: 21, outputTokens: 7 });
  });

  test("the caller's other stream_options are kept when keyplex adds include_usage", async () => {
    const seen = provider(ONE, (call) => sseReply(chatChunks('gpt-4.1', WORDS, askedUsage(call))));
    const { client } = manage();

    const stream = await client.chat.completions.create({
      model: 'gpt-4.1',
      messages: ask,
      stream: true,
      stream_options: { include_obfuscation: false },
    });
    for await (const _ of stream);

    expect(seen[0]?.body?.stream_options).toEqual({ include_obfuscation: false, include_usage: true });
  });

  // Mistral's 422 (pydantic's extra_forbidden), Groq's and older Azure's 400: providers that refuse the parameter keyplex adds.
  test.each([
    { name: "Mistral's 422", reply: () => errorReply(422, null, {}, "[{'type': 'extra_forbidden', 'loc': ['body', 'stream_options', 'include_usage'], 'msg': 'Extra inputs are not permitted'}]") },
    { name: "Groq's 400", reply: () => errorReply(400, 'invalid_request_error', {}, "property 'stream_options' is unsupported, did you mean 'stream'?") },
  ])('a provider that refuses the stream_options keyplex adds ($name) is asked again at once without them, and not sent them again', async ({ reply }) => {
    const seen = provider(ONE, (call) => (call.body?.stream_options !== undefined ? reply() : sseReply(chatChunks('gpt-4.1', WORDS, true))));
    // One provider: the request is asked again of it, not sent on to another (whose unhandled call only looked like a connection failure).
    const { client, events } = manage({ providers: { one: { baseURL: ONE, keys: [fakeKey('one')] } } });
    const read = async () => {
      const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
      const chunks = [];
      for await (const chunk of stream) chunks.push(chunk);
      // Sent unasked (keyplex did not ask this deployment for it), the usage-only chunk is the upstream's, passed on.
      expect(chunks.filter((c) => c.choices.length === 0)).toHaveLength(1);
      return textOf(chunks);
    };

    expect(await read()).toBe('Hello world');
    expect(await read()).toBe('Hello world');

    expect(seen.map((call) => call.body?.stream_options)).toEqual([{ include_usage: true }, undefined, undefined]);
    expect(seen.map((call) => call.origin)).toEqual([new URL(ONE).origin, new URL(ONE).origin, new URL(ONE).origin]);
    expect(events.success).toHaveLength(2);
    expect(events.failure).toHaveLength(0);
  });

  test("a caller's own stream_options refused by the provider are the caller's: the 400 is passed on, nothing sent again", async () => {
    const seen = provider(ONE, () => errorReply(400, 'invalid_request_error', {}, "property 'stream_options' is unsupported, did you mean 'stream'?"));
    const { client } = manage();

    const error = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true, stream_options: { include_usage: true } }).then(
      () => undefined,
      (e: unknown) => e,
    );

    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect(seen).toHaveLength(1);
  });

  test('a streamed legacy completion has its usage-only chunk removed when the caller did not ask for usage', async () => {
    const seen = provider(ONE, (call) => {
      const base = { id: 'cmpl-stream', object: 'text_completion', created: 1_700_000_000, model: 'gpt-3.5-turbo-instruct' };
      const events = [
        JSON.stringify({ ...base, choices: [{ index: 0, text: 'do', finish_reason: null, logprobs: null }] }),
        JSON.stringify({ ...base, choices: [{ index: 0, text: 'ne', finish_reason: 'stop', logprobs: null }] }),
      ];
      if (askedUsage(call)) events.push(JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: 4, completion_tokens: 2, total_tokens: 6 } }));
      return sseReply(events);
    });
    const { client, events } = manage();

    const stream = await client.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: 'say done', stream: true });
    const chunks: OpenAI.Completions.Completion[] = [];
    for await (const chunk of stream) chunks.push(chunk);

    expect(askedUsage(seen[0]!)).toBe(true);
    expect(chunks.map((c) => c.choices.length)).toEqual([1, 1]);
    expect(events.success[0]?.usage).toMatchObject({ inputTokens: 4, outputTokens: 2, totalTokens: 6 });
  });
});

describe('success event of a stream', () => {
  test('carries the usage, its cost, ttftMs and stream: true', async () => {
    provider(ONE, (call) => sseReply(chatChunks('gpt-4.1', WORDS, askedUsage(call), { prompt: 1000, completion: 500 })));
    const { client, events } = manage();

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    for await (const _ of stream);

    expect(events.success).toHaveLength(1);
    const success = events.success[0]!;
    expect(success.stream).toBe(true);
    expect(success.usage).toEqual({ inputTokens: 1000, outputTokens: 500, cachedInputTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, totalTokens: 1500 });
    expect(success.costUsd).toBeCloseTo((1000 * 2 + 500 * 8) / 1e6, 12);
    expect(success.ttftMs).toEqual(expect.any(Number));
    expect(success.ttftMs).toBeGreaterThanOrEqual(0);
    expect(success.ttftMs).toBeLessThanOrEqual(success.latencyMs);
    expect(success).toMatchObject({ provider: 'one', model: 'gpt-4.1', attempts: 1 });
  });

  test('fires once, when the stream ends rather than when it starts', async () => {
    provider(ONE, (call) => sseReply(chatChunks('gpt-4.1', WORDS, askedUsage(call))));
    const { client, events } = manage();

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    const seenWhileStreaming: number[] = [];
    seenWhileStreaming.push(events.success.length);
    for await (const _ of stream) seenWhileStreaming.push(events.success.length);

    expect(seenWhileStreaming.every((n) => n === 0)).toBe(true);
    expect(events.success).toHaveLength(1);
  });
});

describe('caller leaving a stream early', () => {
  test('breaking out of the loop after the first chunk ends cleanly: no failure, no unhandled error, nothing in flight', async () => {
    provider(ONE, (call) => sseReply(chatChunks('gpt-4.1', ['a', 'b', 'c', 'd', 'e', 'f'], askedUsage(call))));
    const { manager, client, events } = manage();
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
      let seen = 0;
      for await (const _ of stream) {
        seen++;
        break;
      }
      // Let any rejection that nobody handles surface.
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));

      expect(seen).toBe(1);
      expect(unhandled).toEqual([]);
      expect(events.failure).toEqual([]);
      expect(events.success.length).toBeLessThanOrEqual(1);
      const stats = manager.stats();
      expect(stats.totals.inFlight).toBe(0);
      expect(stats.providers.one?.keys.map((k) => k.inFlight)).toEqual([0]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  test('after a caller broke out of a stream, the manager closes without waiting', async () => {
    provider(ONE, (call) => sseReply(chatChunks('gpt-4.1', ['a', 'b', 'c', 'd'], askedUsage(call))));
    const { manager, client } = manage();

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    for await (const _ of stream) break;

    await expect(manager.close()).resolves.toBeUndefined();
  });
});

describe('Responses API streaming', () => {
  test('the named events pass through to the caller in order', async () => {
    const events = responsesEvents('gpt-4.1', WORDS, { prompt: 30, completion: 8 });
    const seen = provider(ONE, () => namedSseReply(events));
    const { client } = manage();

    const stream = await client.responses.create({ model: 'gpt-4.1', input: 'hi', stream: true });
    const got: OpenAI.Responses.ResponseStreamEvent[] = [];
    for await (const event of stream) got.push(event);

    expect(got.map((e) => e.type)).toEqual(events.map((e) => e.event));
    expect(
      got
        .filter((e): e is OpenAI.Responses.ResponseTextDeltaEvent => e.type === 'response.output_text.delta')
        .map((e) => e.delta)
        .join(''),
    ).toBe('Hello world');
    expect(seen[0]?.path).toBe('/responses');
  });

  test('keyplex does not add stream_options to a Responses API request', async () => {
    const seen = provider(ONE, () => namedSseReply(responsesEvents('gpt-4.1', WORDS)));
    const { client } = manage();

    const stream = await client.responses.create({ model: 'gpt-4.1', input: 'hi', stream: true });
    for await (const _ of stream);

    expect(seen[0]?.body).not.toHaveProperty('stream_options');
  });

  test('the success event carries the usage of the response.completed event, priced, with stream: true and ttftMs', async () => {
    provider(ONE, () => namedSseReply(responsesEvents('gpt-4.1', WORDS, { prompt: 3000, cached: 1000, completion: 400, reasoning: 100 })));
    const { client, events } = manage();

    const stream = await client.responses.create({ model: 'gpt-4.1', input: 'hi', stream: true });
    for await (const _ of stream);

    expect(events.success).toHaveLength(1);
    const success = events.success[0]!;
    expect(success.usage).toEqual({ inputTokens: 3000, outputTokens: 400, cachedInputTokens: 1000, cacheWriteTokens: 0, reasoningTokens: 100, totalTokens: 3400 });
    expect(success.costUsd).toBeCloseTo((2000 * 2 + 1000 * 0.5 + 400 * 8) / 1e6, 12);
    expect(success.stream).toBe(true);
    expect(success.ttftMs).toEqual(expect.any(Number));
  });

  test('a Responses stream that fails before its first event fails over to the second provider', async () => {
    const first = provider(ONE, () => namedSseReply(responsesEvents('gpt-4.1', WORDS), { failAfter: 0 }));
    const second = provider(TWO, () => namedSseReply(responsesEvents('gpt-4.1', WORDS)));
    const { client, events } = manage();

    const stream = await client.responses.create({ model: 'gpt-4.1', input: 'hi', stream: true });
    const types: string[] = [];
    for await (const event of stream) types.push(event.type);

    expect(types.at(-1)).toBe('response.completed');
    expect(first).toHaveLength(1);
    expect(second).toHaveLength(1);
    expect(events.failover).toHaveLength(1);
  });
});
