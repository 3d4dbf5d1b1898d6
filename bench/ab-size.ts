/**
 * Added CPU by reply size, two builds against the raw SDK interleaved in one
 * process: JSON replies of 0.6, 8 and 64 KiB (bench/hotpath.ts's bodies,
 * with OpenAI's six rate-limit headers), 3 providers × 10 fake keys,
 * listeners attached, concurrency 64. CPU per request from
 * `process.cpuUsage`; per round, each build's CPU minus raw's; medians.
 * The figure issue 10 asks to be flat: added at 64 KiB minus added at 0.6 KiB.
 *
 *   node bench/ab-size.ts <base dist/index.js> <branch dist/index.js> [rounds] [n]
 *
 * Figures for the JSON-check change (branch `large` vs main c2f354e), 2 cores
 * shared with five other jobs (load 1-10: the per-round spread was wider than
 * the effect at 0.6 KiB): 64 KiB minus 0.6 KiB added µs base -> branch 132.6 ->
 * 71.8 (15 rounds), 108.2 -> 72.7 (15 rounds, load 0.5-1). Instruction counts
 * (callgrind, `bench/hotpath.ts --case ... --n 600` minus `--n 200`, c64) are
 * load-proof: per request at 64 KiB raw 2.535M, base 4.125M, branch 3.896M; at
 * 0.6 KiB raw 1.130M, base 2.163M, branch 2.241M; added 64 KiB minus added
 * 0.6 KiB: base 0.556M, branch 0.250M instructions (-55%). One sample each:
 * JIT and GC timing move such differences by some 10^4 instructions.
 */
import { setImmediate as turn } from 'node:timers/promises';
import { CHAT_BODY, median, throughput } from './lib.ts';
import { chatJsonOfSize, OPENAI_RATE_HEADERS } from './hotpath.ts';
import { abClients } from './ab-lib.ts';

const [basePath, branchPath, roundsArg, nArg] = process.argv.slice(2);
if (!basePath || !branchPath) throw new Error('usage: node bench/ab-size.ts <base dist/index.js> <branch dist/index.js> [rounds] [n]');
const ROUNDS = Number(roundsArg ?? 9);
const N = Number(nArg ?? 1500);
const headers = { 'content-type': 'application/json', 'x-request-id': 'req_bench', ...OPENAI_RATE_HEADERS };
const VARIANTS = ['raw', 'base', 'branch'];
const added: Record<string, Record<string, number>> = {};

for (const kib of [0.6, 8, 64]) {
  const body = chatJsonOfSize(kib * 1024);
  const fetch = (async () => new Response(body, { status: 200, headers })) as typeof globalThis.fetch;
  const { clients, close } = await abClients(basePath, branchPath, fetch);
  const run = (v: string) => throughput(() => clients[v]!.chat.completions.create(CHAT_BODY), N, 64, 1e9);
  for (const v of VARIANTS) await run(v);
  const cpu: Record<string, number[]> = { raw: [], base: [], branch: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < VARIANTS.length; i++) {
      const v = VARIANTS[(i + round) % VARIANTS.length]!;
      await turn();
      cpu[v]!.push((await run(v)).cpuUsPerCall);
    }
  }
  await close();
  const over = (a: string) => median(cpu[a]!.map((x, i) => x - cpu.raw![i]!));
  added[kib] = { base: over('base'), branch: over('branch') };
  process.stdout.write(
    `${kib} KiB, ${ROUNDS} rounds × ${N}: CPU µs/req raw ${median(cpu.raw!).toFixed(1)}, base ${median(cpu.base!).toFixed(1)}, branch ${median(cpu.branch!).toFixed(1)}; ` +
      `added over raw: base ${over('base').toFixed(1)}, branch ${over('branch').toFixed(1)}\n`,
  );
}
process.stdout.write(`64 KiB minus 0.6 KiB added: base ${(added[64]!.base! - added[0.6]!.base!).toFixed(1)}, branch ${(added[64]!.branch! - added[0.6]!.branch!).toFixed(1)}\n`);
