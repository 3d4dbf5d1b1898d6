/**
 * Shared pieces of the benchmark suite: statistics, timing loops, canned
 * upstream answers, the machine description and Markdown tables.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { arch, cpus, loadavg, platform, release, totalmem } from 'node:os';
import { setImmediate as turn } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import OpenAI from 'openai';
import { KeyManager, type KeyManagerOptions } from '../dist/index.js';
import { ProviderSimulator, type ProviderTally, type SimulatorOptions } from '../dist/testing.js';

// ---------------------------------------------------------------- scenario shape

export interface RunOptions {
  /** Smoke run: fewer rounds, shorter windows (~30 s in all). */
  quick: boolean;
}

export interface Table {
  title: string;
  headers: string[];
  rows: string[][];
}

/** What a scenario hands back: Markdown parts and the same figures as data. */
export interface ScenarioResult {
  id: string;
  title: string;
  /** How the figures were obtained, one paragraph per entry. */
  method: string[];
  tables: Table[];
  /** Observations worth a reader's attention, measured, not assumed. */
  notes: string[];
  data: Record<string, unknown>;
}

export type Scenario = (options: RunOptions) => Promise<ScenarioResult>;

// ---------------------------------------------------------------- statistics

/** Quantile `q` in [0, 1] of ascending `sorted`, linear interpolation between ranks. */
/** A full garbage collection now (the flag set at run time: the benches run without `--expose-gc`). */
export function forceGc(): void {
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
}

export function quantile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const at = (n - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo);
}

export function sorted(values: ArrayLike<number>): Float64Array {
  return Float64Array.from(values).sort();
}

export function median(values: ArrayLike<number>): number {
  return quantile(sorted(values), 0.5);
}

export function mean(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]!;
  return values.length === 0 ? NaN : sum / values.length;
}

// ---------------------------------------------------------------- timing loops

/**
 * Loops yield to the event loop every this many calls. With a fake `fetch`
 * that answers at once, a loop would otherwise run as one endless microtask
 * job, and V8 keeps every `WeakRef` target of a job alive until it ends
 * (keyplex's `AbortSignal.any` makes several per request): the heap would
 * grow for the whole run, unlike in any application whose I/O turns the loop.
 */
export const YIELD_EVERY = 16;

/**
 * Calls `call` one after another, up to `count` times or until `capMs` has
 * passed, and returns each call's duration in µs (process.hrtime.bigint).
 */
export async function latencies(call: () => Promise<unknown>, count: number, capMs: number): Promise<Float64Array> {
  const out = new Float64Array(count);
  const stopAt = performance.now() + capMs;
  let n = 0;
  while (n < count) {
    const t0 = process.hrtime.bigint();
    await call();
    out[n++] = Number(process.hrtime.bigint() - t0) / 1e3;
    if (n % YIELD_EVERY === 0) {
      await turn(); // not timed
      if (performance.now() > stopAt) break;
    }
  }
  return out.subarray(0, n);
}

export interface ThroughputSample {
  completed: number;
  seconds: number;
  rps: number;
  /** Process CPU time (user + system) per completed call, µs. */
  cpuUsPerCall: number;
}

/**
 * Closed loop: `concurrency` workers call `call` until `total` calls were
 * issued or `capMs` has passed. Rate = completed ÷ wall time (performance.now).
 */
export async function throughput(call: () => Promise<unknown>, total: number, concurrency: number, capMs: number): Promise<ThroughputSample> {
  let issued = 0;
  let completed = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const stopAt = t0 + capMs;
  const worker = async (): Promise<void> => {
    while (issued < total && performance.now() < stopAt) {
      issued++;
      await call();
      if (++completed % YIELD_EVERY === 0) await turn();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { completed, seconds, rps: completed / seconds, cpuUsPerCall: (cpu.user + cpu.system) / completed };
}

/**
 * Runs `rounds` rounds of every variant, rotating which variant goes first
 * each round so that none always runs warm (or cold) after another.
 */
export async function interleaved<T>(rounds: number, variants: readonly string[], run: (variant: string, round: number) => Promise<T>): Promise<Map<string, T[]>> {
  const out = new Map<string, T[]>(variants.map((v) => [v, []]));
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < variants.length; i++) {
      const variant = variants[(i + round) % variants.length]!;
      await turn();
      out.get(variant)!.push(await run(variant, round));
    }
  }
  return out;
}

/** Waits for `promise`, at most `ms`; true when it settled in time. Leaves no timer behind. */
export async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * What a scenario opened (managers, stores, servers, child processes,
 * clients): `add` each as it is made, `closeAll()` in a `finally`, so that
 * every path, failures included, closes everything and the process exits.
 * Closes in reverse order, each within 10 s; a failing close is logged, not thrown.
 */
export class Resources {
  readonly #closers: { name: string; close: () => unknown }[] = [];

  /** Registers `close` (run once by `closeAll`) and returns `item`. */
  add<T>(name: string, item: T, close: (item: T) => unknown): T {
    this.#closers.push({ name, close: () => close(item) });
    return item;
  }

  async closeAll(): Promise<void> {
    for (const { name, close } of this.#closers.splice(0).reverse()) {
      const closing = Promise.resolve()
        .then(close)
        .catch((error: unknown) => log(`closing ${name} failed: ${error instanceof Error ? error.message : String(error)}`));
      if (!(await within(closing, 10_000))) log(`closing ${name} took more than 10 s; moving on`);
    }
  }
}

// ---------------------------------------------------------------- fixtures

/** A fake key made at run time; never anything that looks like a real one. */
export function fakeKey(): string {
  return `bench-${randomBytes(8).toString('hex')}`;
}

export const MODEL = 'gpt-4.1-mini';
export const CHAT_BODY = { model: MODEL, messages: [{ role: 'user' as const, content: 'Say hello' }], max_tokens: 32 };

const CREATED = 1_750_000_000;

/** A canned chat completion, as a provider answers it. */
export const CHAT_JSON = JSON.stringify({
  id: 'chatcmpl-bench0000000000000000',
  object: 'chat.completion',
  created: CREATED,
  model: MODEL,
  choices: [
    {
      index: 0,
      message: { role: 'assistant', content: 'Hello! How can I help you today?', refusal: null, annotations: [] },
      logprobs: null,
      finish_reason: 'stop',
    },
  ],
  usage: {
    prompt_tokens: 9,
    completion_tokens: 9,
    total_tokens: 18,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0 },
  },
  service_tier: 'default',
  system_fingerprint: 'fp_bench',
});

/** A canned streamed chat completion: role, 9 content pieces, finish, a usage chunk, [DONE]. */
export const CHAT_SSE = (() => {
  const base = { id: 'chatcmpl-bench0000000000000000', object: 'chat.completion.chunk', created: CREATED, model: MODEL, system_fingerprint: 'fp_bench' };
  const chunk = (delta: object, finish: string | null) => JSON.stringify({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] });
  const pieces = ['Hello', '!', ' How', ' can', ' I', ' help', ' you', ' today', '?'];
  const events = [chunk({ role: 'assistant', content: '', refusal: null }, null), ...pieces.map((p) => chunk({ content: p }, null)), chunk({}, 'stop')];
  events.push(JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: 9, completion_tokens: 9, total_tokens: 18 } }));
  events.push('[DONE]');
  return events.map((data) => `data: ${data}\n\n`).join('');
})();

/** A `fetch` that answers every call at once with `body`, without any network. */
export function cannedFetch(body: string, contentType: string): typeof globalThis.fetch {
  const headers = { 'content-type': contentType, 'x-request-id': 'req_bench' };
  return async () => new Response(body, { status: 200, headers });
}

/** Counters the benchmark's event listeners bump: trivial work, but real listeners. */
export interface EventTally {
  request: number;
  attempt: number;
  success: number;
  latencyMsSum: number;
}

/** `providers` provider ids (`p0`, `p1`, ...) with `perProvider` fake keys each. */
export function fakeKeys(providers: number, perProvider: number): Record<string, string[]> {
  return Object.fromEntries(Array.from({ length: providers }, (_, p) => [`p${p}`, Array.from({ length: perProvider }, fakeKey)]));
}

/**
 * A manager over `keys` (provider id → its keys), every provider serving
 * {@link MODEL} at `baseURL(id)`. With `events`, listeners on `request`,
 * `attempt` and `success` count into the returned tally.
 */
export function makeManager(o: {
  keys: Record<string, string[]>;
  baseURL: (provider: string) => string;
  fetch?: typeof globalThis.fetch;
  events: boolean;
  /** Requests per minute of every key (default: none known). */
  rpm?: number;
  extra?: Partial<KeyManagerOptions>;
}): { manager: KeyManager; tally: EventTally } {
  const providers: KeyManagerOptions['providers'] = {};
  for (const [id, keys] of Object.entries(o.keys)) providers[id] = { baseURL: o.baseURL(id), keys, models: [MODEL], ...(o.rpm === undefined ? {} : { rpm: o.rpm }) };
  const manager = new KeyManager({ ...o.extra, providers, ...(o.fetch ? { fetch: o.fetch } : {}) });
  const tally: EventTally = { request: 0, attempt: 0, success: 0, latencyMsSum: 0 };
  if (o.events) {
    manager.on('request', () => void tally.request++);
    manager.on('attempt', () => void tally.attempt++);
    manager.on('success', (e) => {
      tally.success++;
      tally.latencyMsSum += e.latencyMs;
    });
  }
  return { manager, tally };
}

/** The status of an error the SDK raised, when it has one. */
export function statusOf(error: unknown): number | undefined {
  const status = (error as { status?: unknown } | null)?.status;
  return typeof status === 'number' ? status : undefined;
}

/** A short name for an application-visible error: `429`, `500`, `connection`, ... */
export function errorKind(error: unknown): string {
  const status = statusOf(error);
  if (status !== undefined) return String(status);
  if (error instanceof OpenAI.APIConnectionTimeoutError) return 'timeout';
  if (error instanceof OpenAI.APIConnectionError) return 'connection';
  return error instanceof Error ? error.constructor.name : 'unknown';
}

// ---------------------------------------------------------------- simulator in a child process

/**
 * A provider simulator serving on 127.0.0.1 from a child process (this file
 * run with `--serve-simulator`), so that the measured client process has
 * its own core. Options travel over IPC, so they must be plain data.
 */
export interface RemoteSimulator {
  baseURL(provider: string): string;
  tallies(): Promise<{ tallies: Record<string, ProviderTally>; peak: Record<string, Record<string, number>> }>;
  close(): Promise<void>;
}

type ToChild = { type: 'start'; options: SimulatorOptions } | { type: 'tallies' } | { type: 'close' };
type FromChild = { type: 'ready'; baseURLs: Record<string, string> } | { type: 'tallies'; tallies: Record<string, ProviderTally>; peak: Record<string, Record<string, number>> };

export async function remoteSimulator(options: SimulatorOptions): Promise<RemoteSimulator> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--serve-simulator'], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const waiting: { resolve: (m: FromChild) => void; reject: (e: Error) => void }[] = [];
  let exited = false;
  child.on('message', (m) => waiting.shift()?.resolve(m as FromChild));
  child.once('exit', (code) => {
    exited = true;
    for (const w of waiting.splice(0)) w.reject(new Error(`simulator child exited (${code})`));
  });
  const ask = (message: ToChild, timeoutMs = 15_000) =>
    new Promise<FromChild>((resolve, reject) => {
      if (exited) return reject(new Error('simulator child has exited'));
      const timer = setTimeout(() => reject(new Error(`simulator child did not answer '${message.type}' within ${timeoutMs} ms`)), timeoutMs);
      const done = (f: () => void) => (clearTimeout(timer), f());
      waiting.push({ resolve: (m) => done(() => resolve(m)), reject: (e) => done(() => reject(e)) });
      child.send(message);
    });
  const ready = await ask({ type: 'start', options });
  if (ready.type !== 'ready') throw new Error('simulator child failed to start');
  return {
    baseURL: (provider) => ready.baseURLs[provider]!,
    async tallies() {
      const m = await ask({ type: 'tallies' });
      if (m.type !== 'tallies') throw new Error('unexpected answer from the simulator child');
      return { tallies: m.tallies, peak: m.peak };
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (exited) return resolve();
        const timer = setTimeout(() => (child.kill(), resolve()), 5_000);
        child.once('exit', () => (clearTimeout(timer), resolve()));
        child.send({ type: 'close' } satisfies ToChild);
      }),
  };
}

/**
 * A node:http server in a child process on 127.0.0.1 answering every request
 * at once with `body` and `headers` (an upstream independent of keyplex's
 * simulator). Idle keep-alive sockets are never closed by it: a client run
 * under valgrind is ~50x slower than the default 5 s allows.
 */
export async function cannedServer(body: string, headers: Record<string, string>): Promise<{ origin: string; kill: () => void }> {
  const all = JSON.stringify({ ...headers, 'content-length': String(Buffer.byteLength(body)) });
  const code = `const s = require('node:http').createServer((q, r) => { q.resume(); q.on('end', () => { r.writeHead(200, ${all}); r.end(${JSON.stringify(body)}); }); }); s.keepAliveTimeout = 0; s.requestTimeout = 0; s.headersTimeout = 0; s.listen(0, '127.0.0.1', () => process.stdout.write(s.address().port + '\\n'));`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((resolve) => child.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim())));
  return { origin: `http://127.0.0.1:${port}`, kill: () => void child.kill() };
}

/** Node's global fetch with every URL's origin replaced by `origin` (raw clients and managers alike go to one server). */
export function fetchAt(origin: string): typeof globalThis.fetch {
  return ((input: string | URL | Request, init?: RequestInit) => globalThis.fetch(String(input).replace(/^https?:\/\/[^/]+/, origin), init)) as typeof globalThis.fetch;
}

/** Where a {@link fetchSeam} client sends its requests; the seam replaces this prefix with the upstream's base URL. */
export const SEAM_BASE_URL = 'https://seam.invalid/v1';

/**
 * A minimal fetch seam: the least a key manager sitting under the SDK's
 * `fetch` must do per request, to measure what any such layer costs beside
 * keyplex (the floor of the issue-10 targets). Per request it rewrites the
 * URL to `upstream` (the SDK's base URL must be {@link SEAM_BASE_URL}),
 * copies the SDK's headers into a plain object with `apiKey`'s
 * authorization, gives the attempt its own abort controller, timeout timer
 * and listener on the caller's signal; with `read`, it also reads the reply
 * whole (`text()`) and hands the SDK a new `Response` over that text, as
 * anything must that looks at a reply before the application does (for a
 * key it echoes, or the tokens it used). No key choice, limits, accounting
 * or events.
 */
export function fetchSeam(upstream: string, apiKey: string, read: boolean): typeof globalThis.fetch {
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const url = upstream + String(input).slice(SEAM_BASE_URL.length);
    const headers: Record<string, string> = {};
    (init!.headers as Headers).forEach((value, name) => void (headers[name] = value));
    headers.authorization = `Bearer ${apiKey}`;
    const control = new AbortController();
    const forward = () => control.abort();
    init!.signal?.addEventListener('abort', forward, { once: true });
    const timer = setTimeout(forward, 600_000);
    try {
      const reply = await fetch(url, { method: init!.method, headers, body: init!.body, signal: control.signal });
      if (!read) return reply;
      return new Response(await reply.text(), { status: reply.status, headers: reply.headers });
    } finally {
      clearTimeout(timer);
      init!.signal?.removeEventListener('abort', forward);
    }
  }) as typeof globalThis.fetch;
}

/** Child side of {@link remoteSimulator}. */
async function serveSimulator(): Promise<void> {
  let sim: ProviderSimulator | undefined;
  let server: Awaited<ReturnType<ProviderSimulator['listen']>> | undefined;
  const reply = (m: FromChild) => process.send!(m);
  const stop = () => void (server ? server.close() : Promise.resolve()).finally(() => process.exit(0));
  process.on('message', (raw) => {
    const m = raw as ToChild;
    if (m.type === 'start') {
      sim = new ProviderSimulator(m.options);
      void sim.listen().then((s) => {
        server = s;
        reply({ type: 'ready', baseURLs: Object.fromEntries(sim!.providerIds().map((id) => [id, s.baseURL(id)])) });
      });
    } else if (m.type === 'tallies') {
      reply({ type: 'tallies', tallies: sim!.tallies(), peak: sim!.peakRequestsPerMinute() });
    } else stop();
  });
  process.once('disconnect', stop);
}

// ---------------------------------------------------------------- machine

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  openai: string;
  date: string;
  /** 1-minute load average when the run started (other processes share the machine). */
  loadAverage: number;
}

function openaiVersion(): string {
  // import.meta.resolve gives the package's entry file; its package.json is in the package root.
  let dir = fileURLToPath(new URL('.', import.meta.resolve('openai')));
  for (let i = 0; i < 4; i++) {
    try {
      const pkg = JSON.parse(readFileSync(`${dir}/package.json`, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'openai' && pkg.version) return pkg.version;
    } catch {
      // not here; look one level up
    }
    dir = `${dir}/..`;
  }
  return 'unknown';
}

export function machine(): Machine {
  const list = cpus();
  return {
    cpu: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: `${platform()} ${release()} ${arch()}`,
    node: process.version,
    openai: openaiVersion(),
    date: new Date().toISOString(),
    loadAverage: Math.round(loadavg()[0]! * 100) / 100,
  };
}

// ---------------------------------------------------------------- formatting

/** A number with `digits` decimals and thin grouping (1,234.5). */
export function fmt(value: number, digits = 1): string {
  if (!Number.isFinite(value)) return String(value);
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function pct(value: number, digits = 1): string {
  return `${fmt(value * 100, digits)}%`;
}

/** A pass/fail mark for a target (a mark, not an assertion). */
export function mark(ok: boolean, target: string): string {
  return `${ok ? 'PASS' : 'FAIL'} (${target})`;
}

export function markdownTable(table: Table): string {
  const escape = (cell: string) => cell.replaceAll('|', '\\|');
  const lines = [`| ${table.headers.map(escape).join(' | ')} |`, `|${table.headers.map(() => '---').join('|')}|`];
  for (const row of table.rows) lines.push(`| ${row.map(escape).join(' | ')} |`);
  return lines.join('\n');
}

/** Progress on stderr, so that stdout stays clean. */
export function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === '--serve-simulator') await serveSimulator();
