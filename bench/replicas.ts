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
  /** Replicas that disabled the key on their own 401 (1 is the best there can be). */
  localDisables: number;
  failures: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The simulator behind a `fetch` that answers the doomed key 401 once revoked, and times that. */
function front(sim: ProviderSimulator, doomed: string) {
  const state = { revoked: false, firstAt: 0, rejected: 0 };
  const fetch: typeof globalThis.fetch = async (input, init) => {
    let request = new Request(input, init);
    if (state.revoked && request.headers.get('authorization') === `Bearer ${doomed}`) {
      if (state.rejected++ === 0) state.firstAt = performance.now();
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

async function trial(url: string, index: number, runMs: number): Promise<Trial> {
  const [doomed, spare] = [fakeKey(), fakeKey()];
  const sim = new ProviderSimulator({ providers: [{ id: 'sim', keys: [{ key: doomed }, { key: spare }], models: [MODEL] }] });
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
  return { windows, propagation, extraUses: Math.max(0, upstream.state.rejected - 1), localDisables, failures };
}

export const replicas: Scenario = async ({ quick }) => {
  if (REDIS_SERVER === undefined) {
    return { id: 'replicas', title: 'Replicas: skipped (no redis-server here)', method: [], tables: [], notes: ['No `redis-server` binary was found.'], data: { skipped: true } };
  }
  const trials = quick ? 10 : 40;
  const runMs = quick ? 600 : 1_000;
  const server = await RedisServer.start();
  const results: Trial[] = [];
  try {
    for (let i = 0; i < trials; i++) {
      log(`replicas: trial ${i + 1}/${trials}`);
      results.push(await trial(server.url, i, runMs));
    }
  } finally {
    await server.stop();
  }
  const windows = sorted(results.flatMap((t) => t.windows));
  const propagation = sorted(results.flatMap((t) => t.propagation));
  const extra = results.map((t) => t.extraUses);
  const withinBound = extra.filter((n) => n <= 1).length;
  const remote = results.reduce((n, t) => n + t.windows.length, 0);
  const local = results.reduce((n, t) => n + t.localDisables, 0);
  const failures = results.reduce((n, t) => n + t.failures, 0);
  return {
    id: 'replicas',
    title: 'Replicas: the window in which another replica can still use a revoked key',
    method: [
      `${REPLICAS} managers, each on its own \`RedisStore\` (own ioredis connections, one prefix) on a loopback \`redis-server\`, each sending a chat request every ${EVERY_MS} ms (not waiting for the previous one) over two keys (round-robin) to the in-process simulator. Halfway through a ${runMs} ms run one key is revoked (401 from then on). ${trials} trials.`,
      'Window: from the first 401 the upstream sent to each other replica\'s `key:disabled` with `remote: true` (`performance.now()`, one process). Extra uses: requests with the revoked key that reached the upstream after its first 401 (requests the other replicas had already sent count too).',
    ],
    tables: [
      {
        title: 'Propagation of a revoked key to the other replicas (ms)',
        headers: ['from', 'p50', 'p99', 'max', 'samples'],
        rows: [
          ['the first 401 (the window)', fmt(quantile(windows, 0.5), 2), fmt(quantile(windows, 0.99), 2), fmt(windows[windows.length - 1] ?? NaN, 2), String(windows.length)],
          ["the discoverer's key:disabled (the store's part)", fmt(quantile(propagation, 0.5), 2), fmt(quantile(propagation, 0.99), 2), fmt(propagation[propagation.length - 1] ?? NaN, 2), String(propagation.length)],
        ],
      },
      {
        title: 'Requests with the revoked key after its first 401, per trial',
        headers: ['trials with ≤ 1', 'mean', 'max', 'disables heard remotely', 'disables found locally', 'requests failed'],
        rows: [[`${withinBound}/${trials}`, fmt(extra.reduce((a, b) => a + b, 0) / trials, 2), String(Math.max(...extra)), String(remote), String(local), String(failures)]],
      },
    ],
    notes: [],
    data: { trials, runMs, windowsMs: [...windows], propagationMs: [...propagation], extraUses: extra, remoteDisables: remote, localDisables: local, failures },
  };
};
