/**
 * Replicas share discoveries first (issue 11, "What it must show" 4): a key
 * revoked while four replicas send steadily is used at most once more in all
 * after its first 401, and the replica that found it tells the other three
 * (`key:disabled` with `remote: true`) before its request moves on to another
 * key. Four managers in one process, each on its own `RedisStore` (its own
 * ioredis connections) on one real `redis-server`; the simulator over real
 * HTTP behind a front that revokes the key mid-run and counts what reaches it.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { afterEach, describe, expect, test } from 'vitest';
import { getKeyplexDetails, KeyManager } from '../../src/index';
import { RedisStore } from '../../src/store/redis';
import { ProviderSimulator } from '../../src/testing';
import { listenSimulator, type SimulatorServer } from '../../src/testing/http-server';
import { fakeKey } from '../support/fake-keys';
import { redisForSuite } from '../support/redis';
import { record } from '../support/events';

const MODEL = 'gpt-4.1-mini';
const REPLICAS = 4;
const redis = redisForSuite('replicas sharing a revoked key');
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

/** The simulator behind a front that, once `revoke()` is called, answers the key with 401 and counts what still reaches it. */
function revocable(sim: ProviderSimulator, revokedKey: string) {
  let revoked = false;
  let rejected = 0;
  return {
    revoke: () => void (revoked = true),
    /** Requests with the key answered 401 (the first is the discovery). */
    rejected: () => rejected,
    served: {
      providerIds: () => sim.providerIds(),
      baseURL: (id: string) => sim.baseURL(id),
      handle(providerId: string, request: Request) {
        if (revoked && request.headers.get('authorization') === `Bearer ${revokedKey}`) {
          rejected++;
          const headers = new Headers(request.headers);
          // An unknown key: the simulator answers 401 invalid_api_key, as for a revoked one.
          headers.set('authorization', `Bearer ${fakeKey('after-revocation')}`);
          return sim.handle(providerId, new Request(request, { headers }));
        }
        return sim.handle(providerId, request);
      },
    },
  };
}

/**
 * Redis as it answers, and Redis slow to take writes when the key is revoked
 * (`CLIENT PAUSE … WRITE`, as a busy Redis or a slow link would be): the
 * replica that found the key waits for the publish before its request moves
 * on, so the others hear of it before their next pick all the same.
 */
const cases = [
  { name: 'Redis answering at once', pauseMs: 0 },
  { name: 'Redis holding writes for 100 ms at the revocation', pauseMs: 100 },
];

describe.skipIf(!redis.available)('four replicas, a key revoked mid-run', () => {
  test.each(cases)('$name: the revoked key is used at most once more in all after the first 401; the others hear of it (remote: true)', async ({ pauseMs }) => {
    const [doomed, spare] = [fakeKey('doomed'), fakeKey('spare')];
    const sim = new ProviderSimulator({ providers: [{ id: 'sim', keys: [{ key: doomed }, { key: spare }], models: [MODEL] }] });
    const front = revocable(sim, doomed);
    const http: SimulatorServer = await listenSimulator(front.served, 0);
    cleanups.push(() => http.close());
    const prefix = `revoked:${randomUUID()}:`;
    const admin = new Redis(redis.server.url);
    cleanups.push(async () => void admin.disconnect());
    const replicas = await Promise.all(
      Array.from({ length: REPLICAS }, async () => {
        const store = new RedisStore({ url: redis.server.url, prefix, timeoutMs: 1_000 });
        await store.ready();
        const manager = new KeyManager({
          providers: { sim: { baseURL: http.baseURL('sim'), keys: [{ key: doomed, id: 'doomed' }, { key: spare, id: 'spare' }], models: [MODEL] } },
          keySelection: 'round-robin',
          deadlineMs: 20_000,
          store,
        });
        cleanups.unshift(async () => {
          await manager.close();
          await store.close();
        });
        return { manager, disabled: record(manager, 'key:disabled'), client: manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 })) };
      }),
    );
    const body = { model: MODEL, messages: [{ role: 'user' as const, content: 'hello' }], max_tokens: 4 };
    // Steady traffic: the replicas take turns, one request each, round after round; the key is revoked mid-run.
    const outcomes: string[] = [];
    for (let turn = 0; turn < 24 * REPLICAS; turn++) {
      if (turn === 10 * REPLICAS + 1) {
        if (pauseMs > 0) await admin.call('CLIENT', 'PAUSE', String(pauseMs), 'WRITE');
        front.revoke();
      }
      const { client } = replicas[turn % REPLICAS]!;
      outcomes.push(await client.chat.completions.create(body).then(() => 'ok', (e: unknown) => getKeyplexDetails(e)?.code ?? String(e)));
    }
    expect(outcomes.every((o) => o === 'ok')).toBe(true);
    expect(front.rejected()).toBeGreaterThanOrEqual(1);
    // At most one request with the key reached the upstream after its first 401.
    expect(front.rejected() - 1).toBeLessThanOrEqual(1);
    const local = replicas.flatMap((r) => r.disabled.filter((e) => !e.remote));
    const remote = replicas.flatMap((r) => r.disabled.filter((e) => e.remote));
    expect(local).toHaveLength(front.rejected());
    expect(local.length + remote.length).toBe(REPLICAS);
    for (const r of replicas) expect(r.disabled).toHaveLength(1);
    expect(remote.length).toBeGreaterThanOrEqual(REPLICAS - 2);
    expect(remote.every((e) => e.keyId === 'doomed' && e.reason === 'unauthorized')).toBe(true);
    // Every replica now leaves the key out.
    for (const { manager } of replicas) expect(manager.stats().providers.sim!.keys.find((k) => k.id === 'doomed')?.status).toBe('disabled');
  }, 60_000);
});
