/**
 * Two builds of keyplex compared on keyplex's own work only (not part of
 * `npm run bench`): each manager's `fetch` called as the SDK calls it (its
 * headers, a JSON body, a signal) on the in-process fake fetch of
 * bench/hotpath.ts (JSON + OpenAI's six rate-limit headers), the reply read
 * as the SDK reads it (headers iterated twice and read, text, `JSON.parse`); 3 providers ×
 * 10 keys, listeners attached; sequential. The fake fetch alone, read the
 * same way, is the floor: "added" is a build's CPU per request minus the
 * floor's, in the same round.
 *
 * Why beside bench/ab-dists.ts: there the SDK's own ~45 µs per request is in
 * every figure, so a change of 0.3 µs in keyplex is 0.5% of what is measured
 * and lost in the rounds' noise; here keyplex's ~9 µs is most of it.
 *
 * Which build is loaded and made first runs ~3% slower (seen with one build
 * in both places), so the comparison runs twice, in child processes, once
 * each way round, and the two branch ÷ base ratios are combined (geometric
 * mean), which cancels that.
 *
 * What it showed (2026-12-01): keyplex's added CPU here is ~9 µs per request,
 * against ~20–28 µs added under the SDK in bench/hotpath.ts: the same
 * functions take ~1.65× their time when the SDK's code runs between them
 * (caches), so a cut measured here shows larger under the SDK.
 *
 * Added in-process for a 64 KiB reply (`--size 65536`): ~15 µs here against
 * ~10 µs for the canned 0.6 KiB one (the copy into WebAssembly memory, the
 * key search and the JSON check each read the whole body), where
 * bench/hotpath.ts sees 31 µs more for it under the SDK.
 *
 * The reply is read as openai 7.57 reads it: `text()`, then `JSON.parse`
 * (defaultParseResponse), not `json()`. A build that parsed the reply itself
 * and handed that parse to `json()` measured 0.73 here when this bench read
 * with `json()`, and nothing under the SDK, which never calls it
 * (2026-12-01).
 *
 * Upper bounds measured with hacked builds (2026-12-01, branch ÷ base): no
 * request timer at all (RequestAbort's one setTimeout and clearTimeout)
 * 0.948; no key selection (the first candidate taken) 0.980.
 *
 *   npm run build && node bench/ab-fetch.ts <base dist/index.js> <branch dist/index.js> [rounds] [--size bytes]
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { managerFrom, type Manager } from './ab-lib.ts';
import { chatJsonOfSize, OPENAI_RATE_HEADERS } from './hotpath.ts';
import { CHAT_BODY, median } from './lib.ts';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { size: { type: 'string', default: '0' }, child: { type: 'boolean', default: false } } });
const [firstPath, secondPath, roundsArg] = positionals;
if (!firstPath || !secondPath) throw new Error('usage: node bench/ab-fetch.ts <base dist/index.js> <branch dist/index.js> [rounds] [--size bytes]');
const ROUNDS = Number(roundsArg ?? 10);
const N = 4000;
/** The reply: the canned chat completion, or grown to about `--size` bytes. */
const CHAT_JSON = chatJsonOfSize(Number(values.size));

const REPLY_HEADERS = { 'content-type': 'application/json', 'x-request-id': 'req_bench', ...OPENAI_RATE_HEADERS };
const fake: typeof globalThis.fetch = async () => new Response(CHAT_JSON, { status: 200, headers: REPLY_HEADERS });
const BODY = JSON.stringify(CHAT_BODY);
const URL_ = 'https://keyplex.invalid/v1/chat/completions';
/** The headers the `openai` SDK sends with a chat completion. */
const sdkHeaders = () =>
  new Headers({
    accept: 'application/json',
    'content-type': 'application/json',
    'user-agent': 'OpenAI/JS 7.57.0',
    'x-stainless-arch': 'x64',
    'x-stainless-lang': 'js',
    'x-stainless-os': 'Linux',
    'x-stainless-package-version': '7.57.0',
    'x-stainless-retry-count': '0',
    'x-stainless-runtime': 'node',
    'x-stainless-runtime-version': process.version,
    'x-stainless-timeout': '600',
    authorization: 'Bearer managed-by-keyplex',
  });

/** One request as the SDK makes it and reads it. */
const call = (fetch: typeof globalThis.fetch) => async () => {
  const response = await fetch(URL_, { method: 'POST', headers: sdkHeaders(), body: BODY, signal: new AbortController().signal });
  // openai 7's reads of a reply's headers: iterated twice (its log line and its log details), three gets.
  if ([...response.headers.entries()].length + [...response.headers].length === 0) throw new Error('the reply has no headers');
  if (response.headers.get('content-type') === null || response.headers.get('content-length') === '0') throw new Error('the reply is not JSON');
  response.headers.get('x-request-id');
  const reply = JSON.parse(await response.text()) as { usage?: unknown };
  if (!reply.usage) throw new Error('the reply has no usage');
};

interface Measured {
  /** Per round: CPU µs per request of the fake fetch alone, and of the build loaded first and second. */
  floor: number[];
  first: number[];
  second: number[];
}

async function measure(): Promise<Measured> {
  const managers: Manager[] = [await managerFrom(firstPath!, fake), await managerFrom(secondPath!, fake)];
  const variants = { floor: call(fake), first: call(managers[0]!.fetch), second: call(managers[1]!.fetch) };
  const out: Measured = { floor: [], first: [], second: [] };
  // Two rounds of warm-up, then the measured ones; the order turns each round.
  for (let round = 0; round < ROUNDS + 2; round++) {
    const order = Object.keys(variants) as (keyof typeof variants)[];
    if (round % 2 === 1) order.reverse();
    for (const name of order) {
      const run = variants[name];
      const before = process.cpuUsage();
      for (let i = 0; i < N; i++) await run();
      const used = process.cpuUsage(before);
      if (round >= 2) out[name].push((used.user + used.system) / N);
    }
  }
  await Promise.all(managers.map((m) => m.close()));
  return out;
}

/** Per round, the second build's added CPU ÷ the first's; the median. */
function ratio(m: Measured): number {
  return median(m.second.map((s, i) => (s - m.floor[i]!) / (m.first[i]! - m.floor[i]!)));
}

if (values.child) {
  process.stdout.write(JSON.stringify(await measure()));
} else {
  const run = (a: string, b: string): Measured => {
    const result = spawnSync(process.execPath, [fileURLToPath(import.meta.url), a, b, String(ROUNDS), '--size', values.size!, '--child'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (result.status !== 0) throw new Error(`the measuring process failed (exit ${result.status})`);
    return JSON.parse(result.stdout) as Measured;
  };
  const baseFirst = run(firstPath, secondPath);
  const branchFirst = run(secondPath, firstPath);
  const forward = ratio(baseFirst);
  const backward = 1 / ratio(branchFirst);
  const added = (m: Measured, slot: 'first' | 'second') => median(m[slot].map((x, i) => x - m.floor[i]!));
  console.log(`keyplex's added CPU µs/request (sequential, ${ROUNDS} rounds × ${N}; floor: the fake fetch alone, ${median(baseFirst.floor).toFixed(2)} µs)`);
  console.log(`  base loaded first:   base ${added(baseFirst, 'first').toFixed(2)}, branch ${added(baseFirst, 'second').toFixed(2)}; branch ÷ base ${forward.toFixed(3)}`);
  console.log(`  branch loaded first: base ${added(branchFirst, 'second').toFixed(2)}, branch ${added(branchFirst, 'first').toFixed(2)}; branch ÷ base ${backward.toFixed(3)}`);
  console.log(`  branch ÷ base, both ways (geometric mean): ${Math.sqrt(forward * backward).toFixed(3)}`);
}
