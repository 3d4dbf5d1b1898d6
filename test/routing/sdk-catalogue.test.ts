/**
 * The model catalogue end to end: aliases, `auto` and fallback chains, driven
 * through the real `openai` SDK wrapped by `manager.wrap()`, against msw
 * stand-ins of the providers.
 */
import OpenAI from 'openai';
import { describe, expect, test} from 'vitest';
import {
  ComplexityAutoStrategy,
  getKeyplexDetails,
  isKeyplexError,
  keyplex,
  type AutoStrategy,
  type KeyManagerOptions,
  type RequestFeatures,
  type RoutingOptions,
} from '../../src/index';
import { fakeKey } from '../support/fake-keys';
import { chatReply, errorReply, keyRing, provider, type UpstreamCall } from '../support/upstream';
import '../support/setup';
import { record } from '../support/events';
import { useManagers } from '../support/scaffold';
import { caught } from '../support/caught';

const OPENAI = 'https://api.openai.test/v1';
const AZURE = 'https://api.azure.test/v1';
const ANTHROPIC = 'https://api.anthropic.test/v1';
const GOOGLE = 'https://api.google.test/v1';
const DEEPSEEK = 'https://api.deepseek.test/v1';

const manage = useManagers();

const models = (recorded: readonly UpstreamCall[]): unknown[] => recorded.map((call) => call.body?.model);
const ask = (model: string, content = 'hi') => ({ model, messages: [{ role: 'user' as const, content }] });

// ---------------------------------------------------------------------------
// aliases

describe('aliases', () => {
  /**
   * `fast` = deepseek-v3.2 (served by deepseek as `deepseek-chat`) and
   * gemini-2.5-flash (served by google as `gemini-2.5-flash-001`); openai
   * serves gpt-4.1, outside the group. `down` makes deepseek answer 500.
   */
  function aliasSetup(routing: RoutingOptions = {}) {
    const down = { deepseek: false };
    const seen = {
      deepseek: provider(DEEPSEEK, () => (down.deepseek ? errorReply(500, 'server_error') : chatReply('deepseek-chat'))),
      google: provider(GOOGLE, () => chatReply('gemini-2.5-flash-001')),
      openai: provider(OPENAI, () => chatReply('gpt-4.1')),
    };
    const { manager, client } = manage({
      providers: {
        deepseek: { baseURL: DEEPSEEK, keys: [fakeKey('deepseek')], models: { 'deepseek-v3.2': 'deepseek-chat' } },
        google: { baseURL: GOOGLE, keys: [fakeKey('google')], models: { 'gemini-2.5-flash': 'gemini-2.5-flash-001' } },
        openai: { baseURL: OPENAI, keys: [fakeKey('openai')], models: ['gpt-4.1'] },
      },
      routing: { strategy: 'weighted', aliases: { fast: ['deepseek-v3.2', 'gemini-2.5-flash'] }, ...routing },
    });
    return { down, seen, manager, client };
  }

  test("spreads requests for the alias over the group's deployments, and only those", async () => {
    const { seen, client } = aliasSetup();

    for (let i = 0; i < 4; i++) await client.chat.completions.create(ask('fast'));

    expect([seen.deepseek.length, seen.google.length, seen.openai.length]).toEqual([2, 2, 0]);
  });

  test("sends each deployment's upstream model name, not the alias", async () => {
    const { seen, client } = aliasSetup();

    await client.chat.completions.create(ask('fast'));
    await client.chat.completions.create(ask('fast'));

    expect(models(seen.deepseek)).toEqual(['deepseek-chat']);
    expect(models(seen.google)).toEqual(['gemini-2.5-flash-001']);
  });

  test('reports the alias as model and the member as deploymentModel in the attempt event, with strategy and rank', async () => {
    const { manager, client } = aliasSetup();
    const attempts = record(manager, 'attempt');

    await client.chat.completions.create(ask('fast'));
    await client.chat.completions.create(ask('fast'));

    expect(attempts).toEqual([
      expect.objectContaining({ provider: 'deepseek', model: 'fast', deploymentModel: 'deepseek-v3.2', upstreamModel: 'deepseek-chat', strategy: 'weighted', rank: 1 }),
      expect.objectContaining({ provider: 'google', model: 'fast', deploymentModel: 'gemini-2.5-flash', upstreamModel: 'gemini-2.5-flash-001', strategy: 'weighted', rank: 1 }),
    ]);
  });

  test("fails over to another member of the group when one member's deployment fails", async () => {
    const { down, manager, client } = aliasSetup({ strategy: 'ordered' });
    const attempts = record(manager, 'attempt');
    down.deepseek = true;

    const reply = await client.chat.completions.create(ask('fast'));

    expect(reply.model).toBe('gemini-2.5-flash-001');
    expect(attempts.map((e) => [e.deploymentModel, e.rank])).toEqual([
      ['deepseek-v3.2', 1],
      ['gemini-2.5-flash', 2],
    ]);
  });

  test("orders the group by the alias' perModel strategy", async () => {
    // gemini is configured first, so the global 'ordered' would pick it; perModel 'cost'
    // picks deepseek (0.28 / 0.42 USD per million tokens against gemini's 0.3 / 2.5).
    const seenGoogle = provider(GOOGLE, () => chatReply('gemini-2.5-flash'));
    const seenDeepseek = provider(DEEPSEEK, () => chatReply('deepseek-chat'));
    const { manager, client } = manage({
      providers: {
        google: { baseURL: GOOGLE, keys: [fakeKey('google')], models: ['gemini-2.5-flash'] },
        deepseek: { baseURL: DEEPSEEK, keys: [fakeKey('deepseek')], models: { 'deepseek-v3.2': 'deepseek-chat' } },
      },
      routing: { strategy: 'ordered', perModel: { fast: 'cost' }, aliases: { fast: ['gemini-2.5-flash', 'deepseek-v3.2'] } },
    });
    const attempts = record(manager, 'attempt');

    await client.chat.completions.create(ask('fast'));

    expect([seenGoogle.length, seenDeepseek.length]).toEqual([0, 1]);
    expect(attempts.map((e) => [e.provider, e.strategy])).toEqual([['deepseek', 'cost']]);
  });

  test('leaves a model that is not an alias routed as itself', async () => {
    const { seen, manager, client } = aliasSetup();
    const attempts = record(manager, 'attempt');

    await client.chat.completions.create(ask('gpt-4.1'));

    expect([seen.deepseek.length, seen.google.length, seen.openai.length]).toEqual([0, 0, 1]);
    expect(attempts.map((e) => [e.model, e.deploymentModel])).toEqual([['gpt-4.1', 'gpt-4.1']]);
  });
});

// ---------------------------------------------------------------------------
// auto

describe('auto', () => {
  /** One provider serving three models, cheapest → strongest in `auto.models`. */
  function autoSetup(auto: RoutingOptions['auto'] = { models: ['gpt-4.1-nano', 'gpt-4.1-mini', 'gpt-4.1'] }) {
    const seen = provider(OPENAI, (call) => chatReply(String(call.body?.model)));
    const { manager, client } = manage({
      providers: { openai: { baseURL: OPENAI, keys: [fakeKey('openai')], models: ['gpt-4.1-nano', 'gpt-4.1-mini', 'gpt-4.1'] } },
      routing: { auto },
    });
    return { seen, manager, client };
  }

  const weather: OpenAI.ChatCompletionTool = {
    type: 'function',
    function: { name: 'weather', description: 'Weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
  };

  test('sends a short plain prompt to the cheapest model', async () => {
    const { seen, client } = autoSetup();

    await client.chat.completions.create(ask('auto', 'What is 2 + 2?'));

    expect(models(seen)).toEqual(['gpt-4.1-nano']);
  });

  test('sends a long prompt (over 4,000 estimated tokens) to the strongest model', async () => {
    const { seen, client } = autoSetup();

    // 16,400 characters ≈ 4,100 tokens.
    await client.chat.completions.create(ask('auto', 'x'.repeat(16_400)));

    expect(models(seen)).toEqual(['gpt-4.1']);
  });

  test('sends a short prompt with tools to the strongest model', async () => {
    const { seen, client } = autoSetup();

    await client.chat.completions.create({ ...ask('auto', 'Weather in Paris?'), tools: [weather] });

    expect(models(seen)).toEqual(['gpt-4.1']);
  });

  test('sends a medium prompt (between 500 and 4,000 tokens) to the middle model', async () => {
    const { seen, client } = autoSetup();

    // 8,000 characters ≈ 2,000 tokens.
    await client.chat.completions.create(ask('auto', 'x'.repeat(8_000)));

    expect(models(seen)).toEqual(['gpt-4.1-mini']);
  });

  test("does not count the answer's max_tokens as prompt when judging the prompt short", async () => {
    const { seen, client } = autoSetup();

    await client.chat.completions.create({ ...ask('auto', 'Write a poem about the sea.'), max_tokens: 5_000 });

    expect(models(seen)).toEqual(['gpt-4.1-nano']);
  });

  test("reports 'auto' as model and the chosen model as deploymentModel in the attempt event", async () => {
    const { manager, client } = autoSetup();
    const attempts = record(manager, 'attempt');

    await client.chat.completions.create(ask('auto'));

    expect(attempts).toEqual([expect.objectContaining({ model: 'auto', deploymentModel: 'gpt-4.1-nano', upstreamModel: 'gpt-4.1-nano', rank: 1 })]);
  });

  test('asks a custom auto.strategy with the request features and uses its choice', async () => {
    const asked: [RequestFeatures, readonly string[]][] = [];
    const strategy: AutoStrategy = {
      choose(features, list) {
        asked.push([features, list]);
        return features.text.includes('summarise') ? 'gpt-4.1-mini' : list[0]!;
      },
    };
    const { seen, client } = autoSetup({ models: ['gpt-4.1-nano', 'gpt-4.1-mini', 'gpt-4.1'], strategy });

    await client.chat.completions.create(ask('auto', 'please summarise this'));

    expect(models(seen)).toEqual(['gpt-4.1-mini']);
    expect(asked).toEqual([
      [
        { inputTokens: 6, messages: 1, hasTools: false, hasImages: false, maxOutputTokens: undefined, text: 'please summarise this' },
        ['gpt-4.1-nano', 'gpt-4.1-mini', 'gpt-4.1'],
      ],
    ]);
  });

  const brokenAuto: { name: string; choose: AutoStrategy['choose']; says: RegExp }[] = [
    { name: 'throws', choose: () => { throw new Error('classifier down'); }, says: /AutoStrategy\.choose failed: classifier down/ },
    { name: 'chooses a model not in auto.models', choose: () => 'gpt-5', says: /chose "gpt-5", which is not one of auto\.models/ },
  ];

  test.each(brokenAuto)('a custom auto.strategy that $name fails the request as hook_failed (500), sending nothing', async ({ choose, says }) => {
    const { seen, manager, client } = autoSetup({ models: ['gpt-4.1-nano', 'gpt-4.1'], strategy: { choose } });
    const failures = record(manager, 'failure');

    const error = await caught(() => client.chat.completions.create(ask('auto')));

    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect(isKeyplexError(error, 'hook_failed')).toBe(true);
    expect(error.message).toMatch(says);
    expect(seen).toHaveLength(0);
    expect(failures.map((f) => f.error.code)).toEqual(['hook_failed']);
    expect(manager.stats().totals.inFlight).toBe(0);
  });

  test('follows the thresholds of a ComplexityAutoStrategy given as auto.strategy', async () => {
    const { seen, client } = autoSetup({ models: ['gpt-4.1-nano', 'gpt-4.1-mini', 'gpt-4.1'], strategy: new ComplexityAutoStrategy({ shortBelow: 50, longAbove: 200 }) });

    await client.chat.completions.create(ask('auto', 'x'.repeat(40 * 4)));
    await client.chat.completions.create(ask('auto', 'x'.repeat(100 * 4)));
    await client.chat.completions.create(ask('auto', 'x'.repeat(300 * 4)));

    expect(models(seen)).toEqual(['gpt-4.1-nano', 'gpt-4.1-mini', 'gpt-4.1']);
  });

  test("the chosen model's fallbacks apply when it fails", async () => {
    const seenNano = provider(OPENAI, () => errorReply(500, 'server_error'));
    const seenStrong = provider(AZURE, () => chatReply('gpt-4.1'));
    const { client } = manage({
      providers: {
        openai: { baseURL: OPENAI, keys: [fakeKey('openai')], models: ['gpt-4.1-nano'] },
        azure: { baseURL: AZURE, keys: [fakeKey('azure')], models: ['gpt-4.1'] },
      },
      routing: { auto: { models: ['gpt-4.1-nano', 'gpt-4.1'] }, fallbacks: { 'gpt-4.1-nano': ['gpt-4.1'] } },
    });

    const reply = await client.chat.completions.create(ask('auto'));

    expect(reply.model).toBe('gpt-4.1');
    expect([models(seenNano), models(seenStrong)]).toEqual([['gpt-4.1-nano'], ['gpt-4.1']]);
  });
});

// ---------------------------------------------------------------------------
// fallbacks

describe('fallback chains', () => {
  /**
   * gpt-4.1 on openai and azure (as `gpt-41-prod`), claude-sonnet-4.5 on
   * anthropic (as `claude-sonnet-4-5`), gemini-2.5-flash on google. `status`
   * says what each provider answers (200 by default).
   */
  function fallbackSetup(options: { fallbacks?: Record<string, string[]>; circuitBreaker?: KeyManagerOptions['circuitBreaker']; azure?: boolean } = {}) {
    const ring = keyRing('openai-1', 'azure-1', 'anthropic-1', 'google-1');
    const status: Record<'openai' | 'azure' | 'anthropic' | 'google', number> = { openai: 200, azure: 200, anthropic: 200, google: 200 };
    const answer = (name: keyof typeof status, model: string) => () => (status[name] === 200 ? chatReply(model, `from ${name}`) : errorReply(status[name], 'server_error'));
    const seen = {
      openai: provider(OPENAI, answer('openai', 'gpt-4.1')),
      azure: provider(AZURE, answer('azure', 'gpt-41-prod')),
      anthropic: provider(ANTHROPIC, answer('anthropic', 'claude-sonnet-4-5')),
      google: provider(GOOGLE, answer('google', 'gemini-2.5-flash')),
    };
    const providers: KeyManagerOptions['providers'] = {
      openai: { baseURL: OPENAI, keys: [ring.keys[0]!], models: ['gpt-4.1'] },
      azure: { baseURL: AZURE, keys: [ring.keys[1]!], models: { 'gpt-4.1': 'gpt-41-prod' } },
      anthropic: { baseURL: ANTHROPIC, keys: [ring.keys[2]!], models: { 'claude-sonnet-4.5': 'claude-sonnet-4-5' } },
      google: { baseURL: GOOGLE, keys: [ring.keys[3]!], models: ['gemini-2.5-flash'] },
    };
    if (options.azure === false) delete providers.azure;
    const { manager, client } = manage({
      providers,
      routing: { fallbacks: options.fallbacks ?? { 'gpt-4.1': ['claude-sonnet-4.5'] } },
      ...(options.circuitBreaker === undefined ? {} : { circuitBreaker: options.circuitBreaker }),
    });
    const counts = () => ({ openai: seen.openai.length, azure: seen.azure.length, anthropic: seen.anthropic.length, google: seen.google.length });
    return { ring, status, seen, manager, client, counts };
  }

  test('does not use the fallback while the primary model succeeds', async () => {
    const { client, counts } = fallbackSetup();

    for (let i = 0; i < 3; i++) await client.chat.completions.create(ask('gpt-4.1'));

    expect(counts()).toEqual({ openai: 3, azure: 0, anthropic: 0, google: 0 });
  });

  test('serves the request with the fallback model once every deployment of the primary answered 500', async () => {
    const { status, seen, client, counts } = fallbackSetup();
    status.openai = 500;
    status.azure = 500;

    const reply = await client.chat.completions.create(ask('gpt-4.1'));

    expect(reply.choices[0]?.message.content).toBe('from anthropic');
    expect(counts()).toEqual({ openai: 1, azure: 1, anthropic: 1, google: 0 });
    expect(models(seen.anthropic)).toEqual(['claude-sonnet-4-5']);
  });

  test('emits a failover event from the failed primary to the fallback provider', async () => {
    const { status, ring, manager, client } = fallbackSetup();
    const failovers = record(manager, 'failover');
    status.openai = 500;
    status.azure = 500;

    await client.chat.completions.create(ask('gpt-4.1'));

    expect(failovers.map((e) => [e.from.provider, e.to.provider, e.reason, e.attempt])).toEqual([
      ['openai', 'azure', 'server_error', 2],
      ['azure', 'anthropic', 'server_error', 3],
    ]);
    expect(failovers[1]?.to.keyId).toBe(ring.keys[2]!.id);
  });

  test("reports the fallback as deploymentModel, after the primary's deployments in rank", async () => {
    const { status, manager, client } = fallbackSetup();
    const attempts = record(manager, 'attempt');
    status.openai = 500;
    status.azure = 500;

    await client.chat.completions.create(ask('gpt-4.1'));

    expect(attempts.map((e) => [e.provider, e.model, e.deploymentModel, e.upstreamModel, e.rank])).toEqual([
      ['openai', 'gpt-4.1', 'gpt-4.1', 'gpt-4.1', 1],
      ['azure', 'gpt-4.1', 'gpt-4.1', 'gpt-41-prod', 2],
      ['anthropic', 'gpt-4.1', 'claude-sonnet-4.5', 'claude-sonnet-4-5', 3],
    ]);
  });

  test('serves the request with the fallback when every key of the primary is disabled, without calling the primary', async () => {
    const { ring, manager, client, counts } = fallbackSetup();
    manager.disableKey('openai', ring.keys[0]!.id);
    manager.disableKey('azure', ring.keys[1]!.id);

    const reply = await client.chat.completions.create(ask('gpt-4.1'));

    expect(reply.choices[0]?.message.content).toBe('from anthropic');
    expect(counts()).toEqual({ openai: 0, azure: 0, anthropic: 1, google: 0 });
  });

  test("serves the request with the fallback while the primary's deployment circuit is open, without calling the primary", async () => {
    const { status, client, counts } = fallbackSetup({ azure: false, circuitBreaker: { deployment: { policy: { kind: 'consecutive', threshold: 1 }, openMs: 60_000 } } });
    status.openai = 500;
    await client.chat.completions.create(ask('gpt-4.1'));
    expect(counts()).toEqual({ openai: 1, azure: 0, anthropic: 1, google: 0 });

    const reply = await client.chat.completions.create(ask('gpt-4.1'));

    expect(reply.choices[0]?.message.content).toBe('from anthropic');
    expect(counts()).toEqual({ openai: 1, azure: 0, anthropic: 2, google: 0 });
  });

  test("follows chains transitively: the fallback's own fallback serves when both fail", async () => {
    const { status, seen, client, counts } = fallbackSetup({ azure: false, fallbacks: { 'gpt-4.1': ['claude-sonnet-4.5'], 'claude-sonnet-4.5': ['gemini-2.5-flash'] } });
    status.openai = 500;
    status.anthropic = 500;

    const reply = await client.chat.completions.create(ask('gpt-4.1'));

    expect(reply.choices[0]?.message.content).toBe('from google');
    expect(counts()).toEqual({ openai: 1, azure: 0, anthropic: 1, google: 1 });
    expect(models(seen.google)).toEqual(['gemini-2.5-flash']);
  });

  test('tries the fallbacks of one list in order', async () => {
    const { status, client, counts } = fallbackSetup({ azure: false, fallbacks: { 'gpt-4.1': ['claude-sonnet-4.5', 'gemini-2.5-flash'] } });
    status.openai = 500;

    await client.chat.completions.create(ask('gpt-4.1'));
    status.anthropic = 500;
    await client.chat.completions.create(ask('gpt-4.1'));

    expect(counts()).toEqual({ openai: 2, azure: 0, anthropic: 2, google: 1 });
  });

  test('falls back to another model of the same provider (same key) when the primary model fails', async () => {
    const seen = provider(OPENAI, (call) => (call.body?.model === 'gpt-4.1' ? errorReply(500, 'server_error') : chatReply('gpt-4.1-mini')));
    const { client } = manage({
      providers: { openai: { baseURL: OPENAI, keys: [fakeKey('openai')], models: ['gpt-4.1', 'gpt-4.1-mini'] } },
      routing: { fallbacks: { 'gpt-4.1': ['gpt-4.1-mini'] } },
    });

    const reply = await client.chat.completions.create(ask('gpt-4.1'));

    expect(reply.model).toBe('gpt-4.1-mini');
    expect(models(seen)).toEqual(['gpt-4.1', 'gpt-4.1-mini']);
  });

  test('falls back to another model of the same provider once the primary failed on each of its keys, not back to the primary', async () => {
    const seen = provider(OPENAI, (call) => (call.body?.model === 'gpt-4.1' ? errorReply(503, 'server_error') : chatReply('gpt-4.1-mini')));
    const { client } = manage({
      providers: { openai: { baseURL: OPENAI, keys: [fakeKey('openai'), fakeKey('openai')], models: ['gpt-4.1', 'gpt-4.1-mini'] } },
      routing: { fallbacks: { 'gpt-4.1': ['gpt-4.1-mini'] } },
    });

    const reply = await client.chat.completions.create(ask('gpt-4.1'));

    // Two failures on the provider sent all of it to the back, and the retries went back to gpt-4.1 (4 of 4, then a 503).
    expect(reply.model).toBe('gpt-4.1-mini');
    expect(models(seen)).toEqual(['gpt-4.1', 'gpt-4.1', 'gpt-4.1-mini']);
  });

  test('a request pinned to one provider falls back to its other model there once the primary failed on each key', async () => {
    const seen = provider(OPENAI, (call) => (call.body?.model === 'gpt-4.1' ? errorReply(500, 'server_error') : chatReply('gpt-4.1-mini')));
    const elsewhere = provider(GOOGLE, () => chatReply('gpt-4.1'));
    const { client } = manage({
      providers: {
        openai: { baseURL: OPENAI, keys: [fakeKey('openai'), fakeKey('openai')], models: ['gpt-4.1', 'gpt-4.1-mini'] },
        google: { baseURL: GOOGLE, keys: [fakeKey('google')], models: ['gpt-4.1', 'gpt-4.1-mini'] },
      },
      routing: { fallbacks: { 'gpt-4.1': ['gpt-4.1-mini'] } },
    });

    const reply = await client.chat.completions.create(ask('gpt-4.1'), keyplex.options({ provider: 'openai' }));

    expect(reply.model).toBe('gpt-4.1-mini');
    expect(models(seen)).toEqual(['gpt-4.1', 'gpt-4.1', 'gpt-4.1-mini']);
    expect(elsewhere).toHaveLength(0);
  });

  test('does not fall back on a caller error (400): the SDK raises BadRequestError', async () => {
    const { client, counts } = fallbackSetup({ azure: false });
    provider(OPENAI, () => errorReply(400, 'invalid_request_error'));

    const error = await client.chat.completions.create(ask('gpt-4.1')).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect(getKeyplexDetails(error)?.code).toBe('upstream_error');
    expect(counts().anthropic).toBe(0);
  });

  test('fails with the last answer when the primary and every fallback fail', async () => {
    const { status, client, counts } = fallbackSetup({ azure: false });
    status.openai = 500;
    status.anthropic = 500;

    const error = await client.chat.completions.create(ask('gpt-4.1')).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect(getKeyplexDetails(error)?.code).toBe('upstream_error');
    expect(counts().google).toBe(0);
  });
});
