/**
 * Scenario "replicas" — how long another replica can still use a revoked key.
 * Four managers, each on its own `RedisStore` (own connections, one prefix) on
 * a loopback `redis-server`, as four replicas; each sends a chat request every
 * 20 ms over two keys (round-robin) to the provider simulator (in process,
 * through each manager's `fetch`). Mid-run one key is revoked: the upstream
 * answers it 401 from then on. Measured per trial: the time from the first 401
 * to each other replica's `key:disabled` (`remote: true`) — the window in
 * which that replica could still pick the key — and how many requests with the
 * key still reached the upstream after the first 401 (the bound: 1).
 * Two modes: no limit known (no shared reservation: the others learn of the
 * key by the store's message alone), and limits stated in the upstream's
 * headers, as OpenAI's (every attempt reserves in Redis, and the reservation
 * refuses a key Redis holds disabled). `BENCH_REPLICAS_TRIALS` sets the
 * number of trials per mode.
 */
import OpenAI from 'openai';
import { RedisStore } from '../dist/redis.js';
import { ProviderSimulator } from '../dist/testing.js';
import { REDIS_SERVER, RedisServer } from '../test/support/redis.ts';
import { fakeKey, fmt, log, makeManager, MODEL, quantile, sorted, type Scenario } from './lib.ts';

const REPLICAS = 4;
const EVERY_MS = 20;
const BODY = { model: MODEL, messages: [{ role: 'user' as const, content: 'hello' }], max_tokens: 4 };

interface Trial {
  /** ms from the first 401 to each other replica's remote `key:disabled`. */
  windows: number[];
  /** ms from the first local `key:disabled` (the discovery) to each remote one: the store's part. */
  propagation: number[];
  /** Requests with the key that reached the upstream after its first 401. */
  extraUses: number;
  /** Of those, the ones that reached the upstream before the discoverer had its 401 back (sent with it: no replica could know yet). */
  concurrent: number;
  /** Replicas that disabled the key on their own 401 (1 is the best there can be). */
  localDisables: number;
  failures: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The simulator behind a `fetch` that answers the doomed key 401 once revoked, and times that. */
function front(sim: ProviderSimulator, doomed: string) {
  const state = { revoked: false, firstAt: 0, rejected: 0, at: [] as number[] };
  const fetch: typeof globalThis.fetch = async (input, init) => {
    let request = new Request(input, init);
    if (state.revoked && request.headers.get('authorization') === `Bearer ${doomed}`) {
      if (state.rejected++ === 0) state.firstAt = performance.now();
      state.at.push(performance.now());
      const headers = new Headers(request.headers);
      headers.set('authorization', `Bearer ${fakeKey()}`);
      request = new Request(request, { headers });
    }
    const answer = await sim.handle('sim', request);
    if (!(answer instanceof Response)) throw new TypeError('fetch failed');
    return answer;
  };
  return { state, fetch };
}

/** The modes: no limit known, or limits the upstream states in its headers (far above what the run sends). */
const MODES = [
  { id: 'none', name: 'no limit known (the message alone)', rpm: undefined },
  { id: 'headers', name: 'limits from the headers (a reservation per attempt)', rpm: 100_000 },
] as const;

async function trial(url: string, index: number, runMs: number, rpm: number | undefined): Promise<Trial> {
  const [doomed, spare] = [fakeKey(), fakeKey()];
  const sim = new ProviderSimulator({ providers: [{ id: 'sim', keys: [{ key: doomed, rpm }, { key: spare, rpm }], models: [MODEL] }] });
  const upstream = front(sim, doomed);
  const prefix = `bench-replicas:${index}:`;
  const replicas = await Promise.all(
    Array.from({ length: REPLICAS }, async () => {
      const store = new RedisStore({ url, prefix });
      await store.ready();
      const { manager } = makeManager({
        keys: { sim: [doomed, spare] },
        baseURL: () => 'https://sim.bench.invalid/v1',
        fetch: upstream.fetch,
        events: false,
        extra: { store, keySelection: 'round-robin', deadlineMs: 10_000 },
      });
      const disabled: { at: number; remote: boolean }[] = [];
      manager.on('key:disabled', (e) => void disabled.push({ at: performance.now(), remote: e.remote === true }));
      return { store, manager, disabled, client: manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 })) };
    }),
  );
  let failures = 0;
  const inFlight: Promise<unknown>[] = [];
  const stopAt = performance.now() + runMs;
  const senders = replicas.map(async ({ client }, i) => {
    await sleep((i * EVERY_MS) / REPLICAS);
    while (performance.now() < stopAt) {
      inFlight.push(client.chat.completions.create(BODY).catch(() => void failures++));
      await sleep(EVERY_MS);
    }
  });
  await sleep(runMs / 2);
  upstream.state.revoked = true;
  await Promise.all(senders);
  await Promise.all(inFlight);
  const windows: number[] = [];
  const propagation: number[] = [];
  const found = Math.min(...replicas.flatMap(({ disabled }) => disabled.filter((d) => !d.remote).map((d) => d.at)));
  for (const { disabled } of replicas) {
    const remote = disabled.find((d) => d.remote);
    if (remote && upstream.state.rejected > 0) windows.push(remote.at - upstream.state.firstAt);
    if (remote && Number.isFinite(found)) propagation.push(remote.at - found);
  }
  const localDisables = replicas.filter(({ disabled }) => disabled.some((d) => !d.remote)).length;
  for (const { manager, store } of replicas) {
    await manager.close();
    await store.close();
  }
  const concurrent = upstream.state.at.slice(1).filter((at) => at < found).length;
  return { windows, propagation, extraUses: Math.max(0, upstream.state.rejected - 1), concurrent, localDisables, failures };
}

/** One mode's figures. */
function summary(results: Trial[]) {
  const windows = sorted(results.flatMap((t) => t.windows));
  const propagation = sorted(results.flatMap((t) => t.propagation));
  const extra = results.map((t) => t.extraUses);
  const count = (n: number) => extra.filter((e) => (n < 3 ? e === n : e >= n)).length;
  return {
    windows,
    propagation,
    extra,
    withinBound: extra.filter((n) => n <= 1).length,
    concurrent: results.reduce((n, t) => n + t.concurrent, 0),
    afterFound: results.filter((t) => t.extraUses - t.concurrent > 0).length,
    histogram: [count(0), count(1), count(2), count(3)],
    remote: results.reduce((n, t) => n + t.windows.length, 0),
    local: results.reduce((n, t) => n + t.localDisables, 0),
    failures: results.reduce((n, t) => n + t.failures, 0),
  };
}

const row = (label: string, xs: Float64Array) => [label, fmt(quantile(xs, 0.5), 2), fmt(quantile(xs, 0.99), 2), fmt(xs[xs.length - 1] ?? NaN, 2), String(xs.length)];

export const replicas: Scenario = async ({ quick }) => {
  if (REDIS_SERVER === undefined) {
    return { id: 'replicas', title: 'Replicas: skipped (no redis-server here)', method: [], tables: [], notes: ['No `redis-server` binary was found.'], data: { skipped: true } };
  }
  const asked = Number(process.env.BENCH_REPLICAS_TRIALS);
  const trials = Number.isInteger(asked) && asked > 0 ? asked : quick ? 10 : 40;
  const runMs = quick ? 600 : 1_000;
  const server = await RedisServer.start();
  const results = new Map<string, Trial[]>(MODES.map((m) => [m.id, []]));
  try {
    // The modes interleaved, trial by trial: the machine's load falls on both alike.
    for (let i = 0; i < trials; i++) {
      for (const mode of MODES) {
        log(`replicas: trial ${i + 1}/${trials}, ${mode.id}`);
        results.get(mode.id)!.push(await trial(server.url, i, runMs, mode.rpm));
      }
    }
  } finally {
    await server.stop();
  }
  const figures = MODES.map((mode) => ({ mode, ...summary(results.get(mode.id)!) }));
  return {
    id: 'replicas',
    title: 'Replicas: the window in which another replica can still use a revoked key',
    method: [
      `${REPLICAS} managers, each on its own \`RedisStore\` (own ioredis connections, one prefix) on a loopback \`redis-server\`, each sending a chat request every ${EVERY_MS} ms (not waiting for the previous one) over two keys (round-robin) to the in-process simulator. Halfway through a ${runMs} ms run one key is revoked (401 from then on). ${trials} trials per mode, the modes interleaved.`,
      'Modes: no limit known (no shared reservation; the others hear of the key by the store\'s message), and limits stated in the upstream\'s `x-ratelimit-*` headers as OpenAI states them (far above what the run sends; every attempt reserves in Redis, and the reservation refuses a key Redis holds disabled).',
      'Window: from the first 401 the upstream sent to each other replica\'s `key:disabled` with `remote: true` (`performance.now()`, one process). Extra uses: requests with the revoked key that reached the upstream after its first 401 (requests the other replicas had already sent count too).',
    ],
    tables: [
      {
        title: 'Propagation of a revoked key to the other replicas (ms)',
        headers: ['mode', 'from', 'p50', 'p99', 'max', 'samples'],
        rows: figures.flatMap((f) => [
          [f.mode.name, ...row('the first 401 (the window)', f.windows)],
          [f.mode.name, ...row("the discoverer's key:disabled (the store's part)", f.propagation)],
        ]),
      },
      {
        title: 'Requests with the revoked key after its first 401, per trial',
        headers: ['mode', 'trials with ≤ 1', 'trials with 0 / 1 / 2 / ≥ 3', 'mean', 'max', 'of them sent before the discoverer had its 401', 'trials with a use after it had it', 'disables heard remotely', 'disables found locally', 'requests failed'],
        rows: figures.map((f) => [
          f.mode.name,
          `${f.withinBound}/${trials}`,
          f.histogram.join(' / '),
          fmt(f.extra.reduce((a, b) => a + b, 0) / trials, 2),
          String(Math.max(...f.extra)),
          String(f.concurrent),
          String(f.afterFound),
          String(f.remote),
          String(f.local),
          String(f.failures),
        ]),
      },
    ],
    notes: [],
    data: {
      trials,
      runMs,
      modes: Object.fromEntries(
        figures.map((f) => [f.mode.id, { windowsMs: [...f.windows], propagationMs: [...f.propagation], extraUses: f.extra, remoteDisables: f.remote, localDisables: f.local, failures: f.failures }]),
      ),
    },
  };
};
