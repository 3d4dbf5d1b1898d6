import { describe, expect, test } from 'vitest';
import { DEFAULT_PRICES, PRICES_AS_OF, PriceTable } from '../../src/usage/pricing';
import type { ModelPrice } from '../../src/usage/pricing';
import type { Usage } from '../../src/usage/usage';

const usage = (inputTokens: number, outputTokens: number, cachedInputTokens = 0): Usage => ({
  inputTokens,
  outputTokens,
  cachedInputTokens,
  cacheWriteTokens: 0,
  reasoningTokens: 0,
  totalTokens: inputTokens + outputTokens,
});

describe('DEFAULT_PRICES', () => {
  test.each<[string, ModelPrice]>([
    ['gpt-4.1', { input: 2, cachedInput: 0.5, output: 8 }],
    ['gpt-4.1-mini', { input: 0.4, cachedInput: 0.1, output: 1.6 }],
    ['gpt-4.1-nano', { input: 0.1, cachedInput: 0.025, output: 0.4 }],
    ['gpt-4o', { input: 2.5, cachedInput: 1.25, output: 10 }],
    ['gpt-4o-mini', { input: 0.15, cachedInput: 0.075, output: 0.6 }],
    ['gpt-5', { input: 1.25, cachedInput: 0.125, output: 10 }],
    ['gpt-5-mini', { input: 0.25, cachedInput: 0.025, output: 2 }],
    ['gpt-5-nano', { input: 0.05, cachedInput: 0.005, output: 0.4 }],
    ['o3', { input: 2, cachedInput: 0.5, output: 8 }],
    ['o4-mini', { input: 1.1, cachedInput: 0.275, output: 4.4 }],
    ['claude-sonnet-4.5', { input: 3, cachedInput: 0.3, output: 15, cacheWrite: 3.75 }],
    ['claude-haiku-4.5', { input: 1, cachedInput: 0.1, output: 5, cacheWrite: 1.25 }],
    ['claude-opus-4.1', { input: 15, cachedInput: 1.5, output: 75, cacheWrite: 18.75 }],
    ['gemini-2.5-flash', { input: 0.3, cachedInput: 0.03, output: 2.5 }],
    ['gemini-2.5-pro', { input: 1.25, cachedInput: 0.125, output: 10 }],
    ['gemini-2.5-flash-lite', { input: 0.1, cachedInput: 0.01, output: 0.4 }],
    ['deepseek-v3.2', { input: 0.28, cachedInput: 0.028, output: 0.42 }],
    ['deepseek-chat', { input: 0.28, cachedInput: 0.028, output: 0.42 }],
    ['text-embedding-3-small', { input: 0.02, output: 0 }],
    ['text-embedding-3-large', { input: 0.13, output: 0 }],
  ])('lists %s', (model, price) => {
    expect(DEFAULT_PRICES[model]).toEqual(price);
  });

  test('is dated 2025-10-15', () => {
    expect(PRICES_AS_OF).toBe('2025-10-15');
  });

  test('is frozen', () => {
    expect(Object.isFrozen(DEFAULT_PRICES)).toBe(true);
  });

  test('has frozen entries', () => {
    expect(Object.values(DEFAULT_PRICES).every((price) => Object.isFrozen(price))).toBe(true);
  });
});

describe('PriceTable.lookup', () => {
  const table = new PriceTable();

  test.each<[string, string, string]>([
    ['an exact name', 'gpt-4.1-mini', 'gpt-4.1-mini'],
    ['a name in other case', 'GPT-4.1-Mini', 'gpt-4.1-mini'],
    ['a name with a provider prefix', 'openai/gpt-4.1', 'gpt-4.1'],
    ['a name with a nested prefix', 'models/gemini-2.5-flash', 'gemini-2.5-flash'],
    ['a name with a dashed date suffix', 'gpt-4.1-2025-04-14', 'gpt-4.1'],
    ['a name with a compact date suffix', 'claude-opus-4.1-20250805', 'claude-opus-4.1'],
    ['a name with dashes between single digits', 'claude-sonnet-4-5', 'claude-sonnet-4.5'],
    ['an Anthropic dated id', 'claude-sonnet-4-5-20250929', 'claude-sonnet-4.5'],
    ['a prefixed, upper-case, dated id', 'Anthropic/Claude-Haiku-4-5-20251001', 'claude-haiku-4.5'],
  ])('finds %s', (_name, model, listed) => {
    expect(table.lookup(model)).toEqual(DEFAULT_PRICES[listed]);
  });

  test('prefers an exact dated entry to the undated model', () => {
    expect(table.lookup('gpt-4o-2024-05-13')).toEqual({ input: 5, output: 15 });
  });

  test('does not take a longer name for a listed shorter one', () => {
    expect(table.lookup('gpt-4.1-mega')).toBeUndefined();
  });

  test('returns undefined for an unknown model', () => {
    expect(table.lookup('no-such-model')).toBeUndefined();
  });

  test.each(['constructor', '__proto__', 'toString'])('returns undefined for the Object.prototype member name %s', (name) => {
    expect(table.lookup(name)).toBeUndefined();
  });

  test('returns the same object on a repeated lookup', () => {
    const t = new PriceTable();
    expect(t.lookup('openai/GPT-5-2025-08-07')).toBe(t.lookup('openai/GPT-5-2025-08-07'));
  });

  test('keeps answering correctly after more distinct names than its cache holds', () => {
    const t = new PriceTable();
    for (let i = 0; i < 10_050; i++) t.lookup(`unknown-model-${i}`);
    expect(t.lookup('openai/gpt-4.1-2025-04-14')).toEqual(DEFAULT_PRICES['gpt-4.1']);
  });
});

describe('PriceTable overrides', () => {
  test('an override replaces the built-in entry', () => {
    const t = new PriceTable({ 'gpt-4.1': { input: 1, output: 4 } });
    expect(t.lookup('gpt-4.1')).toEqual({ input: 1, output: 4 });
  });

  test('an override adds a model the built-in table lacks', () => {
    const t = new PriceTable({ 'my-model': { input: 0.5, cachedInput: 0.1, output: 1 } });
    expect(t.lookup('my-model')).toEqual({ input: 0.5, cachedInput: 0.1, output: 1 });
  });

  test('an override name matches case-insensitively', () => {
    const t = new PriceTable({ 'GPT-4.1': { input: 1, output: 4 } });
    expect(t.lookup('gpt-4.1')).toEqual({ input: 1, output: 4 });
  });

  test('an override leaves other models at their built-in price', () => {
    const t = new PriceTable({ 'gpt-4.1': { input: 1, output: 4 } });
    expect(t.lookup('gpt-4.1-mini')).toEqual(DEFAULT_PRICES['gpt-4.1-mini']);
  });

  test('an override leaves DEFAULT_PRICES untouched', () => {
    new PriceTable({ 'gpt-4.1': { input: 1, output: 4 } });
    expect(DEFAULT_PRICES['gpt-4.1']).toEqual({ input: 2, cachedInput: 0.5, output: 8 });
  });

  test('an override does not leak into another table', () => {
    new PriceTable({ 'gpt-4.1': { input: 1, output: 4 } });
    expect(new PriceTable().lookup('gpt-4.1')).toEqual({ input: 2, cachedInput: 0.5, output: 8 });
  });

  test('changing the overrides object afterwards has no effect', () => {
    const overrides: Record<string, ModelPrice> = { 'my-model': { input: 1, output: 1 } };
    const t = new PriceTable(overrides);
    overrides['my-model']!.input = 99;
    expect(t.lookup('my-model')?.input).toBe(1);
  });
});

describe('PriceTable.cost', () => {
  const table = new PriceTable();

  test('prices uncached input, cached input and output separately', () => {
    // gpt-4.1: (1000 − 400)·2 + 400·0.5 + 500·8 = 1200 + 200 + 4000 = 5400 → /1e6
    expect(table.cost('gpt-4.1', usage(1000, 500, 400))).toBeCloseTo(0.0054, 12);
  });

  test('prices a usage without cache hits at the input price', () => {
    // gpt-5: 1e6·1.25 + 2e5·10 = 3.25e6 → /1e6
    expect(table.cost('gpt-5', usage(1_000_000, 200_000))).toBeCloseTo(3.25, 12);
  });

  test('charges cached input at the input price when cachedInput is absent', () => {
    const t = new PriceTable({ 'my-model': { input: 2, output: 3 } });
    // (100 − 60)·2 + 60·2 + 10·3 = 230
    expect(t.cost('my-model', usage(100, 10, 60))).toBeCloseTo(0.00023, 12);
  });

  test('charges embeddings for input only', () => {
    expect(table.cost('text-embedding-3-large', usage(1_000_000, 0))).toBeCloseTo(0.13, 12);
  });

  test('is 0 for a zero usage of a known model', () => {
    expect(table.cost('gpt-4o', usage(0, 0))).toBe(0);
  });

  test('uses the normalised lookup', () => {
    // claude-sonnet-4.5: (2000 − 1000)·3 + 1000·0.3 + 100·15 = 3000 + 300 + 1500 = 4800
    expect(table.cost('claude-sonnet-4-5-20250929', usage(2000, 100, 1000))).toBeCloseTo(0.0048, 12);
  });

  test('uses the override price', () => {
    const t = new PriceTable({ 'gpt-4.1': { input: 1, output: 1 } });
    expect(t.cost('gpt-4.1', usage(1_000_000, 1_000_000))).toBeCloseTo(2, 12);
  });

  test('is null for an unknown model', () => {
    expect(table.cost('no-such-model', usage(100, 100))).toBeNull();
  });

  test('never charges negative uncached input when cached exceeds input', () => {
    // Treated as all 100 input tokens cached: 100·0.5 = 50
    expect(table.cost('gpt-4.1', usage(100, 0, 500))).toBeCloseTo(0.00005, 12);
  });
});

describe('PriceTable.priceFor (a model sent upstream under another name)', () => {
  const mine = { input: 100, output: 200 };
  test('an override of either name wins over a built-in price, the upstream name first', () => {
    expect(new PriceTable({ chat: mine }).priceFor('gpt-4.1', 'chat')).toEqual(mine);
    expect(new PriceTable({ 'gpt-4.1': { input: 1, output: 1 }, chat: mine }).priceFor('gpt-4.1', 'chat')).toEqual({ input: 1, output: 1 });
  });
  test('without overrides, the built-in price of the upstream name, else of the public one', () => {
    const table = new PriceTable();
    expect(table.priceFor('gpt-4.1', 'gpt-4.1-mini')).toBe(DEFAULT_PRICES['gpt-4.1']);
    expect(table.priceFor('my-llama', 'gpt-4.1-mini')).toBe(DEFAULT_PRICES['gpt-4.1-mini']);
    expect(table.priceFor('my-llama', 'my-llama')).toBeUndefined();
    expect(table.priceFor(undefined, undefined)).toBeUndefined();
  });
});
