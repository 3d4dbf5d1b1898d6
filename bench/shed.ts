/**
 * CPU per shed request (not part of `npm run bench`): what a request keyplex
 * refuses at once costs the caller's process, against what the raw SDK
 * spends on a 429 answered at once (the SDK's own error path, the floor).
 * keyplex: a `standard` lane of concurrency 1 and `maxQueue` 0 whose one
 * slot is held, so every request is refused with `lane_full`; N requests at
 * once per round, rounds interleaved, the median.
 *
 * What it showed (2026-12-01, machine shared with other work, two runs each): answering
 * keyplex's own refusals and passed-on upstream failures with a
 * `BufferedReply` instead of a `Response` made from the text (a body stream
 * the SDK then read back): x1.39 and x1.27 the raw SDK's 429 -> x1.04 and x1.09
 * (110 -> 92 and 76 µs per refused request; raw 88 and 70).
 *
 *   npm run build && node bench/shed.ts [dist/index.js] [--n 5000] [--rounds 6]
 */
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import OpenAI from 'openai';
import type { Manager } from './ab-lib.ts';
import { fakeKey, fakeKeys, MODEL } from './lib.ts';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { n: { type: 'string', default: '5000' }, rounds: { type: 'string', default: '6' } } });
const N = Number(values.n);
const { KeyManager } = (await import(pathToFileURL(positionals[0] ?? 'dist/index.js').href)) as { KeyManager: new (options: unknown) => Manager };

const body = JSON.stringify({ error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded', param: null } });
const answer429 = (async () => new Response(body, { status: 429, headers: { 'content-type': 'application/json' } })) as typeof fetch;
const never = (() => new Promise<Response>(() => undefined)) as typeof fetch;
const baseURL = 'https://shed.bench.invalid/v1';
const raw = new OpenAI({ apiKey: fakeKey(), baseURL, maxRetries: 0, fetch: answer429 });
const manager = new KeyManager({ providers: { p: { baseURL, keys: fakeKeys(1, 2).p0!, models: [MODEL], rpm: 1_000_000 } }, fetch: never, lanes: { standard: { concurrency: 1, maxQueue: 0 } } });
const wrapped = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
const request = { model: MODEL, messages: [{ role: 'user' as const, content: 'hi' }], max_tokens: 8 };
// The lane's one slot, held for the run (its fetch never answers).
void wrapped.chat.completions.create(request).catch(() => undefined);
await new Promise((resolve) => setTimeout(resolve, 10));

async function round(client: OpenAI): Promise<number> {
  const cpu = process.cpuUsage();
  await Promise.all(Array.from({ length: N }, () => client.chat.completions.create(request).catch(() => undefined)));
  const used = process.cpuUsage(cpu);
  return (used.user + used.system) / N;
}
const median = (list: number[]) => [...list].sort((a, b) => a - b)[list.length >> 1]!;
for (let i = 0; i < 2; i++) await Promise.all([round(raw), round(wrapped)]).catch(() => undefined);
const results = { raw: [] as number[], keyplex: [] as number[] };
for (let r = 0; r < Number(values.rounds); r++) {
  const order = r % 2 === 0 ? (['raw', 'keyplex'] as const) : (['keyplex', 'raw'] as const);
  for (const v of order) results[v].push(await round(v === 'raw' ? raw : wrapped));
}
console.log(`CPU µs per shed request (median of ${values.rounds} rounds of ${N}): raw SDK on a 429 ${median(results.raw).toFixed(1)}, keyplex lane_full ${median(results.keyplex).toFixed(1)} (x${(median(results.keyplex) / median(results.raw)).toFixed(2)})`);
process.exit(0);
