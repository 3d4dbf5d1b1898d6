import { describe, expect, test } from 'vitest';
import { getKeyplexDetails, type KeyManagerOptions } from '../../src/index';
import { fakeKey } from '../support/fake-keys';
import {
  askedUsage,
  chatChunks,
  chatReply,
  completionReply,
  errorReply,
  deepseekReply,
  embeddingReply,
  provider,
  responsesReply,
  sseReply,
} from '../support/upstream';
import '../support/setup';
import { record } from '../support/events';
import { NO_BACKOFF, useManagers } from '../support/scaffold';

const OPENAI = 'https://api.openai.test/v1';
const DEEPSEEK = 'https://api.deepseek.test/v1';

/** gpt-4.1 list prices, USD per million tokens. */
const GPT_41 = { input: 2, cachedInput: 0.5, output: 8 };

const managed = useManagers({ ...NO_BACKOFF, providers: { openai: { baseURL: OPENAI, keys: [fakeKey('openai')] } } });

function manage(options: Partial<KeyManagerOptions> = {}) {
  const made = managed(options);
  return { ...made, successes: record(made.manager, 'success') };
}

const ask = [{ role: 'user' as const, content: 'hi' }];

/** Expected cost in USD of `tokens` at `price` (USD per million). */
function cost(price: { input: number; cachedInput?: number; output: number }, t: { input: number; cached?: number; output: number }): number {
  const cached = t.cached ?? 0;
  return ((t.input - cached) * price.input + cached * (price.cachedInput ?? price.input) + t.output * price.output) / 1e6;
}

/** A gpt-4.1 chat completion body without usage. */
const chatReplyBody = {
  id: 'chatcmpl-test',
  object: 'chat.completion',
  created: 1_700_000_000,
  model: 'gpt-4.1',
  choices: [{ index: 0, message: { role: 'assistant', content: 'hi', refusal: null }, finish_reason: 'stop', logprobs: null }],
};

describe('cost = tokens × price', () => {
  test('a JSON chat reply with cached and reasoning tokens is priced at gpt-4.1 input, cached-input and output rates', async () => {
    provider(OPENAI, (call) => chatReply(String(call.body?.model), 'hi', { prompt: 1200, cached: 400, completion: 300, reasoning: 120 }));
    const { client, successes } = manage();

    await client.chat.completions.create({ model: 'gpt-4.1', messages: ask });

    expect(successes).toHaveLength(1);
    expect(successes[0]?.usage).toEqual({ inputTokens: 1200, outputTokens: 300, cachedInputTokens: 400, cacheWriteTokens: 0, reasoningTokens: 120, totalTokens: 1500 });
    // 800 × 2 + 400 × 0.5 + 300 × 8 = 4200 µUSD
    expect(successes[0]?.costUsd).toBeCloseTo(cost(GPT_41, { input: 1200, cached: 400, output: 300 }), 12);
    expect(successes[0]?.costUsd).toBeCloseTo(0.0042, 12);
  });

  test('a streamed chat reply is priced from its usage chunk', async () => {
    provider(OPENAI, (call) => sseReply(chatChunks('gpt-4.1', ['a', 'b'], askedUsage(call), { prompt: 2000, cached: 1500, completion: 700, reasoning: 50 })));
    const { client, successes } = manage();

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    for await (const _ of stream);

    expect(successes).toHaveLength(1);
    expect(successes[0]?.usage).toEqual({ inputTokens: 2000, outputTokens: 700, cachedInputTokens: 1500, cacheWriteTokens: 0, reasoningTokens: 50, totalTokens: 2700 });
    expect(successes[0]?.costUsd).toBeCloseTo(cost(GPT_41, { input: 2000, cached: 1500, output: 700 }), 12);
  });

  test("a Groq stream, whose usage comes in x_groq on its last chunk, is priced from it", async () => {
    const base = { id: 'chatcmpl-groq', object: 'chat.completion.chunk', created: 1_700_000_000, model: 'gpt-4.1', x_groq: { id: 'req_1' } };
    const last = { ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], x_groq: { id: 'req_1', usage: { prompt_tokens: 2000, completion_tokens: 700, total_tokens: 2700 } } };
    provider(OPENAI, () => sseReply([JSON.stringify({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: 'hi' }, finish_reason: null }] }), JSON.stringify(last)]));
    const { client, successes } = manage();

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    for await (const _ of stream);

    // Was: usage null, costUsd null (and nothing spent against budgets).
    expect(successes[0]?.usage).toMatchObject({ inputTokens: 2000, outputTokens: 700, totalTokens: 2700 });
    expect(successes[0]?.costUsd).toBeCloseTo(cost(GPT_41, { input: 2000, output: 700 }), 12);
  });

  test("an xAI reply, whose reasoning tokens come beside completion_tokens, has them priced as output and spent against its budget", async () => {
    const usage = { prompt_tokens: 32, completion_tokens: 9, total_tokens: 135, completion_tokens_details: { reasoning_tokens: 94 } };
    provider(OPENAI, () => Response.json({ ...chatReplyBody, usage }));
    const { client, successes, manager } = manage({ budgets: [{ scope: { overall: true }, limitUsd: 1, window: 'day' }] });

    await client.chat.completions.create({ model: 'gpt-4.1', messages: ask });

    // Was: 9 output tokens (reasoning capped at 9), 136 µUSD: the 94 reasoning tokens free.
    expect(successes[0]?.usage).toEqual({ inputTokens: 32, outputTokens: 103, cachedInputTokens: 0, cacheWriteTokens: 0, reasoningTokens: 94, totalTokens: 135 });
    expect(successes[0]?.costUsd).toBeCloseTo(cost(GPT_41, { input: 32, output: 103 }), 12);
    expect(manager.stats().budgets[0]!.spentUsd).toBeCloseTo(cost(GPT_41, { input: 32, output: 103 }), 9);
  });

  test("a stream from Gemini's OpenAI-compatible endpoint, whose thinking tokens only total_tokens counts, has them priced as output", async () => {
    const base = { id: 'chatcmpl-g', object: 'chat.completion.chunk', created: 1_700_000_000, model: 'gemini-2.5-flash' };
    provider(OPENAI, () =>
      sseReply([
        JSON.stringify({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: 'hi' }, finish_reason: null }] }),
        JSON.stringify({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], usage: { prompt_tokens: 11, completion_tokens: 9, total_tokens: 88 } }),
      ]),
    );
    const { client, successes } = manage();

    const stream = await client.chat.completions.create({ model: 'gemini-2.5-flash', messages: ask, stream: true });
    for await (const _ of stream);

    // gemini-2.5-flash at 0.3 / 2.5 per million. Was: 9 output tokens, 25.8 µUSD (the 68 thinking tokens free).
    expect(successes[0]?.usage).toEqual({ inputTokens: 11, outputTokens: 77, cachedInputTokens: 0, cacheWriteTokens: 0, reasoningTokens: 68, totalTokens: 88 });
    expect(successes[0]?.costUsd).toBeCloseTo((11 * 0.3 + 77 * 2.5) / 1e6, 12);
  });

  test('a Responses API JSON reply is priced from input_tokens, cached tokens and output_tokens', async () => {
    const seen = provider(OPENAI, () => responsesReply('gpt-4.1', 'hi', { prompt: 5000, cached: 2000, completion: 900, reasoning: 400 }));
    const { client, successes } = manage();

    const reply = await client.responses.create({ model: 'gpt-4.1', input: 'hi' });

    expect(reply.output_text).toBe('hi');
    expect(seen[0]?.path).toBe('/responses');
    expect(successes[0]?.usage).toEqual({ inputTokens: 5000, outputTokens: 900, cachedInputTokens: 2000, cacheWriteTokens: 0, reasoningTokens: 400, totalTokens: 5900 });
    expect(successes[0]?.costUsd).toBeCloseTo(cost(GPT_41, { input: 5000, cached: 2000, output: 900 }), 12);
  });

  test('an embeddings reply is priced at text-embedding-3-small input rate', async () => {
    const seen = provider(OPENAI, (call) => embeddingReply(String(call.body?.model), 2, 8000));
    const { client, successes } = manage();

    const reply = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['a', 'b'], encoding_format: 'float' });

    expect(reply.data).toHaveLength(2);
    expect(seen[0]?.path).toBe('/embeddings');
    expect(successes[0]?.usage).toEqual({ inputTokens: 8000, outputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, totalTokens: 8000 });
    expect(successes[0]?.costUsd).toBeCloseTo((8000 * 0.02) / 1e6, 15);
  });

  test('an embeddings request with the SDK default (base64) encoding is priced too', async () => {
    const seen = provider(OPENAI, () => {
      const vector = Buffer.from(new Float32Array([0.1, 0.2, 0.3]).buffer).toString('base64');
      return Response.json({
        object: 'list',
        model: 'text-embedding-3-small',
        data: [{ object: 'embedding', index: 0, embedding: vector }],
        usage: { prompt_tokens: 1234, total_tokens: 1234 },
      });
    });
    const { client, successes } = manage();

    const reply = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'a' });

    expect(seen[0]?.body?.encoding_format).toBe('base64');
    expect(reply.data[0]?.embedding).toHaveLength(3);
    expect(successes[0]?.costUsd).toBeCloseTo((1234 * 0.02) / 1e6, 15);
  });

  test("DeepSeek's prompt_cache_hit_tokens are priced at the cache-hit rate", async () => {
    provider(DEEPSEEK, (call) => deepseekReply(String(call.body?.model), { hit: 600, miss: 400, completion: 200 }));
    const { client, successes } = manage({ providers: { deepseek: { baseURL: DEEPSEEK, keys: [fakeKey('deepseek')] } } });

    await client.chat.completions.create({ model: 'deepseek-chat', messages: ask });

    expect(successes[0]?.usage).toEqual({ inputTokens: 1000, outputTokens: 200, cachedInputTokens: 600, cacheWriteTokens: 0, reasoningTokens: 0, totalTokens: 1200 });
    // 400 × 0.28 + 600 × 0.028 + 200 × 0.42 = 212.8 µUSD
    expect(successes[0]?.costUsd).toBeCloseTo(212.8e-6, 12);
  });

  test('a legacy completions reply has its usage read and priced', async () => {
    const seen = provider(OPENAI, (call) => completionReply(String(call.body?.model), 'done', { prompt: 300, completion: 100 }));
    const { client, successes } = manage({ prices: { 'gpt-3.5-turbo-instruct': { input: 1.5, output: 2 } } });

    const reply = await client.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: 'say done' });

    expect(reply.choices[0]?.text).toBe('done');
    expect(seen[0]?.path).toBe('/completions');
    expect(successes[0]?.usage).toEqual({ inputTokens: 300, outputTokens: 100, cachedInputTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, totalTokens: 400 });
    expect(successes[0]?.costUsd).toBeCloseTo((300 * 1.5 + 100 * 2) / 1e6, 12);
  });

  test('a streamed legacy completion asks upstream for usage and is priced from it', async () => {
    const seen = provider(OPENAI, (call) => {
      const base = { id: 'cmpl-stream', object: 'text_completion', created: 1_700_000_000, model: 'gpt-3.5-turbo-instruct' };
      const events = [
        JSON.stringify({ ...base, choices: [{ index: 0, text: 'do', finish_reason: null, logprobs: null }] }),
        JSON.stringify({ ...base, choices: [{ index: 0, text: 'ne', finish_reason: 'stop', logprobs: null }] }),
      ];
      if (askedUsage(call)) events.push(JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: 40, completion_tokens: 2, total_tokens: 42 } }));
      return sseReply(events);
    });
    const { client, successes } = manage({ prices: { 'gpt-3.5-turbo-instruct': { input: 1.5, output: 2 } } });

    const stream = await client.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: 'say done', stream: true });
    const texts: string[] = [];
    for await (const chunk of stream) texts.push(...chunk.choices.map((c) => c.text));

    expect(askedUsage(seen[0]!)).toBe(true);
    expect(texts.join('')).toBe('done');
    expect(successes[0]?.usage).toMatchObject({ inputTokens: 40, outputTokens: 2, totalTokens: 42 });
    expect(successes[0]?.costUsd).toBeCloseTo((40 * 1.5 + 2 * 2) / 1e6, 12);
  });
});

describe('price overrides and unknown models', () => {
  test('a prices override replaces the built-in price of a model', async () => {
    provider(OPENAI, (call) => chatReply(String(call.body?.model), 'hi', { prompt: 1000, cached: 400, completion: 500 }));
    const { client, successes } = manage({ prices: { 'gpt-4.1': { input: 10, cachedInput: 1, output: 20 } } });

    await client.chat.completions.create({ model: 'gpt-4.1', messages: ask });

    expect(successes[0]?.costUsd).toBeCloseTo((600 * 10 + 400 * 1 + 500 * 20) / 1e6, 12);
  });

  test('an override without cachedInput prices cached tokens at the input rate', async () => {
    provider(OPENAI, (call) => chatReply(String(call.body?.model), 'hi', { prompt: 1000, cached: 400, completion: 500 }));
    const { client, successes } = manage({ prices: { 'gpt-4.1': { input: 10, output: 20 } } });

    await client.chat.completions.create({ model: 'gpt-4.1', messages: ask });

    expect(successes[0]?.costUsd).toBeCloseTo((1000 * 10 + 500 * 20) / 1e6, 12);
  });

  test('a model with an override but no built-in price is priced by the override', async () => {
    provider(OPENAI, (call) => chatReply(String(call.body?.model), 'hi', { prompt: 100, completion: 50 }));
    const { client, successes } = manage({ prices: { 'my-local-llama': { input: 0.1, output: 0.2 } } });

    await client.chat.completions.create({ model: 'my-local-llama', messages: ask });

    expect(successes[0]?.costUsd).toBeCloseTo((100 * 0.1 + 50 * 0.2) / 1e6, 15);
  });

  test('a prices override of a public model name wins over the built-in price of the upstream model it is sent as', async () => {
    provider(OPENAI, (call) => chatReply(String(call.body?.model), 'hi', { prompt: 1000, completion: 500 }));
    const { client, successes, manager } = manage({
      providers: { openai: { baseURL: OPENAI, keys: [fakeKey('openai')], models: { chat: { upstream: 'gpt-4.1' } } } },
      prices: { chat: { input: 100, output: 200 } },
      budgets: [{ scope: { overall: true }, limitUsd: 0.25, window: 'day' }],
    });

    await client.chat.completions.create({ model: 'chat', messages: ask, max_tokens: 500 });
    const refused = await client.chat.completions.create({ model: 'chat', messages: ask, max_tokens: 500 }).catch((error: unknown) => error);

    // Was: gpt-4.1's built-in 2 / 8 (0.006), the override for 'chat' ignored; and the second request estimated at 0.004, admitted.
    expect(successes[0]?.costUsd).toBeCloseTo((1000 * 100 + 500 * 200) / 1e6, 12);
    expect(manager.stats().budgets[0]!.spentUsd).toBeCloseTo(0.2, 9);
    // Its estimate is at the override too: 500 output tokens at 200 per million and a short prompt, about 0.1.
    expect(getKeyplexDetails(refused)?.code).toBe('budget_exceeded');
  });

  test('a reply from a fallback model is priced at that model, not at the price of the model asked for', async () => {
    provider(OPENAI, () => errorReply(500));
    provider(DEEPSEEK, (call) => chatReply(String(call.body?.model), 'hi', { prompt: 1000, completion: 500 }));
    const { client, successes } = manage({
      providers: {
        openai: { baseURL: OPENAI, keys: [fakeKey('openai')], models: ['gpt-4.1', 'gpt-4.1-mini'] },
        deepseek: { baseURL: DEEPSEEK, keys: [fakeKey('deepseek')], models: ['deepseek-chat', 'my-llama'] },
      },
      circuitBreaker: false,
      routing: { fallbacks: { 'gpt-4.1': ['deepseek-chat'], 'gpt-4.1-mini': ['my-llama'] } },
      prices: { 'gpt-4.1': { input: 100, output: 200 }, 'gpt-4.1-mini': { input: 100, output: 200 } },
    });

    await client.chat.completions.create({ model: 'gpt-4.1', messages: ask });
    await client.chat.completions.create({ model: 'gpt-4.1-mini', messages: ask });

    // deepseek-chat at its built-in 0.28 / 0.42; my-llama has no price (was: the price of gpt-4.1-mini asked for).
    expect(successes.map((s) => s.model)).toEqual(['gpt-4.1', 'gpt-4.1-mini']);
    expect(successes[0]?.costUsd).toBeCloseTo((1000 * 0.28 + 500 * 0.42) / 1e6, 12);
    expect(successes[1]?.costUsd).toBeNull();
  });

  test('an unknown model gives costUsd null (not 0) while usage is still set', async () => {
    provider(OPENAI, (call) => chatReply(String(call.body?.model), 'hi', { prompt: 100, completion: 50 }));
    const { client, successes } = manage();

    await client.chat.completions.create({ model: 'my-local-llama', messages: ask });

    expect(successes[0]?.costUsd).toBeNull();
    expect(successes[0]?.usage).toEqual({ inputTokens: 100, outputTokens: 50, cachedInputTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, totalTokens: 150 });
  });

  test('an unknown model is counted as an unpriced reply in stats, with its tokens, and adds no spend', async () => {
    provider(OPENAI, (call) => chatReply(String(call.body?.model), 'hi', { prompt: 100, completion: 50 }));
    const { manager, client } = manage();

    await client.chat.completions.create({ model: 'my-local-llama', messages: ask });

    const { totals } = manager.stats();
    expect(totals.unpricedReplies).toBe(1);
    expect(totals.costUsd).toBe(0);
    expect(totals.tokens.totalTokens).toBe(150);
  });

  /** A gpt-4.1 chat reply with `usage` as given (none when undefined). */
  const replyWith = (usage?: object) =>
    Response.json({
      id: 'chatcmpl-test',
      object: 'chat.completion',
      created: 1_700_000_000,
      model: 'gpt-4.1',
      choices: [{ index: 0, message: { role: 'assistant', content: 'hi', refusal: null }, finish_reason: 'stop', logprobs: null }],
      ...(usage === undefined ? {} : { usage }),
    });

  test('a reply without usage gives usage null and costUsd null for a priced model', async () => {
    provider(OPENAI, () => replyWith());
    const { client, successes } = manage();

    await client.chat.completions.create({ model: 'gpt-4.1', messages: ask });

    expect(successes[0]?.usage).toBeNull();
    expect(successes[0]?.costUsd).toBeNull();
  });

  test('a usage that counts only a total (some self-hosted servers) is priced, split at the request\'s estimated input: not free', async () => {
    provider(OPENAI, () => replyWith({ total_tokens: 1_000 }));
    const { client, successes, manager } = manage({ budgets: [{ scope: { overall: true }, limitUsd: 1, window: 'day' }] });

    await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'x'.repeat(400) }] });

    // The usage as the server reported it; the cost at 100 estimated input tokens (400 characters ÷ 4) and the 900 others as output.
    expect(successes[0]?.usage).toMatchObject({ inputTokens: 0, outputTokens: 0, totalTokens: 1_000 });
    expect(successes[0]?.costUsd).toBeCloseTo(cost(GPT_41, { input: 100, output: 900 }), 12);
    expect(manager.stats().budgets[0]!.spentUsd).toBeCloseTo(cost(GPT_41, { input: 100, output: 900 }), 9);
  });
});

describe('stats() add up', () => {
  /** Four requests over two providers (two keys on openai, one on deepseek); returns their success events. */
  async function workload() {
    provider(OPENAI, (call) => {
      const content = (call.body?.messages as { content: string }[] | undefined)?.[0]?.content ?? '';
      return chatReply('gpt-4.1', 'hi', content === 'big' ? { prompt: 3000, cached: 1000, completion: 800, reasoning: 300 } : { prompt: 100, completion: 20 });
    });
    provider(DEEPSEEK, () => deepseekReply('deepseek-chat', { hit: 600, miss: 400, completion: 200 }));
    const ctx = manage({
      providers: {
        openai: { baseURL: OPENAI, keys: [{ key: fakeKey('o1'), id: 'o1' }, { key: fakeKey('o2'), id: 'o2' }], models: ['gpt-4.1', 'my-local-llama'] },
        deepseek: { baseURL: DEEPSEEK, keys: [{ key: fakeKey('d1'), id: 'd1' }], models: ['deepseek-chat'] },
      },
    });
    await ctx.client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'big' }] });
    await ctx.client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'small' }] });
    await ctx.client.chat.completions.create({ model: 'deepseek-chat', messages: ask });
    await ctx.client.chat.completions.create({ model: 'my-local-llama', messages: [{ role: 'user', content: 'small' }] });
    return ctx;
  }

  test('total tokens are the sum of every reply’s tokens', async () => {
    const { manager } = await workload();

    expect(manager.stats().totals.tokens).toEqual({
      inputTokens: 3000 + 100 + 1000 + 100,
      outputTokens: 800 + 20 + 200 + 20,
      cachedInputTokens: 1000 + 600,
      cacheWriteTokens: 0,
      reasoningTokens: 300,
      totalTokens: 3800 + 120 + 1200 + 120,
    });
  });

  test('total costUsd is the sum of the success events’ costs, and unpriced replies are counted apart', async () => {
    const { manager, successes } = await workload();

    const priced = successes.map((s) => s.costUsd).filter((c): c is number => c !== null);
    expect(priced).toHaveLength(3);
    const { totals } = manager.stats();
    expect(totals.costUsd).toBeCloseTo(priced.reduce((a, b) => a + b, 0), 12);
    expect(totals.costUsd).toBeCloseTo(
      cost(GPT_41, { input: 3000, cached: 1000, output: 800 }) + cost(GPT_41, { input: 100, output: 20 }) + 212.8e-6,
      12,
    );
    expect(totals.unpricedReplies).toBe(1);
    expect(totals.successes).toBe(4);
    expect(totals.requests).toBe(4);
  });

  test('each provider’s tokens and cost are those of its own replies', async () => {
    const { manager } = await workload();

    const { providers } = manager.stats();
    expect(providers.openai?.tokens).toEqual({ inputTokens: 3200, outputTokens: 840, cachedInputTokens: 1000, cacheWriteTokens: 0, reasoningTokens: 300, totalTokens: 4040 });
    expect(providers.openai?.costUsd).toBeCloseTo(cost(GPT_41, { input: 3000, cached: 1000, output: 800 }) + cost(GPT_41, { input: 100, output: 20 }), 12);
    expect(providers.deepseek?.tokens).toEqual({ inputTokens: 1000, outputTokens: 200, cachedInputTokens: 600, cacheWriteTokens: 0, reasoningTokens: 0, totalTokens: 1200 });
    expect(providers.deepseek?.costUsd).toBeCloseTo(212.8e-6, 12);
  });

  test('the keys of a provider add up to the provider, and the providers to the totals', async () => {
    const { manager } = await workload();

    const { totals, providers } = manager.stats();
    const fields = ['inputTokens', 'outputTokens', 'cachedInputTokens', 'reasoningTokens', 'totalTokens'] as const;
    for (const p of Object.values(providers)) {
      for (const field of fields) expect(p.keys.reduce((sum, k) => sum + k.tokens[field], 0)).toBe(p.tokens[field]);
      expect(p.keys.reduce((sum, k) => sum + k.costUsd, 0)).toBeCloseTo(p.costUsd, 12);
      expect(p.keys.reduce((sum, k) => sum + k.successes, 0)).toBe(p.successes);
    }
    for (const field of fields) expect(Object.values(providers).reduce((sum, p) => sum + p.tokens[field], 0)).toBe(totals.tokens[field]);
    expect(Object.values(providers).reduce((sum, p) => sum + p.costUsd, 0)).toBeCloseTo(totals.costUsd, 12);
  });

  test('each key’s tokens are those of the replies sent with it', async () => {
    const { manager, successes } = await workload();

    const byKey = new Map<string, number>();
    for (const s of successes) byKey.set(s.keyId, (byKey.get(s.keyId) ?? 0) + (s.usage?.totalTokens ?? 0));
    for (const p of Object.values(manager.stats().providers)) {
      for (const k of p.keys) expect(k.tokens.totalTokens).toBe(byKey.get(k.id) ?? 0);
    }
    // Round-robin spread the three openai requests over both keys.
    expect([...byKey.keys()].sort()).toEqual(['d1', 'o1', 'o2']);
  });

  test('a failed attempt before a success adds no tokens or cost', async () => {
    provider(OPENAI, (_call, index) =>
      index === 0 ? Response.json({ error: { message: 'boom', type: 'server_error', code: null } }, { status: 500 }) : chatReply('gpt-4.1', 'hi', { prompt: 100, completion: 20 }),
    );
    const { manager, client } = manage({ providers: { openai: { baseURL: OPENAI, keys: [fakeKey('a'), fakeKey('b')] } } });

    await client.chat.completions.create({ model: 'gpt-4.1', messages: ask });

    const { totals } = manager.stats();
    expect(totals.tokens.totalTokens).toBe(120);
    expect(totals.costUsd).toBeCloseTo(cost(GPT_41, { input: 100, output: 20 }), 12);
    expect(totals.successes).toBe(1);
  });
});

describe('implausible usage', () => {
  test('a reply claiming more than a billion tokens reads as reporting none: it cannot spend a budget for the day', async () => {
    let n = 0;
    provider(OPENAI, () => (n++ === 0 ? chatReply('gpt-4.1', 'ok', { prompt: 1e300, completion: 1e300 }) : chatReply('gpt-4.1', 'ok', { prompt: 10, completion: 5 })));
    const { client, manager, successes } = manage({ budgets: [{ scope: { overall: true }, limitUsd: 5, window: 'day' }] });
    await client.chat.completions.create({ model: 'gpt-4.1', messages: ask });
    await client.chat.completions.create({ model: 'gpt-4.1', messages: ask });
    expect(successes.map((s) => s.usage?.inputTokens ?? null)).toEqual([null, 10]);
    expect(manager.stats().totals.tokens.inputTokens).toBe(10);
  });
});
