/**
 * Scenario 4 — the classic comparison: one key on one provider with the
 * plain `openai` client (its own retries on) versus keyplex with five keys
 * on two providers, under injected faults and realistic latency, the same
 * workload on both.
 */
import OpenAI from 'openai';
import { CHAT_BODY, errorKind, fakeKey, fmt, log, makeManager, MODEL, pct, quantile, remoteSimulator, sorted, type Scenario } from './lib.ts';

interface SideResult {
  requests: number;
  successes: number;
  errors: Record<string, number>;
  errorRate: number;
  p50Ms: number;
  p99Ms: number;
  successP50Ms: number;
  successP99Ms: number;
  seconds: number;
  successesPerS: number;
  cappedByTime: boolean;
  /** Client process CPU time ÷ wall time (1 = one core busy). */
  cpuUtilisation: number;
}

/** Closed loop: `concurrency` workers run `total` requests; each one's latency (ms) and outcome. */
async function workload(call: () => Promise<unknown>, total: number, concurrency: number, capMs: number): Promise<SideResult> {
  const all: number[] = [];
  const ok: number[] = [];
  const errors: Record<string, number> = {};
  let issued = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const stopAt = t0 + capMs;
  const worker = async () => {
    while (issued < total && performance.now() < stopAt) {
      issued++;
      const start = performance.now();
      try {
        await call();
        ok.push(performance.now() - start);
      } catch (error) {
        const kind = errorKind(error);
        errors[kind] = (errors[kind] ?? 0) + 1;
      }
      all.push(performance.now() - start);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const s = sorted(all);
  const so = sorted(ok);
  return {
    requests: all.length,
    successes: ok.length,
    errors,
    errorRate: (all.length - ok.length) / all.length,
    p50Ms: quantile(s, 0.5),
    p99Ms: quantile(s, 0.99),
    successP50Ms: quantile(so, 0.5),
    successP99Ms: quantile(so, 0.99),
    seconds,
    successesPerS: ok.length / seconds,
    cappedByTime: issued < total,
    cpuUtilisation: (cpu.user + cpu.system) / 1e6 / seconds,
  };
}

export const classic: Scenario = async ({ quick }) => {
  const { total, rpm } = quick ? { total: 240, rpm: 120 } : { total: 1000, rpm: 400 };
  const concurrency = 32;
  const capMs = quick ? 15_000 : 40_000;
  const latency = { medianMs: 30, p99Ms: 150 };
  // Two independent seeded draws, the first listed wins: P(fault) = a + (1 − a)·b = 0.042.
  const a = 0.021;
  const b = (0.042 - a) / (1 - a);
  const faults = [
    { kind: 'server_error' as const, probability: a },
    { kind: 'reset' as const, probability: b },
  ];
  const soloKey = fakeKey();
  const warmKey = fakeKey();
  const keys = { p0: Array.from({ length: 3 }, fakeKey), p1: Array.from({ length: 2 }, fakeKey) };
  const sim = await remoteSimulator({
    seed: 42,
    providers: [
      { id: 'solo', keys: [soloKey], models: [MODEL], rpm, latency, faults },
      { id: 'p0', keys: keys.p0, models: [MODEL], rpm, latency, faults },
      { id: 'p1', keys: keys.p1, models: [MODEL], rpm, latency, faults },
      { id: 'warm', keys: [warmKey], models: [MODEL] },
    ],
  });
  const { manager } = makeManager({ keys, baseURL: sim.baseURL, events: false });
  const single = new OpenAI({ apiKey: soloKey, baseURL: sim.baseURL('solo') });
  const wrapped = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));

  let warm: ReturnType<typeof makeManager> | undefined;
  try {
    // Warm-up on an unlimited, fault-free provider, so that neither side runs cold (JIT, connections).
    log('classic: warm-up');
    warm = makeManager({ keys: { warm: [warmKey] }, baseURL: sim.baseURL, events: false });
    const warmClients = [new OpenAI({ apiKey: warmKey, baseURL: sim.baseURL('warm') }), warm.manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }))];
    for (const client of warmClients) await workload(() => client.chat.completions.create(CHAT_BODY), 1_000_000, concurrency, quick ? 600 : 2500);
    await warm.manager.close();

    log(`classic: single key, ${total} requests at concurrency ${concurrency}`);
    const one = await workload(() => single.chat.completions.create(CHAT_BODY), total, concurrency, capMs);
    log(`classic: keyplex, 5 keys on 2 providers`);
    const many = await workload(() => wrapped.chat.completions.create(CHAT_BODY), total, concurrency, capMs);
    const { tallies } = await sim.tallies();
    const upstream = (ids: string[]) => {
      const ts = ids.map((id) => tallies[id]!);
      const sum = (f: (t: (typeof ts)[number]) => number) => ts.reduce((n, t) => n + f(t), 0);
      return { requests: sum((t) => t.requests), rateLimited: sum((t) => t.rateLimited), faults: sum((t) => t.faults.server_error + t.faults.reset) };
    };
    const up = { single: upstream(['solo']), keyplex: upstream(['p0', 'p1']) };
    const errs = (r: SideResult) => Object.entries(r.errors).map(([k, n]) => `${k}: ${n}`).join(', ') || 'none';
    const row = (label: string, f: (r: SideResult) => string) => [label, f(one), f(many)];
    const multiple = many.successesPerS / one.successesPerS;
    return {
      id: 'classic',
      title: '4. One key with the plain SDK vs keyplex with five keys',
      method: [
        `One simulated provider with a single fake key for the plain \`openai\` client (default SDK retries: 2, honouring \`retry-after-ms\`), versus keyplex (default options) over 5 fake keys on 2 providers serving the same model (3 + 2 keys). Every key: ${rpm} requests per minute (token bucket, starts full); every provider: log-normal latency, median ${latency.medianMs} ms, p99 ${latency.p99Ms} ms; injected faults with probability 4.2% per upstream request (\`server_error\` p = ${a}, then \`reset\` p = ${fmt(b, 4)}; a faulted request does not use rate limit). Simulator in a child process on 127.0.0.1, seed 42. Before measuring, both clients are warmed up for ${quick ? 0.6 : 2.5} s each against a separate unlimited, fault-free simulated provider.`,
        `Workload, the same on both sides: ${total} chat completions, closed loop at concurrency ${concurrency}, single key first, then keyplex. Latency per request from \`create()\` to its result or error (\`performance.now()\`), over all requests and over successes only. Throughput = successful replies ÷ wall time; multiple = keyplex ÷ single key. The single key's limit (${rpm}/min) is far below the workload; five keys' burst (${5 * rpm}) covers it.`,
      ],
      tables: [
        {
          title: `${total} requests at concurrency ${concurrency}`,
          headers: ['', 'single key, plain SDK', 'keyplex, 5 keys / 2 providers'],
          rows: [
            row('application-visible error rate', (r) => pct(r.errorRate, 2)),
            row('errors by kind', errs),
            row('latency p50, all requests (ms)', (r) => fmt(r.p50Ms)),
            row('latency p99, all requests (ms)', (r) => fmt(r.p99Ms)),
            row('latency p50, successes (ms)', (r) => fmt(r.successP50Ms)),
            row('latency p99, successes (ms)', (r) => fmt(r.successP99Ms)),
            row('wall time (s)', (r) => fmt(r.seconds, 2)),
            row('successful replies / s', (r) => fmt(r.successesPerS)),
            row('client process CPU (share of one core)', (r) => pct(r.cpuUtilisation, 0)),
            ['upstream requests', String(up.single.requests), String(up.keyplex.requests)],
            ['upstream 429s', String(up.single.rateLimited), String(up.keyplex.rateLimited)],
            ['upstream faults injected', String(up.single.faults), String(up.keyplex.faults)],
            ['throughput multiple (keyplex ÷ single)', '1', `${fmt(multiple, 1)}×`],
          ],
        },
      ],
      notes: one.cappedByTime || many.cappedByTime ? [`A side hit the ${capMs / 1000} s time cap before issuing all requests.`] : [],
      data: { total, concurrency, rpm, latency, faults, single: one, keyplex: many, upstream: up, multiple },
    };
  } finally {
    await warm?.manager.close();
    await manager.close();
    await sim.close();
  }
};
