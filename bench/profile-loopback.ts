/**
 * Where keyplex's client CPU goes (not part of `npm run bench`): raw SDK vs
 * keyplex against the simulator in a child process (or, `--inproc`, a fake
 * fetch answering at once), interleaved rounds, each under the V8 CPU
 * profiler; self time per request aggregated by function per variant, and
 * the largest differences (wrapped − `--base`). Also counts undici's new
 * connections per variant. Variants: raw, wrapped (dist/), base (a second
 * build at bench/out/base/index.js, e.g. the last commit's, for before/after),
 * seam / seamread (a minimal fetch seam: URL and auth rewritten, a
 * per-attempt controller; seamread also reads the body and rebuilds the
 * Response), rawfake / wrappedfake (in-process, next to loopback ones).
 *
 * What it showed (2026-11-30, machine under load 9-20): on loopback keyplex
 * makes the same syscalls per request as the raw SDK (strace: one writev,
 * ~1.2 reads), opens no more connections (0 new ones at concurrency 1), and
 * a minimal seam that also reads and rebuilds the reply costs ~1.06x raw:
 * the added client CPU is keyplex's own pipeline code, the same functions
 * and about the same amount as in-process (at one moment, concurrency 1:
 * +167 us loopback, +247 us in-process). Self times per function on loopback
 * under load are inflated for code that runs right after a socket write
 * (wall-clock samples while the process waits to run again): compare CPU
 * time (--noprof) first.
 *
 * Why keyplex adds ~3x more CPU on loopback than in-process (2026-11-30,
 * branch reqside): not anything loopback-specific. strace shows the same
 * writev per request (headers + body in one, content-length, the same
 * connection reuse); the wrapped request's body is the SDK's own string.
 * What differs is that the process sleeps between requests: `--inproc
 * --idle 1` (the fake fetch answering after a 1 ms timer, no network)
 * reproduces the gap: concurrency 1, raw 85 -> 344 µs/req, keyplex's added
 * CPU 70 -> 220 µs/req (and 143 -> 197 in a second pair). After each sleep
 * the same code runs with cold caches and predictors (2 shared cores), so
 * every added instruction and allocation costs 2-3x what it costs in a hot
 * in-process loop; the sequential added latency follows the added CPU
 * before the write and after the reply. Only fewer instructions and
 * allocations on the request's path close it.
 *
 *   npm run build && node bench/profile-loopback.ts [--conc 1] [--n 1500] [--rounds 6] [--top 45]
 *     [--stream] [--inproc [--idle ms]] [--noprof] [--variants raw,wrapped] [--base raw]
 */
import { subscribe } from 'node:diagnostics_channel';
import { Session } from 'node:inspector/promises';
import { parseArgs } from 'node:util';
import OpenAI from 'openai';
import type { KeyManager } from '../dist/index.js';
import { CASES, OPENAI_RATE_HEADERS } from './hotpath.ts';
import { CHAT_BODY, fakeKey, fakeKeys, fetchSeam, latencies, makeManager, MODEL, remoteSimulator, SEAM_BASE_URL, throughput } from './lib.ts';

const { values } = parseArgs({ options: { conc: { type: 'string', default: '1' }, n: { type: 'string', default: '1500' }, rounds: { type: 'string', default: '6' }, top: { type: 'string', default: '45' }, stream: { type: 'boolean', default: false }, noprof: { type: 'boolean', default: false }, variants: { type: 'string' }, inproc: { type: 'boolean', default: false }, idle: { type: 'string', default: '0' }, base: { type: 'string', default: 'raw' } } });
const conc = Number(values.conc), n = Number(values.n), rounds = Number(values.rounds), top = Number(values.top);
const rawKey = fakeKey();
const keys = fakeKeys(3, 10);
const sim = await remoteSimulator({ providers: Object.entries({ ...keys, p0: [...keys.p0!, rawKey] }).map(([id, k]) => ({ id, keys: k, models: [MODEL], rpm: 1_000_000_000, tpm: 1_000_000_000_000 })) });
// --inproc: a fake fetch answering at once (as bench/hotpath.ts, with the six rate-limit headers) instead of the simulator.
const canned = (() => {
  const c = CASES.find((x) => x.id === (values.stream ? 'sse-rl' : 'json-rl'))!;
  const headers: Record<string, string> = { 'content-type': c.contentType, 'x-request-id': 'req_bench', ...OPENAI_RATE_HEADERS };
  const idleMs = Number(values.idle);
  return async () => {
    // --idle: the event loop sleeps this long per request, as it does waiting for a loopback reply.
    if (idleMs > 0) await new Promise((resolve) => setTimeout(resolve, idleMs));
    return new Response(c.body, { status: 200, headers });
  };
})();
const inproc = values.inproc ? { fetch: canned as typeof globalThis.fetch } : {};
const { manager } = makeManager({ keys, baseURL: values.inproc ? (id) => `https://${id}.bench.invalid/v1` : sim.baseURL, events: true, ...inproc });
const base = sim.baseURL('p0');
const BASE_BUILD: string = './out/base/index.js';
// `base`: the same manager from another build (bench/out/base/index.js, say the last commit's), for before/after in one run.
const baseManager = values.variants?.includes('base')
  ? new (((await import(BASE_BUILD)) as { KeyManager: typeof KeyManager }).KeyManager)({
      providers: Object.fromEntries(Object.entries(keys).map(([id, k]) => [id, { baseURL: values.inproc ? `https://${id}.bench.invalid/v1` : sim.baseURL(id), keys: k, models: [MODEL] }])),
      ...inproc,
    })
  : undefined;
if (baseManager) for (const e of ['request', 'attempt', 'success'] as const) baseManager.on(e, () => undefined);
// rawfake / wrappedfake: the same clients on the in-process fake fetch, to compare with loopback at the same moment.
const fake = makeManager({ keys, baseURL: (id) => `https://${id}.bench.invalid/v1`, events: true, fetch: canned as typeof globalThis.fetch }).manager;
const clients: Record<string, OpenAI> = {
  rawfake: new OpenAI({ apiKey: rawKey, baseURL: 'https://raw.bench.invalid/v1', maxRetries: 0, fetch: canned as typeof globalThis.fetch }),
  wrappedfake: fake.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 })),
  ...(baseManager ? { base: baseManager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 })) } : {}),
  raw: new OpenAI({ apiKey: rawKey, baseURL: base, maxRetries: 0, ...inproc }),
  wrapped: manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 })),
  // Minimal fetch seams (bench/lib.ts): what any key manager must do at least, to see what loopback costs beyond it.
  seam: new OpenAI({ apiKey: 'x', baseURL: SEAM_BASE_URL, maxRetries: 0, fetch: fetchSeam(base, rawKey, false) }),
  seamread: new OpenAI({ apiKey: 'x', baseURL: SEAM_BASE_URL, maxRetries: 0, fetch: fetchSeam(base, rawKey, true) }),
};
const variants = (values.variants ?? 'raw,wrapped').split(',');
const body = values.stream ? { ...CHAT_BODY, stream: true as const } : CHAT_BODY;
const call = (v: string) => async () => {
  const r = await clients[v]!.chat.completions.create(body as typeof CHAT_BODY);
  if (values.stream) for await (const _ of r as unknown as AsyncIterable<unknown>);
};
let connections = 0;
subscribe('undici:client:connected', () => void connections++);
const session = new Session();
session.connect();
await session.post('Profiler.enable');
await session.post('Profiler.setSamplingInterval', { interval: 100 });
type Agg = Map<string, number>;
const agg: Record<string, Agg> = Object.fromEntries(variants.map((v) => [v, new Map()]));
const totals: Record<string, { us: number; cpu: number; reqs: number; conns: number; wall: number; ratios: number[]; cpus: number[] }> = Object.fromEntries(variants.map((v) => [v, { us: 0, cpu: 0, reqs: 0, conns: 0, wall: 0, ratios: [], cpus: [] }]));
for (const v of variants) {
  await latencies(call(v), 1_000_000, 2500);
  await throughput(call(v), 1_000_000, 64, 2500);
}
for (let r = 0; r < rounds; r++) {
  const order = variants.map((_, i) => variants[(i + r) % variants.length]!);
  const cpuOf: Record<string, number> = {};
  for (const v of order) {
    const c0 = connections;
    if (!values.noprof) await session.post('Profiler.start');
    const s = await throughput(call(v), n, conc, 10_000);
    const t = totals[v]!;
    cpuOf[v] = s.cpuUsPerCall; t.cpus.push(s.cpuUsPerCall); t.cpu += s.cpuUsPerCall * s.completed; t.reqs += s.completed; t.conns += connections - c0; t.wall += s.seconds;
    if (values.noprof) continue;
    const { profile } = await session.post('Profiler.stop');
    const byId = new Map(profile.nodes.map((node) => [node.id, node]));
    const dt = profile.timeDeltas!;
    const counts = new Map<number, number>();
    for (let i = 0; i < profile.samples!.length; i++) counts.set(profile.samples![i]!, (counts.get(profile.samples![i]!) ?? 0) + (dt[i] ?? 0));
    for (const [id, us] of counts) {
      const f = byId.get(id)!.callFrame;
      // Keyplex's own functions by name only (two builds' line numbers differ); others with their place.
      const file = f.url.replace(/^.*\/(node_modules\/)?/, '');
      const name = /^index\.js$/.test(file) ? `${f.functionName || '(anon)'} (keyplex)` : `${f.functionName || '(anon)'} ${file}:${f.lineNumber + 1}`;
      agg[v]!.set(name, (agg[v]!.get(name) ?? 0) + us);
      if (!/^\((idle|program)\)|^(writev|post) /.test(name)) t.us += us;
    }
  }
  for (const v of variants) totals[v]!.ratios.push(cpuOf[v]! / cpuOf.raw!);
}
for (const v of variants) {
  const t = totals[v]!;
  const rs = [...t.ratios].sort((a, b) => a - b);
  const cpus = [...t.cpus].sort((a, b) => a - b);
  console.log(`\n== ${v}: median CPU µs/req ${cpus[cpus.length >> 1]!.toFixed(1)}; ${t.reqs} reqs, ${(t.reqs / t.wall).toFixed(0)} req/s, process CPU ${(t.cpu / t.reqs).toFixed(1)} µs/req, sampled JS+native ${(t.us / t.reqs).toFixed(1)} µs/req, new connections ${t.conns}; CPU ratio to raw per round ${rs.map((x) => x.toFixed(2)).join(' ')} (median ${rs[rs.length >> 1]!.toFixed(2)})`);
  const rows = [...agg[v]!].sort((a, b) => b[1] - a[1]).slice(0, top);
  for (const [name, us] of rows) console.log(`${(us / t.reqs).toFixed(2).padStart(8)} µs/req  ${name}`);
}
// Differences by function: wrapped minus raw, per request.
const baseV = values.base!;
if (agg.wrapped && agg[baseV]) {
const diff = new Map<string, number>();
for (const [name, us] of agg.wrapped!) diff.set(name, us / totals.wrapped!.reqs);
for (const [name, us] of agg[baseV]!) diff.set(name, (diff.get(name) ?? 0) - us / totals[baseV]!.reqs);
console.log(`\n== wrapped − ${baseV}, per request (largest)`);
for (const [name, us] of [...diff].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${us.toFixed(2).padStart(8)} µs/req  ${name}`);
}
console.log(`total connections ${connections}`);
await manager.close();
await fake.close();
await baseManager?.close();
await sim.close();
session.disconnect();
