/**
 * knownModels(options) takes the object a user gives `new KeyManager()`, as
 * they write it: a plain `const options = { … }`, not annotated. The type
 * half of these tests is checked by `npm run typecheck`.
 */
import { describe, expect, test } from 'vitest';
import { KeyManager } from '../../src/index';
import { knownModels } from '../../src/otel/index';
import { knownModels as prometheusKnownModels } from '../../src/prometheus/index';

describe('knownModels', () => {
  test('takes options whose providers list no models (a single-provider setup), and finds none', async () => {
    const options = { providers: { openai: { baseURL: 'https://p.invalid/v1', keys: ['fake-labels-key-1'] } } };
    const manager = new KeyManager(options);
    expect(knownModels(options)).toEqual([]);
    expect(prometheusKnownModels(options)).toEqual([]);
    await manager.close();
  });

  test('takes routing options that set only a strategy', async () => {
    const options = {
      providers: { openai: { baseURL: 'https://p.invalid/v1', keys: ['fake-labels-key-2'], models: ['gpt-4.1'] } },
      routing: { strategy: 'cost' as const },
    };
    const manager = new KeyManager(options);
    expect(knownModels(options)).toEqual(['gpt-4.1']);
    await manager.close();
  });

  test('lists models, aliases and their members, fallbacks, context fallbacks and auto', async () => {
    const options = {
      providers: {
        openai: { baseURL: 'https://p.invalid/v1', keys: ['fake-labels-key-3'], models: { 'gpt-4.1': { contextWindow: 1_000_000 }, 'gpt-4.1-mini': 'gpt-4.1-mini' } },
        deepseek: { baseURL: 'https://d.invalid/v1', keys: ['fake-labels-key-4'], models: ['deepseek-v3.2'] },
      },
      routing: {
        aliases: { fast: ['deepseek-v3.2'] },
        fallbacks: { 'gpt-4.1': ['deepseek-v3.2'] },
        contextFallbacks: { 'gpt-4.1-mini': 'gpt-4.1' },
        auto: { models: ['deepseek-v3.2', 'gpt-4.1'] },
      },
    };
    const manager = new KeyManager(options);
    expect(new Set(knownModels(options))).toEqual(new Set(['gpt-4.1', 'gpt-4.1-mini', 'deepseek-v3.2', 'fast', 'auto']));
    await manager.close();
  });
});
