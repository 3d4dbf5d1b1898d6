/**
 * The exact response cache through the real SDK (docs/hooks-and-cache.md):
 * identical non-streaming requests within the TTL answered without a call,
 * `x-keyplex-cache: hit`, `cache:hit` / `cache:miss`, the saved cost in
 * `stats().cache`; never across tenants unless configured; bounded.
 */
import OpenAI from 'openai';
import { describe, expect, test, vi } from 'vitest';
import { useManagers } from '../support/scaffold';
import { ConfigError, isKeyplexError, KeyManager, keyplex, MemoryStore, type KeyManagerOptions, type StateStore } from '../../src/index';
import { caught } from '../support/caught';
import { Lru } from '../../src/cache/lru';
import { canonicalJson } from '../../src/cache/key';
import { record } from '../support/events';
import { chatChunks, chatReply, deferred, errorReply, keyRing, provider, sseReply } from '../support/upstream';
import { fakeClock } from '../support/time';
import '../support/setup';

const ONE = 'https://api.one.test/v1';
const MODEL = 'gpt-4.1';
const BODY = { model: MODEL, messages: [{ role: 'user' as const, content: 'capital of France?' }] };

const managed = useManagers();

function manage(cache: KeyManagerOptions['cache'], extra: Partial<KeyManagerOptions> = {}) {
  return managed({ providers: { one: { baseURL: ONE, keys: keyRing('a', 'b').keys } }, cache, ...extra });
}

/** A reply numbered by the call, so a cached answer is told from a fresh one. */
function numbered() {
  return provider(ONE, (_call, i) => chatReply(MODEL, `answer ${i + 1}`, { prompt: 1_000_000, completion: 0 }));
}

async function ask(client: OpenAI, body: object = BODY, options = {}) {
  const { data, response } = await client.chat.completions.create(body as typeof BODY, options).withResponse();
  return { text: data.choices[0]!.message.content, cache: response.headers.get('x-keyplex-cache') };
}

test('cache: false is no cache (accepted by the types as by the check)', async () => {
  const calls = numbered();
  const { client } = manage(false);
  expect(await ask(client)).toEqual({ text: 'answer 1', cache: null });
  expect(await ask(client)).toEqual({ text: 'answer 2', cache: null });
  expect(calls).toHaveLength(2);
});

describe('hits and misses', () => {
  test('the second identical request is answered from the cache: no call, the header, the events, the saved cost', async () => {
    const calls = numbered();
    const { client, manager } = manage({ ttlMs: 60_000 });
    const hits = record(manager, 'cache:hit');
    const misses = record(manager, 'cache:miss');
    expect(await ask(client)).toEqual({ text: 'answer 1', cache: null });
    expect(await ask(client)).toEqual({ text: 'answer 1', cache: 'hit' });
    expect(calls).toHaveLength(1);
    expect(misses).toHaveLength(1);
    expect(hits).toHaveLength(1);
    // gpt-4.1: $2 per million input tokens; the reply used a million.
    expect(hits[0]).toMatchObject({ provider: 'one', model: MODEL, path: '/chat/completions', savedUsd: 2 });
    const stats = manager.stats();
    expect(stats.cache).toMatchObject({ hits: 1, misses: 1, savedUsd: 2, entries: 1 });
    expect(stats.totals).toMatchObject({ requests: 2, successes: 2, costUsd: 2 });
  });

  test("a hit's keyplex headers: x-keyplex-cache always, the provider and 0 attempts with replyHeaders", async () => {
    numbered();
    const headersOf = async (client: OpenAI) => {
      const { response } = await client.chat.completions.create(BODY).withResponse();
      return Object.fromEntries([...response.headers].filter(([name]) => name.startsWith('x-keyplex-')));
    };
    const plain = manage({ ttlMs: 60_000 });
    await headersOf(plain.client);
    expect(await headersOf(plain.client)).toEqual({ 'x-keyplex-cache': 'hit' });
    const full = manage({ ttlMs: 60_000 }, { replyHeaders: true });
    const requests = record(full.manager, 'request');
    expect(await headersOf(full.client)).toMatchObject({ 'x-keyplex-attempts': '1', 'x-keyplex-provider': 'one' });
    expect(await headersOf(full.client)).toEqual({ 'x-keyplex-cache': 'hit', 'x-keyplex-attempts': '0', 'x-keyplex-provider': 'one', 'x-keyplex-request-id': requests[1]!.requestId });
  });

  test('the body is compared canonically: key order does not matter, any other difference does', async () => {
    const calls = numbered();
    const { client } = manage({ ttlMs: 60_000 });
    await ask(client, { model: MODEL, messages: BODY.messages, temperature: 0 });
    expect((await ask(client, { temperature: 0, messages: BODY.messages, model: MODEL })).cache).toBe('hit');
    expect((await ask(client, { temperature: 0.1, messages: BODY.messages, model: MODEL })).cache).toBe(null);
    expect(calls).toHaveLength(2);
  });

  test('identical requests in flight at once are each sent (no coalescing), as the docs say; the next one hits', async () => {
    const held = deferred();
    const calls = provider(ONE, async (_call, i) => {
      await held.promise;
      return chatReply(MODEL, `answer ${i + 1}`);
    });
    // Known limits: no key waits for a first answer to learn them, so all five are sent at once.
    const { client, manager } = manage({ ttlMs: 60_000 }, { providers: { one: { baseURL: ONE, keys: keyRing('a', 'b').keys, rpm: 1_000 } } });
    const misses = record(manager, 'cache:miss');
    const all = Promise.all(Array.from({ length: 5 }, () => ask(client)));
    await vi.waitFor(() => expect(calls).toHaveLength(5));
    held.resolve();
    expect((await all).map((r) => r.cache)).toEqual([null, null, null, null, null]);
    expect(misses).toHaveLength(5);
    expect((await ask(client)).cache).toBe('hit');
    expect(manager.stats().cache).toMatchObject({ hits: 1, misses: 5, entries: 1 });
  });

  test('the TTL: a hit until ttlMs has passed, a call after', async () => {
    fakeClock();
    const calls = numbered();
    const { client } = manage({ ttlMs: 10_000 });
    await ask(client);
    vi.advanceTimersByTime(9_999);
    expect(await ask(client)).toEqual({ text: 'answer 1', cache: 'hit' });
    vi.advanceTimersByTime(1);
    expect(await ask(client)).toEqual({ text: 'answer 2', cache: null });
    expect(calls).toHaveLength(2);
  });

  test('not cached: streams, error answers', async () => {
    const calls = provider(ONE, (call, i) => (call.body?.stream ? sseReply(chatChunks(MODEL, ['x'], true)) : i < 2 ? errorReply(400, 'invalid_request_error') : chatReply(MODEL)));
    const { client, manager } = manage({ ttlMs: 60_000 });
    for (let i = 0; i < 2; i++) await expect(client.chat.completions.create(BODY)).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    for (let i = 0; i < 2; i++) for await (const _ of await client.chat.completions.create({ ...BODY, stream: true })) void _;
    expect(calls).toHaveLength(4);
    expect(manager.stats().cache).toMatchObject({ hits: 0, misses: 2, entries: 0 });
  });

  test('not cached: JSON requests that create or change something (batches, vector stores, fine-tuning jobs) and answers that are not JSON (speech): each is sent, none counted as a miss', async () => {
    let batch = 0;
    const calls = provider(ONE, (call) => {
      if (call.path === '/audio/speech') return new Response(new Uint8Array([1, 2, 3]), { headers: { 'content-type': 'audio/mpeg' } });
      if (call.path === '/vector_stores') return Response.json({ id: `vs_${++batch}`, object: 'vector_store' });
      if (call.path === '/fine_tuning/jobs') return Response.json({ id: `ftjob_${++batch}`, object: 'fine_tuning.job' });
      return Response.json({ id: `batch_${++batch}`, object: 'batch', status: 'validating' });
    });
    const { client, manager } = manage({ ttlMs: 60_000 });
    const created: string[] = [];
    for (let i = 0; i < 2; i++) {
      created.push((await client.batches.create({ input_file_id: 'file-1', endpoint: '/v1/chat/completions', completion_window: '24h' })).id);
      created.push((await client.vectorStores.create({ name: 'docs' })).id);
      created.push((await client.fineTuning.jobs.create({ model: 'gpt-4.1-mini', training_file: 'file-2' })).id);
      await (await client.audio.speech.create({ model: 'gpt-4o-mini-tts', voice: 'alloy', input: 'hi' })).arrayBuffer();
    }
    expect(calls).toHaveLength(8);
    expect(new Set(created).size).toBe(6);
    expect(manager.stats().cache).toMatchObject({ hits: 0, misses: 0, entries: 0 });
  });

  test('not cached: a background response (responses.create({ background: true })): each starts a run of its own, none counted as a miss', async () => {
    let run = 0;
    const calls = provider(ONE, () => Response.json({ id: `resp_${++run}`, object: 'response', status: 'queued', model: MODEL, output: [], usage: null }));
    const { client, manager } = manage({ ttlMs: 60_000 });
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) ids.push((await client.responses.create({ model: MODEL, input: 'research this', background: true })).id);
    expect(calls).toHaveLength(2);
    expect(ids).toEqual(['resp_1', 'resp_2']);
    expect(manager.stats().cache).toMatchObject({ hits: 0, misses: 0, entries: 0 });
  });

  test('off by default: no cache stats, every request sent', async () => {
    const calls = numbered();
    const { manager, client } = managed({ providers: { one: { baseURL: ONE, keys: keyRing('a').keys } } });
    await ask(client);
    await ask(client);
    expect(calls).toHaveLength(2);
    expect(manager.stats().cache).toBeUndefined();
  });
});

describe('tenants', () => {
  test.each([
    ['tenant (default): other tags miss', undefined, { tags: ['a'] }, { tags: ['b'] }, false],
    ['tenant (default): other metadata misses', undefined, { tags: ['a'], metadata: { user: 'u1' } }, { tags: ['a'], metadata: { user: 'u2' } }, false],
    ['tenant (default): same tags in another order hit', undefined, { tags: ['a', 'b'] }, { tags: ['b', 'a'] }, true],
    ['tags: other metadata hits', 'tags', { tags: ['a'], metadata: { user: 'u1' } }, { tags: ['a'], metadata: { user: 'u2' } }, true],
    ['tags: other tags miss', 'tags', { tags: ['a'] }, { tags: ['b'] }, false],
    ['none: everyone shares', 'none', { tags: ['a'] }, { tags: ['b'] }, true],
    ['a function: its string decides', (r: { metadata: Record<string, unknown> }) => String(r.metadata.org), { metadata: { org: 'o1', user: 'u1' } }, { metadata: { org: 'o1', user: 'u2' } }, true],
  ] as const)('%s', async (_name, partitionBy, first, second, shared) => {
    numbered();
    const { client } = manage({ ttlMs: 60_000, ...(partitionBy === undefined ? {} : { partitionBy: partitionBy as never }) });
    await ask(client, BODY, keyplex.options(first as never));
    expect((await ask(client, BODY, keyplex.options(second as never))).cache).toBe(shared ? 'hit' : null);
  });

  test.each([
    ['throws', () => { throw new Error('no tenant on this request'); }, /cache\.partitionBy.*threw.*no tenant on this request/],
    ['returns undefined (a field the request lacks)', (r: { metadata: Record<string, unknown> }) => r.metadata.org, /cache\.partitionBy.*returned undefined, not a string/],
  ] as const)('a partitionBy function that %s fails the request as hook_failed, nothing sent or shared', async (_name, partitionBy, says) => {
    const calls = numbered();
    const { client, manager } = manage({ ttlMs: 60_000, partitionBy: partitionBy as never });
    const failures = record(manager, 'failure');
    for (const user of ['u1', 'u2']) {
      const error = await caught(() => ask(client, BODY, keyplex.options({ metadata: { user } })));
      expect(error).toBeInstanceOf(OpenAI.InternalServerError);
      expect(isKeyplexError(error, 'hook_failed')).toBe(true);
      expect(error.message).toMatch(says);
    }
    expect(calls).toHaveLength(0);
    expect(failures.map((f) => f.error.code)).toEqual(['hook_failed', 'hook_failed']);
    expect(manager.stats().cache).toMatchObject({ hits: 0, misses: 0, entries: 0 });
    expect(manager.stats().totals.inFlight).toBe(0);
  });

  test('a request pinned to a provider never gets another provider’s answer', async () => {
    numbered();
    const { client } = manage({ ttlMs: 60_000 });
    await ask(client);
    expect((await ask(client, BODY, keyplex.options({ provider: 'one' }))).cache).toBe(null);
  });
});

describe('bounded', () => {
  test('maxEntries: the least recently used goes first', async () => {
    const calls = numbered();
    const { client, manager } = manage({ ttlMs: 60_000, maxEntries: 2 });
    const q = (n: number) => ({ model: MODEL, messages: [{ role: 'user', content: `q${n}` }] });
    await ask(client, q(1));
    await ask(client, q(2));
    expect((await ask(client, q(1))).cache).toBe('hit'); // q1 now most recent
    await ask(client, q(3)); // evicts q2
    expect((await ask(client, q(1))).cache).toBe('hit');
    expect((await ask(client, q(2))).cache).toBe(null);
    expect(manager.stats().cache!.entries).toBe(2);
    expect(calls).toHaveLength(4);
  });

  test.each([
    ['entries', new Lru(3, 1_000_000), 3],
    ['bytes', new Lru(1_000, 2 * (3 + 100) * 2), 2],
  ])('the LRU holds its %s bound', (_what, lru, kept) => {
    for (let i = 0; i < 10; i++) lru.set(`k${i}`, 'x'.repeat(100), 1_000, 0);
    expect(lru.size).toBe(kept);
    expect(lru.bytes).toBeLessThanOrEqual(lru.maxBytes);
    expect(lru.get('k9', 0)).toBeDefined();
    expect(lru.get('k0', 0)).toBeUndefined();
  });

  test('an answer larger than maxBytes is not kept', () => {
    const lru = new Lru(10, 1_024);
    lru.set('k', 'x'.repeat(1_000), 1_000, 0);
    expect(lru.size).toBe(0);
  });
});

describe('store-backed', () => {
  test("cache: { store: 'store' } shares answers between managers on one MemoryStore", async () => {
    const calls = numbered();
    const store = new MemoryStore();
    const a = manage({ ttlMs: 60_000, store: 'store' }, { store });
    const b = manage({ ttlMs: 60_000, store: 'store' }, { store });
    await ask(a.client);
    expect(await ask(b.client)).toEqual({ text: 'answer 1', cache: 'hit' });
    expect(calls).toHaveLength(1);
  });

  test('a custom store whose cacheGet never answers holds no request past its deadline (504), nor close()', async () => {
    fakeClock();
    const calls = numbered();
    const inner = new MemoryStore();
    const store: StateStore = { open: (listener) => inner.open(listener), cacheGet: () => new Promise<string | undefined>(() => {}), cacheSet: () => {} };
    const { client, manager } = manage({ ttlMs: 60_000, store: 'store' }, { store });
    const pending = caught(() => ask(client, BODY, keyplex.options({ deadlineMs: 1_000 })));
    await vi.advanceTimersByTimeAsync(1_000);
    const error = await pending;
    expect(isKeyplexError(error, 'deadline_exceeded')).toBe(true);
    expect(calls).toHaveLength(0);
    expect(manager.stats().totals.inFlight).toBe(0);
  });
});

describe('options', () => {
  test.each([
    [{}, 'cache.ttlMs', /finite number/],
    [{ ttlMs: 0 }, 'cache.ttlMs', />/],
    [{ ttlMs: 1, maxEntries: 0 }, 'cache.maxEntries', />= 1/],
    [{ ttlMs: 1, store: 'redis' }, 'cache.store', /'memory' or 'store'/],
    [{ ttlMs: 1, store: 'store' }, 'cache.store', /no `store` is configured/],
    [{ ttlMs: 1, partitionBy: 'user' }, 'cache.partitionBy', /'tenant'/],
    [{ ttlMs: 1, ttl: 5 }, 'cache.ttl', /ttlMs/],
  ])('%j → %s', (cache, field, says) => {
    const error = (() => {
      try {
        new KeyManager({ providers: { one: { baseURL: ONE, keys: keyRing('a').keys } }, cache: cache as never });
      } catch (e) {
        return e as ConfigError;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error!.field).toBe(field);
    expect(error!.message).toMatch(says);
  });

  test('canonical JSON sorts keys at every depth', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { f: 1, e: 0 }], c: null } })).toBe('{"a":{"c":null,"d":[2,{"e":0,"f":1}]},"b":1}');
  });
});
