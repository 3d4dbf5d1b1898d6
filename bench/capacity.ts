/**
 * Scenario 3 — capacity: N keys with known per-minute limits on the
 * simulator, open-loop demand at twice what they can accept, through
 * keyplex. How much of the capacity is used, and how many 429s the
 * application and the provider see.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import OpenAI from 'openai';
import { CHAT_BODY, errorKind, fakeKeys, fmt, log, makeManager, mark, MODEL, pct, remoteSimulator, statusOf, within, type Scenario } from './lib.ts';

export const capacity: Scenario = async ({ quick }) => {
  const keysN = 5;
  const { rpm, windowS } = quick ? { rpm: 60, windowS: 5 } : { rpm: 120, windowS: 20 };
  // The simulator's token bucket starts full (rpm requests per key) and refills at rpm per minute.
  const burst = keysN * rpm;
  const refill = (keysN * rpm * windowS) / 60;
  const cap = refill + burst;
  const offered = 2 * cap;
  const rate = offered / windowS;

  const keys = fakeKeys(1, keysN);
  const sim = await remoteSimulator({ providers: [{ id: 'p0', keys: keys.p0!, models: [MODEL], rpm }] });
  const { manager } = makeManager({ keys, baseURL: sim.baseURL, events: false });
  const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 }));
  const app = { ok: 0, rateLimited: 0, errors: {} as Record<string, number>, afterWindow: 0 };
  let windowOpen = true;
  const inFlight = new Set<Promise<void>>();
  const launch = () => {
    const p = client.chat.completions.create(CHAT_BODY).then(
      () => {
        if (windowOpen) app.ok++;
        else app.afterWindow++;
      },
      (error: unknown) => {
        if (!windowOpen) return void app.afterWindow++;
        if (statusOf(error) === 429) app.rateLimited++;
        const kind = errorKind(error);
        app.errors[kind] = (app.errors[kind] ?? 0) + 1;
      },
    );
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };

  let launched = 0;
  let measuredS: number;
  let pendingAtEnd: number;
  let snapshot: Awaited<ReturnType<typeof sim.tallies>>;
  try {
    log(`capacity: ${keysN} keys × ${rpm} rpm, ${offered} requests open-loop over ${windowS} s (${fmt(rate)} req/s)`);
    const t0 = performance.now();
    const intervalMs = (windowS * 1000) / offered;
    while (launched < offered && performance.now() - t0 < windowS * 1000) {
      const due = Math.min(offered, Math.floor((performance.now() - t0) / intervalMs) + 1);
      while (launched < due) {
        launch();
        launched++;
      }
      await sleep(Math.max(1, launched * intervalMs - (performance.now() - t0)));
    }
    const rest = windowS * 1000 - (performance.now() - t0);
    if (rest > 0) await sleep(rest);
    windowOpen = false;
    measuredS = (performance.now() - t0) / 1000;
    pendingAtEnd = inFlight.size;
    snapshot = await sim.tallies();
  } finally {
    // End of the window: close the manager (waiting requests end with manager_closed), bounded waits.
    windowOpen = false;
    await within(manager.close(), 10_000);
    await within(Promise.allSettled([...inFlight]), 10_000);
    await sim.close();
  }
  const { tallies, peak } = snapshot;

  const t = tallies.p0!;
  const accepted = Object.values(t.acceptedPerMinute).reduce((sum, perMinute) => sum + Object.values(perMinute).reduce((a, b) => a + b, 0), 0);
  const share = accepted / cap;
  // By key index: the report names no key.
  const peakByKey = keys.p0!.map((key) => peak.p0?.[key] ?? 0);
  const peakPerKey = Math.max(...peakByKey);
  const shareOk = share >= 0.98;
  const no429 = app.rateLimited === 0;
  return {
    id: 'capacity',
    title: '3. Capacity under twice the demand',
    method: [
      `${keysN} fake keys on one simulated provider (simulator in a child process on 127.0.0.1, no latency, no faults), each limited to ${rpm} requests per minute by the simulator's token bucket (starts full at ${rpm}, refills continuously at ${rpm}/min). keyplex with default options (its default key selection and rate-limit handling) over those keys; the SDK's retries off (as \`wrap()\` sets them).`,
      `Capacity of the window: C = keys × rpm × T/60 + keys × rpm (steady refill plus the initial burst) = ${keysN} × ${rpm} × ${windowS}/60 + ${keysN} × ${rpm} = ${fmt(cap, 0)} requests for T = ${windowS} s. Demand: ${offered} requests (2 × C), open-loop, evenly spaced (${fmt(rate)} req/s) over T. Share used = requests the simulator accepted (passed the rate limit) during T ÷ C, read from the simulator's tallies at the end of T.`,
      `Application-visible 429 = errors the SDK raised with status 429 during T. Upstream 429 = the simulator's rate-limited answers during T. Requests still waiting inside keyplex at the end of T are ended by \`manager.close()\` and not counted as completed. Scaled down from real minutes: no clock scaling (keyplex must see real \`retry-after\` times).`,
    ],
    tables: [
      {
        title: `Capacity, ${keysN} keys × ${rpm} rpm, ${windowS} s window`,
        headers: ['figure', 'value', 'target'],
        rows: [
          ['capacity C (requests)', fmt(cap, 0), ''],
          ['demand (requests offered during T)', String(launched), ''],
          ['accepted upstream during T', String(accepted), ''],
          ['share of capacity used', pct(share), mark(shareOk, '≥ 98%')],
          ['requests completed (successful) during T', String(app.ok), ''],
          ['429s seen by the application', String(app.rateLimited), mark(no429, '0')],
          ['other application errors', Object.entries(app.errors).filter(([k]) => k !== '429').map(([k, n]) => `${k}: ${n}`).join(', ') || '0', ''],
          ['429s seen upstream', String(t.rateLimited), ''],
          ['upstream requests (all answers)', String(t.requests), ''],
          ['still waiting in keyplex at the end of T', String(pendingAtEnd), ''],
          ['peak accepted in any sliding 60 s, busiest key', `${peakPerKey} (limit ${rpm}/min)`, ''],
        ],
      },
    ],
    notes: [
      `Upstream 429s per accepted request: ${fmt(t.rateLimited / Math.max(1, accepted), 2)}.`,
      `The simulator's bucket lets a key take its burst and then its refill within one sliding minute, so the busiest key's peak (${peakPerKey}) may exceed its ${rpm}/min limit without any 429 (see \`peakRequestsPerMinute()\`).`,
    ],
    data: { keys: keysN, rpm, windowS, measuredS, capacity: cap, burst, refill, offered, launched, accepted, share, app, upstream: { requests: t.requests, rateLimited: t.rateLimited, successes: t.successes }, pendingAtEnd, peakPerMinuteByKeyIndex: peakByKey },
  };
};
