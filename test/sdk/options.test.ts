/**
 * Per-request options through `keyplex.options()`, model aliases, and event
 * listeners, through the real `openai` SDK.
 */
import OpenAI from 'openai';
import { describe, expect, test, vi } from 'vitest';
import { useManagers } from '../support/scaffold';
import {
  getKeyplexDetails,
  keyplex,
  RequestOptionsError,
  type KeyplexRequestOptions,
} from '../../src/index';
import { calls, chatReply, errorReply, keyRing, provider } from '../support/upstream';
import '../support/setup';
import { record } from '../support/events';

const ONE = 'https://api.one.test/v1';
const TWO = 'https://api.two.test/v1';
const BODY = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hi' }] };

const manage = useManagers({});

/** Two providers that serve any model; `one` comes first. */
function twoProviders(one: () => Response = () => chatReply('gpt-4.1'), two: () => Response = () => chatReply('gpt-4.1')) {
  const ring = keyRing('a', 'b');
  const seenOne = provider(ONE, one);
  const seenTwo = provider(TWO, two);
  const setup = manage({
    providers: { one: { baseURL: ONE, keys: ring.keys.slice(0, 1) }, two: { baseURL: TWO, keys: ring.keys.slice(1) } },
    retry: { baseDelayMs: 0 },
  });
  return { ring, seenOne, seenTwo, ...setup };
}

const TAGS = ['search', 'tenant:acme'];
const METADATA = { userId: 'u_42', attempt: 3, beta: true };

describe('the options header', () => {
  test('is never sent upstream, on the first attempt or on retries', async () => {
    const ring = keyRing('a', 'b');
    const seen = provider(ONE, (_call, index) => (index === 0 ? errorReply(500, 'server_error') : chatReply('gpt-4.1')));
    const { client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, retry: { baseDelayMs: 0 } });

    await client.chat.completions.create(BODY, keyplex.options({ tags: TAGS, metadata: METADATA, deadlineMs: 30_000 }));

    expect(seen).toHaveLength(2);
    for (const call of seen) expect(call.headers.has('x-keyplex-options')).toBe(false);
  });

  test("the SDK's placeholder key is never sent upstream; the provider's key is", async () => {
    const ring = keyRing('a');
    const seen = provider(ONE, () => chatReply('gpt-4.1'));
    const { client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } } });

    await client.chat.completions.create(BODY, keyplex.options({ tags: TAGS }));

    expect(seen[0]?.headers.get('authorization')).toBe(`Bearer ${ring.keys[0]!.key}`);
    expect(JSON.stringify([...seen[0]!.headers])).not.toContain('managed-by-keyplex');
  });
});

describe('tags and metadata', () => {
  test('appear in the request, attempt and success events', async () => {
    const ring = keyRing('a');
    provider(ONE, () => chatReply('gpt-4.1'));
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } } });
    const requests = record(manager, 'request');
    const attempts = record(manager, 'attempt');
    const successes = record(manager, 'success');

    await client.chat.completions.create(BODY, keyplex.options({ tags: TAGS, metadata: METADATA }));

    for (const events of [requests, attempts, successes]) {
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ tags: TAGS, metadata: METADATA });
    }
  });

  test('appear in the retry and failure events', async () => {
    const ring = keyRing('a');
    provider(ONE, () => errorReply(500, 'server_error'));
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, retry: { maxAttempts: 2, baseDelayMs: 0 } });
    const retries = record(manager, 'retry');
    const failures = record(manager, 'failure');

    await client.chat.completions.create(BODY, keyplex.options({ tags: TAGS, metadata: METADATA })).catch(() => undefined);

    expect(retries).toEqual([expect.objectContaining({ tags: TAGS, metadata: METADATA })]);
    expect(failures).toEqual([expect.objectContaining({ tags: TAGS, metadata: METADATA })]);
  });

  test('are empty in events of a request without options', async () => {
    const ring = keyRing('a');
    provider(ONE, () => chatReply('gpt-4.1'));
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } } });
    const successes = record(manager, 'success');

    await client.chat.completions.create(BODY);

    expect(successes[0]).toMatchObject({ tags: [], metadata: {} });
  });
});

describe('provider', () => {
  test('pins the request to that provider', async () => {
    const { seenOne, seenTwo, client } = twoProviders();

    await client.chat.completions.create(BODY, keyplex.options({ provider: 'two' }));
    await client.chat.completions.create(BODY);

    expect(seenTwo).toHaveLength(1);
    expect(seenOne).toHaveLength(1);
    expect(calls.map((c) => c.origin)).toEqual(['https://api.two.test', 'https://api.one.test']);
  });

  test('keeps a failing request on the pinned provider instead of failing over', async () => {
    const { seenOne, seenTwo, client } = twoProviders(undefined, () => errorReply(500, 'server_error'));

    const error = await client.chat.completions.create(BODY, keyplex.options({ provider: 'two' })).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect(seenOne).toHaveLength(0);
    expect(seenTwo.length).toBeGreaterThan(1);
  });

  test('naming a provider that is not configured fails with BadRequestError and no upstream call', async () => {
    const { client } = twoProviders();

    const error = await client.chat.completions.create(BODY, keyplex.options({ provider: 'three' })).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect(getKeyplexDetails(error)?.code).toBe('invalid_request_options');
    expect(calls).toHaveLength(0);
  });
});

describe('deadlineMs', () => {
  test("overrides the manager's deadline for that request", async () => {
    const ring = keyRing('a', 'b');
    const seen = provider(ONE, () => errorReply(429, 'rate_limit_exceeded', { 'retry-after-ms': '20000' }));
    const { client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, deadlineMs: 600_000 });

    // Both keys cool for 20 s: a 10 s deadline cannot wait for them, so it fails at once.
    const error = await client.chat.completions.create(BODY, keyplex.options({ deadlineMs: 10_000 })).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    expect(getKeyplexDetails(error)?.code).toBe('no_key_available');
    expect(seen).toHaveLength(2);
  });
});

describe('malformed options', () => {
  test.each<[string, unknown]>([
    ['tags that are not an array', { tags: 'search' }],
    ['a tag that is not printable ASCII', { tags: ['café'] }],
    ['an empty tag', { tags: [''] }],
    ['metadata that is an array', { metadata: ['x'] }],
    ['a metadata value that is an object', { metadata: { nested: { a: 1 } } }],
    ['a deadline of 0', { deadlineMs: 0 }],
    ['a negative deadline', { deadlineMs: -5 }],
    ['a deadline that is not finite', { deadlineMs: Number.POSITIVE_INFINITY }],
    ['an empty provider', { provider: '' }],
    ['an unknown option', { tag: ['search'] }],
    ['null', null],
  ])('throw RequestOptionsError synchronously: %s', (_name, options) => {
    expect(() => keyplex.options(options as KeyplexRequestOptions)).toThrow(RequestOptionsError);
  });

  test('name the offending option', () => {
    let error: unknown;
    try {
      keyplex.options({ metadata: { ok: 1, bad: { deep: true } as never } });
    } catch (e) {
      error = e;
    }

    expect(error).toBeInstanceOf(RequestOptionsError);
    expect((error as Error).message).toContain('metadata.bad');
  });
});

describe('base request options', () => {
  test('their headers are kept and sent upstream', async () => {
    const ring = keyRing('a');
    const seen = provider(ONE, () => chatReply('gpt-4.1'));
    const { client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } } });

    await client.chat.completions.create(BODY, keyplex.options({ tags: TAGS }, { headers: { 'x-trace-id': 'trace-1', 'x-team': 'search' } }));

    expect(seen[0]?.headers.get('x-trace-id')).toBe('trace-1');
    expect(seen[0]?.headers.get('x-team')).toBe('search');
    expect(seen[0]?.headers.has('x-keyplex-options')).toBe(false);
  });

  test('headers given as a Headers object are kept too', async () => {
    const ring = keyRing('a');
    const seen = provider(ONE, () => chatReply('gpt-4.1'));
    const { client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } } });

    await client.chat.completions.create(BODY, keyplex.options({ tags: TAGS }, { headers: new Headers({ 'x-trace-id': 'trace-2' }) }));

    expect(seen[0]?.headers.get('x-trace-id')).toBe('trace-2');
  });

  test('their other fields are kept', () => {
    const signal = new AbortController().signal;
    // Written as the TSDoc of keyplex.options() shows it: a base without `headers`
    // must type-check too (see the report: it does not, src/request-options.ts).

    const options = keyplex.options({ tags: TAGS }, { timeout: 12_345, signal, maxRetries: 0 });

    expect(options).toMatchObject({ timeout: 12_345, signal, maxRetries: 0 });
    expect(options.headers).toHaveProperty('x-keyplex-options');
  });
});

describe('model aliases', () => {
  test('the public model name is renamed to the upstream name in the body sent', async () => {
    const ring = keyRing('a');
    const seen = provider(ONE, (call) => chatReply(String(call.body?.model)));
    const { client } = manage({ providers: { anthropic: { baseURL: ONE, keys: ring.keys, models: { 'claude-sonnet-4.5': 'claude-sonnet-4-5' } } } });

    await client.chat.completions.create({ ...BODY, model: 'claude-sonnet-4.5' });

    expect(seen[0]?.body?.model).toBe('claude-sonnet-4-5');
  });

  test('the success event carries both the public and the upstream name', async () => {
    const ring = keyRing('a');
    provider(ONE, (call) => chatReply(String(call.body?.model)));
    const { manager, client } = manage({ providers: { anthropic: { baseURL: ONE, keys: ring.keys, models: { 'claude-sonnet-4.5': 'claude-sonnet-4-5' } } } });
    const successes = record(manager, 'success');

    await client.chat.completions.create({ ...BODY, model: 'claude-sonnet-4.5' });

    expect(successes[0]).toMatchObject({ model: 'claude-sonnet-4.5', upstreamModel: 'claude-sonnet-4-5' });
  });

  test('each provider gets its own upstream name on failover', async () => {
    const ring = keyRing('a', 'b');
    const seenOne = provider(ONE, () => errorReply(500, 'server_error'));
    const seenTwo = provider(TWO, (call) => chatReply(String(call.body?.model)));
    const { client } = manage({
      providers: {
        anthropic: { baseURL: ONE, keys: ring.keys.slice(0, 1), models: { 'claude-sonnet-4.5': 'claude-sonnet-4-5' } },
        gateway: { baseURL: TWO, keys: ring.keys.slice(1), models: { 'claude-sonnet-4.5': 'anthropic/claude-sonnet-4.5' } },
      },
      retry: { baseDelayMs: 0 },
    });

    await client.chat.completions.create({ ...BODY, model: 'claude-sonnet-4.5' });

    expect(seenOne.map((c) => c.body?.model)).toEqual(['claude-sonnet-4-5']);
    expect(seenTwo.map((c) => c.body?.model)).toEqual(['anthropic/claude-sonnet-4.5']);
  });
});

describe('listeners', () => {
  test('a listener that throws does not break the request', async () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    const ring = keyRing('a');
    provider(ONE, () => chatReply('gpt-4.1', 'still fine'));
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } } });
    for (const name of ['request', 'attempt', 'success'] as const) {
      manager.on(name, () => {
        throw new Error(`listener of ${name} broke`);
      });
    }

    const reply = await client.chat.completions.create(BODY);

    expect(reply.choices[0]?.message.content).toBe('still fine');
    expect(warn).toHaveBeenCalledTimes(1);
  });

  test('a listener that throws does not stop the listeners after it', async () => {
    vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    const ring = keyRing('a');
    provider(ONE, () => chatReply('gpt-4.1'));
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } } });
    manager.on('success', () => {
      throw new Error('first listener broke');
    });
    const successes = record(manager, 'success');

    await client.chat.completions.create(BODY);

    expect(successes).toHaveLength(1);
  });

  // From JavaScript the compiler does not check the name: a typo would wait silently for an event that never comes.
  test('a listener for an event keyplex does not emit warns once, naming the likely event', () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    const { manager } = manage({ providers: { one: { baseURL: ONE, keys: keyRing('a').keys } } });

    manager.on('sucess' as never, () => undefined);
    manager.once('sucess' as never, () => undefined);
    manager.on('key:disable' as never, () => undefined);
    // Without its family: 'cooldown' for 'key:cooldown', 'open' for 'circuit:open'.
    manager.on('cooldown' as never, () => undefined);
    manager.on('success', () => undefined);

    const seen = warn.mock.calls.map(([message, options]) => ({ message: String(message), code: (options as { code?: string } | undefined)?.code }));
    expect(seen.map((w) => w.code)).toEqual(['KEYPLEX_UNKNOWN_EVENT', 'KEYPLEX_UNKNOWN_EVENT', 'KEYPLEX_UNKNOWN_EVENT']);
    expect(seen[0]!.message).toMatch(/'sucess'.*did you mean 'success'\?/);
    expect(seen[1]!.message).toMatch(/'key:disable'.*did you mean 'key:disabled'\?/);
    expect(seen[2]!.message).toMatch(/'cooldown'.*did you mean 'key:cooldown'\?/);
  });

  test('a listener that is not a function is refused at once', () => {
    const { manager } = manage({ providers: { one: { baseURL: ONE, keys: keyRing('a').keys } } });

    expect(() => manager.on('success', undefined as never)).toThrow(TypeError);
    expect(() => manager.once('success', 'log' as never)).toThrow(/listener of 'success' must be a function/);
  });

  test('a listener whose promise rejects does not break the request', async () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    const ring = keyRing('a');
    provider(ONE, () => chatReply('gpt-4.1'));
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } } });
    manager.on('success', (async () => {
      throw new Error('async listener broke');
    }) as never);

    const reply = await client.chat.completions.create(BODY);
    await new Promise<void>((resolve) => setImmediate(resolve));

    expect(reply.choices).toHaveLength(1);
    expect(warn).toHaveBeenCalledTimes(1);
  });
});
