/**
 * A revoked key is not used by a replica whose shared reservation was in
 * Redis when it heard of the revocation (issue 11, "What it must show" 4).
 * Two managers, each on its own `RedisStore` on one real `redis-server`,
 * keys with a known limit (so every attempt takes a reservation in Redis);
 * the upstream is an in-process `fetch` that answers the revoked key 401 and
 * counts what reaches it. Replica B's Redis is held at chosen points (its
 * reservation's reply, its subscription's messages), so the races are
 * played in a fixed order, not by timing:
 *
 * - the reservation ran in Redis before the revocation was written, and its
 *   reply arrives after B heard of it: B undoes it and picks another key;
 * - the reservation runs after the revocation was written, before B heard of
 *   it: the reservation script refuses the key (its status in Redis says
 *   disabled), B takes the disable on (`remote: true`) and picks another key.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { afterEach, describe, expect, test } from 'vitest';
import { KeyManager } from '../../src/index';
import { RedisStore } from '../../src/store/redis';
import { fakeKey } from '../support/fake-keys';
import { record } from '../support/events';
import { redisForSuite } from '../support/redis';

const MODEL = 'gpt-4.1-mini';
const BODY = { model: MODEL, messages: [{ role: 'user' as const, content: 'hello' }], max_tokens: 4 };
const redis = redisForSuite('a revoked key and shared reservations');
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

/** An upstream that answers 200, and 401 to `doomed` once revoked; it counts those 401s. */
function upstream(doomed: string) {
  const state = { revoked: false, rejected: 0 };
  const fetch: typeof globalThis.fetch = async (_input, init) => {
    const auth = new Headers(init?.headers).get('authorization');
    if (state.revoked && auth === `Bearer ${doomed}`) {
      state.rejected++;
      return Response.json({ error: { message: 'Incorrect API key provided.', type: 'invalid_request_error', code: 'invalid_api_key' } }, { status: 401 });
    }
    return Response.json({
      id: 'chatcmpl-1',
      object: 'chat.completion',
      created: 1,
      model: MODEL,
      choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 },
    });
  };
  return { state, fetch };
}

/** A gate: `wait()` resolves once `open()` is called. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, wait: () => opened };
}

/**
 * An ioredis client whose script replies (`EVALSHA`: the reservations) and
 * whose subscription's messages can be held; the command itself reaches
 * Redis when sent (a held reply ran there already).
 */
function holdableClient(url: string) {
  const client = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  const holds = { replies: undefined as Promise<void> | undefined, messages: undefined as Promise<void> | undefined };
  /** Resolves with each script call's reply as Redis sent it (before any hold). */
  const ran: ((reply: unknown) => void)[] = [];
  const evalsha = client.evalsha.bind(client) as (...args: unknown[]) => Promise<unknown>;
  (client as unknown as { evalsha: (...args: unknown[]) => Promise<unknown> }).evalsha = (...args) => {
    const held = holds.replies;
    return evalsha(...args).then(async (reply) => {
      for (const resolve of ran.splice(0)) resolve(reply);
      if (held !== undefined) await held;
      return reply;
    });
  };
  const duplicate = client.duplicate.bind(client);
  client.duplicate = (options) => {
    const sub = duplicate(options);
    const emit = sub.emit.bind(sub);
    sub.emit = (event: string | symbol, ...args: unknown[]) => {
      const held = holds.messages;
      if (event !== 'message' || held === undefined) return emit(event, ...args);
      void held.then(() => emit(event, ...args));
      return true;
    };
    return sub;
  };
  return { client, holds, nextScriptRun: () => new Promise<unknown>((resolve) => ran.push(resolve)) };
}

async function replicas() {
  const [doomed, spare] = [fakeKey('doomed'), fakeKey('spare')];
  const front = upstream(doomed);
  const prefix = `revoked-reserve:${randomUUID()}:`;
  const make = async (client?: Redis) => {
    const store = new RedisStore(client ? { client, prefix, timeoutMs: 5_000 } : { url: redis.server.url, prefix, timeoutMs: 5_000 });
    await store.ready();
    const manager = new KeyManager({
      // A known limit: every attempt takes a reservation in Redis.
      providers: { sim: { baseURL: 'https://sim.test.invalid/v1', keys: [{ key: doomed, id: 'doomed' }, { key: spare, id: 'spare' }], models: [MODEL], rpm: 10_000 } },
      // The first usable key, always: the doomed one while this manager thinks it usable.
      keySelection: { select: (keys) => keys[0] },
      fetch: front.fetch,
      deadlineMs: 20_000,
      store,
    });
    cleanups.unshift(async () => {
      await manager.close();
      await store.close();
      client?.disconnect();
    });
    return { manager, disabled: record(manager, 'key:disabled'), client: manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 })) };
  };
  const held = holdableClient(redis.server.url);
  const a = await make();
  const b = await make(held.client);
  // Both replicas have sent with both keys' shared windows in place.
  await a.client.chat.completions.create(BODY);
  await b.client.chat.completions.create(BODY);
  return { front, a, b, held };
}

/** Resolves once `list` has an entry. */
async function until<T>(list: T[]): Promise<T> {
  while (list.length === 0) await new Promise((resolve) => setImmediate(resolve));
  return list[0]!;
}

describe.skipIf(!redis.available)('a revoked key and shared reservations', () => {
  test('a reservation that ran before the revocation and is answered after B heard of it is undone; B sends with the other key', async () => {
    const { front, a, b, held } = await replicas();
    front.state.revoked = true;
    const replies = gate();
    held.holds.replies = replies.wait();
    const ran = held.nextScriptRun();
    const sending = b.client.chat.completions.create(BODY);
    await ran; // B's reservation on the doomed key ran in Redis: the key was still enabled there.
    held.holds.replies = undefined;
    await a.client.chat.completions.create(BODY); // A finds the key revoked and tells the others.
    expect(front.state.rejected).toBe(1);
    const heard = await until(b.disabled);
    expect(heard).toMatchObject({ keyId: 'doomed', reason: 'unauthorized', remote: true });
    replies.open();
    await sending;
    expect(front.state.rejected).toBe(1);
    expect(b.disabled).toHaveLength(1);
    expect(b.manager.stats().providers.sim!.keys.find((k) => k.id === 'spare')!.requests).toBe(1);
  }, 30_000);

  test('a reservation made after the revocation was written, before B heard of it, is refused by Redis; B takes the disable on (remote) and sends with the other key', async () => {
    const { front, a, b, held } = await replicas();
    front.state.revoked = true;
    const messages = gate();
    held.holds.messages = messages.wait();
    await a.client.chat.completions.create(BODY); // The revocation is in Redis (A waits for its publish).
    expect(front.state.rejected).toBe(1);
    expect(b.disabled).toHaveLength(0);
    await b.client.chat.completions.create(BODY);
    expect(front.state.rejected).toBe(1);
    expect(b.disabled).toEqual([expect.objectContaining({ keyId: 'doomed', reason: 'unauthorized', remote: true })]);
    held.holds.messages = undefined;
    messages.open();
    // The message arriving late changes nothing: one key:disabled.
    await a.client.chat.completions.create(BODY);
    expect(b.disabled).toHaveLength(1);
  }, 30_000);
});
