/**
 * Many processes, one set of keys (issue 6): four Node processes, each a
 * KeyManager on a RedisStore, share three keys with a requests-per-minute
 * limit against the simulator's HTTP server. Together they must keep every
 * key within its limit (the simulator refuses nothing) and use at least 90%
 * of the aggregate capacity — in the opening burst and in the sustained phase
 * after it, where the processes compete for each refilled request.
 *
 * Real time (four processes cannot share a fake clock): the assertions are on
 * counts, with margins that do not depend on the machine's speed.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { build } from 'esbuild';
import { beforeAll, describe, expect, test } from 'vitest';
import { ProviderSimulator, type SimulatorServer } from '../src/testing';
import { exclusively } from './support/exclusive';
import { fakeKey } from './support/fake-keys';
import { redisForSuite } from './support/redis';

const redis = redisForSuite('many processes on one RedisStore');
const PROCESSES = 4;
const KEYS = 3;
/** Per key, in the simulator and in keyplex: a burst of 180, then 3 requests a second. */
const RPM = 180;
const CONCURRENCY = 6;
/** When the sustained phase is measured from (the burst is long spent by then). */
const BURST_MS = 2_500;
const RUN_MS = 6_000;
const MODEL = 'gpt-4.1-mini';

let script = '';
beforeAll(async () => {
  if (!redis.available) return;
  // The replica, bundled with keyplex's sources; packages stay external (resolved from node_modules).
  const dir = path.resolve('node_modules/.cache/keyplex-test');
  mkdirSync(dir, { recursive: true });
  script = path.join(dir, `replica-${process.pid}.mjs`);
  await build({ entryPoints: ['test/support/replica.ts'], bundle: true, platform: 'node', format: 'esm', target: 'node22', packages: 'external', outfile: script, logLevel: 'error' });
}, 30_000);

type Replica = ChildProcessByStdio<Writable, Readable, Readable>;

function lineReader(stream: Readable): () => Promise<string> {
  let buffer = '';
  const waiting: ((line: string) => void)[] = [];
  const lines: string[] = [];
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buffer += chunk;
    let index: number;
    while ((index = buffer.indexOf('\n')) !== -1) {
      const line = buffer.slice(0, index);
      buffer = buffer.slice(index + 1);
      const wake = waiting.shift();
      if (wake) wake(line);
      else lines.push(line);
    }
  });
  return () => {
    const line = lines.shift();
    return line !== undefined ? Promise.resolve(line) : new Promise((resolve) => waiting.push(resolve));
  };
}

describe.skipIf(!redis.available)('four processes share three keys through Redis', () => {
  let sim: ProviderSimulator;
  let http: SimulatorServer;

  test(
    'no key goes over its limit, and together they use ≥ 90% of the aggregate capacity',
    () => exclusively('real-time', async () => {
      const keys = Array.from({ length: KEYS }, (_, i) => fakeKey(`replica${i}`));
      sim = new ProviderSimulator({ providers: [{ id: 'sim', keys: keys.map((key) => ({ key, rpm: RPM })), models: [MODEL] }] });
      http = await sim.listen();
      const config = { redisUrl: redis.server.url, prefix: `replicas:${randomUUID()}:`, baseURL: http.baseURL('sim'), keys, rpm: RPM, model: MODEL, concurrency: CONCURRENCY };
      const replicas: Replica[] = Array.from({ length: PROCESSES }, () => spawn(process.execPath, [script, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'pipe'] }));
      const stderr: string[] = replicas.map(() => '');
      replicas.forEach((child, i) => child.stderr.on('data', (chunk: Buffer) => (stderr[i] += chunk.toString())));
      const readers = replicas.map((child) => lineReader(child.stdout));
      try {
        for (const [i, read] of readers.entries()) {
          const line = await Promise.race([read(), new Promise<string>((resolve) => replicas[i]!.once('exit', () => resolve(`exited: ${stderr[i]}`)))]);
          expect(line, `replica ${i} start-up`).toBe('ready');
        }
        // The simulator's buckets start full now, as keyplex's shared windows will at their first reservation.
        sim.reset();
        const startAt = Date.now() + 100;
        const stopAt = startAt + RUN_MS;
        for (const child of replicas) child.stdin.write(`go ${startAt} ${stopAt}\n`);

        await new Promise((resolve) => setTimeout(resolve, startAt + BURST_MS - Date.now()));
        const afterBurst = sim.tallies().sim!;
        const afterBurstAt = Date.now();
        const results = (await Promise.all(readers.map((read) => read()))).map((line) => JSON.parse(line) as { ok: number; aborted: number; failures: Record<string, number>; storeErrors: string[] });
        const end = sim.tallies().sim!;
        const endAt = Math.min(Date.now(), stopAt);

        const elapsed = (from: number, to: number) => Math.max(0, to - from);
        const perKeyCapacity = RPM + (RPM * elapsed(startAt, endAt)) / 60_000;
        const capacity = KEYS * perKeyCapacity;
        const sustainedCapacity = (KEYS * RPM * elapsed(afterBurstAt, endAt)) / 60_000;
        const sustained = end.successes - afterBurst.successes;
        console.info(
          `replicas: ${results.map((r) => r.ok).join(' + ')} = ${end.successes} accepted of capacity ${capacity.toFixed(0)} ` +
            `(${((100 * end.successes) / capacity).toFixed(1)}%); after the burst ${sustained} of ${sustainedCapacity.toFixed(0)} ` +
            `(${((100 * sustained) / sustainedCapacity).toFixed(1)}%); 429s upstream ${end.rateLimited}; ` +
            `per key ${keys.map((k) => end.keys[k]!.successes).join('/')}; failures ${JSON.stringify(results.map((r) => r.failures))}`,
        );

        // No key over its limit: the simulator refused nothing, and no key was granted more than its bucket holds.
        expect(end.rateLimited).toBe(0);
        for (const key of keys) expect(end.keys[key]!.successes).toBeLessThanOrEqual(Math.ceil(perKeyCapacity));
        // Nothing failed in the replicas: waiting for a refill is not a failure.
        expect(results.map((r) => r.failures)).toEqual(Array(PROCESSES).fill({}));
        expect(results.flatMap((r) => r.storeErrors)).toEqual([]);
        // ≥ 90% of the aggregate capacity, over the run and after the burst.
        expect(end.successes).toBeGreaterThanOrEqual(0.9 * capacity);
        expect(sustained).toBeGreaterThanOrEqual(0.9 * sustainedCapacity);
        // Every process took part.
        for (const result of results) expect(result.ok).toBeGreaterThan(0);
      } finally {
        for (const child of replicas) child.kill();
        await http.close();
      }
    }),
    60_000,
  );
});
