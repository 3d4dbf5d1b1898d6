/**
 * Object affinity across replicas: two managers ("replicas", each on its own
 * RedisStore as in its own process) share one real `redis-server`. An object
 * that replica A created (a response, a file) is known only to the project
 * of A's key; a later request naming it that B serves must go to that key
 * too. Every key is a project of its own: the simulator answers 400
 * `previous_response_not_found` for a response another key created, the
 * msw projects 404 for a file. B takes the providers in another order than
 * A, so routed as usual it always lands on another provider than A's.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import OpenAI, { toFile } from 'openai';
import { describe, expect, test } from 'vitest';
import { getKeyplexDetails, KeyManager, type KeyManagerOptions, type StateStore, type StoreSession } from '../../src/index';
import { RedisStore } from '../../src/store/redis';
import type { RoutingStrategy } from '../../src/routing/strategy';
import { ProviderSimulator } from '../../src/testing';
import { simulatorHandlers } from '../../src/testing/msw';
import { caught } from '../support/caught';
import { record } from '../support/events';
import { fakeKey } from '../support/fake-keys';
import { projects } from '../support/projects';
import { PATIENT_REDIS_MS, redisForSuite, serverPid } from '../support/redis';
import { mswSuite } from '../support/suite';
import { eventually } from '../support/time';

const MODEL = 'gpt-4.1';
const PROVIDERS = ['one', 'two', 'three'];
/** The simulator's clock: fixed, so no rate window refills. */
const T0 = 1_700_000_040_000;

const { server, cleanups } = mswSuite();
const redis = redisForSuite('object affinity through Redis');

/** Each routed request's deployments rotated by one more place than the last, starting `offset` places on. */
function takingTurns(offset: number): RoutingStrategy {
  let turn = offset;
  return {
    order(deployments) {
      const at = turn++ % deployments.length;
      return [...deployments.slice(at), ...deployments.slice(0, at)];
    },
  };
}

/** Calls of each session method, by name. */
type Calls = Record<string, number>;

/** `store` with each session's method calls counted in `calls` (the session itself answers). */
function counted(store: StateStore, calls: Calls): StateStore {
  return {
    open(listener) {
      const session = store.open(listener);
      return new Proxy(session, {
        get(target, name, receiver) {
          const value = Reflect.get(target, name, receiver) as unknown;
          if (typeof value !== 'function' || typeof name !== 'string') return value;
          return (...args: unknown[]) => {
            calls[name] = (calls[name] ?? 0) + 1;
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      }) as StoreSession;
    },
  };
}

/** A replica: a manager on its own RedisStore under `prefix`, its store's session calls counted; closed after the test. */
async function replica(prefix: string, options: Omit<KeyManagerOptions, 'store'>, timeoutMs = PATIENT_REDIS_MS) {
  const store = new RedisStore({ url: redis.server.url, prefix, retryMs: 50, timeoutMs });
  await store.ready();
  const calls: Calls = {};
  const manager = new KeyManager({ ...options, store: counted(store, calls) });
  cleanups.unshift(async () => {
    await manager.close();
    await store.close();
  });
  const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 }));
  return { manager, store, calls, client, attempts: record(manager, 'attempt') };
}

/** What a call gave: 'ok', or the keyplex code (else the HTTP status) it failed with. */
async function outcome(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
    return 'ok';
  } catch (error) {
    return getKeyplexDetails(error)?.code ?? String((error as { status?: unknown }).status ?? error);
  }
}

/** How many of `outcomes` are not 'ok'. */
const failed = (outcomes: string[]) => outcomes.filter((o) => o !== 'ok').length;

/** Two replicas of three simulated providers × three keys (ids `one-0` … `three-2`), keys round-robin; B starts its turns one provider on. */
async function responsesReplicas(timeoutMsOfB = PATIENT_REDIS_MS) {
  const secrets = Object.fromEntries(PROVIDERS.map((id) => [id, [0, 1, 2].map(() => fakeKey(id))]));
  const sim = new ProviderSimulator({ now: () => T0, providers: PROVIDERS.map((id) => ({ id, keys: secrets[id]!.map((key) => ({ key })), models: [MODEL] })) });
  server.use(...simulatorHandlers(sim));
  const providers = Object.fromEntries(PROVIDERS.map((id) => [id, { baseURL: sim.baseURL(id), keys: secrets[id]!.map((key, i) => ({ key, id: `${id}-${i}` })), models: [MODEL] }]));
  const prefix = `affinity:${randomUUID()}:`;
  const common = { providers, keySelection: 'round-robin' as const, retry: { baseDelayMs: 0 } };
  const a = await replica(prefix, { ...common, routing: { strategy: takingTurns(0) } });
  const b = await replica(prefix, { ...common, routing: { strategy: takingTurns(1) } }, timeoutMsOfB);
  return { a, b };
}

/** Two replicas of two msw providers × three keys, each key a project; B lists the providers the other way round (a request without a model goes to the first). */
async function fileReplicas() {
  const bases = { f1: 'https://f1.projects.keyplex.test/v1', f2: 'https://f2.projects.keyplex.test/v1' };
  server.use(...projects(bases.f1, 'f1-').handlers, ...projects(bases.f2, 'f2-').handlers);
  const provider = (id: 'f1' | 'f2') => ({ baseURL: bases[id], keys: [0, 1, 2].map((i) => ({ key: fakeKey(id), id: `${id}-${i}` })) });
  const [f1, f2] = [provider('f1'), provider('f2')];
  const prefix = `affinity-files:${randomUUID()}:`;
  const common = { keySelection: 'round-robin' as const, retry: { baseDelayMs: 0 } };
  const a = await replica(prefix, { ...common, providers: { f1, f2 } });
  const b = await replica(prefix, { ...common, providers: { f2, f1 } });
  return { a, b };
}

type Replica = Awaited<ReturnType<typeof replica>>;

/** `files.create` (multipart) on `client`. */
async function upload(client: OpenAI) {
  return client.files.create({ file: await toFile(Buffer.from('{}'), 'in.jsonl'), purpose: 'batch' });
}

/** `ask(id)` (a request on the other replica) for each of `ids`, checked: none failed. */
async function noneFail(ids: readonly string[], ask: (id: string) => Promise<unknown>): Promise<void> {
  const outcomes: string[] = [];
  for (const id of ids) outcomes.push(await outcome(() => ask(id)));
  expect({ failed: failed(outcomes), outcomes }).toEqual({ failed: 0, outcomes: Array(ids.length).fill('ok') });
}

/** Six times: a file uploaded on `a`, then at once `ask(its id)` on the other replica; checked: none failed. */
async function sixUploadedThen(a: Replica, ask: (id: string) => Promise<unknown>): Promise<void> {
  const outcomes: string[] = [];
  for (let i = 0; i < 6; i++) {
    const { id } = await upload(a.client);
    outcomes.push(await outcome(() => ask(id)));
  }
  expect({ failed: failed(outcomes), outcomes }).toEqual({ failed: 0, outcomes: Array(6).fill('ok') });
}

/** The calls made on `replica`'s session while `run` ran, by name. */
async function callsDuring(replica: Replica, run: () => Promise<unknown>): Promise<Calls> {
  const before = { ...replica.calls };
  await run();
  return Object.fromEntries(Object.entries(replica.calls).map(([name, n]) => [name, n - (before[name] ?? 0)]).filter(([, n]) => n !== 0));
}

describe.skipIf(!redis.available)('an object created on one replica, named on another', () => {
  test('responses: the second turn (previous_response_id) on replica B goes to A\'s key: 0 of 9 fail', async () => {
    const { a, b } = await responsesReplicas();
    const outcomes: string[] = [];
    const keys: [string, string][] = [];
    for (let i = 0; i < 9; i++) {
      const first = await a.client.responses.create({ model: MODEL, input: 'hello' });
      const before = b.attempts.length;
      outcomes.push(await outcome(() => b.client.responses.create({ model: MODEL, input: 'and then?', previous_response_id: first.id })));
      keys.push([`${a.attempts.at(-1)!.provider}/${a.attempts.at(-1)!.keyId}`, b.attempts.slice(before).map((x) => `${x.provider}/${x.keyId}`).join()]);
    }
    expect({ failed: failed(outcomes), outcomes }).toEqual({ failed: 0, outcomes: Array(9).fill('ok') });
    for (const [created, second] of keys) expect(second).toBe(created);
  });

  test('files → batches: batches.create({ input_file_id }) on B after files.create on A: 0 of 6 fail', async () => {
    const { a, b } = await fileReplicas();
    await sixUploadedThen(a, (id) => b.client.batches.create({ input_file_id: id, endpoint: '/v1/chat/completions', completion_window: '24h' }));
  });

  test('files.retrieve on B of a file uploaded on A: 0 of 6 fail', async () => {
    const { a, b } = await fileReplicas();
    await sixUploadedThen(a, (id) => b.client.files.retrieve(id));
  });

  test('a chat completion on B whose message names a file uploaded on A (B never made one itself) goes to A\'s key: 0 of 6 fail', async () => {
    const { a, b } = await fileReplicas();
    await sixUploadedThen(a, (id) => b.client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: [{ type: 'text', text: 'Summarise it' }, { type: 'file', file: { file_id: id } }] }] }));
  });

  test.each(['removeKey', 'disableKey'] as const)('the key that created the response %s on B: B fails with response_key_unavailable, nothing sent', async (how) => {
    const { a, b } = await responsesReplicas();
    const first = await a.client.responses.create({ model: MODEL, input: 'hello' });
    const { provider, keyId } = a.attempts.at(-1)!;
    b.manager[how](provider, keyId);
    const before = b.attempts.length;
    const answer = await outcome(() => b.client.responses.create({ model: MODEL, input: 'and then?', previous_response_id: first.id }));
    expect(answer).toBe('response_key_unavailable');
    expect(b.attempts.length - before).toBe(0);
  });
});

describe.skipIf(!redis.available)('what the store is asked, per request', () => {
  test('a chat completion asks nothing of the kind; a create writes its object once; a request naming an unknown object reads once, then knows it', async () => {
    const { a, b } = await responsesReplicas();
    const chat = () => b.client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
    const chatCalls = await callsDuring(b, chat);
    expect(chatCalls.objectHome ?? 0).toBe(0);
    expect(chatCalls.rememberObject ?? 0).toBe(0);
    let id = '';
    const createCalls = await callsDuring(a, async () => (id = (await a.client.responses.create({ model: MODEL, input: 'hello' })).id));
    expect(createCalls.rememberObject).toBe(1);
    expect(createCalls.objectHome ?? 0).toBe(0);
    const next = () => b.client.responses.create({ model: MODEL, input: 'and then?', previous_response_id: id });
    const secondCalls = await callsDuring(b, next);
    expect(secondCalls.objectHome).toBe(1);
    // Known on B now: no second read.
    const thirdCalls = await callsDuring(b, () => b.client.responses.retrieve(id));
    expect(thirdCalls.objectHome ?? 0).toBe(0);
    console.info('store calls per request kind', { chat: chatCalls, create: createCalls, secondTurnOnB: secondCalls, retrieveOnBAfter: thirdCalls });
  });
});

describe.skipIf(!redis.available)('Redis down at the lookup', () => {
  test('Redis stopped: B\'s second turn is routed as usual and answered by the provider (no throw from the store, no wait)', async () => {
    const { a, b } = await responsesReplicas();
    const first = await a.client.responses.create({ model: MODEL, input: 'hello' });
    const errors = record(b.manager, 'store:error');
    await redis.server.stop();
    try {
      await eventually(() => errors.length > 0, 'B hears that Redis is gone');
      const before = b.attempts.length;
      const reads = b.calls.objectHome ?? 0;
      const error = await caught(() => b.client.responses.create({ model: MODEL, input: 'and then?', previous_response_id: first.id }));
      // Routed as usual: one attempt, on another provider than A's, which does not know the response (its answer surfaced).
      expect(error).toBeInstanceOf(OpenAI.BadRequestError);
      expect((error as InstanceType<typeof OpenAI.BadRequestError>).code).toBe('previous_response_not_found');
      expect(b.attempts.length - before).toBe(1);
      expect(b.attempts.at(-1)!.provider).not.toBe(a.attempts.at(-1)!.provider);
      expect((b.calls.objectHome ?? 0) - reads).toBe(1);
    } finally {
      await redis.server.start();
      // Reconnected and subscribed again before the stores close (a close during ioredis's re-subscribe leaves its rejection unhandled).
      await Promise.all([a.store.ready(), b.store.ready()]);
    }
  });

  test('Redis hung (SIGSTOP, connections open): the lookup gives up after the store\'s timeoutMs (250 ms); B\'s second turn is routed as usual and answered', async () => {
    const { a, b } = await responsesReplicas(250);
    const first = await a.client.responses.create({ model: MODEL, input: 'hello' });
    const before = b.attempts.length;
    const pid = await serverPid(redis.server.url);
    process.kill(pid, 'SIGSTOP');
    try {
      const second = caught(() => b.client.responses.create({ model: MODEL, input: 'and then?', previous_response_id: first.id }));
      // Generous (a loaded machine): a lookup that waited on the hung server would never settle.
      expect(await within(second, 10_000)).toBe('settled');
      const error = await second;
      expect((error as InstanceType<typeof OpenAI.BadRequestError>).code).toBe('previous_response_not_found');
      expect(b.attempts.length - before).toBe(1);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  });
});

describe.skipIf(!redis.available)('Redis hung at the create', () => {
  test('a home\'s write (which the creating answer waits for) gives up waiting after timeoutMs (250 ms); the write lands once Redis answers again', async () => {
    const store = new RedisStore({ url: redis.server.url, prefix: `affinity-hung:${randomUUID()}:`, retryMs: 50, timeoutMs: 250 });
    cleanups.unshift(() => store.close());
    await store.ready();
    const session = store.open({ change() {}, error() {}, recovered() {} });
    const pid = await serverPid(redis.server.url);
    process.kill(pid, 'SIGSTOP');
    try {
      const written = session.rememberObject!('resp_hung', { provider: 'one', keyId: 'one-0', kind: 'response' }, 60_000) as Promise<unknown>;
      // Generous (a loaded machine): a write that waited on the hung server would not settle before SIGCONT.
      expect(await within(written, 10_000)).toBe('settled');
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    // Read on the same connection, after the write that was queued there.
    expect(await session.objectHome!('resp_hung')).toEqual({ provider: 'one', keyId: 'one-0', kind: 'response' });
  });
});

describe.skipIf(!redis.available)('Redis away at the create, or back empty', () => {
  /** Stops Redis until both replicas' stores heard of it, runs `meanwhile`, starts it again (empty: no persistence) and waits until both stores wrote back and are ready. */
  async function outage(a: Replica, b: Replica, meanwhile: () => Promise<void> = async () => undefined): Promise<void> {
    const gone = [record(a.manager, 'store:error'), record(b.manager, 'store:error')];
    await redis.server.stop();
    try {
      await eventually(() => gone.every((errors) => errors.length > 0), 'both replicas hear that Redis is gone');
      await meanwhile();
    } finally {
      await redis.server.start();
      await Promise.all([a.store.ready(), b.store.ready()]);
    }
  }

  test('Redis restarted empty after files.create on A: files.retrieve on B goes to A\'s key once the stores are back: 0 of 4 fail', async () => {
    const { a, b } = await fileReplicas();
    const files = [];
    for (let i = 0; i < 4; i++) files.push(await upload(a.client));
    await outage(a, b);
    await noneFail(files.map((file) => file.id), (id) => b.client.files.retrieve(id));
  });

  test('files.create on A while Redis is stopped: once it is back, files.retrieve on B goes to A\'s key: 0 of 4 fail', async () => {
    const { a, b } = await fileReplicas();
    const files: { id: string }[] = [];
    await outage(a, b, async () => {
      for (let i = 0; i < 4; i++) files.push(await upload(a.client));
    });
    await noneFail(files.map((file) => file.id), (id) => b.client.files.retrieve(id));
  });

  test('the homes written back keep what is left of their time to live (no longer)', async () => {
    const { a, b } = await fileReplicas();
    const file = await upload(a.client);
    await outage(a, b);
    const probe = new Redis(redis.server.url);
    try {
      const keys = await probe.keys('affinity-files:*obj:*');
      expect(keys).toHaveLength(1);
      const ttl = await probe.pttl(keys[0]!);
      // The default ttlMs (30 days), less the seconds the test took: never renewed past it.
      expect(ttl).toBeGreaterThan(30 * 24 * 3_600_000 - 120_000);
      expect(ttl).toBeLessThanOrEqual(30 * 24 * 3_600_000);
      expect(keys[0]).toContain(encodeURIComponent(file.id));
    } finally {
      probe.disconnect();
    }
  });
});

/** Resolves to 'settled' when `promise` settles within `ms` (real time), else 'pending'. */
const within = (promise: Promise<unknown>, ms: number) =>
  Promise.race([promise.then(() => 'settled' as const, () => 'settled' as const), new Promise<'pending'>((resolve) => setTimeout(() => resolve('pending'), ms).unref())]);
