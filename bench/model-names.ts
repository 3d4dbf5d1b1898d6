/**
 * Heap after N distinct model names (issue 12 item 5): requests for
 * user-chosen names through `manager.fetch` (no SDK: a million requests
 * through the SDK take minutes) against an in-process fetch that answers at
 * once, a provider that serves any model, `maxDynamicModels` as given (else
 * the default). Batches of 64 names in flight at once: a bound under 64
 * runs the path where names over the bound give their places up as their
 * attempts end. Internal modules, so bundled first:
 *
 *   npx esbuild bench/model-names.ts --bundle --platform=node --format=esm --packages=external --outfile=bench/out/model-names.mjs && node --expose-gc bench/out/model-names.mjs [names] [maxDynamicModels]
 */
import { KeyManager } from '../src/index.ts';
import { stateSizes } from '../src/key-manager.ts';

const total = Number(process.argv[2] ?? 1_000_000);
const maxDynamicModels = process.argv[3] === undefined ? undefined : Number(process.argv[3]);
const CHAT = JSON.stringify({
  id: 'chatcmpl-x',
  object: 'chat.completion',
  created: 1,
  model: 'm',
  choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
});
const fetch = (async () => new Response(CHAT, { headers: { 'content-type': 'application/json' } })) as typeof globalThis.fetch;
const manager = new KeyManager({ providers: { open: { baseURL: 'https://open.test/v1', keys: ['fake-open-0123456789abcdef01234567'] } }, fetch, ...(maxDynamicModels !== undefined && { maxDynamicModels }) });
const gc = (globalThis as { gc?: () => void }).gc;
const heapMiB = () => {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed / 2 ** 20;
};

const request = (model: string) =>
  manager.fetch('https://keyplex.invalid/v1/chat/completions', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }),
  });

// Warm up with the same name, so the baseline holds compiled code and one name's state.
for (let i = 0; i < 2_000; i++) await (await request('warm-up')).text();
const base = heapMiB();
console.log(`names\theap MiB (after gc)\tgrowth MiB\tper-model entries`);
const t0 = performance.now();
let busy = 0;
let mark = total / 10;
for (let done = 0; done < total; ) {
  const batch = Math.min(64, total - done);
  const t = performance.now();
  await Promise.all(Array.from({ length: batch }, (_, i) => request(`user-model-${done + i}`).then((r) => r.text())));
  busy += performance.now() - t;
  done += batch;
  if (done >= mark) {
    mark += total / 10;
    const heap = heapMiB();
    console.log(`${done}\t${heap.toFixed(1)}\t${(heap - base).toFixed(1)}\t${JSON.stringify(stateSizes(manager))}`);
  }
}
manager.stats({ reset: true });
console.log(`after stats({ reset: true }): ${heapMiB().toFixed(1)} MiB, ${JSON.stringify(stateSizes(manager))}; ${((performance.now() - t0) / 1000).toFixed(0)} s`);
console.log(`requests: ${((busy * 1000) / total).toFixed(2)} µs each (wall time in the batches, gc between marks excluded)`);
await manager.close();
