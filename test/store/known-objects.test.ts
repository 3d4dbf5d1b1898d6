/**
 * The object homes a RedisStore keeps to write back (object affinity across
 * replicas survives a Redis restart or an outage at the create): bounded,
 * expiring, and written only where Redis holds none.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { KnownState, MAX_KNOWN_OBJECTS } from '../../src/store/redis/known';
import { writeBack, type Names } from '../../src/store/redis/writeback';
import type { StoreBudgetRef } from '../../src/store/types';
import { redisForSuite } from '../support/redis';

const NOW = 1_700_000_000_000;
const home = (i: number, until = NOW + 60_000) => ({ name: `p:obj:file-${i}`, value: `file:one:one-${i % 3}`, until });

describe('object homes known to a store', () => {
  test(`at most ${MAX_KNOWN_OBJECTS} are kept: the oldest goes first`, () => {
    const known = new KnownState();
    for (let i = 0; i <= MAX_KNOWN_OBJECTS; i++) known.object(home(i));
    const names = known.objects(NOW).map((o) => o.name);
    expect(names).toHaveLength(MAX_KNOWN_OBJECTS);
    expect(names[0]).toBe('p:obj:file-1');
    expect(names.at(-1)).toBe(`p:obj:file-${MAX_KNOWN_OBJECTS}`);
  });

  test('one remembered again is the newest (kept longest), not listed twice', () => {
    const known = new KnownState();
    known.object(home(1));
    known.object(home(2));
    known.object(home(1, NOW + 120_000));
    expect(known.objects(NOW)).toEqual([home(2), home(1, NOW + 120_000)]);
  });

  test('an expired home is dropped, not written back', () => {
    const known = new KnownState();
    known.object(home(1, NOW + 10));
    known.object(home(2, NOW + 1_000));
    expect(known.objects(NOW + 10).map((o) => o.name)).toEqual(['p:obj:file-2']);
    expect(known.objects(NOW).map((o) => o.name)).toEqual(['p:obj:file-2']);
  });
});

const redis = redisForSuite('object homes written back');

describe.skipIf(!redis.available)('object homes in a write-back', () => {
  let client: Redis;
  beforeAll(() => {
    client = new Redis(redis.server.url);
  });
  afterAll(() => client.disconnect());

  test('a home Redis holds already is left as it is; a missing one is set with what is left of its time; spend after them is still counted', async () => {
    const names: Names = { prefix: `objects:${randomUUID()}:`, channel: `objects:${randomUUID()}`, id: 'a' };
    const now = Date.now();
    const known = new KnownState();
    const held = { name: `${names.prefix}obj:file-held`, value: 'file:one:one-0', until: now + 60_000 };
    const missing = { name: `${names.prefix}obj:file-missing`, value: 'file:one:one-1', until: now + 30_000 };
    known.object(held);
    known.object(missing);
    await client.set(held.name, 'file:two:two-2', 'PX', 600_000);
    const budget: StoreBudgetRef = { id: 'day', bucketMs: 60_000, windowMs: 86_400_000 };
    known.budget(budget);
    const back = await writeBack(client, names, [], known, new Map(), [{ origin: 'a', spend: { budgets: [budget], nanos: 7, at: now } }]);

    expect(await client.get(held.name)).toBe('file:two:two-2');
    expect(await client.get(missing.name)).toBe(missing.value);
    const ttl = await client.pttl(missing.name);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(30_000);
    expect(back.written).toHaveLength(1);
    // The spend's total was read from its own result, after the two SETs.
    expect(known.seen(budget.id, Math.floor(now / budget.bucketMs) * budget.bucketMs)).toBe(7);
  });
});
