/**
 * Hooks through the real SDK (docs/hooks-and-cache.md): what `beforeAttempt`
 * and `afterResponse` see and may change, one call per attempt across
 * rotations, and a hook that throws failing that request — `hook_failed`,
 * the hook's message quoted, not retried, nothing else broken.
 */
import OpenAI from 'openai';
import { describe, expect, expectTypeOf, test, vi } from 'vitest';
import { useManagers } from '../support/scaffold';
import { getKeyplexDetails, isKeyplexError, KeyManager, keyplex, type AfterResponseState, type BeforeAttemptState, type KeyManagerOptions } from '../../src/index';
import { ConfigError } from '../../src/index';
import { record } from '../support/events';
import { chatChunks, chatReply, errorReply, keyRing, provider, sseReply, type UpstreamCall } from '../support/upstream';
import '../support/setup';
import { fakeClock, until } from '../support/time';
import { caught } from '../support/caught';

const ONE = 'https://api.one.test/v1';
const MODEL = 'gpt-4.1';
const BODY = { model: MODEL, messages: [{ role: 'user' as const, content: 'my card is 4111 1111 1111 1111' }] };

const managed = useManagers();

function manage(hooks: KeyManagerOptions['hooks'], extra: Partial<KeyManagerOptions> = {}) {
  const ring = keyRing('a', 'b');
  return { ring, ...managed({ providers: { one: { baseURL: ONE, keys: ring.keys, headers: { 'x-provider': 'p' } } }, hooks, ...extra }) };
}

interface Row {
  name: string;
  hooks: KeyManagerOptions['hooks'];
  /** What the upstream call and the hook saw must show. */
  check: (call: UpstreamCall, seen: unknown[]) => void;
}

const rows: Row[] = [
  {
    name: 'a hook adds and changes headers; Authorization is not among them',
    hooks: {
      beforeAttempt: (state) => {
        expect(state.headers.has('authorization')).toBe(false);
        state.headers.set('x-trace', 't-1');
        state.headers.set('x-provider', 'from-hook'); // the provider's configured headers win
      },
    },
    check: (call) => {
      expect(call.headers.get('x-trace')).toBe('t-1');
      expect(call.headers.get('x-provider')).toBe('p');
      expect(call.headers.get('authorization')).toMatch(/^Bearer /);
    },
  },
  {
    name: 'a hook that did not ask for the body gets none',
    hooks: { beforeAttempt: (state) => void expect(state.body).toBeUndefined() },
    check: (call) => expect(call.body).toEqual(BODY),
  },
  {
    name: 'a hook reads the JSON body it asked for, and the state names the attempt',
    hooks: {
      beforeAttempt: {
        body: 'json',
        run: (state) => {
          expect(state.body).toEqual(BODY);
          expect(state).toMatchObject({ attempt: 1, provider: 'one', keyId: 'a', model: MODEL, upstreamModel: MODEL, method: 'POST', path: '/chat/completions' });
        },
      },
    },
    check: (call) => expect(call.body).toEqual(BODY),
  },
  {
    name: 'a hook replaces the body by returning a new one (redaction)',
    hooks: {
      beforeAttempt: {
        body: 'json',
        run: (state) => ({ ...state.body, messages: [{ role: 'user', content: 'my card is [redacted]' }] }),
      },
    },
    check: (call) => expect(call.body?.messages).toEqual([{ role: 'user', content: 'my card is [redacted]' }]),
  },
  {
    name: 'a change made in place is sent too (async hook)',
    hooks: {
      beforeAttempt: {
        body: 'json',
        run: async (state) => {
          await Promise.resolve();
          state.body!.temperature = 0;
        },
      },
    },
    check: (call) => expect(call.body?.temperature).toBe(0),
  },
  {
    name: 'hooks run in order, each seeing the one before',
    hooks: {
      beforeAttempt: [
        { body: 'json', run: (state) => ({ ...state.body, user: 'first' }) },
        { body: 'json', run: (state) => ({ ...state.body, user: `${String(state.body!.user)}+second` }) },
      ],
    },
    check: (call) => expect(call.body?.user).toBe('first+second'),
  },
  {
    name: 'afterResponse reads status, headers, latency and the JSON body',
    hooks: {
      afterResponse: {
        body: 'json',
        run: (state) => {
          expect(state.status).toBe(200);
          expect(state.headers.get('content-type')).toContain('json');
          expect(state.latencyMs).toBeGreaterThanOrEqual(0);
          expect(state.stream).toBe(false);
          expect((state.body as { choices: unknown[] }).choices).toHaveLength(1);
        },
      },
    },
    check: () => {},
  },
  {
    name: 'afterResponse with body: text gets the raw text; without, no body',
    hooks: {
      afterResponse: [
        { body: 'text', run: (state) => void expect(typeof state.body).toBe('string') },
        (state) => void expect(state.body).toBeUndefined(),
      ],
    },
    check: () => {},
  },
];

describe('hooks see and change what they should', () => {
  test.each(rows)('$name', async (row) => {
    const calls = provider(ONE, () => chatReply(MODEL, 'fine'));
    const { client } = manage(row.hooks);
    const reply = await client.chat.completions.create(BODY);
    expect(reply.choices[0]!.message.content).toBe('fine');
    expect(calls).toHaveLength(1);
    row.check(calls[0]!, []);
  });
});

describe('an afterResponse hook that asks for the body, on a binary answer', () => {
  test.each(['text', 'json'] as const)("body: '%s': the audio reaches the caller byte for byte, the hook gets no body", async (body) => {
    const audio = new Uint8Array(512).map((_, i) => i & 255);
    provider(ONE, () => new Response(audio, { headers: { 'content-type': 'audio/mpeg' } }));
    const seen: unknown[] = [];
    const { client } = manage({ afterResponse: { body, run: (state: AfterResponseState) => void seen.push([state.status, state.body]) } });

    const speech = await client.audio.speech.create({ model: 'gpt-4o-mini-tts', voice: 'alloy', input: 'hi' });

    expect(new Uint8Array(await speech.arrayBuffer())).toEqual(audio);
    expect(seen).toEqual([[200, undefined]]);
  });
});

describe('a hook that throws fails that request clearly', () => {
  const throwing: { name: string; hooks: KeyManagerOptions['hooks']; sent: number; says: RegExp[] }[] = [
    { name: 'beforeAttempt throws', hooks: { beforeAttempt: () => { throw new Error('blocked by guardrail'); } }, sent: 0, says: [/beforeAttempt\[0\]/, /nothing was sent/, /blocked by guardrail/] },
    { name: 'beforeAttempt rejects', hooks: { beforeAttempt: [() => {}, async () => Promise.reject(new Error('policy down'))] }, sent: 0, says: [/beforeAttempt\[1\]/, /policy down/] },
    { name: 'beforeAttempt sets Authorization', hooks: { beforeAttempt: (s) => void s.headers.set('authorization', 'Bearer x') }, sent: 0, says: [/Authorization/] },
    { name: 'beforeAttempt returns a body it did not ask for', hooks: { beforeAttempt: () => ({ model: 'x' }) } as KeyManagerOptions['hooks'], sent: 0, says: [/body: "json"/] },
    { name: 'afterResponse throws', hooks: { afterResponse: { body: 'json', run: () => { throw new Error('output guardrail'); } } }, sent: 1, says: [/afterResponse\[0\]/, /answer was dropped/, /output guardrail/] },
    { name: 'afterResponse rejects', hooks: { afterResponse: async () => { throw new Error('async no'); } }, sent: 1, says: [/async no/] },
  ];

  test.each(throwing)('$name', async ({ hooks, sent, says }) => {
    const calls = provider(ONE, () => chatReply(MODEL));
    const { client, manager } = manage(hooks);
    const failures = record(manager, 'failure');
    const error = await caught(() => client.chat.completions.create(BODY));
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect(isKeyplexError(error, 'hook_failed')).toBe(true);
    expect(error.message).toMatch(/^500 keyplex:/);
    for (const pattern of says) expect(error.message).toMatch(pattern);
    // Not retried on the other key.
    expect(calls).toHaveLength(sent);
    expect(getKeyplexDetails(error)?.attempts).toHaveLength(sent);
    expect(failures.map((f) => f.error.code)).toEqual(['hook_failed']);
    const stats = manager.stats();
    expect(stats.totals.failures).toEqual({ hook_failed: 1 });
    expect(stats.totals.inFlight).toBe(0);
    expect(stats.providers.one!.keys.every((k) => k.inFlight === 0 && k.status === 'active')).toBe(true);
    // The manager goes on serving.
    provider(ONE, () => chatReply(MODEL, 'again'));
  });

  test('afterResponse throws on an answer: the tokens the upstream counted stay counted (not refunded as for a request never sent)', async () => {
    provider(ONE, () => chatReply(MODEL));
    const ring = keyRing('a');
    const { client, manager } = managed({ providers: { one: { baseURL: ONE, keys: ring.keys, tpm: 10_000 } }, hooks: { afterResponse: () => { throw new Error('output guardrail'); } } });
    await caught(() => client.chat.completions.create(BODY));
    expect(manager.stats().providers.one!.keys[0]!.headroom).toBeLessThan(1);
  });

  test('afterResponse throws on a 429: the key still rests for the wait the 429 asks, so the next request goes to the other key', async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    const calls = provider(ONE, (call) => (ring.idOf(call.key) === 'a' ? errorReply(429, 'rate_limit_exceeded', { 'retry-after': '30' }) : chatReply(MODEL, 'from b')));
    // A hook that assumes every answer is a completion: it throws on the 429's error body.
    const hook = { body: 'json' as const, run: (s: AfterResponseState) => void (s.body as { choices: unknown[] }).choices.length };
    const { client, manager } = managed({ providers: { one: { baseURL: ONE, keys: ring.keys } }, keySelection: 'round-robin', hooks: { afterResponse: hook } });
    expect(getKeyplexDetails(await caught(() => client.chat.completions.create(BODY)))?.code).toBe('hook_failed');
    expect(ring.ids(calls)).toEqual(['a']);
    const key = manager.stats().providers.one!.keys.find((k) => k.id === 'a')!;
    expect(key).toMatchObject({ status: 'cooling', cooldownRemainingMs: 30_000 });
    // Round-robin would pick 'a' again for some of these: the cooldown keeps every one on 'b'.
    for (let i = 0; i < 3; i++) await client.chat.completions.create(BODY);
    expect(ring.ids(calls)).toEqual(['a', 'b', 'b', 'b']);
  });

  test.each([
    ['refuses the key: it is disabled', errorReply(403, 'unsupported_country_region_territory'), 'disabled'],
    ['says the key cannot use the model (model_not_found): it stays in use', errorReply(403, 'model_not_found', {}, 'Project `proj_fake0001` does not have access to model `gpt-4.1`'), 'active'],
  ])('afterResponse throws on a 403 whose body %s', async (_says, answer, status) => {
    const ring = keyRing('a', 'b');
    provider(ONE, (call) => (ring.idOf(call.key) === 'a' ? answer.clone() : chatReply(MODEL, 'from b')));
    // A hook that assumes every answer is a completion: it throws on the 403's error body.
    const hook = { body: 'json' as const, run: (s: AfterResponseState) => void (s.body as { choices: unknown[] }).choices.length };
    const { client, manager } = managed({ providers: { one: { baseURL: ONE, keys: ring.keys } }, keySelection: 'round-robin', hooks: { afterResponse: hook } });
    expect(getKeyplexDetails(await caught(() => client.chat.completions.create(BODY)))?.code).toBe('hook_failed');
    expect(manager.stats().providers.one!.keys.find((k) => k.id === 'a')!.status).toBe(status);
  });

  test('a request after a failed hook is served (the hook throws once)', async () => {
    provider(ONE, () => chatReply(MODEL, 'ok'));
    let first = true;
    const { client } = manage({ beforeAttempt: () => { if (first) { first = false; throw new Error('once'); } } });
    await caught(() => client.chat.completions.create(BODY));
    const reply = await client.chat.completions.create(BODY);
    expect(reply.choices[0]!.message.content).toBe('ok');
  });
});

describe('headers a hook sets that keyplex does not forward', () => {
  test('hop-by-hop headers (which fetch refuses to send) are dropped, not sent as connection failures on every key', async () => {
    const calls = provider(ONE, () => chatReply(MODEL, 'fine'));
    const { client, manager } = manage({
      beforeAttempt: (s) => {
        for (const [name, value] of [['keep-alive', 'timeout=5'], ['transfer-encoding', 'chunked'], ['expect', '100-continue'], ['upgrade', 'h2c'], ['connection', 'close'], ['x-kept', '1']]) s.headers.set(name!, value!);
      },
    });
    const reply = await client.chat.completions.create(BODY);
    expect(reply.choices[0]!.message.content).toBe('fine');
    expect(calls).toHaveLength(1);
    expect(calls[0]!.headers.get('x-kept')).toBe('1');
    for (const name of ['keep-alive', 'expect', 'upgrade']) expect(calls[0]!.headers.has(name)).toBe(false);
    expect(manager.stats().providers.one!.keys.map((k) => k.failures)).toEqual([{}, {}]);
  });

  test('the headers keyplex drops from the caller (organization, project, api-key) are dropped from a hook too: a wrong one would get the key disabled', async () => {
    const calls = provider(ONE, () => chatReply(MODEL));
    const { client } = manage({
      beforeAttempt: (s) => {
        s.headers.set('openai-organization', 'org-other');
        s.headers.set('openai-project', 'proj-other');
        s.headers.set('api-key', 'not-a-key');
      },
    });
    await client.chat.completions.create(BODY);
    for (const name of ['openai-organization', 'openai-project', 'api-key']) expect(calls[0]!.headers.has(name)).toBe(false);
  });
});

describe('a hook that breaks the body, or throws something odd, fails that request as hook_failed', () => {
  const odd: { name: string; hooks: KeyManagerOptions['hooks']; says: RegExp }[] = [
    { name: 'a body changed in place to hold a BigInt', hooks: { beforeAttempt: { body: 'json', run: (s) => void (s.body!.seed = 1n) } }, says: /beforeAttempt\[0\].*not be sent as JSON.*BigInt/ },
    { name: 'a returned body that refers to itself', hooks: { beforeAttempt: { body: 'json', run: (s) => { const body: Record<string, unknown> = { ...s.body }; body.self = body; return body; } } }, says: /not be sent as JSON/ },
    { name: 'a body made to stream where the caller did not ask for a stream', hooks: { beforeAttempt: { body: 'json', run: (s) => void (s.body!.stream = true) } }, says: /changed `stream`/ },
    { name: 'a returned Map (not a plain object)', hooks: { beforeAttempt: { body: 'json', run: () => new Map() as never } }, says: /other than a JSON object body/ },
    { name: 'beforeAttempt throws an object that cannot be made a string', hooks: { beforeAttempt: () => { throw Object.create(null); } }, says: /beforeAttempt\[0\].*an object/ },
    { name: 'afterResponse throws an object whose toString throws', hooks: { afterResponse: () => { throw { toString: () => { throw new Error('no'); } }; } }, says: /afterResponse\[0\].*an object/ },
  ];

  test.each(odd)('$name', async ({ hooks, says }) => {
    provider(ONE, (call) => (call.body?.stream === true ? sseReply(chatChunks(MODEL, ['a'], true)) : chatReply(MODEL)));
    const ring = keyRing('a', 'b');
    const { client, manager } = managed({ providers: { one: { baseURL: ONE, keys: ring.keys, rpm: 4 } }, hooks });
    const error = await caught(() => client.chat.completions.create(BODY));
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect(isKeyplexError(error, 'hook_failed')).toBe(true);
    expect(error.message).toMatch(says);
    expect(manager.stats().totals.failures).toEqual({ hook_failed: 1 });
    // Nothing held: no request in flight, and the rate-limit reservation of an unsent attempt given back.
    const keys = manager.stats().providers.one!.keys;
    expect(manager.stats().totals.inFlight).toBe(0);
    expect(keys.filter((k) => k.requests === 0).every((k) => k.headroom === 1)).toBe(true);
  });
});

describe('hooks run per attempt', () => {
  test('across a rotation: one beforeAttempt and one afterResponse per attempt, with its key and status', async () => {
    const calls = provider(ONE, (_call, i) => (i === 0 ? errorReply(429, 'rate_limit_exceeded', { 'retry-after-ms': '60000' }) : chatReply(MODEL)));
    const before: BeforeAttemptState[] = [];
    const after: Pick<AfterResponseState, 'attempt' | 'keyId' | 'status' | 'body'>[] = [];
    const { client } = manage({
      beforeAttempt: { body: 'json', run: (s) => void before.push(s) },
      afterResponse: { body: 'json', run: (s) => void after.push({ attempt: s.attempt, keyId: s.keyId, status: s.status, body: s.body }) },
    });
    await client.chat.completions.create(BODY);
    expect(calls).toHaveLength(2);
    expect(before.map((s) => [s.attempt, s.keyId])).toEqual([[1, 'a'], [2, 'b']]);
    expect(after.map((s) => [s.attempt, s.keyId, s.status])).toEqual([[1, 'a', 429], [2, 'b', 200]]);
    expect((after[0]!.body as { error: { code: string } }).error.code).toBe('rate_limit_exceeded');
  });

  test('a body replaced on attempt 1 does not leak into attempt 2: each starts from the caller’s body', async () => {
    const calls = provider(ONE, (_call, i) => (i === 0 ? errorReply(503, null) : chatReply(MODEL)));
    const { client } = manage({ beforeAttempt: { body: 'json', run: (s) => ({ ...s.body, seen: `${String(s.body!.seen ?? '')}x` }) } });
    await client.chat.completions.create(BODY);
    expect(calls.map((c) => c.body?.seen)).toEqual(['x', 'x']);
  });

  test('a hook that stops a streamed request from streaming fails it (hook_failed), nothing sent', async () => {
    const calls = provider(ONE, () => chatReply(MODEL));
    const { client } = manage({ beforeAttempt: { body: 'json', run: (s) => ({ ...s.body, stream: false }) } });
    const error = await caught(() => client.chat.completions.create({ ...BODY, stream: true }));
    expect(isKeyplexError(error, 'hook_failed')).toBe(true);
    expect(error.message).toMatch(/beforeAttempt\[0\].*changed `stream`/);
    expect(calls).toHaveLength(0);
  });

  test('a streamed answer: afterResponse sees it as a stream with no body; the caller gets every chunk', async () => {
    provider(ONE, () => sseReply(chatChunks(MODEL, ['a', 'b'], true)));
    const seen: AfterResponseState[] = [];
    const { client } = manage({ afterResponse: { body: 'json', run: (s) => void seen.push(s) } });
    const stream = await client.chat.completions.create({ ...BODY, stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe('ab');
    expect(seen.map((s) => [s.stream, s.body])).toEqual([[true, undefined]]);
  });

  test('the caller’s keyplex options and abort still apply: tags reach the hook', async () => {
    provider(ONE, () => chatReply(MODEL));
    const tags: (readonly string[])[] = [];
    const { client } = manage({ beforeAttempt: (s) => void tags.push(s.tags) });
    await client.chat.completions.create(BODY, keyplex.options({ tags: ['tenant-a'] }));
    expect(tags).toEqual([['tenant-a']]);
  });
});

describe('a slow hook', () => {
  test.each([undefined, 'json'] as const)('afterResponse (body: %s) slower than attemptTimeoutMs: its time is not the upstream\'s, the answer stands (one call, no timeout)', async (body) => {
    fakeClock();
    const calls = provider(ONE, () => chatReply(MODEL, 'fine'));
    let running = 0;
    const slow = () =>
      new Promise<void>((resolve) => {
        running++;
        setTimeout(resolve, 2_000);
      });
    const { client, manager } = manage({ afterResponse: body === undefined ? slow : { body, run: slow } }, { attemptTimeoutMs: 1_000 });
    const pending = client.chat.completions.create(BODY);
    await until(() => running === 1, 'the hook');
    await vi.advanceTimersByTimeAsync(2_000);
    expect((await pending).choices[0]!.message.content).toBe('fine');
    expect(calls).toHaveLength(1);
    expect(manager.stats().totals.retries).toBe(0);
  });

  test('the attempt timeout still bounds a body that stalls after a slow afterResponse hook', async () => {
    fakeClock();
    // A fetch of our own: the stalled body never ends, and errors when the attempt's signal aborts (as fetch's does).
    const stalled = (signal: AbortSignal) =>
      new Response(
        new ReadableStream({
          start: (c) => {
            c.enqueue(new TextEncoder().encode('{"id":'));
            signal.addEventListener('abort', () => c.error(signal.reason));
          },
        }),
        { headers: { 'content-type': 'application/json' } },
      );
    const calls: number[] = [];
    const fetch = (async (_url: string, init: RequestInit) => (calls.push(calls.length) === 1 ? stalled(init.signal!) : chatReply(MODEL, 'second'))) as unknown as typeof globalThis.fetch;
    let hooks = 0;
    const slow = () => new Promise<void>((resolve) => {
      hooks++;
      setTimeout(resolve, 600);
    });
    const { client } = manage({ afterResponse: slow }, { attemptTimeoutMs: 1_000, fetch });
    const pending = client.chat.completions.create(BODY);
    await until(() => hooks === 1, 'the first hook');
    await vi.advanceTimersByTimeAsync(600);
    // The stalled body: the attempt's timeout, its time in the hook left out, sends the second attempt.
    await vi.advanceTimersByTimeAsync(1_000);
    await until(() => hooks === 2, 'the second hook');
    await vi.advanceTimersByTimeAsync(600);
    expect((await pending).choices[0]!.message.content).toBe('second');
    expect(calls).toHaveLength(2);
  });
});

describe('a hook that never answers', () => {
  // A thenable that is not a native promise (another realm's, a library's) is awaited the same way.
  const points = [
    ['beforeAttempt', () => new Promise<void>(() => {})],
    ['afterResponse', () => new Promise<void>(() => {})],
    ['beforeAttempt', () => ({ then: () => {} }) as unknown as Promise<void>],
    ['afterResponse', () => ({ then: () => {} }) as unknown as Promise<void>],
  ] as const;
  test.each(points)('%s (%#): the request ends at its deadline (504 deadline_exceeded), not when the hook does', async (point, never) => {
    fakeClock();
    provider(ONE, () => chatReply(MODEL));
    const { client, manager } = manage({ [point]: never });
    const pending = caught(() => client.chat.completions.create(BODY, keyplex.options({ deadlineMs: 1_000 })));
    await vi.advanceTimersByTimeAsync(1_000);
    const error = await pending;
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect(isKeyplexError(error, 'deadline_exceeded')).toBe(true);
    const stats = manager.stats();
    expect(stats.totals.inFlight).toBe(0);
    expect(stats.providers.one!.keys.every((k) => k.inFlight === 0)).toBe(true);
  });
});

describe('hooks never see a key', () => {
  test('no key, nor any 8 characters of one, in what either hook is given', async () => {
    provider(ONE, () => chatReply(MODEL));
    const seen: string[] = [];
    const dump = (state: BeforeAttemptState | AfterResponseState) => {
      const { headers, signal: _signal, ...rest } = state;
      seen.push(JSON.stringify(rest), JSON.stringify([...headers]));
    };
    const { client, ring } = manage({ beforeAttempt: { body: 'json', run: dump }, afterResponse: { body: 'text', run: dump } });
    await client.chat.completions.create(BODY);
    expect(seen).toHaveLength(4);
    for (const { key } of ring.keys) for (let i = 0; i + 8 <= key.length; i++) for (const text of seen) expect(text).not.toContain(key.slice(i, i + 8));
  });

  test('redactReplies: false: a 200 carrying an error object (OpenRouter) that echoes the key reaches the hook and the caller without it', async () => {
    provider(ONE, (call) => new Response(JSON.stringify({ error: { message: `Upstream rejected key ${call.key}`, code: 502 } }), { headers: { 'content-type': 'application/json' } }));
    const seen: unknown[] = [];
    const { client, ring } = manage({ afterResponse: [{ body: 'text', run: (s) => void seen.push(s.body) }, { body: 'json', run: (s) => void seen.push(s.body) }] }, { redactReplies: false });
    const error = await caught(() => client.chat.completions.create(BODY));
    expect(seen.length).toBeGreaterThan(0);
    const text = JSON.stringify([seen, error.message, (error as { error?: unknown }).error, getKeyplexDetails(error)]);
    expect(text).toContain('rejected key [key a]');
    for (const { key } of ring.keys) for (let i = 0; i + 8 <= key.length; i++) expect(text).not.toContain(key.slice(i, i + 8));
  });

  test('types: the states name the key by id only', () => {
    expectTypeOf<BeforeAttemptState>().not.toHaveProperty('key');
    expectTypeOf<AfterResponseState>().not.toHaveProperty('key');
    expectTypeOf<BeforeAttemptState['keyId']>().toEqualTypeOf<string>();
  });
});

describe('hooks options are validated', () => {
  test.each([
    [{ beforeAttempt: 1 }, 'hooks.beforeAttempt', /a function/],
    [{ beforeAttempt: [() => {}, { run: 'x' }] }, 'hooks.beforeAttempt[1].run', /hook function/],
    [{ afterResponse: { run: () => {}, body: 'xml' } }, 'hooks.afterResponse.body', /'json' or 'text'/],
    [{ beforeAttempt: { run: () => {}, body: 'text' } }, 'hooks.beforeAttempt.body', /'json'/],
    [{ beforeRequest: () => {} }, 'hooks.beforeRequest', /beforeAttempt/],
    ['yes', 'hooks', /an object/],
  ])('%j → %s', (hooks, field, says) => {
    const error = (() => {
      try {
        new KeyManager({ providers: { one: { baseURL: ONE, keys: keyRing('a').keys } }, hooks: hooks as never });
      } catch (e) {
        return e as ConfigError;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error!.field).toBe(field);
    expect(error!.message).toMatch(says);
  });
});
