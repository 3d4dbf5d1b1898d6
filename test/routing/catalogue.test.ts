import { describe, expect, test } from 'vitest';
import {
  catalogueProblem,
  ComplexityAutoStrategy,
  contextFallbackChain,
  MAX_FEATURE_TEXT,
  requestFeatures,
  resolveModel,
  type AutoStrategy,
  type CatalogueOptions,
  type RequestFeatures,
} from '../../src/routing/catalogue';

function features(fields: Partial<RequestFeatures> = {}): RequestFeatures {
  return { inputTokens: 1000, messages: 1, hasTools: false, hasImages: false, maxOutputTokens: undefined, text: '', ...fields };
}

describe('resolveModel', () => {
  test.each<[string, string, CatalogueOptions, string[][]]>([
    ['a plain model is tier 0 alone', 'gpt-4.1', {}, [['gpt-4.1']]],
    ['an unknown model passes through', 'my-finetune', { aliases: { fast: ['a'] } }, [['my-finetune']]],
    ['an alias is one tier of its models', 'fast', { aliases: { fast: ['deepseek-v3.2', 'gemini-2.5-flash'] } }, [['deepseek-v3.2', 'gemini-2.5-flash']]],
    ['a model repeated in an alias appears once', 'fast', { aliases: { fast: ['a', 'b', 'a'] } }, [['a', 'b']]],
    ['fallbacks follow, one tier each, in order', 'gpt-4.1', { fallbacks: { 'gpt-4.1': ['claude-sonnet-4.5', 'gemini-2.5-flash'] } }, [['gpt-4.1'], ['claude-sonnet-4.5'], ['gemini-2.5-flash']]],
    ['fallbacks are followed transitively', 'a', { fallbacks: { a: ['b'], b: ['c'] } }, [['a'], ['b'], ['c']]],
    ['transitive fallbacks come breadth first', 'a', { fallbacks: { a: ['b', 'c'], b: ['d'] } }, [['a'], ['b'], ['c'], ['d']]],
    ['a model reached twice appears once', 'a', { fallbacks: { a: ['b', 'c'], b: ['c', 'a'] } }, [['a'], ['b'], ['c']]],
    ['a cycle ends (resolution never loops)', 'a', { fallbacks: { a: ['b'], b: ['a'] } }, [['a'], ['b']]],
    ["an alias' models bring their fallbacks", 'fast', { aliases: { fast: ['a', 'b'] }, fallbacks: { a: ['x'], b: ['y'] } }, [['a', 'b'], ['x'], ['y']]],
    ["an alias' own fallbacks come before its models'", 'fast', { aliases: { fast: ['a', 'b'] }, fallbacks: { a: ['x'], fast: ['z'] } }, [['a', 'b'], ['z'], ['x']]],
    ["a fallback already in the alias' tier is not repeated", 'fast', { aliases: { fast: ['a', 'b'] }, fallbacks: { a: ['b', 'c'] } }, [['a', 'b'], ['c']]],
    ['a fallback naming an alias is one tier of its models', 'a', { aliases: { fast: ['x', 'y'] }, fallbacks: { a: ['fast'] } }, [['a'], ['x', 'y']]],
    ['a fallback alias leaves out models already placed', 'a', { aliases: { fast: ['a', 'y'] }, fallbacks: { a: ['fast'] } }, [['a'], ['y']]],
    ['a fallback alias whose models are all placed adds no tier', 'a', { aliases: { fast: ['a'] }, fallbacks: { a: ['fast'] } }, [['a']]],
    ["'auto' without an auto option is a plain model name", 'auto', { aliases: { fast: ['a'] } }, [['auto']]],
    ['a name like an Object.prototype key is a plain model', 'constructor', { aliases: {}, fallbacks: {} }, [['constructor']]],
  ])('%s', (_, requested, catalogue, tiers) => {
    expect(resolveModel(requested, catalogue, features()).tiers).toEqual(tiers);
  });

  test('reports the requested name', () => {
    expect(resolveModel('fast', { aliases: { fast: ['a'] } }, features()).requested).toBe('fast');
  });

  test('a request that is not auto has no auto field', () => {
    expect(resolveModel('a', { auto: { models: ['a', 'b'] } }, features())).not.toHaveProperty('auto');
  });
});

describe('resolveModel with auto', () => {
  const catalogue: CatalogueOptions = { auto: { models: ['cheap', 'mid', 'strong'] } };

  test.each<[string, Partial<RequestFeatures>, string]>([
    ['a short simple prompt goes to the cheapest', { inputTokens: 100 }, 'cheap'],
    ['a medium prompt goes to the middle', { inputTokens: 2000 }, 'mid'],
    ['a long prompt goes to the strongest', { inputTokens: 10_000 }, 'strong'],
    ['a short prompt with tools goes to the strongest', { inputTokens: 100, hasTools: true }, 'strong'],
    ['a short prompt with images goes to the strongest', { inputTokens: 100, hasImages: true }, 'strong'],
  ])('%s', (_, fields, chosen) => {
    expect(resolveModel('auto', catalogue, features(fields)).auto).toEqual({ chosen });
  });

  test("the chosen model's fallbacks apply", () => {
    const resolution = resolveModel('auto', { ...catalogue, fallbacks: { cheap: ['mid'], mid: ['strong'] } }, features({ inputTokens: 10 }));
    expect(resolution.tiers).toEqual([['cheap'], ['mid'], ['strong']]);
  });

  test('a chosen alias resolves to its models', () => {
    const resolution = resolveModel('auto', { aliases: { fast: ['x', 'y'] }, auto: { models: ['fast', 'strong'] } }, features({ inputTokens: 10 }));
    expect(resolution.tiers).toEqual([['x', 'y']]);
  });

  test('keeps the requested name as auto', () => {
    expect(resolveModel('auto', catalogue, features()).requested).toBe('auto');
  });

  test('asks a custom strategy with the features and models', () => {
    const calls: [RequestFeatures, readonly string[]][] = [];
    const strategy: AutoStrategy = {
      choose: (f, models) => {
        calls.push([f, models]);
        return 'mid';
      },
    };
    const f = features({ text: 'hi' });
    resolveModel('auto', { auto: { models: ['cheap', 'mid'], strategy } }, f);
    expect(calls).toEqual([[f, ['cheap', 'mid']]]);
  });

  test('rejects a custom choice outside auto.models', () => {
    const strategy: AutoStrategy = { choose: () => 'gpt-9' };
    expect(() => resolveModel('auto', { auto: { models: ['a'], strategy } }, features())).toThrow(/gpt-9/);
  });
});

describe('ComplexityAutoStrategy', () => {
  const three = ['cheap', 'mid', 'strong'];

  test.each<[number, string]>([
    [499, 'cheap'],
    [500, 'mid'],
    [4000, 'mid'],
    [4001, 'strong'],
  ])('%i input tokens → %s (thresholds 500 / 4000)', (inputTokens, chosen) => {
    expect(new ComplexityAutoStrategy().choose(features({ inputTokens }), three)).toBe(chosen);
  });

  test.each<[string[], string]>([
    [['cheap', 'strong'], 'strong'],
    [['m0', 'm1', 'm2', 'm3'], 'm2'],
    [['m0', 'm1', 'm2', 'm3', 'm4'], 'm2'],
  ])('a medium prompt among %j goes to the upper middle, %s', (models, chosen) => {
    expect(new ComplexityAutoStrategy().choose(features({ inputTokens: 1000 }), models)).toBe(chosen);
  });

  test('a single model is always chosen', () => {
    expect(new ComplexityAutoStrategy().choose(features({ hasTools: true }), ['only'])).toBe('only');
  });

  test('honours custom thresholds', () => {
    expect(new ComplexityAutoStrategy({ shortBelow: 50, longAbove: 100 }).choose(features({ inputTokens: 101 }), three)).toBe('strong');
  });

  test.each<[string, { shortBelow?: number; longAbove?: number }]>([
    ['shortBelow above longAbove', { shortBelow: 5000, longAbove: 4000 }],
    ['a negative threshold', { shortBelow: -1 }],
    ['a NaN threshold', { longAbove: Number.NaN }],
  ])('rejects %s', (_, thresholds) => {
    expect(() => new ComplexityAutoStrategy(thresholds)).toThrow(RangeError);
  });

  test('rejects an empty model list', () => {
    expect(() => new ComplexityAutoStrategy().choose(features(), [])).toThrow(RangeError);
  });
});

describe('requestFeatures', () => {
  const user = (content: unknown) => ({ role: 'user', content });

  test('an absent body has no messages, tools, images or text', () => {
    expect(requestFeatures(undefined, 7)).toEqual({ inputTokens: 7, messages: 0, hasTools: false, hasImages: false, maxOutputTokens: undefined, text: '' });
  });

  test.each<[string, Record<string, unknown>, Partial<RequestFeatures>]>([
    ['counts chat messages', { messages: [{ role: 'system', content: 's' }, user('u'), { role: 'assistant', content: 'a' }] }, { messages: 3 }],
    ['takes the last user message text', { messages: [user('first'), { role: 'assistant', content: 'a' }, user('second'), { role: 'assistant', content: 'b' }] }, { text: 'second' }],
    ['joins text parts', { messages: [user([{ type: 'text', text: 'one' }, { type: 'image_url', image_url: { url: 'x' } }, { type: 'text', text: 'two' }])] }, { text: 'one\ntwo' }],
    ['sees chat image parts', { messages: [user([{ type: 'image_url', image_url: { url: 'x' } }])] }, { hasImages: true }],
    ['sees an image in an earlier message', { messages: [user([{ type: 'image_url', image_url: { url: 'x' } }]), user('and now?')] }, { hasImages: true }],
    ['sees Responses input_image parts', { input: [user([{ type: 'input_text', text: 'look' }, { type: 'input_image', image_url: 'x' }])] }, { hasImages: true, text: 'look' }],
    ['a Responses string input is one message', { input: 'hello' }, { messages: 1, text: 'hello' }],
    ['a legacy completions prompt is one message', { prompt: 'complete me' }, { messages: 1, text: 'complete me' }],
    ['sees tools', { tools: [{ type: 'function', function: { name: 'f' } }] }, { hasTools: true }],
    ['sees legacy functions', { functions: [{ name: 'f' }] }, { hasTools: true }],
    ['an empty tools list is no tools', { tools: [] }, { hasTools: false }],
    ['reads max_completion_tokens first', { max_completion_tokens: 100, max_tokens: 200 }, { maxOutputTokens: 100 }],
    ['reads max_tokens', { max_tokens: 200 }, { maxOutputTokens: 200 }],
    ['reads Responses max_output_tokens', { max_output_tokens: 300 }, { maxOutputTokens: 300 }],
    ['ignores a malformed max tokens', { max_tokens: 'lots' }, { maxOutputTokens: undefined }],
    ['ignores malformed messages', { messages: [null, 3, user('ok')] }, { messages: 3, text: 'ok' }],
  ])('%s', (_, body, expected) => {
    expect(requestFeatures(body, 10)).toMatchObject(expected);
  });

  test(`truncates the text to ${MAX_FEATURE_TEXT} characters`, () => {
    expect(requestFeatures({ messages: [user('x'.repeat(5000))] }, 10).text).toHaveLength(MAX_FEATURE_TEXT);
  });

  test(`truncates joined text parts to ${MAX_FEATURE_TEXT} characters`, () => {
    const part = { type: 'text', text: 'y'.repeat(1500) };
    expect(requestFeatures({ messages: [user([part, part, part])] }, 10).text).toHaveLength(MAX_FEATURE_TEXT);
  });

  test('passes the input token estimate through', () => {
    expect(requestFeatures({ messages: [] }, 1234).inputTokens).toBe(1234);
  });
});

describe('contextFallbackChain', () => {
  test.each<[string, string, CatalogueOptions, string[]]>([
    ['none configured', 'a', {}, []],
    ['none for this model', 'a', { contextFallbacks: { b: 'c' } }, []],
    ['one step', 'gpt-4.1-mini', { contextFallbacks: { 'gpt-4.1-mini': 'gpt-4.1' } }, ['gpt-4.1']],
    ['transitively', 'a', { contextFallbacks: { a: 'b', b: 'c' } }, ['b', 'c']],
    ['a cycle ends the chain', 'a', { contextFallbacks: { a: 'b', b: 'a' } }, ['b']],
  ])('%s', (_, model, catalogue, chain) => {
    expect(contextFallbackChain(model, catalogue)).toEqual(chain);
  });
});

describe('catalogueProblem', () => {
  const known = new Set(['gpt-4.1', 'gpt-4.1-mini', 'claude-sonnet-4.5', 'gemini-2.5-flash', 'gemini-2.5-pro', 'deepseek-v3.2']);
  const strategy: AutoStrategy = { choose: (_, models) => models[0]! };

  test('accepts a full valid catalogue', () => {
    const options: CatalogueOptions = {
      aliases: { fast: ['deepseek-v3.2', 'gemini-2.5-flash'], smart: ['gpt-4.1', 'claude-sonnet-4.5'] },
      fallbacks: { 'gpt-4.1': ['claude-sonnet-4.5', 'fast'], fast: ['gpt-4.1-mini'] },
      contextFallbacks: { 'gpt-4.1-mini': 'gemini-2.5-pro' },
      auto: { models: ['fast', 'gpt-4.1'], strategy },
    };
    expect(catalogueProblem(options, known)).toBeUndefined();
  });

  test('accepts no options', () => {
    expect(catalogueProblem(undefined, known)).toBeUndefined();
  });

  test('an empty known set accepts any model name', () => {
    expect(catalogueProblem({ aliases: { fast: ['anything'] }, fallbacks: { whatever: ['else'] }, auto: { models: ['x'] } }, new Set())).toBeUndefined();
  });

  test('an empty known set still rejects cycles', () => {
    expect(catalogueProblem({ fallbacks: { a: ['b'], b: ['a'] } }, new Set())?.field).toBe('fallbacks.b[0]');
  });

  test('prefixes fields with base', () => {
    expect(catalogueProblem({ aliases: { fast: [] } }, known, 'routing')?.field).toBe('routing.aliases.fast');
  });

  test.each<[string, unknown, string, RegExp]>([
    // The options object
    ['options that are not an object', ['fast'], 'catalogue', /expected an object/],
    // Aliases
    ['aliases that are not an object', { aliases: ['fast'] }, 'aliases', /expected an object/],
    ['an empty alias name', { aliases: { '': ['gpt-4.1'] } }, 'aliases[""]', /non-empty alias name/],
    ["an alias named 'auto'", { aliases: { auto: ['gpt-4.1'] } }, 'aliases.auto', /reserved/],
    ['an alias named like a model', { aliases: { 'gpt-4.1': ['claude-sonnet-4.5'] } }, 'aliases["gpt-4.1"]', /hide that model/],
    ['an alias that is not an array', { aliases: { fast: 'gpt-4.1' } }, 'aliases.fast', /expected an array/],
    ['an empty alias group', { aliases: { fast: [] } }, 'aliases.fast', /empty group/],
    ['an unknown model in an alias', { aliases: { fast: ['gpt-4.1', 'gpt-9'] } }, 'aliases.fast[1]', /unknown model "gpt-9"/],
    ['an alias inside an alias', { aliases: { fast: ['gpt-4.1'], faster: ['fast'] } }, 'aliases.faster[0]', /cannot contain aliases/],
    ['a model twice in an alias', { aliases: { fast: ['gpt-4.1', 'gpt-4.1'] } }, 'aliases.fast[1]', /once/],
    ["'auto' in an alias", { aliases: { fast: ['auto'] } }, 'aliases.fast[0]', /"auto" is not a model/],
    ['a non-string in an alias', { aliases: { fast: [42] } }, 'aliases.fast[0]', /non-empty model name/],
    // Fallbacks
    ['fallbacks that are not an object', { fallbacks: 'gpt-4.1' }, 'fallbacks', /expected an object/],
    ['fallbacks for an unknown model', { fallbacks: { 'gpt-9': ['gpt-4.1'] } }, 'fallbacks["gpt-9"]', /unknown model "gpt-9"/],
    ["fallbacks for 'auto'", { fallbacks: { auto: ['gpt-4.1'] } }, 'fallbacks.auto', /auto\.models/],
    ['fallbacks that are not an array', { fallbacks: { 'gpt-4.1': 'claude-sonnet-4.5' } }, 'fallbacks["gpt-4.1"]', /expected an array/],
    ['an empty fallback list', { fallbacks: { 'gpt-4.1': [] } }, 'fallbacks["gpt-4.1"]', /empty list/],
    ['an unknown fallback model', { fallbacks: { 'gpt-4.1': ['claude-sonnet-4.5', 'gpt-9'] } }, 'fallbacks["gpt-4.1"][1]', /unknown model "gpt-9"/],
    ['a model falling back to itself', { fallbacks: { 'gpt-4.1': ['gpt-4.1'] } }, 'fallbacks["gpt-4.1"][0]', /itself/],
    ['a fallback listed twice', { fallbacks: { 'gpt-4.1': ['gemini-2.5-pro', 'gemini-2.5-pro'] } }, 'fallbacks["gpt-4.1"][1]', /once/],
    ["'auto' as a fallback", { fallbacks: { 'gpt-4.1': ['auto'] } }, 'fallbacks["gpt-4.1"][0]', /"auto" is not a model/],
    [
      'a two-step fallback cycle',
      { fallbacks: { 'gpt-4.1': ['claude-sonnet-4.5'], 'claude-sonnet-4.5': ['gpt-4.1'] } },
      'fallbacks["claude-sonnet-4.5"][0]',
      /cycle: gpt-4\.1 → claude-sonnet-4\.5 → gpt-4\.1/,
    ],
    [
      'a three-step fallback cycle',
      { fallbacks: { 'gpt-4.1': ['claude-sonnet-4.5'], 'claude-sonnet-4.5': ['gemini-2.5-pro'], 'gemini-2.5-pro': ['gpt-4.1'] } },
      'fallbacks["gemini-2.5-pro"][0]',
      /cycle: gpt-4\.1 → claude-sonnet-4\.5 → gemini-2\.5-pro → gpt-4\.1/,
    ],
    [
      'a fallback cycle through an alias',
      { aliases: { fast: ['deepseek-v3.2', 'gemini-2.5-flash'] }, fallbacks: { 'gemini-2.5-flash': ['fast'] } },
      'fallbacks["gemini-2.5-flash"][0]',
      /cycle: gemini-2\.5-flash → fast → gemini-2\.5-flash/,
    ],
    // Context fallbacks
    ['contextFallbacks that are not an object', { contextFallbacks: ['gpt-4.1'] }, 'contextFallbacks', /expected an object/],
    ['a context fallback for an unknown model', { contextFallbacks: { 'gpt-9': 'gpt-4.1' } }, 'contextFallbacks["gpt-9"]', /unknown model/],
    ['a context fallback for an alias', { aliases: { fast: ['gpt-4.1-mini'] }, contextFallbacks: { fast: 'gpt-4.1' } }, 'contextFallbacks.fast', /is an alias/],
    ["a context fallback for 'auto'", { contextFallbacks: { auto: 'gpt-4.1' } }, 'contextFallbacks.auto', /not a model/],
    ['a context fallback that is not a string', { contextFallbacks: { 'gpt-4.1-mini': ['gpt-4.1'] } }, 'contextFallbacks["gpt-4.1-mini"]', /non-empty model name/],
    ["'auto' as a context fallback", { contextFallbacks: { 'gpt-4.1-mini': 'auto' } }, 'contextFallbacks["gpt-4.1-mini"]', /cannot be a context fallback/],
    ['a model as its own context fallback', { contextFallbacks: { 'gpt-4.1': 'gpt-4.1' } }, 'contextFallbacks["gpt-4.1"]', /its own/],
    ['an unknown context fallback', { contextFallbacks: { 'gpt-4.1-mini': 'gpt-9' } }, 'contextFallbacks["gpt-4.1-mini"]', /unknown model "gpt-9"/],
    [
      'a context fallback cycle',
      { contextFallbacks: { 'gpt-4.1-mini': 'gpt-4.1', 'gpt-4.1': 'gpt-4.1-mini' } },
      'contextFallbacks["gpt-4.1"]',
      /cycle: gpt-4\.1-mini → gpt-4\.1 → gpt-4\.1-mini/,
    ],
    // Auto
    ['auto that is not an object', { auto: ['gpt-4.1'] }, 'auto', /expected an object/],
    ['auto without models', { auto: {} }, 'auto.models', /expected an array/],
    ['auto with empty models', { auto: { models: [] } }, 'auto.models', /at least one model/],
    ['an unknown model in auto.models', { auto: { models: ['gpt-4.1-mini', 'gpt-9'] } }, 'auto.models[1]', /unknown model "gpt-9"/],
    ["'auto' in auto.models", { auto: { models: ['auto'] } }, 'auto.models[0]', /"auto" is not a model/],
    ['a model twice in auto.models', { auto: { models: ['gpt-4.1', 'gpt-4.1'] } }, 'auto.models[1]', /once/],
    ['an auto strategy without choose', { auto: { models: ['gpt-4.1'], strategy: {} } }, 'auto.strategy', /choose/],
  ])('names the field for %s', (_, options, field, problem) => {
    const found = catalogueProblem(options, known);
    expect(found).toEqual({ field, problem: expect.stringMatching(problem) });
  });

  test('rejects auto when a provider lists a model named auto', () => {
    expect(catalogueProblem({ auto: { models: ['gpt-4.1'] } }, new Set(['gpt-4.1', 'auto']))?.field).toBe('auto');
  });

  test('accepts a fallback to an alias', () => {
    expect(catalogueProblem({ aliases: { fast: ['deepseek-v3.2'] }, fallbacks: { 'gpt-4.1': ['fast'] } }, known)).toBeUndefined();
  });

  test('accepts two models falling back to the same one (a diamond is no cycle)', () => {
    expect(
      catalogueProblem({ fallbacks: { 'gpt-4.1': ['claude-sonnet-4.5', 'gemini-2.5-pro'], 'claude-sonnet-4.5': ['gemini-2.5-pro'] } }, known),
    ).toBeUndefined();
  });
});
