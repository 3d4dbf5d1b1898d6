/**
 * Heap held per request in flight (not part of `npm run bench`): the raw SDK
 * and keyplex (3 providers × 10 keys, listeners attached) each start 1000
 * chat requests at once against a fetch that holds every call; after a
 * forced collection, the heap's growth ÷ 1000 is what each request holds
 * while it waits (on its upstream, or in keyplex for a slot or a key: with
 * the default options some wait in keyplex). Three rounds per client after
 * the keys learnt their limits from a first reply; the last is shown.
 *
 * What it showed (2026-12-01): with a 64 KiB prompt the raw SDK holds
 * 70 KiB a request (its JSON text of the body); keyplex held 139 KiB, a
 * parsed copy of the body beside the text, until f75c0a2: 71 KiB. With a
 * short prompt: 6.3 and 11.8 KiB. (keyplex sends 256 of the 1000 at once
 * here; the rest wait in it.)
 *
 *   npm run build && node bench/inflight-heap.ts [prompt characters]
 */
import { spawnSync } from 'node:child_process';
import OpenAI from 'openai';
import { KeyManager } from '../dist/index.js';
import { fakeKeys, MODEL } from './lib.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) process.exit(spawnSync(process.execPath, ['--expose-gc', ...process.argv.slice(1)], { stdio: 'inherit' }).status ?? 1);
const collect = gc!;

const REPLY = JSON.stringify({ id: 'x', object: 'chat.completion', created: 1, model: MODEL, choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } });
const HEADERS = { 'content-type': 'application/json', 'x-ratelimit-limit-requests': '100000', 'x-ratelimit-remaining-requests': '99999', 'x-ratelimit-reset-requests': '1s' };
const held: ((response: Response) => void)[] = [];
const fetch = (() => new Promise<Response>((resolve) => held.push(resolve))) as typeof globalThis.fetch;

const providers = Object.fromEntries(Object.entries(fakeKeys(3, 10)).map(([id, keys]) => [id, { baseURL: `https://${id}.bench.invalid/v1`, keys, models: [MODEL] }]));
const manager = new KeyManager({ providers, fetch, deadlineMs: 600_000 });
for (const e of ['request', 'attempt', 'success'] as const) manager.on(e, () => undefined);
const clients = { raw: new OpenAI({ apiKey: 'raw', baseURL: 'https://raw.bench.invalid/v1', fetch, maxRetries: 0 }), keyplex: manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' })) };
const content = 'x'.repeat(Number(process.argv[2] ?? 9));
const N = 1000;

for (const [name, client] of Object.entries(clients)) {
  let perRequest = 0;
  for (let round = 0; round < 3; round++) {
    collect();
    const before = process.memoryUsage().heapUsed;
    const calls = Array.from({ length: N }, () => client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content }], max_tokens: 32 }).catch(() => undefined));
    await new Promise((resolve) => setTimeout(resolve, 50));
    collect();
    perRequest = (process.memoryUsage().heapUsed - before) / N;
    const waiting = held.length;
    // Answer until every call is done (keyplex sends what waited as replies come in).
    let done = false;
    const all = Promise.all(calls).then(() => void (done = true));
    while (!done) {
      for (const resolve of held.splice(0)) resolve(new Response(REPLY, { headers: HEADERS }));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await all;
    if (round === 2) console.log(`${name}: ${(perRequest / 1024).toFixed(1)} KiB of heap per request held (${waiting} of ${N} at the upstream), prompt of ${content.length} characters`);
  }
}
await manager.close();
