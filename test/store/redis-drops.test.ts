/**
 * Redis keeps its data but drops the store's connection (`CLIENT KILL`, a
 * proxy or load balancer cutting idle or long connections, a network blip),
 * more than once within a minute: the store's write-back after each drop
 * must not count again the spend written since the one before. Real
 * `redis-server`, real SDK, simulator on msw.
 */
import { Redis } from 'ioredis';
import { describe, expect, test } from 'vitest';
import { record } from '../support/events';
import { redisForSuite } from '../support/redis';
import { eventually } from '../support/time';
import { mswSuite } from '../support/suite';
import { outcome, pricedBody, pricedSetup, storeReplica } from '../support/store-replica';

const { server, cleanups } = mswSuite();
const redis = redisForSuite('Redis dropping connections');

describe.skipIf(!redis.available)('Redis drops the connections and keeps its data', () => {
  test('three drops within a minute: the budget counts each request once (0.06 USD in Redis and in the manager, 0.12 before the fix)', async () => {
    const redisAdmin = new Redis(redis.server.url);
    cleanups.push(async () => void redisAdmin.disconnect());
    const { sim, prefix, options } = pricedSetup(server, 'drops', 10);
    const a = await storeReplica(redis.server.url, prefix, options, cleanups);
    const recovered = record(a.manager, 'store:recovered');
    const budgetId = a.manager.stats().budgets[0]!.id;
    const held = async () => Object.values(await redisAdmin.hgetall(`${prefix}spend:${encodeURIComponent(budgetId)}`)).reduce((sum, v) => sum + Number(v), 0) / 1e9;

    for (let drop = 1; drop <= 3; drop++) {
      for (let i = 0; i < 2; i++) expect(await outcome(a.client.chat.completions.create(pricedBody()))).toBe('ok');
      for (let i = 0; i < 500 && Math.abs((await held()) - sim.tallies().sim!.costUsd) > 1e-9; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      // The store's own connection, not this one (SKIPME) nor the subscriber (type pubsub).
      expect(Number(await redisAdmin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes'))).toBeGreaterThanOrEqual(1);
      await eventually(() => recovered.length === drop, `the store is back after drop ${drop}`);
    }
    const cost = sim.tallies().sim!.costUsd;
    expect(cost).toBeCloseTo(0.06, 9);
    expect(await held()).toBeCloseTo(cost, 9);
    expect(a.manager.stats().budgets[0]!.spentUsd).toBeCloseTo(cost, 9);
  }, 60_000);
});
