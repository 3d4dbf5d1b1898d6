/**
 * `RedisStore.ready()` at start-up: resolves once Redis answers and the store
 * is subscribed; when Redis is unreachable or answers but refuses the store
 * (an ACL user without channels: NOPERM), it rejects with
 * `StoreUnavailableError` and Redis's reason after its time is up or its
 * signal aborts, instead of waiting for ever. Real `redis-server`.
 */
import { Redis } from 'ioredis';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { ConfigError, KeyManager, StoreUnavailableError } from '../../src/index';
import { RedisStore } from '../../src/store/redis';
import { fakeKey } from '../support/fake-keys';
import { record } from '../support/events';
import { caught } from '../support/caught';
import { freePort, PATIENT_REDIS_MS, redisForSuite } from '../support/redis';
import { eventually } from '../support/time';

const redis = redisForSuite('RedisStore.ready()');
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

function store(url: string): RedisStore {
  const made = new RedisStore({ url, prefix: `ready:${fakeKey('p').slice(-8)}:`, retryMs: 50, timeoutMs: PATIENT_REDIS_MS });
  cleanups.push(() => made.close());
  return made;
}

/** Blocks this process's event loop for `ms` (what a CPU-bound start-up does). */
function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

/** A manager on `made`, recording its `store:error` events (to know the store has heard Redis's answer). */
function storeErrors(made: RedisStore) {
  const manager = new KeyManager({ providers: { p: { baseURL: 'http://127.0.0.1:9/v1', keys: [fakeKey('ready')] } }, store: made });
  cleanups.unshift(() => manager.close());
  return record(manager, 'store:error');
}

/** An ACL user of its own with `rules`; its password and URL. */
async function aclUser(rules: string[]): Promise<{ password: string; url: string }> {
  const admin = new Redis(redis.server.url);
  cleanups.push(async () => void admin.disconnect());
  const name = `kp-${fakeKey('user').slice(-12)}`;
  const password = fakeKey('pw');
  await admin.call('ACL', 'SETUSER', name, 'on', `>${password}`, '~*', ...rules);
  return { password, url: `redis://${name}:${password}@127.0.0.1:${redis.server.port}` };
}

describe.skipIf(!redis.available)('RedisStore.ready()', () => {
  test('resolves once Redis answers', async () => {
    const made = store(redis.server.url);
    await made.ready({ timeoutMs: PATIENT_REDIS_MS });
    expect(made.healthy).toBe(true);
  });

  test('an ACL user without channels (NOPERM): rejects with StoreUnavailableError and Redis\'s reason, never the password', async () => {
    const user = await aclUser(['+@all']);
    const made = store(user.url);
    const errors = storeErrors(made);
    await eventually(() => errors.length > 0, 'the refusal is reported');
    const error = await caught(() => made.ready({ timeoutMs: 0 }));
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as StoreUnavailableError).code).toBe('store_unavailable');
    expect(error.message).toContain('NOPERM');
    expect(error.message).not.toContain(user.password);
  });

  test.each([
    ['a read-only replica', 'READONLY', ['REPLICAOF', '127.0.0.1', '1'], ['REPLICAOF', 'NO', 'ONE']],
    ['maxmemory reached', 'OOM', ['CONFIG', 'SET', 'maxmemory', '1'], ['CONFIG', 'SET', 'maxmemory', '0']],
  ])('%s: rejects with StoreUnavailableError and Redis\'s reason (%s)', async (_, reason, refuse, restore) => {
    const admin = new Redis(redis.server.url);
    cleanups.push(async () => {
      await admin.call(restore[0]!, ...restore.slice(1));
      admin.disconnect();
    });
    await admin.call(refuse[0]!, ...refuse.slice(1));
    const made = store(redis.server.url);
    const errors = storeErrors(made);
    await eventually(() => errors.length > 0, 'the refusal is reported');
    const error = await caught(() => made.ready({ timeoutMs: 0 }));
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect(error.message).toContain(reason);
  });

  test('Redis unreachable: rejects with StoreUnavailableError saying it is not connected', async () => {
    const made = store(`redis://127.0.0.1:${await freePort()}`);
    const errors = storeErrors(made);
    await eventually(() => errors.length > 0, 'the outage is reported');
    const error = await caught(() => made.ready({ timeoutMs: 0 }));
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect(error.message).toContain('not connected to Redis');
  });

  test('an aborted signal rejects the wait with StoreUnavailableError', async () => {
    const made = store(`redis://127.0.0.1:${await freePort()}`);
    const abort = new AbortController();
    const waiting = caught(() => made.ready({ timeoutMs: Infinity, signal: abort.signal }));
    abort.abort(new Error('shutting down'));
    const error = await waiting;
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect(error.cause).toEqual(new Error('shutting down'));
  });

  test('without options it gives up after 10 s (it waited for ever before)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const made = store(`redis://127.0.0.1:${await freePort()}`);
    let settled: unknown = 'pending';
    made.ready().then(() => (settled = 'resolved'), (error: unknown) => (settled = error));
    await vi.advanceTimersByTimeAsync(9_999);
    expect(settled).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(settled).toBeInstanceOf(StoreUnavailableError);
  });

  test('a start-up whose loop was blocked past timeoutMs, Redis reachable: resolves (the blocked time does not count; what Redis answered is read first)', async () => {
    const made = store(redis.server.url);
    const waiting = made.ready({ timeoutMs: 500 });
    // A start-up blocking its loop (modules loading, caches built) three times the wait.
    busy(1_500);
    await waiting;
    // Before: StoreUnavailableError ("not ready within 500 ms (Redis has not answered yet)").
    expect(made.healthy).toBe(true);
  });

  test('a malformed timeoutMs is refused with ConfigError naming it', async () => {
    const made = store(`redis://127.0.0.1:${await freePort()}`);
    const error = await caught(() => made.ready({ timeoutMs: -1 }));
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe('timeoutMs');
  });

  test('a timeoutMs beyond the longest timer Node.js supports is refused, not waited for 1 ms', async () => {
    const made = store(`redis://127.0.0.1:${await freePort()}`);
    const error = await caught(() => made.ready({ timeoutMs: 3_000_000_000 }));
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe('timeoutMs');
  });

  test('a store that recovers after a timed-out wait is ready for the next one', async () => {
    const user = await aclUser(['+@all']);
    const made = store(user.url);
    const errors = storeErrors(made);
    await eventually(() => errors.length > 0, 'the refusal is reported');
    expect(await caught(() => made.ready({ timeoutMs: 0 }))).toBeInstanceOf(StoreUnavailableError);
    const admin = new Redis(redis.server.url);
    cleanups.push(async () => void admin.disconnect());
    await admin.call('ACL', 'SETUSER', new URL(user.url).username, 'allchannels');
    await made.ready({ timeoutMs: PATIENT_REDIS_MS });
    expect(made.healthy).toBe(true);
  });
});
