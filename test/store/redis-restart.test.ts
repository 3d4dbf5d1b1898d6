/**
 * A Redis that restarts comes back empty. Replicas write back what they knew,
 * merging (issue 12, item 9): budget spend is not forgotten, so two managers
 * under one cap stay under it together, and a key revoked before the restart
 * stays revoked for a process started after it. Real `redis-server` (killed
 * with SIGKILL, as in a crash, then started again), real SDK, simulator on msw.
 */
import { randomUUID } from 'node:crypto';
import { http, HttpResponse } from 'msw';
import { describe, expect, test } from 'vitest';
import type { KeyManagerOptions } from '../../src/index';
import { ProviderSimulator } from '../../src/testing';
import { simulatorHandlers } from '../../src/testing/msw';
import { fakeKey } from '../support/fake-keys';
import { redisForSuite } from '../support/redis';
import { record } from '../support/events';
import { eventually } from '../support/time';
import { mswSuite } from '../support/suite';
import { outcome, PRICED, pricedSetup, storeReplica } from '../support/store-replica';

const MODEL = PRICED.model;
const CAP_USD = 0.5;
const { server, cleanups } = mswSuite();
const redis = redisForSuite('Redis restarted under replicas');

const body = () => ({ model: MODEL, messages: [{ role: 'user' as const, content: 'hello' }], max_tokens: 8 });
/** A manager on its own RedisStore (as in its own process), with its store events recorded. */
async function replica(prefix: string, options: Omit<KeyManagerOptions, 'store'>) {
  const made = await storeReplica(redis.server.url, prefix, options, cleanups);
  return { ...made, errors: record(made.manager, 'store:error'), recovered: record(made.manager, 'store:recovered') };
}

/** Kills and restarts Redis (empty), waits until `old` recovered, then starts a replica and sends `count` requests at once through it. */
async function restartThenFresh(old: Awaited<ReturnType<typeof replica>>, prefix: string, options: Omit<KeyManagerOptions, 'store'>, count: number) {
  await redis.server.stop();
  await redis.server.start();
  await eventually(() => old.recovered.length === 1, 'store:recovered');
  const fresh = await replica(prefix, options);
  const results = await Promise.all(Array.from({ length: count }, () => outcome(fresh.client.chat.completions.create(body()))));
  return { fresh, results };
}

describe.skipIf(!redis.available)('Redis killed and restarted under running replicas', () => {
  test('budget spend survives the restart: two managers under one cap spend at most the cap (plus what was in flight)', async () => {
    const { sim, prefix, options } = pricedSetup(server, 'restart-spend', CAP_USD);
    const [a, b] = [await replica(prefix, options), await replica(prefix, options)];
    const send = (count: number) => Promise.all(Array.from({ length: count }, (_, i) => outcome([a, b][i % 2]!.client.chat.completions.create(body()))));

    // Before: both send; each knows the other's spend.
    expect(await send(8)).toEqual(Array(8).fill('ok'));
    const before = sim.tallies().sim!.costUsd;
    expect(before).toBeGreaterThan(0.05);
    for (const r of [a, b]) await eventually(() => Math.abs(r.manager.stats().budgets[0]!.spentUsd - before) < 1e-6, 'both know the spend');

    // Crash: Redis loses everything. Spend during the outage is kept by each manager.
    await redis.server.stop();
    expect(await send(2)).toEqual(['ok', 'ok']);
    await redis.server.start();
    for (const r of [a, b]) await eventually(() => r.recovered.length === 1, 'store:recovered');
    const afterOutage = sim.tallies().sim!.costUsd;
    // Neither forgot: Redis holds the spend again, and each manager reloaded at least all of it.
    for (const r of [a, b]) await eventually(() => r.manager.stats().budgets[0]!.spentUsd >= afterOutage - 1e-6, 'spend kept through the restart');
    // Merged, not added up: both wrote back the same buckets, and the spend is counted once (a merge
    // announced after a reload that already read it is not counted again).
    await new Promise((resolve) => setTimeout(resolve, 200));
    for (const r of [a, b]) expect(r.manager.stats().budgets[0]!.spentUsd).toBeCloseTo(afterOutage, 6);

    // Then both run until the cap refuses them.
    let refused = 0;
    for (let round = 0; round < 40 && refused < 4; round++) {
      const results = await send(2);
      refused += results.filter((r) => r === 'budget_exceeded').length;
      expect(results.every((r) => r === 'ok' || r === 'budget_exceeded')).toBe(true);
    }
    expect(refused).toBeGreaterThanOrEqual(4);
    // Two requests in flight at a time, each held at its estimate: the cap plus at most those.
    const spent = sim.tallies().sim!.costUsd;
    const perRequest = before / 8;
    expect(spent).toBeLessThanOrEqual(CAP_USD + 2 * perRequest * 1.5);
    // The bug this pins: each manager took the empty Redis as "nothing spent" and spent the cap again.
    expect(spent).toBeLessThan(CAP_USD * 1.2);
  }, 60_000);

  test('a key revoked before the restart stays revoked for a process started after it (0 requests reach it)', async () => {
    const [revoked, good] = [fakeKey('restart-revoked'), fakeKey('restart-good')];
    const sim = new ProviderSimulator({ providers: [{ id: 'sim', keys: [{ key: revoked, revoked: true }, { key: good }], models: [MODEL] }] });
    server.use(...simulatorHandlers(sim));
    const prefix = `restart-revoked:${randomUUID()}:`;
    const options = {
      providers: { sim: { baseURL: sim.baseURL('sim'), keys: [{ key: revoked, id: 'revoked' }, { key: good, id: 'good' }], models: [MODEL] } },
      keySelection: 'round-robin' as const,
      deadlineMs: 10_000,
    };
    const old = await replica(prefix, options);
    const disabled = record(old.manager, 'key:disabled');
    for (let i = 0; i < 4; i++) expect(await outcome(old.client.chat.completions.create(body()))).toBe('ok');
    expect(disabled).toEqual([{ provider: 'sim', keyId: 'revoked', reason: 'unauthorized' }]);
    expect(sim.tallies().sim!.keys[revoked]!.requests).toBe(1);

    // A process started after the restart: it never sends with the revoked key.
    const { fresh, results } = await restartThenFresh(old, prefix, options, 6);
    expect(results).toEqual(Array(6).fill('ok'));
    expect(sim.tallies().sim!.keys[revoked]!.requests).toBe(1);
    expect(fresh.manager.stats().providers.sim!.keys.find((k) => k.id === 'revoked')?.status).toBe('disabled');
    expect(fresh.errors).toEqual([]);
  }, 60_000);

  test('a deployment circuit open before the restart is open for a process started after it (0 requests reach the broken provider)', async () => {
    const reached = { down: 0, up: 0 };
    server.use(
      http.post('https://down.restart.test/v1/chat/completions', () => {
        reached.down++;
        return HttpResponse.json({ error: { message: 'overloaded', type: 'server_error', code: null } }, { status: 500 });
      }),
      http.post('https://up.restart.test/v1/chat/completions', () => {
        reached.up++;
        return HttpResponse.json({ id: 'chatcmpl-up', object: 'chat.completion', created: 0, model: MODEL, choices: [{ index: 0, message: { role: 'assistant', content: 'hi', refusal: null }, finish_reason: 'stop', logprobs: null }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } });
      }),
    );
    const prefix = `restart-circuit:${randomUUID()}:`;
    const options = {
      providers: {
        down: { baseURL: 'https://down.restart.test/v1', keys: [{ key: fakeKey('down'), id: 'd' }], models: [MODEL] },
        up: { baseURL: 'https://up.restart.test/v1', keys: [{ key: fakeKey('up'), id: 'u' }], models: [MODEL] },
      },
      // The deployment's circuit opens at its first failure, and stays open well past the test.
      circuitBreaker: { deployment: { policy: { kind: 'consecutive' as const, threshold: 1 }, openMs: 600_000 } },
      retry: { baseDelayMs: 0 },
    };
    const old = await replica(prefix, options);
    const opened = record(old.manager, 'circuit:open');
    expect(await outcome(old.client.chat.completions.create(body()))).toBe('ok');
    expect(reached).toEqual({ down: 1, up: 1 });
    expect(opened.map((e) => [e.scope, e.provider])).toEqual([['deployment', 'down']]);

    // A process started after the restart: the circuit it loads is open, so it sends nothing to 'down'.
    const { fresh, results } = await restartThenFresh(old, prefix, options, 4);
    expect(results).toEqual(Array(4).fill('ok'));
    expect(reached.down).toBe(1);
    expect(fresh.manager.stats().deployments.find((d) => d.provider === 'down')?.circuit).toBe('open');
  }, 60_000);
});
