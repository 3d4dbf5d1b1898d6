/**
 * DESIGN.md's outcome table, end to end: what each upstream answer does to the
 * request, the key and the next attempt, seen through the real `openai` SDK.
 */
import OpenAI from 'openai';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { useManagers } from '../support/scaffold';
import { getKeyplexDetails, KEYPLEX_BASE_URL, KeyManager, keyplex, type KeyplexEvents } from '../../src/index';
import { calls, chatReply, deferred, errorReply, keyRing, provider, type Deferred, type KeyRing, type UpstreamCall } from '../support/upstream';
import '../support/setup';
import { fakeClock, until } from '../support/time';
import { record } from '../support/events';

const ONE = 'https://api.one.test/v1';
const TWO = 'https://api.two.test/v1';
const MESSAGES = [{ role: 'user' as const, content: 'hi' }];
const BODY = { model: 'gpt-4.1', messages: MESSAGES };

const manage = useManagers({});
const hanging: Deferred<'reset'>[] = [];

afterEach(() => {
  for (const hold of hanging.splice(0)) hold.resolve('reset');
});

/** A reply that never comes (until the test ends). */
function hang(): Promise<'reset'> {
  const hold = deferred<'reset'>();
  hanging.push(hold);
  return hold.promise;
}

/** Records every payload of `name` on `manager`. */

function keyStats(manager: KeyManager, provider: string, keyId: string) {
  return manager.stats().providers[provider]?.keys.find((k) => k.id === keyId);
}

/** (provider host, key id) of each recorded call. */
function route(recorded: readonly UpstreamCall[], ring: KeyRing): [string, string][] {
  return recorded.map((call) => [new URL(call.origin).hostname, ring.idOf(call.key)]);
}

/**
 * Four requests over keys a and b (round-robin), key a answering 400 with
 * `body` (a provider's way to say the key or its account is refused), b
 * serving: every request must succeed. The key:disabled events, and how often
 * the upstream heard key a.
 */
async function fourRequestsKeyAAnswers400(body: unknown) {
  const ring = keyRing('a', 'b');
  const seen = provider(ONE, (call) => (ring.idOf(call.key) === 'a' ? Response.json(body, { status: 400 }) : chatReply('gpt-4.1')));
  const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, keySelection: 'round-robin' });
  const disabled = record(manager, 'key:disabled');
  for (let i = 0; i < 4; i++) await client.chat.completions.create(BODY);
  return { disabled, heardA: ring.ids(seen).filter((id) => id === 'a').length };
}

describe('429 rate limit', () => {
  function rateLimitedA(ring: KeyRing, headers: Record<string, string>) {
    return provider(ONE, (call) => (ring.idOf(call.key) === 'a' ? errorReply(429, 'rate_limit_exceeded', headers) : chatReply('gpt-4.1')));
  }

  test('with retry-after-ms cools the key down for that long', async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    rateLimitedA(ring, { 'retry-after-ms': '30000' });
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } } });
    const cooldowns = record(manager, 'key:cooldown');

    await client.chat.completions.create(BODY);

    expect(cooldowns).toEqual([{ provider: 'one', keyId: 'a', retryAfterMs: 30_000, reason: 'rate_limit' }]);
    expect(keyStats(manager, 'one', 'a')).toMatchObject({ status: 'cooling', cooldownRemainingMs: 30_000 });
  });

  test('the request that met it succeeds on another key at once, without waiting', async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    const seen = rateLimitedA(ring, { 'retry-after-ms': '30000' });
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } } });
    const retries = record(manager, 'retry');
    const startedAt = Date.now();

    // Fake timers never advance here: any wait would hang the request.
    const reply = await client.chat.completions.create(BODY);

    expect(reply.choices[0]?.message.content).toBe('hello');
    expect(ring.ids(seen)).toEqual(['a', 'b']);
    expect(retries).toEqual([expect.objectContaining({ attempt: 1, keyId: 'a', reason: 'rate_limit', status: 429, delayMs: 0 })]);
    expect(Date.now()).toBe(startedAt);
  });

  test('a cooling key gets no traffic until its cooldown ends', async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    const seen = rateLimitedA(ring, { 'retry-after-ms': '30000' });
    const { client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } } });
    await client.chat.completions.create(BODY);

    await vi.advanceTimersByTimeAsync(29_999);
    for (let i = 0; i < 6; i++) await client.chat.completions.create(BODY);

    expect(ring.ids(seen.slice(2))).toEqual(['b', 'b', 'b', 'b', 'b', 'b']);
  });

  test('the key recovers when its cooldown ends and takes traffic again', async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    let limited = true;
    const seen = provider(ONE, (call) =>
      limited && ring.idOf(call.key) === 'a' ? errorReply(429, 'rate_limit_exceeded', { 'retry-after-ms': '30000' }) : chatReply('gpt-4.1'),
    );
    // No AIMD: with no limit known, one 429 would make keyplex estimate a's limit at 1 rpm.
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, rateLimiting: { adaptive: false } });
    const recovered = record(manager, 'key:recovered');
    await client.chat.completions.create(BODY);
    limited = false;

    await vi.advanceTimersByTimeAsync(30_000);
    expect(recovered).toEqual([{ provider: 'one', keyId: 'a', reason: 'cooldown_ended' }]);
    for (let i = 0; i < 2; i++) await client.chat.completions.create(BODY);

    expect(ring.ids(seen.slice(2))).toContain('a');
    expect(keyStats(manager, 'one', 'a')?.status).toBe('active');
  });

  test('with x-ratelimit-reset-requests 6m0s and no requests remaining cools the key for six minutes', async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    rateLimitedA(ring, {
      'x-ratelimit-remaining-requests': '0',
      'x-ratelimit-reset-requests': '6m0s',
      'x-ratelimit-remaining-tokens': '90000',
      'x-ratelimit-reset-tokens': '1s',
    });
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } } });
    const cooldowns = record(manager, 'key:cooldown');

    await client.chat.completions.create(BODY);

    expect(cooldowns).toEqual([{ provider: 'one', keyId: 'a', retryAfterMs: 360_000, reason: 'rate_limit' }]);
    expect(keyStats(manager, 'one', 'a')?.cooldownRemainingMs).toBe(360_000);
  });

  test('with x-ratelimit-reset-tokens and no tokens remaining cools the key until the token window resets', async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    rateLimitedA(ring, {
      'x-ratelimit-remaining-requests': '59',
      'x-ratelimit-reset-requests': '1s',
      'x-ratelimit-remaining-tokens': '0',
      'x-ratelimit-reset-tokens': '45s',
    });
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } } });
    const cooldowns = record(manager, 'key:cooldown');

    await client.chat.completions.create(BODY);

    expect(cooldowns.map((c) => c.retryAfterMs)).toEqual([45_000]);
  });

  test('with retry-after in seconds cools the key for that many seconds', async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    rateLimitedA(ring, { 'retry-after': '20' });
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } } });
    const cooldowns = record(manager, 'key:cooldown');

    await client.chat.completions.create(BODY);

    expect(cooldowns.map((c) => c.retryAfterMs)).toEqual([20_000]);
  });

  test('without any reset hint cools the key for cooldownMs', async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    rateLimitedA(ring, {});
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, cooldownMs: 7_000 });
    const cooldowns = record(manager, 'key:cooldown');

    await client.chat.completions.create(BODY);

    expect(cooldowns.map((c) => c.retryAfterMs)).toEqual([7_000]);
  });

  test('insufficient_quota disables the key with reason quota and the request succeeds on another', async () => {
    const ring = keyRing('a', 'b');
    const seen = provider(ONE, (call) =>
      ring.idOf(call.key) === 'a' ? errorReply(429, 'insufficient_quota', {}, 'You exceeded your current quota') : chatReply('gpt-4.1'),
    );
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } } });
    const disabled = record(manager, 'key:disabled');
    const cooldowns = record(manager, 'key:cooldown');

    const reply = await client.chat.completions.create(BODY);

    expect(reply.choices[0]?.message.content).toBe('hello');
    expect(ring.ids(seen)).toEqual(['a', 'b']);
    expect(disabled).toEqual([{ provider: 'one', keyId: 'a', reason: 'quota' }]);
    expect(cooldowns).toEqual([]);
    expect(keyStats(manager, 'one', 'a')).toMatchObject({ status: 'disabled', disabledReason: 'quota' });
  });

  test("Anthropic's 400 'credit balance is too low' disables the key with reason quota and the request succeeds on another", async () => {
    const lowCredit = { type: 'error', error: { type: 'invalid_request_error', message: 'Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.' } };
    const { disabled, heardA } = await fourRequestsKeyAAnswers400(lowCredit);
    expect(disabled).toEqual([{ provider: 'one', keyId: 'a', reason: 'quota' }]);
    expect(heardA).toBe(1);
  });
});

describe('401 and 403', () => {
  test('401 disables the key for good: one key:disabled, and no use over 10 more requests', async () => {
    const ring = keyRing('a', 'b');
    const seen = provider(ONE, (call) => (ring.idOf(call.key) === 'a' ? errorReply(401, 'invalid_api_key') : chatReply('gpt-4.1')));
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } } });
    const disabled = record(manager, 'key:disabled');

    for (let i = 0; i < 11; i++) await client.chat.completions.create(BODY);

    expect(disabled).toEqual([{ provider: 'one', keyId: 'a', reason: 'unauthorized' }]);
    expect(ring.ids(seen).filter((id) => id === 'a')).toHaveLength(1);
    expect(ring.ids(seen)).toEqual(['a', ...Array<string>(11).fill('b')]);
  });

  test('403 disables the key with reason forbidden and the request succeeds on another', async () => {
    const ring = keyRing('a', 'b');
    const seen = provider(ONE, (call) => (ring.idOf(call.key) === 'a' ? errorReply(403, 'unsupported_country_region_territory') : chatReply('gpt-4.1')));
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } } });
    const disabled = record(manager, 'key:disabled');

    await client.chat.completions.create(BODY);
    await client.chat.completions.create(BODY);

    expect(disabled).toEqual([{ provider: 'one', keyId: 'a', reason: 'forbidden' }]);
    expect(ring.ids(seen)).toEqual(['a', 'b', 'b']);
  });
});

describe("Gemini's 400 for a key it does not accept", () => {
  /** Google's answer to a key it does not accept (its OpenAI-compatible endpoint answers 400, not 401; the body sometimes a one-item list). */
  const invalidKey = (message: string, reason: string) => ({
    error: { code: 400, message, status: 'INVALID_ARGUMENT', details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason, domain: 'googleapis.com', metadata: { service: 'generativelanguage.googleapis.com' } }] },
  });

  test.each([
    ['API_KEY_INVALID', invalidKey('API key not valid. Please pass a valid API key.', 'API_KEY_INVALID')],
    ['API_KEY_EXPIRED, as a one-item list', [invalidKey('API key expired. Please renew the API key.', 'API_KEY_EXPIRED')]],
    ["a gateway quoting Google's answer in its message", { error: { message: JSON.stringify(invalidKey('API key not valid. Please pass a valid API key.', 'API_KEY_INVALID')), code: 400, status: 'Bad Request' } }],
  ])('%s: the key is disabled as at a 401 and the request succeeds on another', async (_name, body) => {
    const { disabled, heardA } = await fourRequestsKeyAAnswers400(body);
    expect(disabled).toEqual([{ provider: 'one', keyId: 'a', reason: 'unauthorized' }]);
    expect(heardA).toBe(1);
  });
});

describe('every key rejected', () => {
  test('when every key answers 401, the SDK raises AuthenticationError with no_key_available', async () => {
    const ring = keyRing('a', 'b');
    const seen = provider(ONE, () => errorReply(401, 'invalid_api_key'));
    const { client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } } });

    const error = await client.chat.completions.create(BODY).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(getKeyplexDetails(error)).toMatchObject({ code: 'no_key_available', status: 401 });
    expect(ring.ids(seen)).toEqual(['a', 'b']);
  });

  test('a request after every key was disabled fails at once without an upstream call', async () => {
    const ring = keyRing('a', 'b');
    const seen = provider(ONE, () => errorReply(401, 'invalid_api_key'));
    const { client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } } });
    await client.chat.completions.create(BODY).catch(() => undefined);

    const error = await client.chat.completions.create(BODY).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect(getKeyplexDetails(error)).toMatchObject({ code: 'no_key_available', attempts: [] });
    expect(seen).toHaveLength(2);
  });
});

describe('transient failures', () => {
  /** Provider one (keys a1, a2) always fails with `failure`; provider two (key b1) answers. */
  function twoProviders(failure: () => Response | 'reset') {
    const ring = keyRing('a1', 'a2', 'b1');
    provider(ONE, failure);
    provider(TWO, () => chatReply('gpt-4.1'));
    const setup = manage({
      providers: {
        one: { baseURL: ONE, keys: ring.keys.slice(0, 2), models: ['gpt-4.1'] },
        two: { baseURL: TWO, keys: ring.keys.slice(2), models: ['gpt-4.1'] },
      },
      retry: { baseDelayMs: 0 },
    });
    return { ring, ...setup };
  }

  test('a 500 is retried on another key of the same provider, then on another provider serving the model', async () => {
    const { ring, client } = twoProviders(() => errorReply(500, 'server_error'));

    const reply = await client.chat.completions.create(BODY);

    expect(reply.choices[0]?.message.content).toBe('hello');
    expect(route(calls, ring)).toEqual([
      ['api.one.test', 'a1'],
      ['api.one.test', 'a2'],
      ['api.two.test', 'b1'],
    ]);
  });

  test('a 500 emits retry for each failed attempt and failover when the provider changes', async () => {
    const { manager, client } = twoProviders(() => errorReply(500, 'server_error'));
    const retries = record(manager, 'retry');
    const failovers = record(manager, 'failover');

    await client.chat.completions.create(BODY);

    expect(retries.map(({ attempt, provider, keyId, reason, status, delayMs }) => ({ attempt, provider, keyId, reason, status, delayMs }))).toEqual([
      { attempt: 1, provider: 'one', keyId: 'a1', reason: 'server_error', status: 500, delayMs: 0 },
      { attempt: 2, provider: 'one', keyId: 'a2', reason: 'server_error', status: 500, delayMs: 0 },
    ]);
    expect(failovers).toEqual([
      expect.objectContaining({ attempt: 3, from: { provider: 'one', keyId: 'a2' }, to: { provider: 'two', keyId: 'b1' }, reason: 'server_error' }),
    ]);
  });

  test('a connection reset is retried on another key of the same provider, then on another provider', async () => {
    const { ring, client } = twoProviders(() => 'reset');

    const reply = await client.chat.completions.create(BODY);

    expect(reply.choices[0]?.message.content).toBe('hello');
    expect(route(calls, ring)).toEqual([
      ['api.one.test', 'a1'],
      ['api.one.test', 'a2'],
      ['api.two.test', 'b1'],
    ]);
  });

  test('a connection reset emits retry with reason connection and failover to the other provider', async () => {
    const { manager, client } = twoProviders(() => 'reset');
    const retries = record(manager, 'retry');
    const failovers = record(manager, 'failover');

    await client.chat.completions.create(BODY);

    expect(retries.map(({ attempt, keyId, reason, status }) => ({ attempt, keyId, reason, status }))).toEqual([
      { attempt: 1, keyId: 'a1', reason: 'connection', status: undefined },
      { attempt: 2, keyId: 'a2', reason: 'connection', status: undefined },
    ]);
    expect(failovers).toEqual([expect.objectContaining({ from: { provider: 'one', keyId: 'a2' }, to: { provider: 'two', keyId: 'b1' }, reason: 'connection' })]);
  });

  test('retry-after-ms on a 503 sets the retry delay', async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    provider(ONE, (_call, index) => (index === 0 ? errorReply(503, 'overloaded', { 'retry-after-ms': '1500' }) : chatReply('gpt-4.1')));
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } } });
    const retries = record(manager, 'retry');

    const pending = client.chat.completions.create(BODY);
    await until(() => retries.length >= 1);
    await vi.advanceTimersByTimeAsync(1500);
    await pending;

    expect(retries[0]).toMatchObject({ attempt: 1, reason: 'server_error', status: 503, delayMs: 1500 });
  });

  test('retry-after-ms on a 503 holds the next attempt back for that long', async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    const seen = provider(ONE, (_call, index) => (index === 0 ? errorReply(503, 'overloaded', { 'retry-after-ms': '1500' }) : chatReply('gpt-4.1')));
    const { client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } } });

    const pending = client.chat.completions.create(BODY);
    await until(() => seen.length >= 1);
    await vi.advanceTimersByTimeAsync(1499);
    expect(seen).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    await pending;

    expect(seen).toHaveLength(2);
  });

  test.each([408, 409])('a %i is retried on another key', async (status) => {
    const ring = keyRing('a', 'b');
    const seen = provider(ONE, (_call, index) => (index === 0 ? errorReply(status, 'transient') : chatReply('gpt-4.1')));
    const { client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, retry: { baseDelayMs: 0 } });

    const reply = await client.chat.completions.create(BODY);

    expect(reply.choices[0]?.message.content).toBe('hello');
    expect(ring.ids(seen)).toEqual(['a', 'b']);
  });

  test('an attempt that exceeds attemptTimeoutMs is retried on another key', async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    const seen = provider(ONE, (call) => (ring.idOf(call.key) === 'a' ? hang() : chatReply('gpt-4.1')));
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, attemptTimeoutMs: 1_000, retry: { baseDelayMs: 0 } });
    const retries = record(manager, 'retry');

    const pending = client.chat.completions.create(BODY);
    await until(() => seen.length >= 1);
    await vi.advanceTimersByTimeAsync(1_000);
    const reply = await pending;

    expect(reply.choices[0]?.message.content).toBe('hello');
    expect(ring.ids(seen)).toEqual(['a', 'b']);
    expect(retries).toEqual([expect.objectContaining({ keyId: 'a', reason: 'timeout', status: undefined })]);
  });

  test('when every attempt is reset, keyplex answers 502: the SDK raises InternalServerError whose details list the attempts', async () => {
    const ring = keyRing('a', 'b');
    provider(ONE, () => 'reset');
    const { client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, retry: { maxAttempts: 3, baseDelayMs: 0 } });

    const error = await client.chat.completions.create(BODY).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
    expect((error as Error).message).toMatch(/^502 keyplex: the upstream connection failed .* tried 2 keys of 'one' in 3 attempts \(3 × connection\)/);
    const detail = getKeyplexDetails(error);
    expect(detail?.code).toBe('upstream_error');
    expect(detail?.attempts.map((a) => [a.keyId, a.kind])).toEqual([
      ['a', 'connection'],
      ['b', 'connection'],
      ['a', 'connection'],
    ]);
  });

  test('when every attempt times out, keyplex answers 504: the SDK raises InternalServerError that says so', async () => {
    fakeClock();
    const ring = keyRing('a');
    const seen = provider(ONE, () => hang());
    const { client, manager } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, attemptTimeoutMs: 1_000, retry: { maxAttempts: 2, baseDelayMs: 0 } });
    const failures: KeyplexEvents['failure'][] = [];
    manager.on('failure', (e) => failures.push(e));

    const pending = client.chat.completions.create(BODY).catch((e: unknown) => e);
    await until(() => seen.length >= 1);
    await vi.advanceTimersByTimeAsync(1_000);
    await until(() => seen.length >= 2);
    await vi.advanceTimersByTimeAsync(1_000);
    const error = await pending;

    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(504);
    expect((error as Error).message).toMatch(/attempt timeout \(1000 ms\).*2 × timeout/);
    expect(failures[0]?.error.attempts.map((a) => a.kind)).toEqual(['timeout', 'timeout']);
    expect(getKeyplexDetails(error)?.attempts.map((a) => a.kind)).toEqual(['timeout', 'timeout']);
  });

  test('x-should-retry: false on a 500 stops retrying', async () => {
    const ring = keyRing('a', 'b');
    const seen = provider(ONE, () => errorReply(500, 'server_error', { 'x-should-retry': 'false' }));
    const { client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, retry: { baseDelayMs: 0 } });

    const error = await client.chat.completions.create(BODY).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect(seen).toHaveLength(1);
  });

  test('attempts are bounded by retry.maxAttempts and the final error is the SDK class of the last status', async () => {
    const ring = keyRing('a', 'b');
    const seen = provider(ONE, () => errorReply(500, 'server_error'));
    const { client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, retry: { maxAttempts: 3, baseDelayMs: 0 } });

    const error = await client.chat.completions.create(BODY).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect((error as InstanceType<typeof OpenAI.InternalServerError>).status).toBe(500);
    expect(seen).toHaveLength(3);
  });

  test('the last status decides the final error class (502 after 500s gives a 502 InternalServerError)', async () => {
    const ring = keyRing('a', 'b');
    const seen = provider(ONE, (_call, index) => (index < 2 ? errorReply(500, 'server_error') : errorReply(502, 'bad_gateway')));
    const { client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, retry: { maxAttempts: 3, baseDelayMs: 0 } });

    const error = await client.chat.completions.create(BODY).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
    expect(seen).toHaveLength(3);
  });

  test('rotations away from a rate-limited key do not count against retry.maxAttempts', async () => {
    const ring = keyRing('a', 'b', 'c');
    const seen = provider(ONE, (call) =>
      ring.idOf(call.key) === 'a' ? errorReply(429, 'rate_limit_exceeded', { 'retry-after-ms': '60000' }) : errorReply(500, 'server_error'),
    );
    const { client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, retry: { maxAttempts: 2, baseDelayMs: 0 } });

    const error = await client.chat.completions.create(BODY).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect(ring.ids(seen).sort()).toEqual(['a', 'b', 'c']);
  });

  test('getKeyplexDetails on the final upstream error lists every attempt', async () => {
    const ring = keyRing('a', 'b');
    provider(ONE, () => errorReply(500, 'server_error'));
    const { client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, retry: { maxAttempts: 3, baseDelayMs: 0 } });

    const error = await client.chat.completions.create(BODY).catch((e: unknown) => e);
    const detail = getKeyplexDetails(error);

    expect(detail).toMatchObject({ code: 'upstream_error', status: 500 });
    expect(detail?.attempts.map(({ attempt, provider, keyId, status, kind, upstreamModel }) => ({ attempt, provider, keyId, status, kind, upstreamModel }))).toEqual([
      { attempt: 1, provider: 'one', keyId: 'a', status: 500, kind: 'server_error', upstreamModel: 'gpt-4.1' },
      { attempt: 2, provider: 'one', keyId: 'b', status: 500, kind: 'server_error', upstreamModel: 'gpt-4.1' },
      { attempt: 3, provider: 'one', keyId: 'a', status: 500, kind: 'server_error', upstreamModel: 'gpt-4.1' },
    ]);
  });
});

describe('caller errors', () => {
  test('a 400 is not retried: one upstream call, BadRequestError, and the key stays active', async () => {
    const ring = keyRing('a', 'b');
    const seen = provider(ONE, () => errorReply(400, 'invalid_value', {}, "Invalid value for 'temperature'"));
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, retry: { baseDelayMs: 0 } });

    const error = await client.chat.completions.create(BODY).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect(seen).toHaveLength(1);
    expect(keyStats(manager, 'one', 'a')?.status).toBe('active');
  });

  test('a 404 surfaces at once as NotFoundError', async () => {
    const ring = keyRing('a', 'b');
    // A 404 `model_not_found` is about the key's use of the model: another key is tried (test/resilience/sdk-model-access.test.ts).
    const seen = provider(ONE, () => errorReply(404, null, {}, 'Invalid URL (POST /v1/chat/completion)'));
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, retry: { baseDelayMs: 0 } });

    const error = await client.chat.completions.create(BODY).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect(seen).toHaveLength(1);
    expect(keyStats(manager, 'one', 'a')?.status).toBe('active');
  });

  test('a 422 surfaces at once as UnprocessableEntityError', async () => {
    const ring = keyRing('a', 'b');
    const seen = provider(ONE, () => errorReply(422, 'unprocessable'));
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, retry: { baseDelayMs: 0 } });

    const error = await client.chat.completions.create(BODY).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(OpenAI.UnprocessableEntityError);
    expect(seen).toHaveLength(1);
    expect(keyStats(manager, 'one', 'a')?.status).toBe('active');
  });
});

describe('no usable key', () => {
  test('when every key is rate-limited past the deadline, the SDK raises RateLimitError with no_key_available and retryAfterMs', async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    const seen = provider(ONE, () => errorReply(429, 'rate_limit_exceeded', { 'retry-after-ms': '60000' }));
    const { client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, deadlineMs: 10_000 });

    const error = await client.chat.completions.create(BODY).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    expect(getKeyplexDetails(error)).toMatchObject({ code: 'no_key_available', retryAfterMs: 60_000 });
    expect(ring.ids(seen)).toEqual(['a', 'b']);
  });

  test('a request arriving while every key cools down past its deadline fails at once without an upstream call', async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    const seen = provider(ONE, () => errorReply(429, 'rate_limit_exceeded', { 'retry-after-ms': '60000' }));
    const { client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, deadlineMs: 10_000 });
    await client.chat.completions.create(BODY).catch(() => undefined);
    await vi.advanceTimersByTimeAsync(5_000);

    const error = await client.chat.completions.create(BODY).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    expect(getKeyplexDetails(error)).toMatchObject({ code: 'no_key_available', retryAfterMs: 55_000, attempts: [] });
    expect(seen).toHaveLength(2);
  });

  test('when every key is rate-limited within the deadline, the request waits for the earliest reset', async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    const limited = new Set<string>();
    const seen = provider(ONE, (call) => {
      const id = ring.idOf(call.key);
      if (limited.has(id)) return chatReply('gpt-4.1');
      limited.add(id);
      return errorReply(429, 'rate_limit_exceeded', { 'retry-after-ms': id === 'a' ? '30000' : '45000' });
    });
    // No AIMD: with no limit known, one 429 would make keyplex estimate each key's limit at 1 rpm.
    const { client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, deadlineMs: 120_000, rateLimiting: { adaptive: false } });

    const pending = client.chat.completions.create(BODY);
    await until(() => seen.length >= 2);
    await vi.advanceTimersByTimeAsync(29_999);
    expect(seen).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    const reply = await pending;

    expect(reply.choices[0]?.message.content).toBe('hello');
    expect(ring.ids(seen)).toEqual(['a', 'b', 'a']);
  });
});

describe('total deadline', () => {
  test('keyplex.options({ deadlineMs }) ends a hanging request with a 504 (InternalServerError) that says so', async () => {
    fakeClock();
    const ring = keyRing('a');
    const seen = provider(ONE, () => hang());
    const { client, manager } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } } });
    const failures: KeyplexEvents['failure'][] = [];
    manager.on('failure', (e) => failures.push(e));

    const pending = client.chat.completions.create(BODY, keyplex.options({ deadlineMs: 2_000 })).catch((e: unknown) => e);
    await until(() => seen.length >= 1);
    await vi.advanceTimersByTimeAsync(2_000);
    const error = await pending;

    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(504);
    expect(failures[0]?.error.code).toBe('deadline_exceeded');
    expect(getKeyplexDetails(error)?.code).toBe('deadline_exceeded');
    expect(seen).toHaveLength(1);
  });
});

describe("the SDK's retries, turned back on by a request option, do not repeat what keyplex answered", () => {
  test.each([
    ['an upstream 500 after keyplex gave up', 'upstream_error', 500],
    ['a 504 past the deadline', 'deadline_exceeded', 504],
  ] as const)('%s: one keyplex request, one upstream call', async (_name, code, status) => {
    const ring = keyRing('a');
    const seen = provider(ONE, () => (code === 'deadline_exceeded' ? hang() : errorReply(500, 'server_error', { 'x-should-retry': 'true' })));
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, retry: { maxAttempts: 1, baseDelayMs: 0 } });
    const requests = record(manager, 'request');

    // Only the hanging upstream needs a short deadline: with it on the 500 too, a loaded machine could reach it before the 500 came.
    const deadlineMs = code === 'deadline_exceeded' ? 50 : 60_000;
    const error = await client.chat.completions.create(BODY, keyplex.options({ deadlineMs }, { maxRetries: 2 })).catch((e: unknown) => e);

    expect(getKeyplexDetails(error)?.code).toBe(code);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(status);
    expect((error as InstanceType<typeof OpenAI.APIError>).headers?.get('x-should-retry')).toBe('false');
    expect(requests).toHaveLength(1);
    expect(seen).toHaveLength(1);
  });

  test('a closed manager is asked once', async () => {
    const { manager } = manage({ providers: { one: { baseURL: ONE, keys: keyRing('a').keys } } });
    await manager.close();
    let asked = 0;
    const counting: typeof globalThis.fetch = (input, init) => {
      asked++;
      return manager.fetch(input, init);
    };
    const client = new OpenAI({ apiKey: 'managed-by-keyplex', baseURL: KEYPLEX_BASE_URL, fetch: counting, maxRetries: 0 });

    const error = await client.chat.completions.create(BODY, { maxRetries: 2 }).catch((e: unknown) => e);

    expect(getKeyplexDetails(error)?.code).toBe('manager_closed');
    expect(asked).toBe(1);
  });
});
