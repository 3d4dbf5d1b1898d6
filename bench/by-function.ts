/**
 * Instructions per request by function, raw SDK and keyplex, counted by
 * callgrind (not part of `npm run bench`): which of keyplex's functions, and
 * which of V8's and Node's, the added instructions of a wrapped request go
 * to. Instruction counts do not move with the machine's load.
 *
 * Each variant of bench/hotpath.ts's loop runs twice under `valgrind
 * --tool=callgrind` (with `--single-threaded`, so that the collector and the
 * compiler count on the one thread), at two request counts; the per-request
 * figure is the difference ÷ the extra requests, so that start-up and
 * compilation drop out. JIT-compiled JavaScript shows in callgrind as bare
 * addresses: V8's `--perf-basic-prof` map (/tmp/perf-PID.map) names them.
 * Natives (builtins, the collector, undici's C++) keep their own names.
 *
 *   npm run build && node bench/by-function.ts [--case json-rl] [--concurrency 64] [--n 4000,12000] [--top 40]
 *
 * Takes about 2 minutes a run on 2 cores (4 runs). Needs valgrind
 * (`callgrind_annotate` too) on the PATH. Found with it (2026-12-02, json-rl,
 * concurrency 64): raw 546,232 and wrapped 716,506 instructions per request;
 * keyplex's own functions 75,370 of the 170,274 added, the JSON reply check
 * (`scan`) the largest at 12,853.
 *
 * What one run can tell (branch json-cuts, 2026-12-02): two runs of the same
 * build gave 730,667 and 735,874 wrapped, and two of one changed build
 * 664,315 and 696,661, the differences nearly all in the collector
 * (scavenging 15,944 against 1,897 in `ScavengeObject` alone) while
 * `--trace-gc` counted the same 69 scavenges per 12,000 requests in both
 * builds outside valgrind: under valgrind the collector's share moves by tens
 * of thousands per request from run to run. JIT attribution moves too (a
 * function inlined in one run, not in the next). Read keyplex's own functions
 * (the `/dist/` rows) summed over what a change touches, not the total. A
 * cache keyed on the clock's millisecond cannot be judged here: under
 * valgrind the clock runs tens of times faster against the work, so picks
 * seldom share a millisecond (outside it, a per-limiter headroom cache hit
 * 78% of reads at concurrency 64).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { case: { type: 'string', default: 'json-rl' }, concurrency: { type: 'string', default: '64' }, n: { type: 'string', default: '4000,12000' }, top: { type: 'string', default: '40' } } });
const [low, high] = values.n!.split(',').map(Number) as [number, number];
if (!(high > low && low > 0)) throw new Error('--n takes two request counts, the smaller first: --n 4000,12000');
const hotpath = new URL('./hotpath.ts', import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), 'keyplex-by-function-'));

/** Instructions by function name of one run: natives by their symbol, JIT code by its perf-map name. */
function run(variant: string, n: number): Map<string, number> {
  const out = join(work, `${variant}-${n}.callgrind`);
  const args = ['--tool=callgrind', `--callgrind-out-file=${out}`, process.execPath, '--single-threaded', '--perf-basic-prof', '--interpreted-frames-native-stack', hotpath, '--case', values.case!, '--variant', variant, '--n', String(n), '--concurrency', values.concurrency!];
  const ran = spawnSync('valgrind', args, { encoding: 'utf8' });
  if (ran.status !== 0 || !existsSync(out)) throw new Error(`valgrind ${variant} --n ${n} failed (${ran.error?.message ?? `exit ${ran.status}`}): ${ran.stderr.slice(-2000)}`);
  // valgrind runs node in its own process: the map is named by valgrind's pid.
  const mapFile = `/tmp/perf-${ran.pid}.map`;
  const names = readMap(mapFile);
  rmSync(mapFile, { force: true });
  const annotated = spawnSync('callgrind_annotate', ['--threshold=100', out], { encoding: 'utf8', maxBuffer: 1 << 28 });
  rmSync(out, { force: true });
  const byName = new Map<string, number>();
  for (const line of annotated.stdout.split('\n')) {
    const m = /^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$/.exec(line);
    if (!m || m[2]!.includes('PROGRAM TOTALS')) continue;
    const ir = Number(m[1]!.replaceAll(',', ''));
    const jit = /^\?\?\?:0x([0-9a-f]+) \[\?\?\?\]$/.exec(m[2]!);
    const name = jit ? names(Number.parseInt(jit[1]!, 16)) : m[2]!.replace(/\s*\[[^\]]*\]$/, '').replace(/^\?\?\?:/, '');
    byName.set(name, (byName.get(name) ?? 0) + ir);
  }
  return byName;
}

/** The perf map's lookup: an address to the name of the code holding it (tier marks dropped). */
function readMap(file: string): (address: number) => string {
  const entries = readFileSync(file, 'utf8')
    .split('\n')
    .map((line) => /^([0-9a-f]+) ([0-9a-f]+) (.*)$/.exec(line))
    .filter((m) => m !== null)
    .map((m) => ({ start: Number.parseInt(m[1]!, 16), size: Number.parseInt(m[2]!, 16), name: m[3]!.replace(/^(?:JS|LazyCompile|Function):[*~+^]?/, '') }))
    .sort((a, b) => a.start - b.start);
  return (address) => {
    let lo = 0;
    let hi = entries.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (entries[mid]!.start <= address) lo = mid;
      else hi = mid - 1;
    }
    const e = entries[lo];
    return e !== undefined && e.start <= address && address < e.start + e.size ? e.name : '(JIT code not in the map)';
  };
}

/** Per request between the two counts, by name. */
function perRequest(variant: string): Map<string, number> {
  const a = run(variant, low);
  const b = run(variant, high);
  const out = new Map<string, number>();
  for (const name of new Set([...a.keys(), ...b.keys()])) out.set(name, ((b.get(name) ?? 0) - (a.get(name) ?? 0)) / (high - low));
  return out;
}

try {
  const raw = perRequest('raw');
  const wrapped = perRequest('wrapped');
  const total = (m: Map<string, number>) => [...m.values()].reduce((s, v) => s + v, 0);
  const rows = [...new Set([...raw.keys(), ...wrapped.keys()])].map((name) => ({ name, raw: raw.get(name) ?? 0, wrapped: wrapped.get(name) ?? 0 })).sort((x, y) => y.wrapped - y.raw - (x.wrapped - x.raw));
  const own = rows.filter((r) => r.name.includes('/dist/')).reduce((s, r) => s + r.wrapped - r.raw, 0);
  const fmt = (v: number) => Math.round(v).toLocaleString('en-US').padStart(9);
  console.log(`${values.case}, concurrency ${values.concurrency}, (${high} − ${low} requests): instructions per request raw ${fmt(total(raw))}, wrapped ${fmt(total(wrapped))} (${(total(wrapped) / total(raw)).toFixed(3)}×); keyplex's own functions ${fmt(own)} of the ${fmt(total(wrapped) - total(raw))} added`);
  console.log(`${'added'.padStart(9)} ${'raw'.padStart(9)} ${'wrapped'.padStart(9)}  function`);
  for (const r of rows.slice(0, Number(values.top))) console.log(`${fmt(r.wrapped - r.raw)} ${fmt(r.raw)} ${fmt(r.wrapped)}  ${r.name.slice(0, 140)}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
