/**
 * Scenario 2 — overhead, loopback: raw client versus keyplex against the
 * provider simulator's HTTP server on 127.0.0.1 (no latency, no faults, no
 * limits). The server runs in a child process, so that client and server
 * each have a core and the client's CPU time is its own.
 */
import OpenAI from 'openai';
import { addedLatency, CONCURRENCIES, latencyRound, throughputRatio } from './overhead.ts';
import { CHAT_BODY, fakeKey, fakeKeys, fetchSeam, fmt, interleaved, latencies, log, makeManager, mark, MODEL, remoteSimulator, SEAM_BASE_URL, throughput, type Scenario } from './lib.ts';

/** `rounds` with `variant` in the place of `wrapped`, for the ratio helpers (which compare `wrapped` with `raw`). */
function asWrapped<T>(rounds: Map<string, T[]>, variant: string): Map<string, T[]> {
  return new Map([
    ['raw', rounds.get('raw')!],
    ['wrapped', rounds.get(variant)!],
  ]);
}

export const loopback: Scenario = async ({ quick }) => {
  const plan = quick
    ? { warmupMs: 400, latRounds: 3, latN: 300, tpRounds: 2, tpN: { 1: 150, 64: 400, 256: 400 } as Record<number, number>, capMs: 800 }
    : // Rounds of ~1 s at concurrency 64 and 256, 8 of each variant: shorter ones (1,500 requests, 4 rounds) swung 0.73-0.86 run to run.
      { warmupMs: 2500, latRounds: 10, latN: 800, tpRounds: 8, tpN: { 1: 1000, 64: 4000, 256: 4000 } as Record<number, number>, capMs: 2500 };
  const { capMs } = plan;

  const rawKey = fakeKey();
  const keys = fakeKeys(3, 10);
  const sim = await remoteSimulator({
    // Limits far above what the run can use, so that every reply carries OpenAI's six x-ratelimit-* headers, as real ones do.
    providers: Object.entries({ ...keys, p0: [...keys.p0!, rawKey] }).map(([id, k]) => ({ id, keys: k, models: [MODEL], rpm: 1_000_000_000, tpm: 1_000_000_000_000 })),
  });
  const { manager, tally: events } = makeManager({ keys, baseURL: sim.baseURL, events: true });

  const clients = {
    raw: new OpenAI({ apiKey: rawKey, baseURL: sim.baseURL('p0'), maxRetries: 0 }),
    wrapped: manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 })),
    // The floor: the least any layer under the SDK's fetch does that reads replies before the application (bench/lib.ts).
    seam: new OpenAI({ apiKey: 'managed-by-the-seam', baseURL: SEAM_BASE_URL, maxRetries: 0, fetch: fetchSeam(sim.baseURL('p0'), rawKey, true) }),
  };
  const call = (variant: string) => {
    const client = clients[variant as keyof typeof clients];
    return () => client.chat.completions.create(CHAT_BODY);
  };
  const variants = ['raw', 'wrapped'] as const;
  // The seam runs beside raw and keyplex where a target applies (latency, concurrency 1 and 64), in the same interleaved rounds.
  const withSeam = ['raw', 'seam', 'wrapped'] as const;
  try {
    log('loopback: warm-up');
    for (const v of withSeam) {
      // JIT tiering of the HTTP stack takes thousands of requests here, so warm-up is bounded by time.
      await latencies(call(v), 1_000_000, plan.warmupMs);
      await throughput(call(v), 1_000_000, 64, plan.warmupMs);
    }
    log('loopback: latency at concurrency 1');
    const latRounds = await interleaved(plan.latRounds, withSeam, async (v) => latencyRound(await latencies(call(v), plan.latN, capMs)));
    const lat = addedLatency(latRounds);
    const seamLat = addedLatency(asWrapped(latRounds, 'seam'));
    const tp: Record<number, ReturnType<typeof throughputRatio>> = {};
    const seamTp: Record<number, ReturnType<typeof throughputRatio>> = {};
    for (const c of CONCURRENCIES) {
      log(`loopback: throughput at concurrency ${c}`);
      const rounds = await interleaved(plan.tpRounds, c === 256 ? variants : withSeam, (v) => throughput(call(v), plan.tpN[c]!, c, capMs));
      tp[c] = throughputRatio(rounds);
      if (c !== 256) seamTp[c] = throughputRatio(asWrapped(rounds, 'seam'));
    }
    const ratio256 = tp[256]!.ratio;
    return {
      id: 'loopback',
      title: '2. Overhead, loopback HTTP (simulator on 127.0.0.1)',
      method: [
        `The simulator's HTTP server (\`sim.listen()\`, 3 providers, no latency, no faults, no limits) runs in a child process on 127.0.0.1 and answers with OpenAI's six \`x-ratelimit-*\` headers (limits far above the run's use), so the client process (measured) and the server each get a core. Both clients use Node's built-in global \`fetch\` with its default connection pool (no \`undici\` package, no custom agent). Raw: \`new OpenAI({ apiKey, baseURL: <simulator>, maxRetries: 0 })\` with one key. Wrapped: \`manager.wrap(...)\` over 3 providers × 10 keys on the simulator, with \`request\`/\`attempt\`/\`success\` listeners.`,
        `Latency: ${plan.latRounds} interleaved rounds × ${plan.latN} sequential requests (or ${plan.capMs / 1000} s per round, whichever ends first; the same cap bounds throughput rounds) after ${(2 * plan.warmupMs) / 1000} s of warm-up per client (sequential, then 64 concurrent); added = wrapped − raw percentile per round, median across rounds. Throughput: closed loop at each concurrency, ${plan.tpRounds} interleaved rounds; ratio per round, median. CPU µs/req is the client process's CPU time (user + system) per request: it shows keyplex's cost even where the server is the bottleneck.`,
      ],
      tables: [
        {
          title: 'Added latency per request, concurrency 1 (µs)',
          headers: ['', 'raw', 'wrapped', 'added (median of per-round diffs)', 'target'],
          rows: [
            ['p50', fmt(lat.raw.p50), fmt(lat.wrapped.p50), fmt(lat.addedP50), mark(lat.addedP50 <= 75, '≤ 75 µs')],
            ['p99', fmt(lat.raw.p99), fmt(lat.wrapped.p99), fmt(lat.addedP99), mark(lat.addedP99 <= 250, '≤ 250 µs')],
          ],
        },
        {
          title: 'Throughput (closed loop)',
          headers: ['concurrency', 'raw req/s', 'wrapped req/s', 'ratio wrapped ÷ raw', 'client CPU µs/req raw', 'client CPU µs/req wrapped', 'CPU ratio', 'target'],
          rows: CONCURRENCIES.map((c) => {
            const t = tp[c]!;
            const target = c === 256 ? mark(ratio256 >= 0.97, '≥ 0.97') : `${mark(t.ratio >= 0.95, 'throughput ≥ 0.95')}, ${mark(t.cpuRatio <= 1.1, 'CPU ≤ 1.10×')}`;
            return [String(c), fmt(t.rawRps, 0), fmt(t.wrappedRps, 0), fmt(t.ratio, 3), fmt(t.rawCpuUs), fmt(t.wrappedCpuUs), fmt(t.cpuRatio, 2), target];
          }),
        },
        {
          title: 'The floor: a minimal fetch seam that reads the reply (same rounds)',
          headers: ['measure', 'raw', 'seam', 'seam vs raw', 'keyplex vs raw (above)', 'keyplex target'],
          rows: [
            ['added latency p50, concurrency 1 (µs)', fmt(seamLat.raw.p50), fmt(seamLat.wrapped.p50), fmt(seamLat.addedP50), fmt(lat.addedP50), '≤ 75'],
            ...([1, 64] as const).flatMap((c) => [
              [`throughput ratio, concurrency ${c}`, fmt(seamTp[c]!.rawRps, 0), fmt(seamTp[c]!.wrappedRps, 0), fmt(seamTp[c]!.ratio, 3), fmt(tp[c]!.ratio, 3), '≥ 0.95'],
              [`client CPU µs/req, concurrency ${c}`, fmt(seamTp[c]!.rawCpuUs), fmt(seamTp[c]!.wrappedCpuUs), `${fmt(seamTp[c]!.cpuRatio, 2)}×`, `${fmt(tp[c]!.cpuRatio, 2)}×`, '≤ 1.10×'],
            ]),
          ],
        },
      ],
      notes: [
        `The seam (\`fetchSeam\` in bench/lib.ts) does per request only what any layer under the SDK's \`fetch\` must that looks at replies before the application: the URL and the key swapped, the SDK's headers copied, an abort controller, timer and listener for the attempt, the reply read whole and handed back as a new \`Response\`. No key choice, limits, accounting, redaction or events. It is the issue's reference floor, not a strict one: keyplex hands the SDK the body it read without a second body stream, which the seam does not. Where the seam misses a target by a wide margin, a layer that also does keyplex's work will miss it on this host.`,
        `Client CPU per request at concurrency 256: ${fmt(tp[256]!.rawCpuUs)} µs raw, ${fmt(tp[256]!.wrappedCpuUs)} µs wrapped (+${fmt(tp[256]!.wrappedCpuUs - tp[256]!.rawCpuUs)} µs).`],
      data: { plan, latency: lat, throughput: tp, seam: { latency: seamLat, throughput: seamTp }, events },
    };
  } finally {
    await manager.close();
    await sim.close();
  }
};

