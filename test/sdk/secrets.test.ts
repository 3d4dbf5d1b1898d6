import OpenAI from 'openai';
import util from 'node:util';
import { describe, expect, test } from 'vitest';
import { getKeyplexDetails, KeyManager, keyplex, type KeyManagerOptions, type KeyplexEventName } from '../../src/index';
import { fakeKey } from '../support/fake-keys';
import {
  askedUsage,
  calls,
  chatChunks,
  chatReply,
  cutSseReply,
  errorReply,
  gate,
  provider,
  sseReply,
  type UpstreamCall,
} from '../support/upstream';
import '../support/setup';
import { closeAfterEach } from '../support/scaffold';

const ALPHA = 'https://api.alpha.test/v1';
const BETA = 'https://api.beta.test/v1';
const GAMMA = 'https://api.gamma.test/v1';
const ELSEWHERE = 'https://elsewhere.test/v1';

const EVENT_NAMES: KeyplexEventName[] = [
  'request',
  'attempt',
  'retry',
  'failover',
  'success',
  'failure',
  'key:cooldown',
  'key:disabled',
  'key:recovered',
  'key:added',
  'key:removed',
];

const managers = closeAfterEach();

/** Everything a test observed, by where it came from. */
type Observed = { where: string; text: string }[];

/** The strings to look for: each key, and its random part (a partial echo or mask would still show it). */
function needles(keys: readonly string[]): string[] {
  return keys.flatMap((key) => [key, key.slice(key.lastIndexOf('-') + 1)]);
}

/** Where any key (or its random part) shows up in what was observed. */
function leaks(observed: Observed, keys: readonly string[]): { where: string; key: string }[] {
  const found: { where: string; key: string }[] = [];
  for (const { where, text } of observed) {
    for (const needle of needles(keys)) if (text.includes(needle)) found.push({ where, key: needle });
  }
  return found;
}

function headersText(headers: unknown): string {
  if (headers instanceof Headers) return JSON.stringify([...headers.entries()]);
  return JSON.stringify(headers) ?? String(headers);
}

/** Every rendering of a caught error a user might log. */
function renderError(where: string, error: unknown): Observed {
  const e = error as { message?: unknown; stack?: unknown; headers?: unknown; error?: unknown; cause?: unknown };
  const out: Observed = [
    { where: `${where}: String(err)`, text: String(error) },
    { where: `${where}: err.message`, text: String(e.message) },
    { where: `${where}: err.stack`, text: String(e.stack) },
    { where: `${where}: JSON.stringify(err)`, text: JSON.stringify(error) ?? '' },
    { where: `${where}: util.inspect(err)`, text: util.inspect(error, { depth: 10 }) },
    { where: `${where}: util.inspect(err, showHidden)`, text: util.inspect(error, { depth: 10, showHidden: true }) },
    { where: `${where}: err.headers`, text: headersText(e.headers) },
    { where: `${where}: err.error`, text: JSON.stringify(e.error) ?? '' },
    { where: `${where}: getKeyplexDetails(err)`, text: JSON.stringify(getKeyplexDetails(error)) ?? '' },
  ];
  for (let cause = e.cause, depth = 0; cause !== undefined && cause !== null && depth < 5; depth++) {
    const c = cause as { message?: unknown; stack?: unknown; cause?: unknown };
    out.push({ where: `${where}: cause ${depth} message`, text: String(c.message) });
    out.push({ where: `${where}: cause ${depth} stack`, text: String(c.stack) });
    cause = c.cause;
  }
  return out;
}

/** The scenario a test request names in its first message. */
function scenarioOf(call: UpstreamCall): string {
  const messages = call.body?.messages as { content?: unknown }[] | undefined;
  return typeof messages?.[0]?.content === 'string' ? messages[0].content : '';
}

/**
 * Three providers × three keys, and a workload that makes keyplex emit every
 * event kind and throw every kind of error. Upstreams echo the key they got in
 * their error messages, as some real ones do.
 */
async function mixedWorkload() {
  const keys = {
    alpha: [fakeKey('alpha'), fakeKey('alpha'), fakeKey('alpha')],
    beta: [fakeKey('beta'), fakeKey('beta'), fakeKey('beta')],
    gamma: [fakeKey('gamma'), fakeKey('gamma'), fakeKey('gamma')],
  };
  const hotKeys = [fakeKey('hot'), fakeKey('hot')];
  const otherKeys = [fakeKey('config'), fakeKey('config')];
  const allKeys = [...keys.alpha, ...keys.beta, ...keys.gamma, ...hotKeys, ...otherKeys];
  const observed: Observed = [];
  const seenEvents = new Map<KeyplexEventName, unknown[]>();
  const errors: unknown[] = [];
  const cut = gate();

  const once = new Set<string>();
  const first = (tag: string) => !once.has(tag) && once.add(tag) !== undefined;

  provider(ALPHA, (call) => {
    const scenario = scenarioOf(call);
    if (call.key === keys.alpha[0]) return errorReply(401, 'invalid_api_key', {}, `Incorrect API key provided: ${call.key}.`);
    if (scenario === 'rate' && first('rate')) {
      return errorReply(429, 'rate_limit_exceeded', { 'retry-after-ms': '60000' }, `Rate limit reached for key ${call.key}.`);
    }
    if (scenario === 'flaky' && first('flaky')) return errorReply(500, 'server_error', {}, `Internal error (key ${call.key}).`);
    if (scenario === 'bad') return errorReply(400, 'invalid_request_error', {}, `Invalid request sent with key ${call.key}.`);
    if (scenario === 'alpha-down' || scenario === 'all-down') return errorReply(503, 'overloaded', {}, `Overloaded (key ${call.key}).`);
    if (scenario === 'reset-all') return 'reset';
    if (scenario === 'stream') return sseReply(chatChunks('gpt-4.1', ['a', 'b', 'c'], askedUsage(call)));
    if (scenario === 'cut') return cutSseReply(chatChunks('gpt-4.1', ['a', 'b', 'c'], askedUsage(call)), { after: 2, gate: cut.promise });
    return chatReply('gpt-4.1', 'ok', { prompt: 10, completion: 5 });
  });
  provider(BETA, (call) => {
    const scenario = scenarioOf(call);
    if (call.key === keys.beta[1]) return errorReply(403, 'forbidden', {}, `Key ${call.key} may not use this model.`);
    if (scenario === 'quota' && first('quota')) return errorReply(429, 'insufficient_quota', {}, `Key ${call.key} ran out of quota.`);
    if (scenario === 'all-down') return errorReply(503, 'overloaded', {}, `Overloaded (key ${call.key}).`);
    if (scenario === 'reset-all') return 'reset';
    return chatReply('gpt-4.1', 'ok', { prompt: 10, completion: 5 });
  });
  provider(GAMMA, (call) => {
    const scenario = scenarioOf(call);
    if (scenario === 'all-down') return errorReply(503, 'overloaded', {}, `Overloaded (key ${call.key}).`);
    if (scenario === 'reset-all') return 'reset';
    return chatReply('gpt-4.1', 'ok', { prompt: 10, completion: 5 });
  });

  const manager = new KeyManager({
    providers: {
      alpha: { baseURL: ALPHA, keys: keys.alpha },
      beta: { baseURL: BETA, keys: keys.beta },
      gamma: { baseURL: GAMMA, keys: keys.gamma },
    },
    retry: { baseDelayMs: 0, maxAttempts: 6 },
  });
  managers.push(manager);
  for (const name of EVENT_NAMES) {
    manager.on(name, (payload: unknown) => {
      seenEvents.set(name, [...(seenEvents.get(name) ?? []), payload]);
      observed.push({ where: `event ${name}: JSON`, text: JSON.stringify(payload) });
      observed.push({ where: `event ${name}: inspect`, text: util.inspect(payload, { depth: 10, showHidden: true }) });
    });
  }
  const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
  const chat = (content: string, options?: OpenAI.RequestOptions) =>
    client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content }] }, options);
  const expectError = async (where: string, run: () => Promise<unknown>) => {
    try {
      await run();
    } catch (error) {
      errors.push(error);
      observed.push(...renderError(`error ${where}`, error));
      return;
    }
    throw new Error(`${where}: expected an error`);
  };

  // Successes on alpha; its first key answers 401 and is disabled on the way.
  for (let i = 0; i < 3; i++) await chat('hello');
  const { response } = await chat('hello').withResponse();
  observed.push({ where: 'success response headers', text: headersText(response.headers) });
  // A 500, then a retry on another alpha key.
  await chat('flaky');
  // A 429: the key cools down; the request rotates.
  await chat('rate');
  // A 400 is surfaced.
  await expectError('400', () => chat('bad'));
  // Alpha is down: fail over to beta.
  await chat('alpha-down');
  // Beta's second key is forbidden (403); one of its keys runs out of quota.
  for (let i = 0; i < 3; i++) await chat('hello', keyplex.options({ provider: 'beta' }));
  await chat('quota', keyplex.options({ provider: 'beta' }));
  // Streams: one whole, one cut after data reached the caller.
  for await (const _ of await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'stream' }], stream: true }));
  await expectError('stream cut', async () => {
    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'cut' }], stream: true });
    let n = 0;
    for await (const _ of stream) if (++n === 2) cut.open();
  });
  // Hot add and remove.
  const hotId = manager.addKey('gamma', hotKeys[0]!);
  manager.addKey('gamma', { key: hotKeys[1]!, id: 'hot' });
  for (let i = 0; i < 5; i++) await chat('hello', keyplex.options({ provider: 'gamma' }));
  manager.removeKey('gamma', 'hot');
  manager.removeKey('gamma', hotId);
  await expectError('addKey duplicate', async () => manager.addKey('gamma', keys.alpha[1]!));
  await expectError('addKey malformed', async () => manager.addKey('gamma', { key: `${keys.gamma[0]} `, id: 'bad key' }));
  // No usable key on gamma, then one enabled again.
  const gammaIds = manager.stats().providers.gamma!.keys.map((k) => k.id);
  for (const id of gammaIds) manager.disableKey('gamma', id);
  await expectError('no key available', () => chat('hello', keyplex.options({ provider: 'gamma' })));
  manager.enableKey('gamma', gammaIds[0]!);
  await chat('hello', keyplex.options({ provider: 'gamma' }));
  // Every provider fails: the last upstream answer is surfaced, with keyplex detail.
  await expectError('all down', () => chat('all-down'));
  // Every connection resets: a connection error whose cause is keyplex's.
  await expectError('all reset', () => chat('reset-all'));
  // Bad configuration that mentions keys.
  await expectError('config: key as id', async () => new KeyManager({ providers: { x: { baseURL: ALPHA, keys: [otherKeys[0]!, { key: otherKeys[1]!, id: otherKeys[0]! }] } } }));
  await expectError('config: duplicate key', async () => new KeyManager({ providers: { x: { baseURL: ALPHA, keys: [otherKeys[0]!] }, y: { baseURL: BETA, keys: [otherKeys[0]!] } } }));

  observed.push({ where: 'JSON.stringify(stats())', text: JSON.stringify(manager.stats()) });
  observed.push({ where: 'util.inspect(stats())', text: util.inspect(manager.stats(), { depth: 10, showHidden: true }) });
  observed.push({ where: 'util.inspect(manager)', text: util.inspect(manager, { depth: 10, showHidden: true }) });
  observed.push({ where: 'JSON.stringify(manager)', text: JSON.stringify(manager) });
  observed.push({ where: 'String(manager)', text: String(manager) });
  observed.push({ where: 'util.inspect(client)', text: util.inspect(client, { depth: 4 }) });

  return { manager, keys, hotKeys, allKeys, observed, seenEvents, errors };
}

describe('keys never leave the manager except towards their provider', () => {
  test('the mixed workload emits every event kind, disable reason and failure code it is meant to, and uses the hot-added keys', async () => {
    const { seenEvents, hotKeys } = await mixedWorkload();

    expect(hotKeys.map((key) => calls.filter((c) => c.key === key).length > 0)).toEqual([true, true]);
    expect([...seenEvents.keys()].sort()).toEqual([...EVENT_NAMES].sort());
    const reasons = new Set((seenEvents.get('key:disabled') as { reason: string }[]).map((e) => e.reason));
    expect([...reasons].sort()).toEqual(['forbidden', 'manual', 'quota', 'unauthorized']);
    const codes = new Set((seenEvents.get('failure') as { error: { code: string } }[]).map((e) => e.error.code));
    expect([...codes].sort()).toEqual(['no_key_available', 'stream_interrupted', 'upstream_error']);
    expect((seenEvents.get('success') as { stream: boolean }[]).some((e) => e.stream)).toBe(true);
  });

  test('no event payload contains a configured key', async () => {
    const { observed, allKeys } = await mixedWorkload();

    expect(leaks(observed.filter((o) => o.where.startsWith('event ')), allKeys)).toEqual([]);
  });

  test('no thrown error contains a configured key: message, stack, JSON, inspect, SDK headers and error body', async () => {
    const { observed, allKeys, errors } = await mixedWorkload();

    expect(errors.length).toBeGreaterThanOrEqual(8);
    expect(leaks(observed.filter((o) => o.where.startsWith('error ')), allKeys)).toEqual([]);
  });

  test('the errors thrown by the workload carry keyplex detail where they came through keyplex', async () => {
    const { errors } = await mixedWorkload();

    const codes = errors.map((e) => getKeyplexDetails(e)?.code);
    expect(codes).toEqual([
      'upstream_error', // 400
      'stream_interrupted',
      'invalid_config', // addKey duplicate
      'invalid_config', // addKey malformed
      'no_key_available',
      'upstream_error', // all down
      'upstream_error', // all reset
      'invalid_config',
      'invalid_config',
    ]);
  });

  test('JSON.stringify(manager.stats()) contains no configured key', async () => {
    const { observed, allKeys } = await mixedWorkload();

    expect(leaks(observed.filter((o) => o.where.includes('stats()')), allKeys)).toEqual([]);
  });

  test('util.inspect(manager, showHidden), JSON.stringify(manager) and the wrapped client contain no configured key', async () => {
    const { observed, allKeys } = await mixedWorkload();

    expect(leaks(observed.filter((o) => /manager\)|client/.test(o.where)), allKeys)).toEqual([]);
  });

  test('the headers of a successful reply contain no configured key', async () => {
    const { observed, allKeys } = await mixedWorkload();

    expect(leaks(observed.filter((o) => o.where === 'success response headers'), allKeys)).toEqual([]);
  });

  test('each key is only ever sent to its own provider’s origin, across fail-overs', async () => {
    const { keys, hotKeys } = await mixedWorkload();

    const originOf = new Map<string, string>();
    for (const key of keys.alpha) originOf.set(key, new URL(ALPHA).origin);
    for (const key of keys.beta) originOf.set(key, new URL(BETA).origin);
    for (const key of [...keys.gamma, ...hotKeys]) originOf.set(key, new URL(GAMMA).origin);
    const wrong = calls.filter((call) => originOf.get(call.key) !== call.origin);
    expect(wrong.map((c) => ({ origin: c.origin, key: c.key.slice(0, 10) }))).toEqual([]);
    // The workload did reach all three providers.
    expect(new Set(calls.map((c) => c.origin))).toEqual(new Set([ALPHA, BETA, GAMMA].map((u) => new URL(u).origin)));
  });
});

describe('an upstream that echoes the key', () => {
  test("a 401 whose message echoes the key reaches the caller without the key", async () => {
    const keys = [fakeKey('echo'), fakeKey('echo')];
    provider(ALPHA, (call) => errorReply(401, 'invalid_api_key', {}, `Incorrect API key provided: ${call.key}. You can find your API key at https://example.test/keys.`));
    const manager = new KeyManager({ providers: { alpha: { baseURL: ALPHA, keys } }, retry: { baseDelayMs: 0 } });
    managers.push(manager);
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));

    let caught: unknown;
    try {
      await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] });
    } catch (error) {
      caught = error;
    }

    expect(caught).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(leaks(renderError('401 echo', caught), keys)).toEqual([]);
  });

  test('a 401 echoing the key, followed by a success on another key, leaves the key out of every event', async () => {
    const keys = [fakeKey('echo'), fakeKey('echo')];
    provider(ALPHA, (call) =>
      call.key === keys[0] ? errorReply(401, 'invalid_api_key', {}, `Incorrect API key provided: ${call.key}.`) : chatReply('gpt-4.1'),
    );
    const manager = new KeyManager({ providers: { alpha: { baseURL: ALPHA, keys } }, retry: { baseDelayMs: 0 } });
    managers.push(manager);
    const observed: Observed = [];
    for (const name of EVENT_NAMES) manager.on(name, (payload: unknown) => observed.push({ where: name, text: util.inspect(payload, { depth: 10 }) }));
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));

    await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] });
    await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] });

    expect(observed.some((o) => o.where === 'key:disabled')).toBe(true);
    expect(leaks(observed, keys)).toEqual([]);
  });

  test('a surfaced 400 whose message echoes the key reaches the caller without the key', async () => {
    const keys = [fakeKey('echo')];
    provider(ALPHA, (call) => errorReply(400, 'invalid_request_error', {}, `Bad request from ${call.key}`));
    const manager = new KeyManager({ providers: { alpha: { baseURL: ALPHA, keys } }, retry: { baseDelayMs: 0 } });
    managers.push(manager);
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));

    let caught: unknown;
    try {
      await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] });
    } catch (error) {
      caught = error;
    }

    expect(caught).toBeInstanceOf(OpenAI.BadRequestError);
    expect(leaks(renderError('400 echo', caught), keys)).toEqual([]);
  });
});

describe("requests go to the configured providers, whatever the SDK client's baseURL", () => {
  function setUp(options: Partial<KeyManagerOptions> = {}) {
    const alphaKeys = [fakeKey('alpha'), fakeKey('alpha')];
    const betaKeys = [fakeKey('beta')];
    const alpha = provider(ALPHA, () => errorReply(503, 'overloaded'));
    const beta = provider(BETA, () => chatReply('gpt-4.1'));
    const elsewhere = provider(ELSEWHERE, () => chatReply('gpt-4.1'));
    const manager = new KeyManager({
      providers: { alpha: { baseURL: ALPHA, keys: alphaKeys }, beta: { baseURL: BETA, keys: betaKeys } },
      retry: { baseDelayMs: 0 },
      ...options,
    });
    managers.push(manager);
    return { manager, alphaKeys, betaKeys, alpha, beta, elsewhere };
  }

  test('a wrapped client made with another baseURL still sends to the configured providers, keys to their own origins', async () => {
    const { manager, alphaKeys, betaKeys, alpha, beta, elsewhere } = setUp();
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', baseURL: ELSEWHERE }));

    await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] });

    expect(elsewhere).toHaveLength(0);
    expect(alpha.length).toBeGreaterThan(0);
    expect(alpha.every((c) => alphaKeys.includes(c.key))).toBe(true);
    expect(beta.map((c) => c.key)).toEqual([betaKeys[0]]);
  });

  test('a client given manager.fetch directly with another baseURL still sends to the configured providers only', async () => {
    const { manager, alphaKeys, betaKeys, alpha, beta, elsewhere } = setUp();
    const client = new OpenAI({ apiKey: 'managed-by-keyplex', baseURL: ELSEWHERE, fetch: manager.fetch, maxRetries: 0 });

    await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] });

    expect(elsewhere).toHaveLength(0);
    expect(alpha.every((c) => alphaKeys.includes(c.key) && c.path === '/chat/completions')).toBe(true);
    expect(beta.map((c) => [c.key, c.path])).toEqual([[betaKeys[0], '/chat/completions']]);
  });

  test('a request the SDK makes to an absolute URL on another origin goes to the configured provider instead', async () => {
    const { manager, betaKeys, beta, elsewhere } = setUp();
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));

    await client.post(`${ELSEWHERE}/chat/completions`, { body: { model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] } });

    expect(elsewhere).toHaveLength(0);
    expect(beta.map((c) => [c.key, c.path])).toEqual([[betaKeys[0], '/chat/completions']]);
  });

  test("the SDK client's own apiKey is never sent upstream", async () => {
    const { manager } = setUp();
    const client = manager.wrap(new OpenAI({ apiKey: 'sdk-side-placeholder', baseURL: ELSEWHERE }));

    await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] });

    expect(calls.length).toBeGreaterThan(0);
    expect(calls.filter((c) => c.key === 'sdk-side-placeholder' || c.headers.get('authorization')?.includes('sdk-side-placeholder'))).toEqual([]);
  });

  test('a provider redirecting to another origin does not get the key sent there', async () => {
    const keys = [fakeKey('alpha')];
    const alpha = provider(ALPHA, () => new Response(null, { status: 307, headers: { location: `${ELSEWHERE}/chat/completions` } }));
    const elsewhere = provider(ELSEWHERE, () => chatReply('gpt-4.1'));
    const manager = new KeyManager({ providers: { alpha: { baseURL: ALPHA, keys } }, retry: { baseDelayMs: 0, maxAttempts: 1 } });
    managers.push(manager);
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));

    await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] }).catch(() => undefined);

    expect(alpha).toHaveLength(1);
    expect(elsewhere.filter((c) => keys.some((k) => c.key.includes(k) || [...c.headers.values()].some((v) => v.includes(k))))).toEqual([]);
  });
});
