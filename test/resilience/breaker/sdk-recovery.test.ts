/**
 * A circuit recovers under steady traffic (docs/resilience.md, "Circuit
 * breakers"): after a short outage, while requests keep arriving and wait
 * behind the open circuit within their deadlines, the half-open probe must
 * be able to answer before its request's deadline cuts it, or the circuit
 * never closes. Simulator in-process, fake clock: every wait is exact.
 */
import OpenAI from 'openai';
import { afterEach, expect, test, vi } from 'vitest';
import { getKeyplexDetails, KeyManager } from '../../../src/index';
import { ProviderSimulator, simulatorFetch } from '../../../src/testing/index';
import { fakeKey } from '../../support/fake-keys';
import { fakeClock } from '../../support/time';

afterEach(() => {
  vi.useRealTimers();
});

const DEADLINE_MS = 4_000;
/** Ten requests every 100 ms. */
const PER_TICK = 10;
const TICK_MS = 100;

interface Sent {
  at: number;
  outcome: string | undefined;
  message?: string;
}

/**
 * Provider a (one key) answers in 300 ms, but 503s at once from 1 s to 3 s:
 * five in a row open both circuits for 5 s. Requests arrive at 100 a second
 * for `seconds` of fake time.
 */
async function outageUnderLoad(seconds: number, instantErrorShare = 0) {
  fakeClock();
  const t0 = Date.now();
  const keys = [fakeKey('a1')];
  const sim = new ProviderSimulator({
    now: () => Date.now() - t0,
    providers: [
      {
        id: 'a',
        keys,
        models: ['gpt-4.1'],
        latency: { medianMs: 300, p99Ms: 300 },
        // With `instantErrorShare`: that share of all requests also answered 500 at once (a flaky provider).
        faults: [{ kind: 'outage', fromMs: 1_000, untilMs: 3_000 }, ...(instantErrorShare > 0 ? [{ kind: 'server_error' as const, probability: instantErrorShare }] : [])],
      },
    ],
  });
  const circuit = { policy: { kind: 'consecutive' as const, threshold: 5 }, openMs: 5_000 };
  const manager = new KeyManager({
    providers: { a: { baseURL: sim.baseURL('a'), keys } },
    fetch: simulatorFetch(sim),
    deadlineMs: DEADLINE_MS,
    retry: { maxAttempts: 1 },
    circuitBreaker: { deployment: circuit, key: circuit },
  });
  const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 }));
  const circuits: string[] = [];
  for (const name of ['circuit:open', 'circuit:half-open', 'circuit:close'] as const) {
    manager.on(name, (e) => void circuits.push(`${Date.now() - t0} ${e.scope} ${e.to} ${e.reason}`));
  }
  const sent: Sent[] = [];
  for (let tick = 0; tick < (seconds * 1_000) / TICK_MS; tick++) {
    for (let i = 0; i < PER_TICK; i++) {
      const request: Sent = { at: Date.now() - t0, outcome: undefined };
      sent.push(request);
      client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 }).then(
        () => void (request.outcome = 'ok'),
        (error: unknown) => {
          request.outcome = getKeyplexDetails(error)?.code ?? 'other';
          request.message = getKeyplexDetails(error)?.message;
        },
      );
    }
    await vi.advanceTimersByTimeAsync(TICK_MS);
  }
  await vi.advanceTimersByTimeAsync(DEADLINE_MS + 1_000);
  await manager.close();
  return { sent, circuits };
}

test('after a 2 s outage, the circuits close at the first half-open probe and every request sent from then on is served', async () => {
  const { sent, circuits } = await outageUnderLoad(12);

  expect(sent.filter((r) => r.outcome === undefined)).toEqual([]);
  // Opened by the outage at 1.2 s (its instant 503s are judged after the calls sent before it, whose 200s come up to
  // 300 ms later: those sent at 0.9 s answer at 1.2 s), half-open at 6.2 s, closed by the first probe 300 ms later.
  expect(circuits).toEqual([
    '1200 deployment open failures',
    '1200 key open failures',
    '6200 deployment half-open open_elapsed',
    '6200 key half-open open_elapsed',
    '6500 deployment closed probe_succeeded',
    '6500 key closed probe_succeeded',
  ]);
  const after = sent.filter((r) => r.at >= 6_000);
  expect(after.filter((r) => r.outcome !== 'ok')).toEqual([]);
  // Those that waited behind the open circuit with time for a reply once it closed were served too.
  expect(sent.filter((r) => r.at >= 2_900 && r.at < 6_000 && r.outcome !== 'ok')).toEqual([]);
  // Those with less than a reply's time (300 ms) left at 6.2 s are refused then (those sent at 2.2 s reach their
  // deadline then): the probe goes with the first that has the time.
  const short = sent.filter((r) => r.at > 2_200 && r.at < 2_500);
  expect(short).toHaveLength(20);
  for (const r of short) {
    expect(r.outcome).toBe('no_key_available');
    expect(r.message).toContain("'a' model 'gpt-4.1': circuit half-open, its probe left to a request with time for a typical reply there");
  }
});

test('a provider that also fails 5% of requests at once: its circuits close after the outage and stay closed (the instant failures of the crowd let through at the close come back first, before its successes)', async () => {
  const { sent, circuits } = await outageUnderLoad(20, 0.05);

  expect(sent.filter((r) => r.outcome === undefined)).toEqual([]);
  // Before: closed at 6300 and opened again in the same millisecond by five instant 500s, every 5 s to the end.
  // Closed now at 6500 (opened at 1200: the outage's 503s are judged after the 200s of the calls sent before it).
  expect(circuits.filter((c) => Number(c.split(' ')[0]) > 6_500)).toEqual([]);
  const after = sent.filter((r) => r.at >= 6_000);
  const served = after.filter((r) => r.outcome === 'ok').length;
  expect(served / after.length).toBeGreaterThan(0.9);
});

/** Providers a and b (one key each, 100 ms replies), both down from 0 to `outageMs`; circuits open after 3 failures for 5 s. */
function twoDown(outageMs: number, deadlineMs: number) {
  fakeClock();
  const t0 = Date.now();
  const keys = { a: [fakeKey('a1')], b: [fakeKey('b1')] };
  const sim = new ProviderSimulator({
    now: () => Date.now() - t0,
    providers: (['a', 'b'] as const).map((id) => ({ id, keys: keys[id], models: ['gpt-4.1'], latency: { medianMs: 100, p99Ms: 100 }, faults: [{ kind: 'outage' as const, untilMs: outageMs }] })),
  });
  const circuit = { policy: { kind: 'consecutive' as const, threshold: 3 }, openMs: 5_000 };
  const manager = new KeyManager({
    providers: { a: { baseURL: sim.baseURL('a'), keys: keys.a }, b: { baseURL: sim.baseURL('b'), keys: keys.b } },
    fetch: simulatorFetch(sim),
    deadlineMs,
    retry: { maxAttempts: 2, baseDelayMs: 0 },
    circuitBreaker: { deployment: circuit, key: false },
  });
  const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 }));
  const ask = () => client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 });
  const upstream = () => sim.tallies().a!.requests + sim.tallies().b!.requests;
  /** Three requests, each failing on a then b: both circuits open. */
  async function trip(): Promise<void> {
    for (let i = 0; i < 3; i++) await ask().catch(() => undefined);
    expect(manager.stats().deployments.map((d) => d.circuit)).toEqual(['open', 'open']);
  }
  return { t0, manager, ask, upstream, trip };
}

test('every circuit open, past the deadline: at once a 429 no_key_available with retry-after, naming the circuits, nothing sent', async () => {
  const { t0, manager, ask, upstream, trip } = twoDown(60_000, 4_000);
  await trip();
  await vi.advanceTimersByTimeAsync(500);
  const before = upstream();
  const at = Date.now();

  const error = await ask().catch((e: unknown) => e);

  expect(Date.now()).toBe(at);
  expect(upstream()).toBe(before);
  expect(error).toBeInstanceOf(OpenAI.RateLimitError);
  const apiError = error as InstanceType<typeof OpenAI.RateLimitError>;
  const detail = getKeyplexDetails(error)!;
  expect(detail.code).toBe('no_key_available');
  // Both opened at 0 ms (the outage answers at once): usable again 4.5 s from now.
  expect(detail.retryAfterMs).toBe(5_000 - (at - t0));
  expect(apiError.headers.get('retry-after')).toBe('5');
  expect(apiError.headers.get('retry-after-ms')).toBe(String(detail.retryAfterMs));
  expect(detail.message).toContain("'a' model 'gpt-4.1': circuit open for 5 s more; 'b' model 'gpt-4.1': circuit open for 5 s more");
  await manager.close();
});

test('every circuit open, within the deadline: 200 requests wait, one probe per deployment goes at half-open, then all are served', async () => {
  const { manager, ask, upstream, trip } = twoDown(1_000, 8_000);
  await trip();
  const opened = Date.now();
  await vi.advanceTimersByTimeAsync(2_000);
  const before = upstream();
  const outcomes: string[] = [];
  for (let i = 0; i < 200; i++) {
    ask().then(
      () => void outcomes.push('ok'),
      (e: unknown) => void outcomes.push(getKeyplexDetails(e)?.code ?? 'other'),
    );
  }

  await vi.advanceTimersByTimeAsync(opened + 5_000 - Date.now());
  // Half-open: one probe to each deployment, the 198 others wait for their verdict.
  await vi.advanceTimersByTimeAsync(50);
  expect(upstream() - before).toBe(2);
  expect(outcomes).toEqual([]);
  await vi.advanceTimersByTimeAsync(1_000);

  expect(outcomes.filter((o) => o !== 'ok')).toEqual([]);
  expect(outcomes).toHaveLength(200);
  expect(upstream() - before).toBe(200);
  await manager.close();
});
