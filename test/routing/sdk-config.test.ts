/**
 * Routing options through `new KeyManager()`: malformed ones throw a
 * ConfigError naming the field; valid ones are taken as given at construction.
 */
import OpenAI from 'openai';
import { describe, expect, test } from 'vitest';
import { ConfigError, KeyManager, type KeyManagerOptions, type RoutingOptions } from '../../src/index';
import { fakeKey } from '../support/fake-keys';
import { chatReply, provider } from '../support/upstream';
import '../support/setup';
import { closeAfterEach } from '../support/scaffold';

const OPENAI = 'https://api.openai.test/v1';
const ANTHROPIC = 'https://api.anthropic.test/v1';
const GOOGLE = 'https://api.google.test/v1';

const managers = closeAfterEach();

function create(options: KeyManagerOptions): KeyManager {
  const manager = new KeyManager({ retry: { baseDelayMs: 0 }, ...options });
  managers.push(manager);
  return manager;
}

/** Providers listing gpt-4.1, gpt-4.1-mini, claude-sonnet-4.5 and gemini-2.5-flash; `models` replaces openai's. */
function providers(openaiModels: NonNullable<KeyManagerOptions['providers'][string]['models']> = ['gpt-4.1', 'gpt-4.1-mini']): KeyManagerOptions['providers'] {
  return {
    openai: { baseURL: OPENAI, keys: [fakeKey('openai')], models: openaiModels },
    anthropic: { baseURL: ANTHROPIC, keys: [fakeKey('anthropic')], models: { 'claude-sonnet-4.5': 'claude-sonnet-4-5' } },
    google: { baseURL: GOOGLE, keys: [fakeKey('google')], models: ['gemini-2.5-flash'] },
  };
}

/** The ConfigError `new KeyManager(options)` throws. */
function configError(options: KeyManagerOptions): ConfigError {
  try {
    create(options);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected new KeyManager() to throw a ConfigError');
}

const routingError = (routing: unknown) => configError({ providers: providers(), routing: routing as RoutingOptions });

describe('new KeyManager() rejects malformed routing options, naming the field', () => {
  test.each<[string, unknown, string, RegExp]>([
    // fallbacks
    [
      'a two-model fallback cycle',
      { fallbacks: { 'gpt-4.1': ['claude-sonnet-4.5'], 'claude-sonnet-4.5': ['gpt-4.1'] } },
      'routing.fallbacks["claude-sonnet-4.5"][0]',
      /fallbacks form a cycle: gpt-4\.1 → claude-sonnet-4\.5 → gpt-4\.1/,
    ],
    [
      'a three-model fallback cycle',
      { fallbacks: { 'gpt-4.1': ['claude-sonnet-4.5'], 'claude-sonnet-4.5': ['gemini-2.5-flash'], 'gemini-2.5-flash': ['gpt-4.1'] } },
      'routing.fallbacks["gemini-2.5-flash"][0]',
      /cycle: gpt-4\.1 → claude-sonnet-4\.5 → gemini-2\.5-flash → gpt-4\.1/,
    ],
    [
      'a fallback cycle through an alias',
      { aliases: { smart: ['gpt-4.1', 'claude-sonnet-4.5'] }, fallbacks: { 'gpt-4.1': ['smart'] } },
      'routing.fallbacks["gpt-4.1"][0]',
      /cycle: gpt-4\.1 → smart → gpt-4\.1/,
    ],
    ['a model falling back to itself', { fallbacks: { 'gpt-4.1': ['gpt-4.1'] } }, 'routing.fallbacks["gpt-4.1"][0]', /cannot fall back to itself/],
    ['a fallback to a model no provider lists', { fallbacks: { 'gpt-4.1': ['claude-sonnet-4.5', 'gpt-5'] } }, 'routing.fallbacks["gpt-4.1"][1]', /unknown model "gpt-5"/],
    ['fallbacks for a model no provider lists', { fallbacks: { 'gpt-9': ['gpt-4.1'] } }, 'routing.fallbacks["gpt-9"]', /unknown model "gpt-9"/],
    ['an empty fallback list', { fallbacks: { 'gpt-4.1': [] } }, 'routing.fallbacks["gpt-4.1"]', /at least one fallback/],
    ['a fallback listed twice', { fallbacks: { 'gpt-4.1': ['gemini-2.5-flash', 'gemini-2.5-flash'] } }, 'routing.fallbacks["gpt-4.1"][1]', /once/],
    ['fallbacks for auto', { auto: { models: ['gpt-4.1-mini', 'gpt-4.1'] }, fallbacks: { auto: ['gpt-4.1'] } }, 'routing.fallbacks.auto', /auto/],
    ['fallbacks not an object', { fallbacks: ['gpt-4.1'] }, 'routing.fallbacks', /expected an object/],
    // aliases
    ['an alias member no provider lists', { aliases: { fast: ['gemini-2.5-flash', 'deepseek-v3.2'] } }, 'routing.aliases.fast[1]', /unknown model "deepseek-v3\.2"/],
    ['an alias inside an alias', { aliases: { fast: ['gemini-2.5-flash'], smart: ['fast', 'gpt-4.1'] } }, 'routing.aliases.smart[0]', /aliases cannot contain aliases/],
    ['an alias named like a listed model', { aliases: { 'gpt-4.1': ['gemini-2.5-flash'] } }, 'routing.aliases["gpt-4.1"]', /would hide that model/],
    ['an alias named auto', { aliases: { auto: ['gpt-4.1'] } }, 'routing.aliases.auto', /reserved/],
    ['an empty alias', { aliases: { fast: [] } }, 'routing.aliases.fast', /at least one model/],
    ['an alias member listed twice', { aliases: { fast: ['gemini-2.5-flash', 'gemini-2.5-flash'] } }, 'routing.aliases.fast[1]', /once/],
    ['an alias that is not an array', { aliases: { fast: 'gemini-2.5-flash' } }, 'routing.aliases.fast', /expected an array/],
    // auto
    ['auto without models', { auto: { models: [] } }, 'routing.auto.models', /at least one model/],
    ['auto naming a model no provider lists', { auto: { models: ['gpt-4.1-mini', 'o3'] } }, 'routing.auto.models[1]', /unknown model "o3"/],
    ['auto.strategy without choose()', { auto: { models: ['gpt-4.1'], strategy: { pick: () => 'gpt-4.1' } } }, 'routing.auto.strategy', /choose/],
    ['auto.models naming auto', { auto: { models: ['auto'] } }, 'routing.auto.models[0]', /"auto" is not a model/],
    // context fallbacks
    [
      'a context-fallback cycle',
      { contextFallbacks: { 'gpt-4.1-mini': 'gpt-4.1', 'gpt-4.1': 'gpt-4.1-mini' } },
      'routing.contextFallbacks["gpt-4.1"]',
      /context fallbacks form a cycle: gpt-4\.1-mini → gpt-4\.1 → gpt-4\.1-mini/,
    ],
    ['a context fallback from an alias', { aliases: { fast: ['gpt-4.1-mini'] }, contextFallbacks: { fast: 'gpt-4.1' } }, 'routing.contextFallbacks.fast', /is an alias/],
    ['a context fallback to a model no provider lists', { contextFallbacks: { 'gpt-4.1-mini': 'gpt-4.5' } }, 'routing.contextFallbacks["gpt-4.1-mini"]', /unknown model "gpt-4\.5"/],
    ['a model as its own context fallback', { contextFallbacks: { 'gpt-4.1': 'gpt-4.1' } }, 'routing.contextFallbacks["gpt-4.1"]', /its own context fallback/],
    // strategies and fields
    ['a strategy object without order()', { strategy: { sort: () => [] } }, 'routing.strategy', /order\(deployments, ctx\)/],
    ['a perModel strategy object without order()', { perModel: { 'gpt-4.1': {} } }, 'routing.perModel["gpt-4.1"]', /order\(deployments, ctx\)/],
    ['an unknown routing field (a typo)', { fallback: { 'gpt-4.1': ['gemini-2.5-flash'] } }, 'routing.fallback', /did you mean `fallbacks`/],
  ])('%s', (_, routing, field, problem) => {
    const error = routingError(routing);

    expect(error.field).toBe(field);
    expect(error.message).toMatch(problem);
    expect(error.message).toContain(`\`${field}\``);
  });
});

describe('new KeyManager() rejects malformed deployment options, naming the field', () => {
  const F = 'providers.openai.models["gpt-4.1"]';
  test.each<[string, unknown, string]>([
    ['a weight of 0', { weight: 0 }, `${F}.weight`],
    ['a negative weight', { weight: -1 }, `${F}.weight`],
    ['an empty upstream name', { upstream: '' }, `${F}.upstream`],
    ['a fractional context window', { contextWindow: 1000.5 }, `${F}.contextWindow`],
    ['a price without output', { price: { input: 1 } }, `${F}.price.output`],
    ['tags that are not strings', { tags: ['eu', 2] }, `${F}.tags`],
    ['an unknown deployment field', { context: 1000 }, `${F}.context`],
  ])('%s', (_, deployment, field) => {
    const error = configError({ providers: providers({ 'gpt-4.1': deployment as never }) });

    expect(error.field).toBe(field);
  });
});

describe('valid routing options', () => {
  test('a full routing configuration is accepted', () => {
    expect(() =>
      create({
        providers: providers({ 'gpt-4.1': { contextWindow: 1_047_576, weight: 2, tags: ['eu'] }, 'gpt-4.1-mini': { price: { input: 0.4, output: 1.6 } } }),
        routing: {
          strategy: 'cost',
          perModel: { 'claude-sonnet-4.5': 'latency', fast: { order: (d) => d.slice() } },
          aliases: { fast: ['gpt-4.1-mini', 'gemini-2.5-flash'], smart: ['gpt-4.1', 'claude-sonnet-4.5'] },
          fallbacks: { 'gpt-4.1': ['claude-sonnet-4.5', 'gemini-2.5-flash'], fast: ['smart'] },
          contextFallbacks: { 'gpt-4.1-mini': 'gpt-4.1' },
          auto: { models: ['gpt-4.1-mini', 'gemini-2.5-flash', 'gpt-4.1'] },
        },
      }),
    ).not.toThrow();
  });

  test('with a provider that serves any model, fallbacks may name models no provider lists', () => {
    const open = { ...providers(), any: { baseURL: 'https://gateway.test/v1', keys: [fakeKey('any')] } };

    expect(() => create({ providers: open, routing: { fallbacks: { 'gpt-4.1': ['o3'] }, aliases: { fast: ['gpt-5-nano'] } } })).not.toThrow();
  });

  test('with a provider that serves any model, a fallback cycle is still rejected', () => {
    const open = { ...providers(), any: { baseURL: 'https://gateway.test/v1', keys: [fakeKey('any')] } };

    const error = configError({ providers: open, routing: { fallbacks: { o3: ['o4-mini'], 'o4-mini': ['o3'] } } });

    expect(error.field).toBe('routing.fallbacks["o4-mini"][0]');
  });

  test('changing the options object after construction does not change routing', async () => {
    const seen = provider(OPENAI, (call) => chatReply(String(call.body?.model)));
    const routing = { aliases: { fast: ['gpt-4.1-mini'] } };
    const manager = create({ providers: { openai: { baseURL: OPENAI, keys: [fakeKey('openai')], models: ['gpt-4.1', 'gpt-4.1-mini'] } }, routing });
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));

    routing.aliases.fast[0] = 'gpt-4.1';
    await client.chat.completions.create({ model: 'fast', messages: [{ role: 'user', content: 'hi' }] });

    expect(seen.map((call) => call.body?.model)).toEqual(['gpt-4.1-mini']);
  });
});
