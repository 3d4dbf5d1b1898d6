/**
 * Issue 12 item 4 (options) and item 11: out-of-range options are refused
 * where they are given, naming the field — at construction for manager
 * options, at the call for request options — and a budget scoped to a
 * provider or key that is not configured is refused instead of never applying.
 */
import OpenAI from 'openai';
import { afterEach, describe, expect, test } from 'vitest';
import { ConfigError, getKeyplexDetails, KeyManager, keyplex, RequestOptionsError, type KeyManagerOptions } from '../../src/index';
import { RedisStore } from '../../src/store/redis';
import { fakeKey } from '../support/fake-keys';
import { chatReply, provider } from '../support/upstream';
import '../support/setup';

const BASE = 'https://api.bounds.test/v1';
const MAX_TIMER_MS = 2 ** 31 - 1;
const KEY = fakeKey('bounds');
const options = (patch: Record<string, unknown> = {}, providerPatch: Record<string, unknown> = {}): KeyManagerOptions =>
  ({ providers: { openai: { baseURL: BASE, keys: [{ key: KEY, id: 'k1' }], ...providerPatch } }, ...patch }) as KeyManagerOptions;

function configError(make: () => unknown): ConfigError {
  try {
    make();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('durations above the longest timer, or not finite, are refused at construction', () => {
  test.each<[string, Record<string, unknown>, string]>([
    ['attemptTimeoutMs', { attemptTimeoutMs: MAX_TIMER_MS + 1 }, 'attemptTimeoutMs'],
    ['deadlineMs', { deadlineMs: 3e9 }, 'deadlineMs'],
    ['deadlineMs Infinity', { deadlineMs: Infinity }, 'deadlineMs'],
    ['cooldownMs', { cooldownMs: 3e9 }, 'cooldownMs'],
    ['retry.baseDelayMs', { retry: { baseDelayMs: 3e9 } }, 'retry.baseDelayMs'],
    ['retry.maxDelayMs', { retry: { maxDelayMs: 3e9 } }, 'retry.maxDelayMs'],
    ['circuit openMs', { circuitBreaker: { key: { openMs: 3e9 } } }, 'circuitBreaker.key.openMs'],
    ['circuit maxOpenMs', { circuitBreaker: { deployment: { maxOpenMs: 3e9 } } }, 'circuitBreaker.deployment.maxOpenMs'],
    ['lane queueTimeoutMs', { lanes: { batch: { queueTimeoutMs: 3e9 } } }, 'lanes.batch.queueTimeoutMs'],
  ])('%s', (_name, patch, field) => {
    const error = configError(() => new KeyManager(options(patch)));
    expect(error.field).toBe(field);
    expect(error.message).toMatch(/<= 2147483647/);
  });

  test('the longest timer itself is accepted', async () => {
    const manager = new KeyManager(options({ deadlineMs: MAX_TIMER_MS, attemptTimeoutMs: MAX_TIMER_MS, cooldownMs: MAX_TIMER_MS }));
    await manager.close();
  });
});

describe('limits and shares out of their bounds are refused at construction', () => {
  test.each<[string, Record<string, unknown>, Record<string, unknown>, string]>([
    ['provider rpm below one request per 100 minutes', {}, { rpm: 0.0001 }, 'providers.openai.rpm'],
    ['provider rpm 0', {}, { rpm: 0 }, 'providers.openai.rpm'],
    ['provider tpm below 1', {}, { tpm: 0.5 }, 'providers.openai.tpm'],
    ['provider rpm NaN', {}, { rpm: Number.NaN }, 'providers.openai.rpm'],
    ['key weight above a million', {}, { keys: [{ key: KEY, weight: 2e6 }] }, 'providers.openai.keys[0].weight'],
    ['key rpm Infinity', {}, { keys: [{ key: KEY, rpm: Infinity }] }, 'providers.openai.keys[0].rpm'],
    ['a price above a million USD per million tokens', { prices: { m: { input: 2e6, output: 1 } } }, {}, 'prices.m.input'],
  ])('%s', (_name, patch, providerPatch, field) => {
    expect(configError(() => new KeyManager(options(patch, providerPatch))).field).toBe(field);
  });

  test('rpm 0.01 (one request per 100 minutes) is accepted', async () => {
    await new KeyManager(options({}, { rpm: 0.01 })).close();
  });

  test.each([
    ['rpm 0.5', { rpm: 0.5 }, 120_000],
    ['rpm 0.01', { rpm: 0.01 }, 6_000_000],
    ['a window of 0.25 requests per 3 s', { requests: { limit: 0.25, periodMs: 3_000 } }, 12_000],
  ])('%s is one request per the longer period: the first request is sent', async (_name, limits, periodMs) => {
    provider(BASE, () => chatReply('gpt-4.1'));
    const manager = new KeyManager(options({}, { ...limits, models: ['gpt-4.1'] }));
    try {
      const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 }));
      await expect(client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] })).resolves.toMatchObject({ object: 'chat.completion' });
      expect(manager.stats().providers.openai?.keys[0]?.limits.windows?.requests).toEqual([{ limit: 1, periodMs }]);
    } finally {
      await manager.close();
    }
  });

  test('rpd 0.01 (one request per 100 days) is refused: a window spans at most 31 days', () => {
    const error = configError(() => new KeyManager(options({}, { rpd: 0.01 })));
    expect(error.field).toBe('providers.openai.rpd');
    expect(error.message).toMatch(/at least one of the requests in 31 days; got 0.01, one per 100 days/);
  });

  test('RedisStore refuses a timeout above the longest timer, without connecting', () => {
    expect(() => new RedisStore({ timeoutMs: 3e9, lazyConnect: true } as never)).toThrow(/timeoutMs.*<= 2147483647/);
  });
});

describe('per-request deadlineMs is refused at the call when it cannot be honoured', () => {
  const managers: KeyManager[] = [];
  afterEach(async () => {
    await Promise.all(managers.splice(0).map((m) => m.close()));
  });

  test.each([3e9, MAX_TIMER_MS + 1, Infinity, Number.NaN, 0, -1])('keyplex.options({ deadlineMs: %s }) throws', (deadlineMs) => {
    let error: unknown;
    try {
      keyplex.options({ deadlineMs });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(RequestOptionsError);
    expect((error as Error).message).toContain('`deadlineMs`');
  });

  // The check in manager.fetch: keyplex answers 400, so the SDK raises BadRequestError with the
  // RequestOptionsError's message and detail; nothing is sent either way.
  test('a deadline of 3e9 ms sent past keyplex.options() fails with the same error, nothing sent', async () => {
    const upstream = provider(BASE, () => chatReply('gpt-4.1'));
    const manager = new KeyManager(options());
    managers.push(manager);
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
    const header = { 'x-keyplex-options': encodeURIComponent(JSON.stringify({ deadlineMs: 3e9 })) };
    const error = await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] }, { headers: header }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as Error).message).toContain('`deadlineMs`');
    expect(getKeyplexDetails(error)?.code).toBe('invalid_request_options');
    expect(getKeyplexDetails(error)?.message).toContain('deadlineMs');
    expect(upstream).toHaveLength(0);
  });

  test('the longest timer is accepted and the request is served', async () => {
    provider(BASE, () => chatReply('gpt-4.1'));
    const manager = new KeyManager(options());
    managers.push(manager);
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
    const reply = await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] }, keyplex.options({ deadlineMs: MAX_TIMER_MS }));
    expect(reply.choices[0]?.message.content).toBe('hello');
  });
});

describe('a budget scoped to what is not configured is refused (issue 12 item 11)', () => {
  const budget = (scope: Record<string, unknown>) => ({ budgets: [{ scope, limitUsd: 1, window: 'day' }] });

  test('an unknown provider, naming the field and the configured providers', () => {
    const error = configError(() => new KeyManager(options(budget({ provider: 'opneai' }))));
    expect(error.field).toBe('budgets[0].scope.provider');
    expect(error.message).toContain('"openai"');
    expect(error.message).toContain('"opneai"');
  });

  test('an unknown key id of a configured provider, naming the configured ids', () => {
    const error = configError(() => new KeyManager(options(budget({ provider: 'openai', keyId: 'k2' }))));
    expect(error.field).toBe('budgets[0].scope.keyId');
    expect(error.message).toContain('"k1"');
  });

  test('configured ones are accepted', async () => {
    await new KeyManager(options({ budgets: [{ scope: { provider: 'openai' }, limitUsd: 1, window: 'day' }, { scope: { provider: 'openai', keyId: 'k1' }, limitUsd: 1, window: 'day' }] })).close();
  });
});
