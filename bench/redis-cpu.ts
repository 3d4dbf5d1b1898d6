/**
 * Scenario — redis-server CPU per request with limits learnt from headers
 * (the OpenAI case), EVALSHA round trips per attempt, and the fleet ceiling
 * they imply: one Redis core divided by the CPU one request costs it.
 */
import OpenAI from 'openai';
import { Redis } from 'ioredis';
import { RedisStore } from '../dist/redis.js';
import { REDIS_SERVER, RedisServer } from '../test/support/redis.ts';
import { CHAT_BODY, CHAT_JSON, Resources, fakeKeys, fmt, log, makeManager, throughput, type Scenario } from './lib.ts';

/** A `fetch` that answers at once, stating limits no run reaches (OpenAI's header shape): the limiter learns them. */
function statingFetch(): typeof globalThis.fetch {
  const headers = {
    'content-type': 'application/json',
    'x-ratelimit-limit-requests': '1000000000',
    'x-ratelimit-remaining-requests': '999999999',
    'x-ratelimit-reset-requests': '6ms',
    'x-ratelimit-limit-tokens': '1000000000000',
    'x-ratelimit-remaining-tokens': '999999999000',
    'x-ratelimit-reset-tokens': '6ms',
  };
  return async () => new Response(CHAT_JSON, { status: 200, headers });
}

/** redis-server's CPU seconds so far (user + system; INFO cpu). */
async function cpuSeconds(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const field = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? Number.NaN);
  return field('used_cpu_user') + field('used_cpu_sys');
}

/** Calls of `command` Redis has served so far (INFO commandstats). */
async function calls(redis: Redis, command: string): Promise<number> {
  const match = new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(await redis.info('commandstats'));
  return match ? Number(match[1]) : 0;
}

export const redisCpu: Scenario = async ({ quick }) => {
  if (REDIS_SERVER === undefined) {
    return { id: 'redis-cpu', title: 'Redis CPU per request: skipped (no redis-server here)', method: [], tables: [], notes: ['No `redis-server` binary was found.'], data: { skipped: true } };
  }
  const plan = quick ? { warmup: 1_000, n: 5_000, concurrency: 64, capMs: 2_000 } : { warmup: 3_000, n: 30_000, concurrency: 64, capMs: 20_000 };
  const open = new Resources();
  try {
    const server = open.add('redis-server', await RedisServer.start(), (s) => s.stop());
    const admin = open.add('the admin ioredis client', new Redis(server.url), (c) => c.disconnect());
    admin.on('error', (error: Error) => log(`redis-cpu: admin connection: ${error.message}`));
    const store = open.add('RedisStore', new RedisStore({ url: server.url, prefix: 'bench-cpu:', timeoutMs: 5_000 }), (s) => s.close());
    await store.ready();
    const baseURL = (id: string) => `https://${id}.bench.invalid/v1`;
    const { manager, tally } = open.add(
      'the manager',
      makeManager({ keys: fakeKeys(3, 10), baseURL, fetch: statingFetch(), events: true, extra: { store, rateLimiting: { adaptive: false } } }),
      (m) => m.manager.close(),
    );
    let storeErrors = 0;
    manager.on('store:error', () => void storeErrors++);
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 }));
    const call = () => client.chat.completions.create(CHAT_BODY);

    log('redis-cpu: warm-up (every key learns its limits from the headers)');
    await throughput(call, plan.warmup, plan.concurrency, plan.capMs);
    // Adjustments waiting for a reservation are flushed within a second: let the warm-up's land before measuring.
    await new Promise((resolve) => setTimeout(resolve, 1_200));

    log(`redis-cpu: ${plan.n} requests at concurrency ${plan.concurrency}`);
    const cpuBefore = await cpuSeconds(admin);
    const evalBefore = await calls(admin, 'evalsha');
    const evalPlainBefore = await calls(admin, 'eval');
    const attemptsBefore = tally.attempt;
    const sample = await throughput(call, plan.n, plan.concurrency, plan.capMs);
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    const cpu = (await cpuSeconds(admin)) - cpuBefore;
    const scripts = (await calls(admin, 'evalsha')) - evalBefore + ((await calls(admin, 'eval')) - evalPlainBefore);
    const attempts = tally.attempt - attemptsBefore;
    const cpuUsPerRequest = (cpu * 1e6) / attempts;
    const ceiling = 1e6 / cpuUsPerRequest;
    const perAttempt = scripts / attempts;
    log(`redis-cpu: ${attempts} attempts, ${scripts} script calls, ${storeErrors} store errors`);
    return {
      id: 'redis-cpu',
      title: 'Redis CPU per request with learnt limits, and the fleet ceiling',
      method: [
        `One manager, 3 providers × 10 fake keys, \`rateLimiting: { adaptive: false }\`, no configured limits: a fake \`fetch\` answers at once with OpenAI-style \`x-ratelimit-*\` headers stating limits no run reaches, so every key learns a requests and a tokens window and every attempt reserves in Redis (and reconciles its tokens). \`store: new RedisStore({ url })\` on a \`redis-server\` started on loopback. ${plan.n} requests at concurrency ${plan.concurrency} after ${plan.warmup} warm-up requests.`,
        'redis-server CPU: `used_cpu_user + used_cpu_sys` from `INFO cpu` before and after (1.2 s after each run, so that deferred adjustments are flushed and counted). Round trips: `EVALSHA` + `EVAL` calls from `INFO commandstats`, divided by the attempts keyplex made. Fleet ceiling: one Redis core (1 s of CPU per s) divided by the CPU per request.',
      ],
      tables: [
        {
          title: 'redis-server CPU and round trips per attempt',
          headers: ['attempts', 'req/s (one process)', 'redis CPU µs/request', 'script calls per attempt', 'fleet ceiling (req/s per Redis core)'],
          rows: [[String(attempts), fmt(sample.rps, 0), fmt(cpuUsPerRequest, 1), fmt(perAttempt, 3), fmt(ceiling, 0)]],
        },
      ],
      notes: [
        `Every attempt costs Redis ${fmt(cpuUsPerRequest, 1)} µs of CPU in ${fmt(perAttempt, 3)} script call(s): one Redis core serves about ${fmt(ceiling, 0)} requests/s for the whole fleet. The INFO cpu counters have 1 ms resolution per sample; with ${attempts} attempts that is well under 1% of the figure.`,
      ],
      data: { plan, storeErrors, attempts, cpuSeconds: cpu, cpuUsPerRequest, scripts, perAttempt, ceiling, rps: sample.rps },
    };
  } finally {
    await open.closeAll();
  }
};
