/**
 * Scenario 6 — the Redis store: what sharing key state through Redis costs a
 * request. The same in-process pipeline as scenario 1 (fake `fetch`, no
 * network to the provider), with every key's limit known so that each attempt
 * takes its reservation in the shared window: the default in-process store
 * versus a `RedisStore` on a `redis-server` on loopback.
 */
import OpenAI from 'openai';
import { Redis } from 'ioredis';
import { RedisStore } from '../dist/redis.js';
import { REDIS_SERVER, RedisServer } from '../test/support/redis.ts';
import { addedLatency, latencyRound, throughputRatio } from './overhead.ts';
import { CHAT_BODY, CHAT_JSON, Resources, cannedFetch, within, fakeKeys, fmt, interleaved, latencies, log, makeManager, mark, sorted, quantile, throughput, type Scenario } from './lib.ts';

const CONCURRENCIES = [1, 64, 256] as const;

/** Calls of `command` Redis has served so far (INFO commandstats). */
async function calls(redis: Redis, command: string): Promise<number> {
  const info = await redis.info('commandstats');
  const match = new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info);
  return match ? Number(match[1]) : 0;
}

export const redis: Scenario = async ({ quick }) => {
  if (REDIS_SERVER === undefined) {
    return {
      id: 'redis',
      title: '6. Redis store: skipped (no redis-server here)',
      method: [],
      tables: [],
      notes: ['No `redis-server` binary was found (PATH, /usr/bin, /usr/sbin, `$REDIS_SERVER`): install Debian\'s `redis-server` to run this scenario.'],
      data: { skipped: true },
    };
  }
  const plan = quick
    ? { warmup: 1000, latRounds: 4, latN: 1000, tpRounds: 3, tpN: 3000, capMs: 500, pings: 2000 }
    : { warmup: 3000, latRounds: 10, latN: 3000, tpRounds: 6, tpN: 10_000, capMs: 1500, pings: 10_000 };
  const open = new Resources();
  try {
    const server = open.add('redis-server', await RedisServer.start(), (s) => s.stop());
    const admin = open.add('the admin ioredis client', new Redis(server.url), (c) => c.disconnect());
    // ioredis with no 'error' listener prints every failed reconnect; one line is enough.
    admin.on('error', (error: Error) => log(`redis: admin connection: ${error.message}`));
    // Redis's own round trip on this machine, for reference.
    const ping = new Float64Array(plan.pings);
    for (let i = 0; i < plan.pings; i++) {
      const t0 = process.hrtime.bigint();
      await admin.ping();
      ping[i] = Number(process.hrtime.bigint() - t0) / 1000;
    }
    const pings = sorted(ping);

    const fetch = cannedFetch(CHAT_JSON, 'application/json');
    const baseURL = (id: string) => `https://${id}.bench.invalid/v1`;
    // A limit no run reaches, so every attempt reserves in the shared window and none waits.
    const extra = { rateLimiting: { adaptive: false } };
    const keys = fakeKeys(3, 10);
    const withLimits = (store?: RedisStore) => makeManager({ keys, baseURL, fetch, events: true, rpm: 1e9, extra: { ...extra, ...(store ? { store } : {}) } });
    const store = open.add('RedisStore', new RedisStore({ url: server.url, prefix: 'bench:' }), (s) => s.close());
    await store.ready();
    const memory = open.add('the memory-store manager', withLimits(), (m) => m.manager.close());
    const shared = open.add('the Redis-store manager', withLimits(store), (m) => m.manager.close());
    const clients = {
      memory: memory.manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 })),
      redis: shared.manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 })),
    };
    const call = (variant: string) => {
      const client = variant === 'memory' ? clients.memory : clients.redis;
      return () => client.chat.completions.create(CHAT_BODY);
    };
    const variants = ['memory', 'redis'] as const;
    // The pipeline compares the variants as overhead.ts compares raw and wrapped.
    const asRawWrapped = <T>(rounds: Map<string, T[]>) => new Map([['raw', rounds.get('memory')!], ['wrapped', rounds.get('redis')!]]);

    log('redis: warm-up');
    for (const v of variants) {
      await latencies(call(v), plan.warmup, plan.capMs);
      await throughput(call(v), plan.warmup, 64, plan.capMs);
    }

    log('redis: latency at concurrency 1');
    const evalBefore = await calls(admin, 'evalsha');
    const attemptsBefore = shared.tally.attempt;
    const lat = addedLatency(asRawWrapped(await interleaved(plan.latRounds, variants, async (v) => latencyRound(await latencies(call(v), plan.latN, plan.capMs)))));
    const tp: Record<number, ReturnType<typeof throughputRatio>> = {};
    for (const c of CONCURRENCIES) {
      log(`redis: throughput at concurrency ${c}`);
      tp[c] = throughputRatio(asRawWrapped(await interleaved(plan.tpRounds, variants, (v) => throughput(call(v), plan.tpN, c, plan.capMs))));
    }
    const scripts = (await calls(admin, 'evalsha')) - evalBefore;
    const attempts = shared.tally.attempt - attemptsBefore;
    const perRequest = scripts / attempts;
    await memory.manager.close();
    await shared.manager.close();
    await store.close();

    // How soon a change in one replica is seen in another: A disables (then enables) a key, B's event fires.
    log('redis: propagation of key changes between two replicas');
    const storeA = open.add('RedisStore A', new RedisStore({ url: server.url, prefix: 'bench-propagation:' }), (s) => s.close());
    const storeB = open.add('RedisStore B', new RedisStore({ url: server.url, prefix: 'bench-propagation:' }), (s) => s.close());
    await Promise.all([storeA.ready(), storeB.ready()]);
    const replica = (store: RedisStore) => makeManager({ keys: { p0: [keys.p0![0]!] }, baseURL, fetch, events: false, extra: { store } }).manager;
    const replicaA = open.add('replica A', replica(storeA), (m) => m.close());
    const replicaB = open.add('replica B', replica(storeB), (m) => m.close());
    const keyId = replicaA.stats().providers.p0!.keys[0]!.id;
    const changes = quick ? 100 : 400;
    const seen = new Float64Array(changes);
    for (let i = 0; i < changes; i++) {
      const event = i % 2 === 0 ? 'key:disabled' : 'key:recovered';
      const arrived = new Promise<bigint>((resolve) => replicaB.once(event, () => resolve(process.hrtime.bigint())));
      const t0 = process.hrtime.bigint();
      if (i % 2 === 0) replicaA.disableKey('p0', keyId);
      else replicaA.enableKey('p0', keyId);
      if (!(await within(arrived, 5_000))) throw new Error(`replica B did not see ${event} within 5 s`);
      seen[i] = Number((await arrived) - t0) / 1000;
    }
    const propagation = sorted(seen);
    await replicaA.close();
    await replicaB.close();
    await storeA.close();
    await storeB.close();

    const best = Math.max(...CONCURRENCIES.map((c) => tp[c]!.wrappedRps));
    return {
      id: 'redis',
      title: '6. Redis store (loopback redis-server)',
      method: [
        `As scenario 1 (the same client, fake \`fetch\` answering at once, 3 providers × 10 fake keys, event listeners on), with \`rateLimiting: { adaptive: false }\` and an rpm on every key far above what a run sends, so that every attempt reserves in its key's shared window and none waits. "memory": the default store (a manager alone on it never consults it). "redis": \`store: new RedisStore({ url })\` on a \`redis-server\` (no persistence) started by the benchmark on loopback.`,
        `Latency: ${plan.latRounds} interleaved rounds of ${plan.latN} sequential requests (or ${plan.capMs / 1000} s); added = redis percentile − memory percentile within a round, median across rounds. Throughput: closed loop, ${plan.tpRounds} interleaved rounds per concurrency. Round trips: Redis's own count of \`EVALSHA\` calls (INFO commandstats) over the latency and throughput runs, divided by the attempts keyplex made meanwhile. For reference, ${plan.pings} sequential \`PING\`s from ioredis.`,
        `Propagation: two managers on two \`RedisStore\`s (own connections, one prefix), as two replicas; A alternately disables and enables a key, and the time until B emits \`key:disabled\` / \`key:recovered\` (with \`remote: true\`) is measured with \`process.hrtime.bigint()\`.`,
      ],
      tables: [
        {
          title: 'Added latency per request with Redis, concurrency 1 (µs)',
          headers: ['', 'memory', 'redis', 'added (median of per-round diffs)', 'Redis PING round trip'],
          rows: [
            ['p50', fmt(lat.raw.p50), fmt(lat.wrapped.p50), fmt(lat.addedP50), fmt(quantile(pings, 0.5))],
            ['p99', fmt(lat.raw.p99), fmt(lat.wrapped.p99), fmt(lat.addedP99), fmt(quantile(pings, 0.99))],
          ],
        },
        {
          title: 'Throughput in one process (closed loop)',
          headers: ['concurrency', 'memory req/s', 'redis req/s', 'ratio', 'memory CPU µs/req', 'redis CPU µs/req', 'target'],
          rows: CONCURRENCIES.map((c) => {
            const t = tp[c]!;
            return [String(c), fmt(t.rawRps, 0), fmt(t.wrappedRps, 0), fmt(t.ratio, 3), fmt(t.rawCpuUs), fmt(t.wrappedCpuUs), c === 256 ? mark(t.wrappedRps >= 5000, '≥ 5,000 req/s') : ''];
          }),
        },
        {
          title: `A key change in replica A seen in replica B (${changes} alternating disable/enable, ms)`,
          headers: ['p50', 'p99', 'max', 'target'],
          rows: [[fmt(quantile(propagation, 0.5) / 1000, 2), fmt(quantile(propagation, 0.99) / 1000, 2), fmt(propagation[propagation.length - 1]! / 1000, 2), mark(quantile(propagation, 0.99) <= 100_000, '≤ 100 ms')]],
        },
        {
          title: 'Round trips to Redis per request',
          headers: ['EVALSHA calls', 'attempts', 'per attempt', 'target'],
          rows: [[String(scripts), String(attempts), fmt(perRequest, 3), mark(perRequest <= 1.0001, '≤ 1')]],
        },
      ],
      notes: [
        `A reservation through Redis adds ${fmt(lat.addedP50)} µs at p50, against ${fmt(quantile(pings, 0.5))} µs for a bare PING: the round trip is the cost, the script inside it is not.`,
        `Best throughput with Redis: ${fmt(best, 0)} req/s (the 256-concurrency row is the target's). ioredis pipelines concurrent reservations on one connection, so throughput stays close to the in-process store's while each request waits one round trip.`,
      ],
      data: { plan, propagationUs: { p50: quantile(propagation, 0.5), p99: quantile(propagation, 0.99), max: propagation[propagation.length - 1] }, ping: { p50: quantile(pings, 0.5), p99: quantile(pings, 0.99) }, latency: lat, throughput: tp, roundTrips: { scripts, attempts, perRequest } },
    };
  } finally {
    await open.closeAll();
  }
};
