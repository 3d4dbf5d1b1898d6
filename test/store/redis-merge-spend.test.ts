/**
 * What replicas write back to a Redis that restarted empty (src/store/redis/
 * writeback.ts, known.ts): each bucket is raised to the largest total any
 * replica knew before the outage, and the spend each kept during the outage
 * is added on top — whatever order the replicas write back in. Driven on a
 * real redis-server through `writeBack`, without timing: the order is chosen.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { KnownState } from '../../src/store/redis/known';
import { spendHash, writeBack, type Names } from '../../src/store/redis/writeback';
import type { StoreBudgetRef } from '../../src/store/types';
import { redisForSuite } from '../support/redis';

const redis = redisForSuite('Redis spend write-back');
const BUDGET: StoreBudgetRef = { id: 'day', bucketMs: 60_000, windowMs: 86_400_000 };

describe.skipIf(!redis.available)('spend written back after a restart', () => {
  let client: Redis;
  beforeAll(() => {
    client = new Redis(redis.server.url);
  });
  afterAll(() => client.disconnect());

  /** A replica's knowledge: `total` nano-dollars in the current bucket before the outage. */
  function knowing(total: number, now: number): KnownState {
    const known = new KnownState();
    known.budget(BUDGET);
    known.total(BUDGET.id, Math.floor(now / BUDGET.bucketMs) * BUDGET.bucketMs, total, now);
    return known;
  }

  test('the largest total known before the outage counts, though a replica that knew less wrote back first with its outage spend', async () => {
    const names: Names = { prefix: `merge:${randomUUID()}:`, channel: `merge:${randomUUID()}`, id: 'a' };
    const now = Date.now();
    const bucket = Math.floor(now / BUDGET.bucketMs) * BUDGET.bucketMs;
    // A knew 50 before the outage and spent 20 during it; B knew 60 (a spend A had not heard of yet).
    await writeBack(client, names, [], knowing(50, now), new Map(), [{ origin: 'a', spend: { budgets: [BUDGET], nanos: 20, at: now } }]);
    await writeBack(client, { ...names, id: 'b' }, [], knowing(60, now), new Map(), []);

    expect(Number(await client.hget(spendHash(names, BUDGET.id), String(bucket)))).toBe(80);
  });

  test('a Redis that lost nothing (it only hung) is not raised: what the replicas knew is in it already', async () => {
    const names: Names = { prefix: `merge:${randomUUID()}:`, channel: `merge:${randomUUID()}`, id: 'a' };
    const now = Date.now();
    const bucket = Math.floor(now / BUDGET.bucketMs) * BUDGET.bucketMs;
    await client.hset(spendHash(names, BUDGET.id), String(bucket), '100');
    await writeBack(client, names, [], knowing(90, now), new Map(), [{ origin: 'a', spend: { budgets: [BUDGET], nanos: 5, at: now } }]);
    await writeBack(client, { ...names, id: 'b' }, [], knowing(100, now), new Map(), []);

    expect(Number(await client.hget(spendHash(names, BUDGET.id), String(bucket)))).toBe(105);
  });

  test('a second outage soon after the first, Redis keeping its data and the marker, raises nothing: the spend written since the first is not added again', async () => {
    const names: Names = { prefix: `merge:${randomUUID()}:`, channel: `merge:${randomUUID()}`, id: 'a' };
    const now = Date.now();
    const bucket = Math.floor(now / BUDGET.bucketMs) * BUDGET.bucketMs;
    const hash = spendHash(names, BUDGET.id);
    await client.hset(hash, String(bucket), '50');
    // The first outage (the connection dropped, Redis kept all): 20 spent meanwhile is written back.
    const known = knowing(50, now);
    const first = await writeBack(client, names, [], known, new Map(), [{ origin: 'a', spend: { budgets: [BUDGET], nanos: 20, at: now } }]);
    expect(Number(await client.hget(hash, String(bucket)))).toBe(70);
    // Back on Redis: 10 more spent, its total (80) known from the reply.
    known.total(BUDGET.id, bucket, Number(await client.hincrby(hash, String(bucket), 10)), now);
    // The second outage, within a minute of the first: 5 spent meanwhile.
    await writeBack(client, names, [], known, new Map(), [{ origin: 'a', spend: { budgets: [BUDGET], nanos: 5, at: now } }], { epoch: first.epoch });

    // Before the fix: 115 — the first outage's base (50) was still kept, and the 30 written since it was added again.
    expect(Number(await client.hget(hash, String(bucket)))).toBe(85);
  });
});
