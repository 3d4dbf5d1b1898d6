/**
 * One replica for the multi-process test: a KeyManager on a RedisStore,
 * sending chat requests to the simulator's HTTP server as fast as its keys
 * allow from `go` until `stopAt`. Bundled by the test with esbuild and run as
 * its own Node process.
 *
 * argv[2]: JSON { redisUrl, prefix, baseURL, keys, rpm, model, concurrency }.
 * Prints `ready` once connected; reads `go <startAt> <stopAt>` (epoch ms) on
 * stdin; prints one JSON line of results at the end.
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
  model: string;
  concurrency: number;
}

const config = JSON.parse(process.argv[2] ?? '{}') as ReplicaConfig;
const store = new RedisStore({ url: config.redisUrl, prefix: config.prefix });
await store.ready();
const manager = new KeyManager({
  providers: { sim: { baseURL: config.baseURL, keys: config.keys, models: [config.model], rpm: config.rpm } },
  store,
});
const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 }));
const storeErrors: string[] = [];
manager.on('store:error', (e) => void storeErrors.push(e.message));

const lines = createInterface({ input: process.stdin });
process.stdout.write('ready\n');
const [startAt, stopAt] = await new Promise<[number, number]>((resolve) => {
  lines.on('line', (line) => {
    const [word, start, stop] = line.trim().split(' ');
    if (word === 'go') resolve([Number(start), Number(stop)]);
  });
});
lines.close();

const stop = new AbortController();
await new Promise((resolve) => setTimeout(resolve, Math.max(0, startAt - Date.now())));
setTimeout(() => stop.abort(), Math.max(0, stopAt - Date.now()));

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
      ok++;
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
await manager.close();
await store.close();
process.stdout.write(`${JSON.stringify({ ok, aborted, failures, storeErrors })}\n`);
