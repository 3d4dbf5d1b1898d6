import { describe, expect, test } from 'vitest';
import { addUsage, usageFromBody, ZERO_USAGE } from '../../src/usage/usage';
import type { Usage } from '../../src/usage/usage';

const usage = (
  inputTokens: number,
  outputTokens: number,
  cachedInputTokens: number,
  reasoningTokens: number,
  totalTokens: number,
  cacheWriteTokens = 0,
): Usage => ({ inputTokens, outputTokens, cachedInputTokens, cacheWriteTokens, reasoningTokens, totalTokens });

describe('usageFromBody', () => {
  test.each<[string, unknown, Usage]>([
    [
      'chat completion JSON',
      { object: 'chat.completion', usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 } },
      usage(12, 5, 0, 0, 17),
    ],
    [
      'legacy completion JSON',
      { object: 'text_completion', usage: { prompt_tokens: 3, completion_tokens: 7, total_tokens: 10 } },
      usage(3, 7, 0, 0, 10),
    ],
    [
      'chat completion with cached and reasoning details',
      {
        object: 'chat.completion',
        usage: {
          prompt_tokens: 2000,
          completion_tokens: 300,
          total_tokens: 2300,
          prompt_tokens_details: { cached_tokens: 1536, audio_tokens: 0 },
          completion_tokens_details: { reasoning_tokens: 256, audio_tokens: 0 },
        },
      },
      usage(2000, 300, 1536, 256, 2300),
    ],
    [
      'chat completion stream chunk carrying usage',
      {
        object: 'chat.completion.chunk',
        choices: [],
        usage: { prompt_tokens: 9, completion_tokens: 4, total_tokens: 13 },
      },
      usage(9, 4, 0, 0, 13),
    ],
    [
      'DeepSeek cache hit and miss counts',
      {
        usage: {
          prompt_tokens: 100,
          completion_tokens: 20,
          total_tokens: 120,
          prompt_cache_hit_tokens: 64,
          prompt_cache_miss_tokens: 36,
        },
      },
      usage(100, 20, 64, 0, 120),
    ],
    [
      'DeepSeek hit and miss counts without prompt_tokens',
      { usage: { completion_tokens: 20, prompt_cache_hit_tokens: 64, prompt_cache_miss_tokens: 36 } },
      usage(100, 20, 64, 0, 120),
    ],
    [
      'cached_tokens in preference to DeepSeek hit tokens',
      {
        usage: {
          prompt_tokens: 100,
          completion_tokens: 20,
          prompt_tokens_details: { cached_tokens: 50 },
          prompt_cache_hit_tokens: 64,
        },
      },
      usage(100, 20, 50, 0, 120),
    ],
    [
      'Responses API reply JSON',
      {
        object: 'response',
        status: 'completed',
        usage: {
          input_tokens: 328,
          input_tokens_details: { cached_tokens: 128 },
          output_tokens: 52,
          output_tokens_details: { reasoning_tokens: 32 },
          total_tokens: 380,
        },
      },
      usage(328, 52, 128, 32, 380),
    ],
    ...(['response.completed', 'response.incomplete', 'response.failed'] as const).map(
      (type): [string, unknown, Usage] => [
        `Responses stream event ${type}`,
        {
          type,
          sequence_number: 40,
          response: {
            object: 'response',
            usage: {
              input_tokens: 20,
              input_tokens_details: { cached_tokens: 0 },
              output_tokens: 11,
              output_tokens_details: { reasoning_tokens: 0 },
              total_tokens: 31,
            },
          },
        },
        usage(20, 11, 0, 0, 31),
      ],
    ),
    [
      "Groq's last stream chunk (usage in x_groq)",
      { object: 'chat.completion.chunk', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], x_groq: { id: 'req_1', usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 } } },
      usage(10, 5, 0, 0, 15),
    ],
    [
      'embeddings reply',
      { object: 'list', data: [], model: 'text-embedding-3-small', usage: { prompt_tokens: 8, total_tokens: 8 } },
      usage(8, 0, 0, 0, 8),
    ],
  ])('reads %s', (_name, body, expected) => {
    expect(usageFromBody(body)).toEqual(expected);
  });

  test.each<[string, unknown]>([
    ['a stream chunk whose usage is null', { object: 'chat.completion.chunk', choices: [{}], usage: null }],
    ['a stream chunk without usage', { object: 'chat.completion.chunk', choices: [{}] }],
    ['a Responses event that is not terminal', { type: 'response.created', response: { usage: { input_tokens: 1 } } }],
    ['a terminal Responses event whose usage is null', { type: 'response.completed', response: { usage: null } }],
    ['a terminal Responses event without a response', { type: 'response.completed' }],
    ['an empty usage object', { usage: {} }],
    ['a usage object with only unknown fields', { usage: { tokens: 5 } }],
    ['null', null],
    ['undefined', undefined],
    ['a string', '{"usage":{"prompt_tokens":1}}'],
    ['a number', 42],
    ['a boolean', true],
    ['an array', [{ usage: { prompt_tokens: 1 } }]],
    ['usage as an array', { usage: [1, 2, 3] }],
    ['usage as a string', { usage: 'prompt_tokens=1' }],
    ['usage as a number', { usage: 3 }],
    ['response as a string', { type: 'response.completed', response: 'x' }],
  ])('returns undefined for %s', (_name, body) => {
    expect(usageFromBody(body)).toBeUndefined();
  });

  test.each<[string, unknown, Usage]>([
    ['string counts', { usage: { prompt_tokens: '5', completion_tokens: 2 } }, usage(0, 2, 0, 0, 2)],
    ['negative counts', { usage: { prompt_tokens: -5, completion_tokens: 2 } }, usage(0, 2, 0, 0, 2)],
    ['NaN and Infinity counts', { usage: { prompt_tokens: Number.NaN, completion_tokens: Infinity, total_tokens: 4 } }, usage(0, 0, 0, 0, 4)],
    ['details that are not objects', { usage: { prompt_tokens: 5, completion_tokens: 2, prompt_tokens_details: 3, completion_tokens_details: null } }, usage(5, 2, 0, 0, 7)],
    ['details with wrong-typed counts', { usage: { prompt_tokens: 5, completion_tokens: 2, prompt_tokens_details: { cached_tokens: '4' } } }, usage(5, 2, 0, 0, 7)],
    ['only a total', { usage: { total_tokens: 9 } }, usage(0, 0, 0, 0, 9)],
  ])('reads %s as zeros for the broken parts', (_name, body, expected) => {
    expect(usageFromBody(body)).toEqual(expected);
  });

  test('computes the total as input plus output when the body gives none', () => {
    expect(usageFromBody({ usage: { prompt_tokens: 4, completion_tokens: 6 } })?.totalTokens).toBe(10);
  });

  test("keeps the body's total when it differs from input plus output", () => {
    expect(usageFromBody({ usage: { prompt_tokens: 4, completion_tokens: 6, total_tokens: 15 } })?.totalTokens).toBe(15);
  });

  test('caps cached tokens at the input tokens', () => {
    const u = usageFromBody({ usage: { prompt_tokens: 10, completion_tokens: 1, prompt_tokens_details: { cached_tokens: 50 } } });
    expect(u?.cachedInputTokens).toBe(10);
  });

  test('caps reasoning tokens at the output tokens', () => {
    const u = usageFromBody({ usage: { prompt_tokens: 10, completion_tokens: 3, completion_tokens_details: { reasoning_tokens: 8 } } });
    expect(u?.reasoningTokens).toBe(3);
  });

  test('caps reasoning tokens at the output tokens when the total counts them inside it', () => {
    const u = usageFromBody({ usage: { prompt_tokens: 10, completion_tokens: 3, total_tokens: 13, completion_tokens_details: { reasoning_tokens: 8 } } });
    expect(u).toEqual(usage(10, 3, 0, 3, 13));
  });
});

describe('usageFromBody: reasoning tokens outside the output count', () => {
  test("reads xAI's reasoning tokens, counted beside completion_tokens and in total_tokens, as output", () => {
    // xAI's documented example: 32 prompt + 9 completion + 94 reasoning = 135 total; all 103 generated tokens are billed as output.
    const u = usageFromBody({ usage: { prompt_tokens: 32, completion_tokens: 9, total_tokens: 135, completion_tokens_details: { reasoning_tokens: 94 } } });
    expect(u).toEqual(usage(32, 103, 0, 94, 135));
  });

  test("reads the thinking tokens that only the total of Gemini's OpenAI-compatible endpoint counts as output and reasoning", () => {
    // gemini-2.5-flash: 11 prompt, 9 completion, 88 total: 68 thinking tokens, billed as output.
    const u = usageFromBody({ usage: { prompt_tokens: 11, completion_tokens: 9, total_tokens: 88 } });
    expect(u).toEqual(usage(11, 77, 0, 68, 88));
  });

  test('reads reasoning tokens above a completion count of 0, with the total that counts them, as output', () => {
    const u = usageFromBody({ usage: { prompt_tokens: 21, completion_tokens: 0, total_tokens: 81, completion_tokens_details: { reasoning_tokens: 60 } } });
    expect(u).toEqual(usage(21, 60, 0, 60, 81));
  });

  test('reads a Responses usage whose output_tokens leave out the reasoning its total counts', () => {
    const u = usageFromBody({ usage: { input_tokens: 20, output_tokens: 5, total_tokens: 85, output_tokens_details: { reasoning_tokens: 60 } } });
    expect(u).toEqual(usage(20, 65, 0, 60, 85));
  });

  test('keeps cached input apart while adding the reasoning beside the output', () => {
    const u = usageFromBody({
      usage: { prompt_tokens: 10120, completion_tokens: 1499, total_tokens: 14428, prompt_tokens_details: { cached_tokens: 128 }, completion_tokens_details: { reasoning_tokens: 2809 } },
    });
    expect(u).toEqual(usage(10120, 4308, 128, 2809, 14428));
  });

  test('leaves a total above input plus output that the reasoning count does not explain out of the output', () => {
    const u = usageFromBody({ usage: { prompt_tokens: 10, completion_tokens: 50, total_tokens: 100, completion_tokens_details: { reasoning_tokens: 20 } } });
    expect(u).toEqual(usage(10, 50, 0, 20, 100));
  });

  test('reads a total without a completion count as before (no output is made up)', () => {
    expect(usageFromBody({ usage: { prompt_tokens: 10, total_tokens: 50 } })).toEqual(usage(10, 0, 0, 0, 50));
  });
});

describe('addUsage', () => {
  test('sums every field', () => {
    expect(addUsage(usage(1, 2, 3, 4, 5), usage(10, 20, 30, 40, 50))).toEqual(usage(11, 22, 33, 44, 55));
  });

  test('leaves a usage unchanged when adding ZERO_USAGE', () => {
    expect(addUsage(usage(1, 2, 0, 1, 3), ZERO_USAGE)).toEqual(usage(1, 2, 0, 1, 3));
  });

  test('does not modify its arguments', () => {
    const a = usage(1, 1, 0, 0, 2);
    addUsage(a, usage(5, 5, 0, 0, 10));
    expect(a).toEqual(usage(1, 1, 0, 0, 2));
  });
});

describe('ZERO_USAGE', () => {
  test('is all zeros', () => {
    expect(ZERO_USAGE).toEqual(usage(0, 0, 0, 0, 0));
  });

  test('is frozen', () => {
    expect(Object.isFrozen(ZERO_USAGE)).toBe(true);
  });
});

describe('usageFromBody: the cost a reply states', () => {
  test("reads xAI's cost_in_usd_ticks in a Responses stream's response.completed", () => {
    const body = { type: 'response.completed', response: { usage: { input_tokens: 10, output_tokens: 5, total_tokens: 15, cost_in_usd_ticks: 1_500_000 } } };
    expect(usageFromBody(body)?.statedCostUsd).toBe(0.00015);
  });

  test('leaves statedCostUsd out of a usage that states no cost (the usual shape, unchanged)', () => {
    expect(usageFromBody({ usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } })).not.toHaveProperty('statedCostUsd');
  });
});
