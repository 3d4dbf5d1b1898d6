/**
 * Prompt-cache pricing: every provider's usage shape, read into the
 * normalised usage and priced, against costs worked out by hand.
 */
import { HttpResponse } from 'msw';
import OpenAI from 'openai';
import { afterEach, describe, expect, test } from 'vitest';
import { KeyManager, type SuccessEvent } from '../../src/index';
import { costAt, PriceTable } from '../../src/usage/pricing';
import { usageFromBody, type Usage } from '../../src/usage/usage';
import { fakeKey } from '../support/fake-keys';
import { provider } from '../support/upstream';
import '../support/setup';

const table = new PriceTable();

interface Case {
  /** The reply body as the provider sends it. */
  body: unknown;
  /** The model it is priced as. */
  model: string;
  usage: Partial<Usage>;
  /** Hand-computed cost, USD. */
  costUsd: number;
}

const cases: Record<string, Case> = {
  // Anthropic's own shape: input_tokens = uncached only; reads and writes come on top.
  // 100 × 3 + 2000 × 0.3 + 5000 × 3.75 + 400 × 15 = 300 + 600 + 18750 + 6000 = 25650 per million
  'Anthropic (cache_creation_input_tokens, cache_read_input_tokens)': {
    body: { type: 'message', usage: { input_tokens: 100, cache_creation_input_tokens: 5000, cache_read_input_tokens: 2000, output_tokens: 400 } },
    model: 'claude-sonnet-4-5-20250929',
    usage: { inputTokens: 7100, cachedInputTokens: 2000, cacheWriteTokens: 5000, outputTokens: 400, totalTokens: 7500 },
    costUsd: 0.02565,
  },
  // A gateway's OpenAI shape with Anthropic's write count beside it: prompt_tokens includes everything.
  // (10000 − 6000 − 3000) × 1 + 6000 × 0.1 + 3000 × 1.25 + 500 × 5 = 1000 + 600 + 3750 + 2500 = 7850
  'Anthropic through an OpenAI-compatible gateway (prompt_tokens + cache_creation_input_tokens)': {
    body: {
      object: 'chat.completion',
      usage: { prompt_tokens: 10000, completion_tokens: 500, total_tokens: 10500, prompt_tokens_details: { cached_tokens: 6000 }, cache_creation_input_tokens: 3000 },
    },
    model: 'claude-haiku-4.5',
    usage: { inputTokens: 10000, cachedInputTokens: 6000, cacheWriteTokens: 3000, outputTokens: 500, totalTokens: 10500 },
    costUsd: 0.00785,
  },
  // OpenRouter: prompt_tokens_details.cache_write_tokens.
  // (4000 − 1000 − 2000) × 15 + 1000 × 1.5 + 2000 × 18.75 + 100 × 75 = 15000 + 1500 + 37500 + 7500 = 61500
  'OpenRouter (prompt_tokens_details.cache_write_tokens)': {
    body: { usage: { prompt_tokens: 4000, completion_tokens: 100, total_tokens: 4100, prompt_tokens_details: { cached_tokens: 1000, cache_write_tokens: 2000 } } },
    model: 'anthropic/claude-opus-4.1',
    usage: { inputTokens: 4000, cachedInputTokens: 1000, cacheWriteTokens: 2000, outputTokens: 100 },
    costUsd: 0.0615,
  },
  // DeepSeek: hits at the cache price, misses at the input price, no write charge.
  // 3000 × 0.028 + 1000 × 0.28 + 200 × 0.42 = 84 + 280 + 84 = 448
  'DeepSeek (prompt_cache_hit_tokens, prompt_cache_miss_tokens)': {
    body: { usage: { prompt_tokens: 4000, completion_tokens: 200, total_tokens: 4200, prompt_cache_hit_tokens: 3000, prompt_cache_miss_tokens: 1000 } },
    model: 'deepseek-chat',
    usage: { inputTokens: 4000, cachedInputTokens: 3000, cacheWriteTokens: 0, outputTokens: 200 },
    costUsd: 0.000448,
  },
  // DeepSeek without prompt_tokens: input is hit + miss.
  'DeepSeek hit and miss only': {
    body: { usage: { prompt_cache_hit_tokens: 3000, prompt_cache_miss_tokens: 1000, completion_tokens: 200 } },
    model: 'deepseek-chat',
    usage: { inputTokens: 4000, cachedInputTokens: 3000, cacheWriteTokens: 0, outputTokens: 200, totalTokens: 4200 },
    costUsd: 0.000448,
  },
  // Gemini's OpenAI-compatible endpoint: prompt_tokens_details.cached_tokens.
  // 2000 × 0.3 + 8000 × 0.03 + 1000 × 2.5 = 600 + 240 + 2500 = 3340
  'Gemini, OpenAI-compatible (prompt_tokens_details.cached_tokens)': {
    body: { object: 'chat.completion', usage: { prompt_tokens: 10000, completion_tokens: 1000, total_tokens: 11000, prompt_tokens_details: { cached_tokens: 8000 } } },
    model: 'gemini-2.5-flash',
    usage: { inputTokens: 10000, cachedInputTokens: 8000, cacheWriteTokens: 0, outputTokens: 1000 },
    costUsd: 0.00334,
  },
  // Gemini's own usageMetadata: thinking tokens are output beside the candidates.
  // 2000 × 1.25 + 8000 × 0.125 + (700 + 300) × 10 = 2500 + 1000 + 10000 = 13500
  'Gemini, native (usageMetadata.cachedContentTokenCount)': {
    body: { usageMetadata: { promptTokenCount: 10000, cachedContentTokenCount: 8000, candidatesTokenCount: 700, thoughtsTokenCount: 300, totalTokenCount: 11000 } },
    model: 'gemini-2.5-pro',
    usage: { inputTokens: 10000, cachedInputTokens: 8000, cacheWriteTokens: 0, outputTokens: 1000, reasoningTokens: 300, totalTokens: 11000 },
    costUsd: 0.0135,
  },
  // Gemini's own usageMetadata with a tool (Search grounding, code execution): the tool's results fed back to the
  // model are input (toolUsePromptTokenCount, in totalTokenCount, billed as input).
  // 1500 × 0.3 + (100 + 200) × 2.5 = 450 + 750 = 1200 (was 1050: the 500 tool-use tokens free)
  'Gemini, native with a tool (usageMetadata.toolUsePromptTokenCount)': {
    body: { usageMetadata: { promptTokenCount: 1000, toolUsePromptTokenCount: 500, candidatesTokenCount: 100, thoughtsTokenCount: 200, totalTokenCount: 1800 } },
    model: 'gemini-2.5-flash',
    usage: { inputTokens: 1500, cachedInputTokens: 0, outputTokens: 300, reasoningTokens: 200, totalTokens: 1800 },
    costUsd: 0.0012,
  },
  'Gemini, snake case with a tool (usage_metadata.tool_use_prompt_token_count)': {
    body: { usage_metadata: { prompt_token_count: 1000, tool_use_prompt_token_count: 500, candidates_token_count: 100, thoughts_token_count: 200, total_token_count: 1800 } },
    model: 'gemini-2.5-flash',
    usage: { inputTokens: 1500, outputTokens: 300, reasoningTokens: 200, totalTokens: 1800 },
    costUsd: 0.0012,
  },
  'Gemini, snake case (usage_metadata.cached_content_token_count)': {
    body: { usage_metadata: { prompt_token_count: 10000, cached_content_token_count: 8000, candidates_token_count: 700, thoughts_token_count: 300, total_token_count: 11000 } },
    model: 'gemini-2.5-pro',
    usage: { inputTokens: 10000, cachedInputTokens: 8000, cacheWriteTokens: 0, outputTokens: 1000, reasoningTokens: 300 },
    costUsd: 0.0135,
  },
  // OpenAI chat: cached_tokens read at the cached price; no write charge.
  // 1000 × 2 + 3000 × 0.5 + 500 × 8 = 2000 + 1500 + 4000 = 7500
  'OpenAI chat (prompt_tokens_details.cached_tokens)': {
    body: { object: 'chat.completion', usage: { prompt_tokens: 4000, completion_tokens: 500, total_tokens: 4500, prompt_tokens_details: { cached_tokens: 3000 } } },
    model: 'gpt-4.1',
    usage: { inputTokens: 4000, cachedInputTokens: 3000, cacheWriteTokens: 0, outputTokens: 500 },
    costUsd: 0.0075,
  },
  // OpenAI Responses: input_tokens includes cached ones (not Anthropic's shape).
  // 1000 × 1.25 + 3000 × 0.125 + 500 × 10 = 1250 + 375 + 5000 = 6625
  'OpenAI Responses (input_tokens_details.cached_tokens)': {
    body: { object: 'response', usage: { input_tokens: 4000, input_tokens_details: { cached_tokens: 3000 }, output_tokens: 500, total_tokens: 4500 } },
    model: 'gpt-5',
    usage: { inputTokens: 4000, cachedInputTokens: 3000, cacheWriteTokens: 0, outputTokens: 500 },
    costUsd: 0.006625,
  },
};

describe('prompt-cache pricing per provider shape', () => {
  test.each(Object.entries(cases))('%s', (_name, c) => {
    const usage = usageFromBody(c.body);
    expect(usage).toMatchObject(c.usage);
    expect(table.cost(c.model, usage!)).toBeCloseTo(c.costUsd, 12);
  });
});

describe('cache writes in the price arithmetic', () => {
  const usage = (input: number, read: number, write: number, output = 0): Usage => ({
    inputTokens: input,
    outputTokens: output,
    cachedInputTokens: read,
    cacheWriteTokens: write,
    reasoningTokens: 0,
    totalTokens: input + output,
  });

  test('a write without a cacheWrite price is priced as input', () => {
    // 1000 × 2 = 2000 per million, whatever the split
    expect(costAt({ input: 2, output: 8 }, usage(1000, 0, 600))).toBeCloseTo(0.002, 12);
  });

  test('reads and writes are capped at the input they are part of', () => {
    // read 800 (of 1000), write capped at the 200 left: 800 × 0.5 + 200 × 4 = 1200 per million
    expect(costAt({ input: 2, cachedInput: 0.5, cacheWrite: 4, output: 8 }, usage(1000, 800, 900))).toBeCloseTo(0.0012, 12);
  });

  test('usageFromBody caps an over-reported write at the uncached input', () => {
    const read = usageFromBody({ usage: { prompt_tokens: 100, prompt_tokens_details: { cached_tokens: 70 }, cache_creation_input_tokens: 50, completion_tokens: 1 } });
    expect(read).toMatchObject({ inputTokens: 100, cachedInputTokens: 70, cacheWriteTokens: 30 });
  });

  test('a price override with cacheWrite is used', () => {
    const custom = new PriceTable({ 'claude-sonnet-4.5': { input: 3, cachedInput: 0.3, cacheWrite: 6, output: 15 } });
    // 1h cache writes at 2 × input: 1000 × 6 = 6000 per million
    expect(custom.cost('claude-sonnet-4.5', usage(1000, 0, 1000))).toBeCloseTo(0.006, 12);
  });
});

describe('the cacheWrite price option', () => {
  test('is accepted in prices and in a deployment price, and a bad one names its field', () => {
    const providers = { p: { baseURL: 'https://p.cache.test/v1', keys: [fakeKey()], models: { m: { price: { input: 1, output: 2, cacheWrite: 1.25 } } } } };
    expect(() => new KeyManager({ providers, prices: { x: { input: 3, output: 15, cacheWrite: 3.75 } } }).close()).not.toThrow();
    expect(() => new KeyManager({ providers, prices: { x: { input: 3, output: 15, cacheWrite: -1 } } })).toThrow(/prices\.x\.cacheWrite/);
  });
});

describe('cache writes through the SDK', () => {
  const GATEWAY = 'https://gateway.cache.test/v1';
  let manager: KeyManager | undefined;
  afterEach(async () => manager?.close());

  test('the success event and stats() carry cache writes, and the cost prices them', async () => {
    provider(GATEWAY, () =>
      HttpResponse.json({
        id: 'chatcmpl-cache',
        object: 'chat.completion',
        created: 1_700_000_000,
        model: 'claude-sonnet-4-5',
        choices: [{ index: 0, message: { role: 'assistant', content: 'ok', refusal: null }, finish_reason: 'stop', logprobs: null }],
        usage: { prompt_tokens: 6000, completion_tokens: 100, total_tokens: 6100, prompt_tokens_details: { cached_tokens: 1000 }, cache_creation_input_tokens: 4000 },
      }),
    );
    manager = new KeyManager({ providers: { gateway: { baseURL: GATEWAY, keys: [fakeKey('gateway')] } } });
    const successes: SuccessEvent[] = [];
    manager.on('success', (e) => successes.push(e));
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));

    await client.chat.completions.create({ model: 'claude-sonnet-4.5', messages: [{ role: 'user', content: 'hi' }] });
    await client.chat.completions.create({ model: 'claude-sonnet-4.5', messages: [{ role: 'user', content: 'hi' }] });

    // (6000 − 1000 − 4000) × 3 + 1000 × 0.3 + 4000 × 3.75 + 100 × 15 = 3000 + 300 + 15000 + 1500 = 19800 per million
    expect(successes[0]?.usage).toMatchObject({ inputTokens: 6000, cachedInputTokens: 1000, cacheWriteTokens: 4000 });
    expect(successes[0]?.costUsd).toBeCloseTo(0.0198, 12);
    const stats = manager.stats();
    expect(stats.totals.tokens.cacheWriteTokens).toBe(8000);
    expect(stats.providers.gateway?.tokens.cacheWriteTokens).toBe(8000);
    expect(stats.models['claude-sonnet-4.5']?.tokens.cacheWriteTokens).toBe(8000);
    expect(stats.totals.costUsd).toBeCloseTo(0.0396, 12);
  });
});
