/**
 * Issue 12 item 6b: a key pasted into the wrong option must never come back in
 * the error. Fake keys of many shapes go into every `new KeyManager()` option,
 * every per-request option (through `keyplex.options()` and through the real
 * SDK), and no 8-character piece of any key may appear in any error's
 * message, stack or JSON.
 */
import OpenAI from 'openai';
import { afterEach, describe, expect, test } from 'vitest';
import { ConfigError, getKeyplexDetails, KeyManager, keyplex, RequestOptionsError, type KeyManagerOptions, type KeyplexRequestOptions } from '../../src/index';
import { fakeKey } from '../support/fake-keys';
import { chatReply, provider } from '../support/upstream';
import '../support/setup';

const BASE = 'https://api.secret.test/v1';

/** A deterministic generator (no flakiness from random shapes). */
function generator(seed: number): (alphabet: string, length: number) => string {
  let state = seed >>> 0;
  return (alphabet, length) => {
    let out = '';
    for (let i = 0; i < length; i++) {
      state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
      out += alphabet[state % alphabet.length];
    }
    return out;
  };
}
const pick = generator(12);
const BASE62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const HEX = '0123456789abcdef';
const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Keys as providers issue them, 16 to 64+ characters. */
const KEYS: Record<string, string> = {
  openai: `sk-proj-${pick(BASE62, 48)}`,
  anthropic: `sk-ant-api03-${pick(BASE62, 51)}`,
  deepseek: `sk-${pick(HEX, 32)}`,
  groq: `gsk_${pick(BASE62, 52)}`,
  google: `AIza${pick(BASE62, 35)}`,
  bare64: pick(BASE62, 64),
  hex40: pick(HEX, 40),
  short16: `${pick(BASE62, 7)}7${pick(BASE62, 8)}`,
  letters20: pick(LETTERS, 20),
  fake: fakeKey('paste'),
};
const ALL = Object.values(KEYS);

/** Every 8-character piece of every key. */
const PIECES = ALL.flatMap((key) => Array.from({ length: key.length - 7 }, (_, i) => key.slice(i, i + 8)));

/** The pieces of any key found in what an error shows: message, stack, JSON, SDK detail. */
function leaked(error: unknown, more: readonly string[] = []): string[] {
  const texts = [String((error as Error)?.message), String((error as Error)?.stack), JSON.stringify(error) ?? '', JSON.stringify(getKeyplexDetails(error) ?? {})];
  const cause = (error as { cause?: unknown })?.cause;
  if (cause !== undefined) texts.push(String((cause as Error)?.message), String((cause as Error)?.stack), JSON.stringify(cause) ?? '');
  const text = texts.join('\n');
  const pieces = [...PIECES, ...more.flatMap((key) => Array.from({ length: key.length - 7 }, (_, i) => key.slice(i, i + 8)))];
  return pieces.filter((piece) => text.includes(piece));
}

const GOOD_KEY = fakeKey('good');
const base = (): KeyManagerOptions => ({ providers: { p: { baseURL: BASE, keys: [GOOD_KEY], models: ['gpt-4.1'] } } });
const withProvider = (patch: Record<string, unknown>): KeyManagerOptions =>
  ({ providers: { p: { baseURL: BASE, keys: [GOOD_KEY], models: ['gpt-4.1'], ...patch } } }) as unknown as KeyManagerOptions;
const withKey = (patch: Record<string, unknown>): KeyManagerOptions => withProvider({ keys: [{ key: GOOD_KEY, ...patch }] });
const top = (patch: Record<string, unknown>): KeyManagerOptions => ({ ...base(), ...patch }) as KeyManagerOptions;
const budget = (patch: Record<string, unknown>): KeyManagerOptions =>
  top({ budgets: [{ scope: { overall: true }, limitUsd: 10, window: 'day', ...patch }] });

/** Where a pasted key goes: a name for the case and the options it makes. */
const CONFIG_CASES: [string, (key: string) => KeyManagerOptions][] = [
  ['a top-level option name', (k) => top({ [k]: 1 })],
  ['a provider id', (k) => ({ providers: { [k]: { baseURL: BASE, keys: [GOOD_KEY] } } })],
  ['a provider field name', (k) => withProvider({ [k]: 1 })],
  ['baseURL', (k) => withProvider({ baseURL: k })],
  ['baseURL with the key in the query', (k) => withProvider({ baseURL: `${BASE}?key=${k}` })],
  ['provider rpm', (k) => withProvider({ rpm: k })],
  ['provider tpm', (k) => withProvider({ tpm: k })],
  ['a key with a space', (k) => withProvider({ keys: [`${k} `] })],
  ['a key field name', (k) => withKey({ [k]: 1 })],
  ['key id', (k) => withKey({ id: k })],
  ['key weight', (k) => withKey({ weight: k })],
  ['key rpm', (k) => withKey({ rpm: k })],
  ['key tpm', (k) => withKey({ tpm: k })],
  ['a model name listed twice', (k) => withProvider({ models: [k, k] })],
  ['a model name mapped to a number', (k) => withProvider({ models: { [k]: 5 } })],
  ['an upstream model name', (k) => withProvider({ models: { m: { upstream: 5, [k]: 1 } } })],
  ['a deployment weight', (k) => withProvider({ models: { m: { weight: k } } })],
  ['a deployment contextWindow', (k) => withProvider({ models: { m: { contextWindow: k } } })],
  ['a deployment price', (k) => withProvider({ models: { m: { price: { input: k, output: 1 } } } })],
  ['a header name', (k) => withProvider({ headers: { [k]: 5 } })],
  ['a header name twice', (k) => withProvider({ headers: { [k]: 'a', [k.toUpperCase()]: 'b' } })],
  ['a header value', (k) => withProvider({ headers: { 'x-api-key': `${k}\n` } })],
  ['keySelection', (k) => top({ keySelection: k })],
  ['routing.strategy', (k) => top({ routing: { strategy: k } })],
  ['routing.perModel name', (k) => top({ routing: { perModel: { [k]: 'nope' } } })],
  ['routing option name', (k) => top({ routing: { [k]: 1 } })],
  ['an alias member', (k) => top({ routing: { aliases: { fast: [k] } } })],
  ['an alias name', (k) => top({ routing: { aliases: { [k]: 'gpt-4.1' } } })],
  ['a fallback source', (k) => top({ routing: { fallbacks: { [k]: ['gpt-4.1'] } } })],
  ['a fallback target', (k) => top({ routing: { fallbacks: { 'gpt-4.1': [k] } } })],
  ['a context fallback', (k) => top({ routing: { contextFallbacks: { 'gpt-4.1': k } } })],
  ['an auto model', (k) => top({ routing: { auto: { models: [k] } } })],
  ['a lane name', (k) => top({ lanes: { [k]: { concurrency: 1 } } })],
  ['a lane option name', (k) => top({ lanes: { batch: { [k]: 1 } } })],
  ['lane concurrency', (k) => top({ lanes: { batch: { concurrency: k } } })],
  ['lane queueTimeoutMs', (k) => top({ lanes: { batch: { queueTimeoutMs: k } } })],
  ['defaultLane', (k) => top({ defaultLane: k })],
  ['circuitBreaker', (k) => top({ circuitBreaker: k })],
  ['circuitBreaker scope name', (k) => top({ circuitBreaker: { [k]: {} } })],
  ['circuit openMs', (k) => top({ circuitBreaker: { key: { openMs: k } } })],
  ['circuit policy', (k) => top({ circuitBreaker: { key: { policy: k } } })],
  ['circuit policy kind', (k) => top({ circuitBreaker: { key: { policy: { kind: k } } } })],
  ['circuit policy threshold', (k) => top({ circuitBreaker: { key: { policy: { kind: 'count', threshold: k } } } })],
  ['retry option name', (k) => top({ retry: { [k]: 1 } })],
  ['retry.maxAttempts', (k) => top({ retry: { maxAttempts: k } })],
  ['retry.jitter', (k) => top({ retry: { jitter: k } })],
  ['attemptTimeoutMs', (k) => top({ attemptTimeoutMs: k })],
  ['deadlineMs', (k) => top({ deadlineMs: k })],
  ['cooldownMs', (k) => top({ cooldownMs: k })],
  ['a price model name', (k) => top({ prices: { [k]: 5 } })],
  ['a price', (k) => top({ prices: { m: { input: k, output: 1 } } })],
  ['streamUsage', (k) => top({ streamUsage: k })],
  ['rateLimiting.adaptive', (k) => top({ rateLimiting: { adaptive: k } })],
  ['rateLimiting.coldStart', (k) => top({ rateLimiting: { coldStart: k } })],
  ['rateLimiting option name', (k) => top({ rateLimiting: { [k]: 1 } })],
  ['store', (k) => top({ store: k })],
  ['fetch', (k) => top({ fetch: k })],
  ['a budget field name', (k) => budget({ [k]: 1 })],
  ['a budget scope provider', (k) => budget({ scope: { provider: k } })],
  ['a budget scope keyId', (k) => budget({ scope: { provider: 'p', keyId: k } })],
  ['a budget scope field name', (k) => budget({ scope: { [k]: 'x' } })],
  ['budget limitUsd', (k) => budget({ limitUsd: k })],
  ['budget window', (k) => budget({ window: k })],
  ['budget mode', (k) => budget({ mode: k })],
  ['budget onExceeded', (k) => budget({ onExceeded: k })],
  ['a budget id used twice', (k) => top({ budgets: [{ id: k, scope: { overall: true }, limitUsd: 1, window: 'day' }, { id: k, scope: { overall: true }, limitUsd: 1, window: 'hour' }] })],
];

const cases = CONFIG_CASES.flatMap(([where, make]) => Object.entries(KEYS).map(([shape, key]) => [where, shape, make(key)] as const));

describe('new KeyManager() never echoes a key pasted into an option', () => {
  test.each(cases)('%s (%s)', (_where, _shape, options) => {
    let error: unknown;
    try {
      void new KeyManager(options);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(leaked(error)).toEqual([]);
  });

  test('addKey with a key pasted into its weight or id', async () => {
    const manager = new KeyManager(base());
    try {
      for (const key of ALL) {
        for (const input of [{ key: fakeKey(), weight: key }, { key: fakeKey(), id: key }, { key: fakeKey(), [key]: 1 }]) {
          let error: unknown;
          try {
            manager.addKey('p', input as never);
          } catch (e) {
            error = e;
          }
          expect(error).toBeInstanceOf(ConfigError);
          expect(leaked(error)).toEqual([]);
        }
      }
    } finally {
      await manager.close();
    }
  });
});

const REQUEST_CASES: [string, (key: string) => unknown][] = [
  ['lane', (k) => ({ lane: k })],
  ['provider', (k) => ({ provider: k })],
  ['deadlineMs', (k) => ({ deadlineMs: k })],
  ['an option name', (k) => ({ [k]: 1 })],
  ['a metadata key', (k) => ({ metadata: { [k]: { nested: true } } })],
  ['a metadata value', (k) => ({ metadata: { m: [k] } })],
  ['tags', (k) => ({ tags: k })],
  ['a tag', (k) => ({ tags: [`${k}\n`] })],
];
const requestCases = REQUEST_CASES.flatMap(([where, make]) => Object.entries(KEYS).map(([shape, key]) => [where, shape, make(key)] as const));

describe('keyplex.options() never echoes a key pasted into a request option', () => {
  test.each(requestCases)('%s (%s)', (_where, _shape, options) => {
    let error: unknown;
    try {
      keyplex.options(options as KeyplexRequestOptions);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(RequestOptionsError);
    expect(leaked(error)).toEqual([]);
  });
});

describe('through the SDK, a request whose options carry a key fails without echoing it', () => {
  const managers: KeyManager[] = [];
  afterEach(async () => {
    await Promise.all(managers.splice(0).map((m) => m.close()));
  });

  test.each(requestCases)('%s (%s)', async (_where, _shape, options) => {
    const upstream = provider(BASE, () => chatReply('gpt-4.1'));
    const manager = new KeyManager(base());
    managers.push(manager);
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
    // Sent as the SDK would send keyplex.options(), without the check keyplex.options() makes first.
    const header = { 'x-keyplex-options': encodeURIComponent(JSON.stringify(options)) };
    const error = await client.chat.completions
      .create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] }, { headers: header })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(getKeyplexDetails(error)?.code).toBe('invalid_request_options');
    expect(leaked(error)).toEqual([]);
    expect(upstream).toHaveLength(0);
  });
});

describe('key administration never echoes a key given where its id belongs', () => {
  test('removeKey, disableKey, enableKey with a key (configured or not) for its id, or for the provider', async () => {
    const configured = fakeKey();
    const manager = new KeyManager({ ...base(), providers: { p: { baseURL: BASE, keys: [configured] } } });
    try {
      for (const key of [configured, ...ALL]) {
        for (const call of [() => manager.removeKey('p', key), () => manager.disableKey('p', key), () => manager.enableKey('p', key), () => manager.removeKey(key, 'x')]) {
          let error: unknown;
          try {
            call();
          } catch (e) {
            error = e;
          }
          expect(error).toBeInstanceOf(ConfigError);
          expect(leaked(error, [configured])).toEqual([]);
        }
      }
    } finally {
      await manager.close();
    }
  });

  test("a configured key given for its id: the message names the key's id to use instead", async () => {
    const configured = fakeKey();
    const manager = new KeyManager({ ...base(), providers: { p: { baseURL: BASE, keys: [configured] } } });
    try {
      const id = manager.stats().providers.p!.keys[0]!.id;
      expect(() => manager.removeKey('p', configured)).toThrow(`pass its id, '${id}'`);
    } finally {
      await manager.close();
    }
  });
});
