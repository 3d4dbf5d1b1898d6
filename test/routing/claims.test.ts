/**
 * Where prompts go (README "Routing"): a request goes only to providers that
 * claim its model — list it in `models` — unless the user asked for more (a
 * configured fallback, `serveAnyModel: true`, a pinned `provider`). A provider
 * without `models` serves a model no provider claims.
 */
import OpenAI from 'openai';
import { describe, expect, test } from 'vitest';
import { ConfigError, getKeyplexDetails, KeyManager, keyplex, type KeyManagerOptions } from '../../src/index';
import { chatReply, errorReply, keyRing, provider } from '../support/upstream';
import '../support/setup';
import { closeAfterEach } from '../support/scaffold';

const OPENAI = 'https://api.openai.test/v1';
const DEEPSEEK = 'https://api.deepseek.test/v1';
const MESSAGES = [{ role: 'user' as const, content: 'hi' }];

const managers = closeAfterEach();

/** The quick start's shape: `openai` without `models`, `deepseek` mapping `deepseek-v3.2`; DeepSeek down. */
function quickStart(extra: { openai?: Record<string, unknown>; options?: Partial<KeyManagerOptions> } = {}) {
  const ring = keyRing('o1', 'd1', 'd2');
  const openai = provider(OPENAI, (call) => chatReply(String(call.body?.model)));
  const deepseek = provider(DEEPSEEK, () => errorReply(503, 'service_unavailable', {}, 'Server overloaded'));
  const manager = new KeyManager({
    providers: {
      openai: { baseURL: OPENAI, keys: ring.keys.slice(0, 1), ...extra.openai },
      deepseek: { baseURL: DEEPSEEK, keys: ring.keys.slice(1), models: { 'deepseek-v3.2': 'deepseek-chat' } },
    },
    retry: { baseDelayMs: 0 },
    ...extra.options,
  });
  managers.push(manager);
  return { openai, deepseek, manager, client: manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' })) };
}

async function failure(run: () => Promise<unknown>): Promise<Error> {
  try {
    await run();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the call to fail');
}

describe('a model some provider claims goes only to the providers that claim it', () => {
  test('DeepSeek answering 503: no request reaches OpenAI; the app’s error names DeepSeek’s failure', async () => {
    const { openai, deepseek, client } = quickStart();

    const error = await failure(() => client.chat.completions.create({ model: 'deepseek-v3.2', messages: MESSAGES }));

    expect(openai).toHaveLength(0);
    expect(deepseek.length).toBeGreaterThan(0);
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect(error.message).toMatch(/'deepseek'/);
    expect(error.message).toMatch(/503/);
    expect(error.message).toMatch(/Server overloaded/);
    expect(getKeyplexDetails(error)?.attempts.every((a) => a.provider === 'deepseek')).toBe(true);
  });

  test('a provider without `models` still serves a model nobody claims', async () => {
    const { openai, client } = quickStart();

    await client.chat.completions.create({ model: 'gpt-4.1', messages: MESSAGES });

    expect(openai.map((c) => c.body?.model)).toEqual(['gpt-4.1']);
  });

  test('a single provider without `models` serves any model', async () => {
    const ring = keyRing('a');
    const seen = provider(OPENAI, (call) => chatReply(String(call.body?.model)));
    const manager = new KeyManager({ providers: { openai: { baseURL: OPENAI, keys: ring.keys } } });
    managers.push(manager);
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));

    await client.chat.completions.create({ model: 'anything-at-all', messages: MESSAGES });

    expect(seen).toHaveLength(1);
  });

  test('`serveAnyModel: true` makes a provider a catch-all: it takes the request after the providers that claim the model', async () => {
    const { openai, deepseek, client } = quickStart({ openai: { serveAnyModel: true } });

    await client.chat.completions.create({ model: 'deepseek-v3.2', messages: MESSAGES });

    expect(deepseek.length).toBeGreaterThan(0);
    expect(openai.map((c) => c.body?.model)).toEqual(['deepseek-v3.2']);
  });

  test('a configured fallback is followed', async () => {
    const { openai, client } = quickStart({ options: { routing: { fallbacks: { 'deepseek-v3.2': ['gpt-4.1'] } } } });

    await client.chat.completions.create({ model: 'deepseek-v3.2', messages: MESSAGES });

    expect(openai.map((c) => c.body?.model)).toEqual(['gpt-4.1']);
  });

  test('a request pinned to a provider without `models` goes there', async () => {
    const { openai, deepseek, client } = quickStart();

    await client.chat.completions.create({ model: 'deepseek-v3.2', messages: MESSAGES }, keyplex.options({ provider: 'openai' }));

    expect(deepseek).toHaveLength(0);
    expect(openai).toHaveLength(1);
  });
});

describe('`serveAnyModel` is validated', () => {
  test('a non-boolean is refused, naming the field', () => {
    const ring = keyRing('a');
    expect(() => new KeyManager({ providers: { openai: { baseURL: OPENAI, keys: ring.keys, serveAnyModel: 'yes' as unknown as boolean } } })).toThrow(
      /`providers\.openai\.serveAnyModel`: expected true or false/,
    );
  });

  test('`serveAnyModel: false` without `models` serves nothing: refused', () => {
    const ring = keyRing('a');
    const build = () => new KeyManager({ providers: { openai: { baseURL: OPENAI, keys: ring.keys, serveAnyModel: false } } });
    expect(build).toThrow(ConfigError);
    expect(build).toThrow(/serveAnyModel.*models/);
  });
});
