/**
 * Two builds of keyplex against the raw SDK, interleaved in one process: the
 * in-process fake fetch of bench/hotpath.ts (JSON + OpenAI's six rate-limit
 * headers), 3 providers × 10 keys, listeners attached; at concurrency 64 and
 * sequentially. CPU per request from `process.cpuUsage`; ratios to raw per
 * round, medians across rounds (a loaded machine moves wall clock, not these).
 *
 *   node bench/ab-dists.ts <base dist/index.js> <branch dist/index.js> [rounds]
 *
 * Figures for the one-controller / one-timer change (branch `signals` vs
 * 36c84ef), 2 loaded cores: per-round branch ÷ base CPU medians were 0.96,
 * 1.02, 0.99 at concurrency 64 and 1.05, 1.01, 0.98 sequentially (40, 15
 * and 30 rounds): within this machine's noise. Instruction counts
 * (callgrind, json-rl, concurrency 64, 1600 minus 400 requests) are
 * load-proof: raw 885,717, base 2,025,087 (2.29×), branch 1,934,875 (2.18×)
 * per request.
 *
 * The floor (2026-12-02, load average 7 on the 2 cores): two copies of one
 * build, 150 rounds, gave branch ÷ base 1.009 at concurrency 64 and 1.013
 * sequentially (the build loaded second was the slower); a change must move
 * the ratio clearly past that, ~2%, to show.
 */
import { setImmediate as turn } from 'node:timers/promises';
import { CHAT_BODY, CHAT_JSON, median, throughput } from './lib.ts';
import { OPENAI_RATE_HEADERS } from './hotpath.ts';
import { abClients } from './ab-lib.ts';

const [basePath, branchPath, roundsArg] = process.argv.slice(2);
if (!basePath || !branchPath) throw new Error('usage: node bench/ab-dists.ts <base dist/index.js> <branch dist/index.js> [rounds]');
const ROUNDS = Number(roundsArg ?? 15);
const headers = { 'content-type': 'application/json', 'x-request-id': 'req_bench', ...OPENAI_RATE_HEADERS };
const fetch = (async () => new Response(CHAT_JSON, { status: 200, headers })) as typeof globalThis.fetch;
const { clients, close } = await abClients(basePath, branchPath, fetch);
const VARIANTS = ['raw', 'base', 'branch'];

for (const [label, concurrency, n] of [['concurrency 64', 64, 3000], ['sequential', 1, 1000]] as const) {
  for (const v of VARIANTS) await throughput(() => clients[v]!.chat.completions.create(CHAT_BODY), n, concurrency, 1e9);
  const cpu: Record<string, number[]> = { raw: [], base: [], branch: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < VARIANTS.length; i++) {
      const v = VARIANTS[(i + round) % VARIANTS.length]!;
      await turn();
      cpu[v]!.push((await throughput(() => clients[v]!.chat.completions.create(CHAT_BODY), n, concurrency, 1e9)).cpuUsPerCall);
    }
  }
  const ratio = (a: string, b: string) => median(cpu[a]!.map((x, i) => x / cpu[b]![i]!));
  const added = (a: string) => median(cpu[a]!.map((x, i) => x - cpu.raw![i]!));
  process.stdout.write(
    `${label}, ${ROUNDS} rounds × ${n} requests: CPU µs/req median raw ${median(cpu.raw!).toFixed(1)}, base ${median(cpu.base!).toFixed(1)}, branch ${median(cpu.branch!).toFixed(1)}; ` +
      `added over raw: base ${added('base').toFixed(1)}, branch ${added('branch').toFixed(1)}; ratio to raw: base ${ratio('base', 'raw').toFixed(3)}, branch ${ratio('branch', 'raw').toFixed(3)}; branch ÷ base ${ratio('branch', 'base').toFixed(3)}\n`,
  );
}
await close();
