import { randomUUID } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { DEFAULTS, resolveKey, resolveOptions } from '../../src/config';
import type { KeyManagerOptions } from '../../src/config';
import { ConfigError } from '../../src/errors';
import { fingerprint } from '../../src/keys/fingerprint';
import type { KeySelector } from '../../src/keys/selector';

/** A fake key: random, clearly not a real one. */
const fakeKey = (): string => 'sk-test-' + randomUUID();

type Json = Record<string, unknown>;

/** A valid one-provider config, with `provider` merged into the provider and `top` into the options. */
function config(provider: Json = {}, top: Json = {}): Json {
  return {
    providers: { openai: { baseURL: 'https://api.openai.com/v1', keys: [fakeKey()], ...provider } },
    ...top,
  };
}

const P = 'providers.openai';

/** [description, build the malformed options, expected `field`] */
const malformed: Array<[string, () => unknown, string]> = [
  // options and providers
  ['options not an object (null)', () => null, 'options'],
  ['options not an object (string)', () => 'sk-test', 'options'],
  ['options an array', () => [config()], 'options'],
  ['no providers', () => ({}), 'providers'],
  ['providers an array', () => ({ providers: [] }), 'providers'],
  ['empty providers', () => ({ providers: {} }), 'providers'],
  ['bad provider id (space)', () => ({ providers: { 'open ai': { baseURL: 'https://x.test/v1', keys: [fakeKey()] } } }), 'providers["open ai"]'],
  ['bad provider id (leading dash)', () => ({ providers: { '-x': { baseURL: 'https://x.test/v1', keys: [fakeKey()] } } }), 'providers["-x"]'],
  ['provider not an object', () => ({ providers: { openai: fakeKey() } }), P],
  ['unknown top-level option', () => config({}, { retries: { maxAttempts: 2 } }), 'retries'],
  ['unknown provider field', () => config({ baseUrl: 'https://x.test' }), `${P}.baseUrl`],
  // baseURL
  ['missing baseURL', () => ({ providers: { openai: { keys: [fakeKey()] } } }), `${P}.baseURL`],
  ['non-string baseURL', () => config({ baseURL: 42 }), `${P}.baseURL`],
  ['non-URL baseURL', () => config({ baseURL: 'api.openai.com/v1' }), `${P}.baseURL`],
  ['empty baseURL', () => config({ baseURL: '' }), `${P}.baseURL`],
  ['ftp baseURL', () => config({ baseURL: 'ftp://files.example.test/v1' }), `${P}.baseURL`],
  ['baseURL with credentials', () => config({ baseURL: 'https://user:pass@api.example.test/v1' }), `${P}.baseURL`],
  ['baseURL with query', () => config({ baseURL: 'https://api.example.test/v1?api-key=abc' }), `${P}.baseURL`],
  ['baseURL with empty query', () => config({ baseURL: 'https://api.example.test/v1?' }), `${P}.baseURL`],
  ['baseURL with hash', () => config({ baseURL: 'https://api.example.test/v1#x' }), `${P}.baseURL`],
  // keys
  ['keys not an array', () => config({ keys: fakeKey() }), `${P}.keys`],
  ['keys missing', () => ({ providers: { openai: { baseURL: 'https://x.test/v1' } } }), `${P}.keys`],
  ['empty keys', () => config({ keys: [] }), `${P}.keys`],
  ['empty string key', () => config({ keys: [fakeKey(), ''] }), `${P}.keys[1]`],
  ['key with whitespace', () => config({ keys: [fakeKey() + '\n'] }), `${P}.keys[0]`],
  ['key with inner space', () => config({ keys: ['sk-test ' + randomUUID()] }), `${P}.keys[0]`],
  ['key with non-ASCII character', () => config({ keys: [fakeKey() + '\u201d'] }), `${P}.keys[0]`],
  ['key a number', () => config({ keys: [12345] }), `${P}.keys[0]`],
  ['key null', () => config({ keys: [null] }), `${P}.keys[0]`],
  ['key object without key', () => config({ keys: [{ id: 'main' }] }), `${P}.keys[0].key`],
  ['key object with empty key', () => config({ keys: [{ key: '' }] }), `${P}.keys[0].key`],
  ['key object unknown field', () => config({ keys: [{ key: fakeKey(), label: 'x' }] }), `${P}.keys[0].label`],
  ['bad key id (space)', () => config({ keys: [{ key: fakeKey(), id: 'my key' }] }), `${P}.keys[0].id`],
  ['bad key id (empty)', () => config({ keys: [{ key: fakeKey(), id: '' }] }), `${P}.keys[0].id`],
  ['bad key id (too long)', () => config({ keys: [{ key: fakeKey(), id: 'a'.repeat(65) }] }), `${P}.keys[0].id`],
  ['bad key id (number)', () => config({ keys: [{ key: fakeKey(), id: 7 }] }), `${P}.keys[0].id`],
  [
    'duplicate ids',
    () => config({ keys: [{ key: fakeKey(), id: 'a' }, { key: fakeKey(), id: 'b' }, { key: fakeKey(), id: 'a' }] }),
    `${P}.keys[2].id`,
  ],
  [
    'explicit id equal to another key\'s fingerprint',
    () => {
      const first = fakeKey();
      return config({ keys: [first, { key: fakeKey(), id: fingerprint(first) }] });
    },
    `${P}.keys[1].id`,
  ],
  [
    'duplicate key in provider (strings)',
    () => {
      const key = fakeKey();
      return config({ keys: [key, fakeKey(), key] });
    },
    `${P}.keys[2]`,
  ],
  [
    'duplicate key in provider (objects with different ids)',
    () => {
      const key = fakeKey();
      return config({ keys: [{ key, id: 'one' }, { key, id: 'two' }] });
    },
    `${P}.keys[1].key`,
  ],
  [
    'same key in two providers',
    () => {
      const key = fakeKey();
      return {
        providers: {
          openai: { baseURL: 'https://api.openai.com/v1', keys: [key] },
          other: { baseURL: 'https://api.other.test/v1', keys: [fakeKey(), key] },
        },
      };
    },
    'providers.other.keys[1]',
  ],
  [
    'key used as the id of another key',
    () => {
      const key = fakeKey();
      return config({ keys: [key, { key: fakeKey(), id: key }] });
    },
    `${P}.keys[1].id`,
  ],
  [
    'id equal to its own key',
    () => {
      const key = fakeKey();
      return config({ keys: [{ key, id: key }] });
    },
    `${P}.keys[0].id`,
  ],
  ['weight 0', () => config({ keys: [{ key: fakeKey(), weight: 0 }] }), `${P}.keys[0].weight`],
  ['weight NaN', () => config({ keys: [{ key: fakeKey(), weight: Number.NaN }] }), `${P}.keys[0].weight`],
  ['negative weight', () => config({ keys: [{ key: fakeKey(), weight: -1 }] }), `${P}.keys[0].weight`],
  ['weight Infinity', () => config({ keys: [{ key: fakeKey(), weight: Number.POSITIVE_INFINITY }] }), `${P}.keys[0].weight`],
  ['weight a string', () => config({ keys: [{ key: fakeKey(), weight: '2' }] }), `${P}.keys[0].weight`],
  // models
  ['models empty array', () => config({ models: [] }), `${P}.models`],
  ['models empty object', () => config({ models: {} }), `${P}.models`],
  ['models with empty name', () => config({ models: ['gpt-4o', ''] }), `${P}.models[1]`],
  ['models with duplicate name', () => config({ models: ['gpt-4o', 'gpt-4o'] }), `${P}.models[1]`],
  ['models object with non-string', () => config({ models: { 'gpt-4o': 4 } }), `${P}.models["gpt-4o"]`],
  ['models object with empty upstream', () => config({ models: { fast: '' } }), `${P}.models.fast`],
  ['models a string', () => config({ models: 'gpt-4o' }), `${P}.models`],
  // headers
  ['headers with authorization', () => config({ headers: { authorization: 'Bearer x' } }), `${P}.headers.authorization`],
  ['headers with Authorization (any case)', () => config({ headers: { AuthoriZation: 'Bearer x' } }), `${P}.headers.AuthoriZation`],
  ['headers non-string value', () => config({ headers: { 'X-Title': 1 } }), `${P}.headers["X-Title"]`],
  ['headers invalid name', () => config({ headers: { 'X Title': 'a' } }), `${P}.headers["X Title"]`],
  ['headers value with line break', () => config({ headers: { 'X-Title': 'a\r\nX-Evil: 1' } }), `${P}.headers["X-Title"]`],
  ['headers duplicate name in other case', () => config({ headers: { 'x-title': 'a', 'X-Title': 'b' } }), `${P}.headers["X-Title"]`],
  ['headers an array', () => config({ headers: [['x-a', 'b']] }), `${P}.headers`],
  // keySelection
  ['unknown selector name', () => config({}, { keySelection: 'roundrobin' }), 'keySelection'],
  ['selector object without select', () => config({}, { keySelection: { pick: () => undefined } }), 'keySelection'],
  ['selector a number', () => config({}, { keySelection: 1 }), 'keySelection'],
  // retry
  ['retry not an object', () => config({}, { retry: 3 }), 'retry'],
  ['retry unknown field', () => config({}, { retry: { attempts: 3 } }), 'retry.attempts'],
  ['retry.maxAttempts 0', () => config({}, { retry: { maxAttempts: 0 } }), 'retry.maxAttempts'],
  ['retry.maxAttempts 1.5', () => config({}, { retry: { maxAttempts: 1.5 } }), 'retry.maxAttempts'],
  ['retry.maxAttempts 101', () => config({}, { retry: { maxAttempts: 101 } }), 'retry.maxAttempts'],
  ['retry.baseDelayMs negative', () => config({}, { retry: { baseDelayMs: -5 } }), 'retry.baseDelayMs'],
  ['retry.maxDelayMs < baseDelayMs', () => config({}, { retry: { baseDelayMs: 1000, maxDelayMs: 500 } }), 'retry.maxDelayMs'],
  ['retry.maxDelayMs < default baseDelayMs', () => config({}, { retry: { maxDelayMs: 100 } }), 'retry.maxDelayMs'],
  ['retry.baseDelayMs > default maxDelayMs', () => config({}, { retry: { baseDelayMs: 10_000 } }), 'retry.baseDelayMs'],
  ['retry.jitter 2', () => config({}, { retry: { jitter: 2 } }), 'retry.jitter'],
  ['retry.jitter negative', () => config({}, { retry: { jitter: -0.1 } }), 'retry.jitter'],
  // timing
  ['attemptTimeoutMs -1', () => config({}, { attemptTimeoutMs: -1 }), 'attemptTimeoutMs'],
  ['attemptTimeoutMs a string', () => config({}, { attemptTimeoutMs: '1000' }), 'attemptTimeoutMs'],
  ['deadlineMs 0', () => config({}, { deadlineMs: 0 }), 'deadlineMs'],
  ['deadlineMs beyond the longest timer', () => config({}, { deadlineMs: 2 ** 31 }), 'deadlineMs'],
  ['cooldownMs NaN', () => config({}, { cooldownMs: Number.NaN }), 'cooldownMs'],
  // prices
  ['prices negative', () => config({}, { prices: { 'gpt-4o': { input: -1, output: 10 } } }), 'prices["gpt-4o"].input'],
  ['prices missing output', () => config({}, { prices: { mine: { input: 1 } } }), 'prices.mine.output'],
  ['prices unknown field', () => config({}, { prices: { 'gpt-4o': { input: 1, output: 2, cached: 0.5 } } }), 'prices["gpt-4o"].cached'],
  ['prices cachedInput NaN', () => config({}, { prices: { mine: { input: 1, output: 2, cachedInput: Number.NaN } } }), 'prices.mine.cachedInput'],
  ['prices entry a number', () => config({}, { prices: { mine: 3 } }), 'prices.mine'],
  // others
  ['streamUsage non-boolean', () => config({}, { streamUsage: 'yes' }), 'streamUsage'],
  ['fetch not a function', () => config({}, { fetch: 'https://proxy.test' }), 'fetch'],
  // rate limits
  ['provider rpm 0', () => config({ rpm: 0 }), `${P}.rpm`],
  ['provider tpm negative', () => config({ tpm: -5 }), `${P}.tpm`],
  ['key rpm a string', () => config({ keys: [{ key: fakeKey(), rpm: '60' }] }), `${P}.keys[0].rpm`],
  ['rateLimiting not an object', () => config({}, { rateLimiting: true }), 'rateLimiting'],
  ['rateLimiting.adaptive non-boolean', () => config({}, { rateLimiting: { adaptive: 1 } }), 'rateLimiting.adaptive'],
  ['rateLimiting.defaultOutputTokens fractional', () => config({}, { rateLimiting: { defaultOutputTokens: 2.5 } }), 'rateLimiting.defaultOutputTokens'],
  ['rateLimiting unknown field', () => config({}, { rateLimiting: { adaptiv: true } }), 'rateLimiting.adaptiv'],
  ['rateLimiting.coldStart unknown', () => config({}, { rateLimiting: { coldStart: 'wait' } }), 'rateLimiting.coldStart'],
  ['rateLimiting.coldStart a boolean', () => config({}, { rateLimiting: { coldStart: false } }), 'rateLimiting.coldStart'],
  // lanes
  ['lanes concurrency 0', () => config({}, { lanes: { batch: { concurrency: 0 } } }), 'lanes.batch.concurrency'],
  ['lanes maxQueue negative', () => config({}, { lanes: { critical: { maxQueue: -1 } } }), 'lanes.critical.maxQueue'],
  ['lanes queueTimeoutMs 0', () => config({}, { lanes: { standard: { queueTimeoutMs: 0 } } }), 'lanes.standard.queueTimeoutMs'],
  ['defaultLane unknown', () => config({}, { defaultLane: 'urgent' }), 'defaultLane'],
  // routing
  ['routing not an object', () => config({}, { routing: 'cost' }), 'routing'],
  ['routing.strategy unknown', () => config({}, { routing: { strategy: 'cheapest' } }), 'routing.strategy'],
  ['routing.perModel strategy unknown', () => config({}, { routing: { perModel: { 'gpt-4.1': 'fastest' } } }), 'routing.perModel["gpt-4.1"]'],
  ['routing unknown field', () => config({}, { routing: { alias: {} } }), 'routing.alias'],
  ['deployment contextWindow 0', () => config({ models: { 'gpt-4.1': { contextWindow: 0 } } }), `${P}.models["gpt-4.1"].contextWindow`],
  ['deployment unknown field', () => config({ models: { 'gpt-4.1': { upstreem: 'x' } } }), `${P}.models["gpt-4.1"].upstreem`],
  ['deployment price negative', () => config({ models: { 'gpt-4.1': { price: { input: -1, output: 1 } } } }), `${P}.models["gpt-4.1"].price.input`],
  ['deployment tags not strings', () => config({ models: { 'gpt-4.1': { tags: [1] } } }), `${P}.models["gpt-4.1"].tags`],
  // circuit breakers
  ['circuitBreaker a string', () => config({}, { circuitBreaker: 'on' }), 'circuitBreaker'],
  ['circuitBreaker unknown scope', () => config({}, { circuitBreaker: { provider: {} } }), 'circuitBreaker.provider'],
  ['circuitBreaker.key.openMs 0', () => config({}, { circuitBreaker: { key: { openMs: 0 } } }), 'circuitBreaker.key.openMs'],
  ['circuitBreaker.key.openMs 0.5', () => config({}, { circuitBreaker: { key: { openMs: 0.5 } } }), 'circuitBreaker.key.openMs'],
  ['circuitBreaker.deployment.maxOpenMs below openMs', () => config({}, { circuitBreaker: { deployment: { openMs: 10_000, maxOpenMs: 5_000 } } }), 'circuitBreaker.deployment.maxOpenMs'],
  ['circuitBreaker.key.halfOpenProbes 0', () => config({}, { circuitBreaker: { key: { halfOpenProbes: 0 } } }), 'circuitBreaker.key.halfOpenProbes'],
  ['circuitBreaker.key.policy unknown name', () => config({}, { circuitBreaker: { key: { policy: 'sometimes' } } }), 'circuitBreaker.key.policy'],
  ['circuitBreaker.deployment.policy threshold above 1', () => config({}, { circuitBreaker: { deployment: { policy: { kind: 'count', threshold: 2 } } } }), 'circuitBreaker.deployment.policy.threshold'],
];

/** Every fake key inside a value. */
function keysIn(value: unknown, found: string[] = []): string[] {
  if (typeof value === 'string') {
    if (value.includes('sk-test')) found.push(value.trim());
  } else if (typeof value === 'object' && value !== null) {
    for (const [name, inner] of Object.entries(value)) {
      keysIn(name, found);
      keysIn(inner, found);
    }
  }
  return found;
}

function resolveError(options: unknown): ConfigError {
  try {
    resolveOptions(options as KeyManagerOptions);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected resolveOptions to throw');
}

describe('resolveOptions rejects malformed options', () => {
  test('the table is large enough', () => {
    expect(malformed.length).toBeGreaterThanOrEqual(30);
  });

  test.each(malformed)('%s', (_name, build, field) => {
    const options = build();
    const error = resolveError(options);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.code).toBe('invalid_config');
    expect(error.field).toBe(field);
    expect(error.message).toContain('`' + field + '`');
    for (const key of keysIn(options)) {
      expect(error.message).not.toContain(key);
      if (key.length > 20) expect(error.message).not.toContain(key.slice('sk-test-'.length, 'sk-test-'.length + 12));
    }
  });
});

/** Rate-limit options when none is given: no windows, scope and group left to the defaults. */
const NO_WINDOWS = { requests: [], tokens: [] };

describe('resolveOptions resolves valid options', () => {
  test('a minimal config gets every default', () => {
    const key = fakeKey();
    const resolved = resolveOptions({ providers: { openai: { baseURL: 'https://api.openai.com/v1/', keys: [key] } } });
    expect(resolved.providers).toEqual([
      {
        id: 'openai',
        baseURL: 'https://api.openai.com/v1',
        origin: 'https://api.openai.com',
        keys: [{ key, id: fingerprint(key), weight: 1, rate: NO_WINDOWS }],
        models: undefined,
        anyModel: 'unclaimed',
        deployments: new Map(),
        headers: {},
        // OpenAI limits per key × model: its windows are kept per upstream model by default.
        rate: { ...NO_WINDOWS, scope: 'model' },
      },
    ]);
    expect(resolved.keySelection).toBe(DEFAULTS.keySelection);
    expect(resolved.retry).toEqual(DEFAULTS.retry);
    expect(resolved.retry).not.toBe(DEFAULTS.retry);
    resolved.retry.maxAttempts = 99;
    expect(DEFAULTS.retry.maxAttempts).toBe(4);
    expect(resolved.attemptTimeoutMs).toBe(DEFAULTS.attemptTimeoutMs);
    expect(resolved.deadlineMs).toBe(DEFAULTS.deadlineMs);
    expect(resolved.cooldownMs).toBe(DEFAULTS.cooldownMs);
    expect(resolved.streamUsage).toBe(true);
    expect(resolved.prices).toEqual({});
    expect(resolved.fetch).toBeUndefined();
  });

  test('a full config resolves field by field, in provider order', () => {
    const [k1, k2, k3] = [fakeKey(), fakeKey(), fakeKey()];
    const fetch = (() => Promise.resolve(new Response('{}'))) as typeof globalThis.fetch;
    const selector: KeySelector = { select: (keys) => keys[0] };
    const options = {
      providers: {
        openai: {
          baseURL: 'https://api.openai.com/v1',
          keys: [k1, { key: k2, id: 'team-b', weight: 3 }],
          models: ['gpt-4o', 'gpt-4o-mini'],
          headers: { 'OpenAI-Organization': 'org-test' },
        },
        'api.proxy-1': {
          baseURL: 'http://localhost:8080/openai//',
          keys: [{ key: k3, id: 'proxy:main@eu' }],
          models: { 'claude-sonnet-4.5': 'claude-sonnet-4-5' },
        },
      },
      keySelection: selector,
      retry: { maxAttempts: 2, jitter: 0 },
      attemptTimeoutMs: 1000,
      deadlineMs: 5000,
      cooldownMs: 0,
      prices: { 'my-model': { input: 1, output: 2, cachedInput: 0.5 }, other: { input: 0, output: 0 } },
      streamUsage: false,
      fetch,
    } satisfies KeyManagerOptions;
    const resolved = resolveOptions(options);

    expect(resolved.providers.map((p) => p.id)).toEqual(['openai', 'api.proxy-1']);
    const [openai, proxy] = resolved.providers;
    expect(openai?.keys).toEqual([
      { key: k1, id: fingerprint(k1), weight: 1, rate: NO_WINDOWS },
      { key: k2, id: 'team-b', weight: 3, rate: NO_WINDOWS },
    ]);
    expect(openai?.models).toEqual(new Map([['gpt-4o', 'gpt-4o'], ['gpt-4o-mini', 'gpt-4o-mini']]));
    expect(openai?.headers).toEqual({ 'OpenAI-Organization': 'org-test' });
    expect(openai?.headers).not.toBe(options.providers.openai.headers);
    expect(proxy?.baseURL).toBe('http://localhost:8080/openai');
    expect(proxy?.origin).toBe('http://localhost:8080');
    expect(proxy?.models).toEqual(new Map([['claude-sonnet-4.5', 'claude-sonnet-4-5']]));
    expect(proxy?.keys[0]?.id).toBe('proxy:main@eu');
    expect(resolved.keySelection).toBe(selector);
    expect(resolved.retry).toEqual({ ...DEFAULTS.retry, maxAttempts: 2, jitter: 0 });
    expect(resolved.attemptTimeoutMs).toBe(1000);
    expect(resolved.deadlineMs).toBe(5000);
    expect(resolved.cooldownMs).toBe(0);
    expect(resolved.prices).toEqual({ 'my-model': { input: 1, output: 2, cachedInput: 0.5 }, other: { input: 0, output: 0 } });
    expect(resolved.prices['other']).not.toHaveProperty('cachedInput');
    expect(resolved.prices['my-model']).not.toBe(options.prices['my-model']);
    expect(resolved.streamUsage).toBe(false);
    expect(resolved.fetch).toBe(fetch);
  });

  test('undefined optional fields count as absent', () => {
    const resolved = resolveOptions({
      ...(config({ models: undefined, headers: undefined }) as unknown as KeyManagerOptions),
      retry: undefined,
      keySelection: undefined,
      fetch: undefined,
    });
    expect(resolved.retry).toEqual(DEFAULTS.retry);
    expect(resolved.keySelection).toBe('headroom');
    expect(resolved.providers[0]?.models).toBeUndefined();
  });

  test('each built-in selector name is accepted', () => {
    for (const name of ['headroom', 'round-robin', 'least-used', 'weighted', 'random'] as const) {
      expect(resolveOptions({ ...(config() as unknown as KeyManagerOptions), keySelection: name }).keySelection).toBe(name);
    }
  });

  test('__proto__ as a header or price name stays an own property', () => {
    const options = JSON.parse(
      `{"providers":{"p":{"baseURL":"https://x.test/v1","keys":["${fakeKey()}"],"headers":{"__proto__":"v"}}},` +
        `"prices":{"__proto__":{"input":1,"output":2}}}`,
    ) as KeyManagerOptions;
    const resolved = resolveOptions(options);
    expect(Object.getPrototypeOf(resolved.providers[0]?.headers)).toBe(Object.prototype);
    expect(Object.keys(resolved.providers[0]?.headers ?? {})).toEqual(['__proto__']);
    expect(Object.keys(resolved.prices)).toEqual(['__proto__']);
  });
});

describe('key ids and secrecy', () => {
  test('the default key id is a fingerprint that contains no part of the key', () => {
    const key = fakeKey();
    const id = resolveOptions(config({ keys: [key] }) as unknown as KeyManagerOptions).providers[0]?.keys[0]?.id;
    expect(id).toBe(fingerprint(key));
    expect(id).toMatch(/^fp_[0-9a-f]{10}$/);
    expect(key).not.toContain(id?.slice(3));
    // 8-character windows: shorter ones can match a random hex digest by chance.
    for (let i = 0; i + 8 <= key.length; i++) expect(id).not.toContain(key.slice(i, i + 8));
  });

  test('fingerprint is stable and differs between keys', () => {
    const key = fakeKey();
    expect(fingerprint(key)).toBe(fingerprint(key));
    expect(fingerprint(key)).not.toBe(fingerprint(fakeKey()));
    // sha256("abc") = ba7816bf8f01cfea...
    expect(fingerprint('abc')).toBe('fp_ba7816bf8f');
  });

  test('a duplicate key within a provider is reported without the key', () => {
    const key = fakeKey();
    const error = resolveError(config({ keys: [key, key] }));
    expect(error.field).toBe(`${P}.keys[1]`);
    expect(error.message).toContain('keys[0]');
    expect(error.message).toContain(fingerprint(key));
    expect(error.message).not.toContain(key);
    expect(error.message).not.toContain(key.slice(8));
  });

  test('the same key in two providers is reported without the key', () => {
    const key = fakeKey();
    const error = resolveError({
      providers: {
        a: { baseURL: 'https://a.test/v1', keys: [{ key, id: 'first' }] },
        b: { baseURL: 'https://b.test/v1', keys: [key] },
      },
    });
    expect(error.field).toBe('providers.b.keys[0]');
    expect(error.message).toContain('providers.a.keys[0]');
    expect(error.message).not.toContain(key);
    expect(error.message).not.toContain(key.slice(8));
  });

  test('a bad baseURL is not echoed (it may carry credentials)', () => {
    const secret = randomUUID();
    for (const baseURL of [`https://user:${secret}@x.test/v1`, `https://x.test/v1?key=${secret}`, `x.test/${secret}`]) {
      const error = resolveError(config({ baseURL }));
      expect(error.message).not.toContain(secret);
    }
  });

  test('a header value is not echoed', () => {
    const secret = randomUUID();
    const error = resolveError(config({ headers: { 'x-api-key': `${secret}\n` } }));
    expect(error.message).not.toContain(secret);
  });

  test('an unknown option gets a suggestion', () => {
    const error = resolveError(config({ baseUrl: 'https://x.test/v1' }));
    expect(error.message).toContain('did you mean `baseURL`?');
  });

  // `keys: [process.env.OPENAI_KEY!]` with the variable unset, or the same in a template literal.
  test.each([
    ['an unset environment variable', config({ keys: [undefined] }), 'providers.openai.keys[0]'],
    ['an unset variable in a template literal', config({ keys: [`${String(undefined)}`] }), 'providers.openai.keys[0]'],
    ['the string "null"', config({ keys: [{ key: 'null' }] }), 'providers.openai.keys[0].key'],
  ])('a key that is %s is refused, asking whether the variable is set', (_, options, field) => {
    const error = resolveError(options);
    expect(error.field).toBe(field);
    expect(error.message).toMatch(/environment variable/);
  });

  // Names a user brings from the openai SDK or other clients, and ones missing only their unit: not a typo by edit distance.
  test.each([
    ['the SDK’s apiKey for a provider’s keys', config({ apiKey: fakeKey() }), 'providers.openai.apiKey', 'keys'],
    ['apiKeys', config({ apiKeys: [fakeKey()] }), 'providers.openai.apiKeys', 'keys'],
    ['apiKey in a key object', config({ keys: [{ apiKey: fakeKey() }] }), 'providers.openai.keys[0].apiKey', 'key'],
    ['the SDK’s maxRetries', config({}, { maxRetries: 2 }), 'maxRetries', 'retry'],
    ['retries', config({}, { retries: 2 }), 'retries', 'retry'],
    ['maxRetries inside retry', config({}, { retry: { maxRetries: 2 } }), 'retry.maxRetries', 'maxAttempts'],
    ['the SDK’s timeout', config({}, { timeout: 20_000 }), 'timeout', 'deadlineMs'],
    ['a duration without its unit', config({}, { cache: { ttl: 60_000 } }), 'cache.ttl', 'ttlMs'],
    ['a budget’s limit without its unit', config({}, { budgets: [{ scope: { overall: true }, limit: 5, window: 'day' }] }), 'budgets[0].limit', 'limitUsd'],
    ['a budget field typo', config({}, { budgets: [{ scope: { overall: true }, limitUsd: 5, windw: 'day' }] }), 'budgets[0].windw', 'window'],
    ['a breaker policy option typo', config({}, { circuitBreaker: { key: { policy: { kind: 'sampling', threshhold: 0.5 } } } }), 'circuitBreaker.key.policy.threshhold', 'threshold'],
    ['a budget scope typo', config({}, { budgets: [{ scope: { modle: 'gpt-4.1' }, limitUsd: 5, window: 'day' }] }), 'budgets[0].scope.modle', 'model'],
  ])('%s gets a suggestion', (_, options, field, meant) => {
    const error = resolveError(options);
    expect(error.field).toBe(field);
    expect(error.message).toContain(`did you mean \`${meant}\`?`);
  });
});

describe('resolveKey', () => {
  test('resolves a string and an object, with the given field in errors', () => {
    const key = fakeKey();
    expect(resolveKey('openai', key, 'key')).toEqual({ key, id: fingerprint(key), weight: 1, rate: NO_WINDOWS });
    expect(resolveKey('openai', { key, id: 'k1', weight: 0.5 }, 'key')).toEqual({ key, id: 'k1', weight: 0.5, rate: NO_WINDOWS });

    let error: unknown;
    try {
      resolveKey('openai', { key, weight: -2 }, 'addKey.weight-test');
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe('addKey.weight-test.weight');
  });

  test('a malformed key is described by type and length only', () => {
    const key = fakeKey() + ' ';
    try {
      resolveKey('openai', key, 'key');
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).field).toBe('key');
      expect((error as ConfigError).message).toContain(`a string of ${key.length} characters`);
      expect((error as ConfigError).message).not.toContain(key.trim());
    }
  });
});
