/**
 * One replica for the multi-process test: a KeyManager on a RedisStore,
 * sending chat requests to the simulator's HTTP server as fast as its keys
 * allow from `go` until `stop`. Bundled by the test with esbuild and run as
 * its own Node process.
 *
 * argv[2]: JSON { redisUrl, prefix, baseURL, keys, rpm, periodMs?, model, concurrency, timeoutMs }
 * (with `periodMs`, each key's window is `rpm` requests per `periodMs` instead of per minute).
 * Prints `ready` once connected; reads `go <startAt>` (epoch ms) on stdin,
 * prints `served` after its first success, reads `stop`, and prints one JSON
 * line of results at the end.
 */
import { createInterface } from 'node:readline';
import OpenAI from 'openai';
import { getKeyplexDetails, KeyManager } from '../../src/index';
import { RedisStore } from '../../src/store/redis';

interface ReplicaConfig {
  redisUrl: string;
  prefix: string;
  baseURL: string;
  keys: string[];
  rpm: number;
  periodMs?: number;
  model: string;
  concurrency: number;
  /** The RedisStore's `timeoutMs`: generous in tests, where a loaded machine must not look like a slow Redis. */
  timeoutMs?: number;
}

const config = JSON.parse(process.argv[2] ?? '{}') as ReplicaConfig;
const store = new RedisStore({ url: config.redisUrl, prefix: config.prefix, timeoutMs: config.timeoutMs });
await store.ready();
const manager = new KeyManager({
  providers: { sim: { baseURL: config.baseURL, keys: config.keys, models: [config.model], ...(config.periodMs ? { requests: { limit: config.rpm, periodMs: config.periodMs } } : { rpm: config.rpm }) } },
  store,
});
const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 }));
const storeErrors: string[] = [];
manager.on('store:error', (e) => void storeErrors.push(e.message));

const stop = new AbortController();
const lines = createInterface({ input: process.stdin });
process.stdout.write('ready\n');
const startAt = await new Promise<number>((resolve) => {
  lines.on('line', (line) => {
    const [word, start] = line.trim().split(' ');
    if (word === 'go') resolve(Number(start));
    if (word === 'stop') stop.abort();
  });
});
await new Promise((resolve) => setTimeout(resolve, Math.max(0, startAt - Date.now())));

let ok = 0;
let aborted = 0;
const failures: Record<string, number> = {};
async function worker(): Promise<void> {
  while (!stop.signal.aborted) {
    try {
      await client.chat.completions.create(
        { model: config.model, messages: [{ role: 'user', content: 'hello' }], max_tokens: 4 },
        { signal: stop.signal },
      );
      if (ok++ === 0) process.stdout.write('served\n');
    } catch (error) {
      if (stop.signal.aborted) {
        aborted++;
        return;
      }
      const code = getKeyplexDetails(error)?.code ?? (error instanceof Error ? error.name : 'unknown');
      failures[code] = (failures[code] ?? 0) + 1;
    }
  }
}
await Promise.all(Array.from({ length: config.concurrency }, worker));
lines.close();
await manager.close();
await store.close();
process.stdout.write(`${JSON.stringify({ ok, aborted, failures, storeErrors })}\n`);
