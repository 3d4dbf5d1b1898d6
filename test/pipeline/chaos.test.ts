/**
 * The chaos property (issue 12, "What it must show" 1): a few hundred mixed
 * requests (chat JSON, chat streams, some broken off by the caller,
 * embeddings) against the simulator in-process, with every fault it has —
 * 5xx, resets, hangs, cut, stalled, keep-alive-only, garbage and truncated
 * streams, malformed JSON, text/plain 200s. Fake timers drive every wait and
 * the seeds fix every draw, so the run is the same each time. It shows:
 *
 * - every call settles, once, within its deadline plus a small bound (fake time);
 * - every lane slot is released, nothing is left in flight;
 * - exactly one terminal event (`success` | `failure`) per request;
 * - success ⇔ the app got a complete answer (a stream the caller left: success, partial).
 */
import OpenAI from 'openai';
import { afterEach, expect, test, vi } from 'vitest';
import { KeyManager, keyplex, type FailureEvent, type SuccessEvent } from '../../src/index';
import { mulberry32 } from '../../src/testing/content';
import { ProviderSimulator, simulatorFetch, type FaultOptions } from '../../src/testing/index';
import { fakeKey } from '../support/fake-keys';

const CALLS = 300;
const DEADLINE_MS = 5_000;
/** How late past its deadline a call may settle: the fake clock is exact, so a tick. */
const BOUND_MS = 10;
const MODELS = ['gpt-4.1', 'text-embedding-3-small'];

const FAULTS: FaultOptions[] = [
  { kind: 'server_error', probability: 0.05 },
  { kind: 'reset', probability: 0.03 },
  { kind: 'hang', probability: 0.02 },
  { kind: 'malformed', probability: 0.03 },
  { kind: 'wrong_content_type', probability: 0.02 },
  { kind: 'stream_cut', probability: 0.04 },
  { kind: 'stream_stall', probability: 0.03 },
  { kind: 'stream_keepalive', probability: 0.03 },
  { kind: 'stream_garbage', probability: 0.03 },
  { kind: 'stream_truncate', probability: 0.03 },
];

type Kind = 'json' | 'stream' | 'break' | 'embed';
/** What the app saw: a complete answer, a stream it left on purpose, or an error. */
type Seen = 'complete' | 'left' | 'error';

interface Call {
  kind: Kind;
  startedAt: number;
  settledAt: number | undefined;
  settles: number;
  seen: Seen | undefined;
}

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

/** One call as an app makes it; resolves with what the app saw. */
async function run(client: OpenAI, kind: Kind, i: number): Promise<Seen> {
  const options = keyplex.options({ metadata: { call: i } });
  const messages = [{ role: 'user' as const, content: `Question number ${i}: tell me something.` }];
  try {
    if (kind === 'embed') {
      const reply = await client.embeddings.create({ model: 'text-embedding-3-small', input: [`text ${i}`] }, options);
      return reply.data.length === 1 ? 'complete' : 'error';
    }
    if (kind === 'json') {
      const reply = await client.chat.completions.create({ model: 'gpt-4.1', messages, max_tokens: 40 }, options);
      return reply.choices[0]?.finish_reason ? 'complete' : 'error';
    }
    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages, max_tokens: 40, stream: true }, options);
    let chunks = 0;
    let finished = false;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.finish_reason) finished = true;
      if (++chunks === 2 && kind === 'break') return 'left';
    }
    return finished ? 'complete' : 'error';
  } catch {
    return 'error';
  }
}

test(`chaos: ${CALLS} mixed calls under every fault settle once, in time, with one agreeing terminal event each`, { timeout: 60_000 }, async () => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  const random = mulberry32(12);
  vi.spyOn(Math, 'random').mockImplementation(mulberry32(34));
  const ids = ['a', 'b', 'c'];
  const keys = Object.fromEntries(ids.map((id) => [id, [fakeKey(`${id}1`), fakeKey(`${id}2`)]]));
  const sim = new ProviderSimulator({
    seed: 7,
    providers: ids.map((id) => ({
      id,
      keys: keys[id]!,
      models: MODELS,
      latency: { medianMs: 40, p99Ms: 400 },
      ttft: { medianMs: 60, p99Ms: 600 },
      tokenIntervalMs: 20,
      faults: FAULTS,
    })),
  });
  const manager = new KeyManager({
    providers: Object.fromEntries(ids.map((id) => [id, { baseURL: sim.baseURL(id), keys: keys[id]! }])),
    fetch: simulatorFetch(sim),
    deadlineMs: DEADLINE_MS,
    attemptTimeoutMs: 1_500,
    streamIdleTimeoutMs: 1_000,
    retry: { maxAttempts: 4, baseDelayMs: 20, maxDelayMs: 200 },
    lanes: { standard: { concurrency: 32, maxQueue: 1_000, queueTimeoutMs: 60_000 } },
  });
  const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
  const terminal = new Map<number, (SuccessEvent | FailureEvent)[]>();
  const byRequestId = new Map<string, number>();
  const note = (event: SuccessEvent | FailureEvent) => {
    const call = Number(event.metadata.call);
    terminal.set(call, [...(terminal.get(call) ?? []), event]);
    byRequestId.set(event.requestId, (byRequestId.get(event.requestId) ?? 0) + 1);
  };
  manager.on('success', note);
  manager.on('failure', note);
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);

  const calls: Call[] = [];
  try {
    for (let i = 0; i < CALLS; i++) {
      const r = random();
      const kind: Kind = r < 0.3 ? 'json' : r < 0.65 ? 'stream' : r < 0.8 ? 'break' : 'embed';
      const call: Call = { kind, startedAt: Date.now(), settledAt: undefined, settles: 0, seen: undefined };
      calls.push(call);
      void run(client, kind, i).then((seen) => {
        call.settles++;
        call.settledAt = Date.now();
        call.seen = seen;
      });
      // About 100 calls a second of fake time.
      if (i % 10 === 9) await vi.advanceTimersByTimeAsync(100);
    }
    for (let t = 0; t < 400 && calls.some((c) => c.settles === 0); t++) await vi.advanceTimersByTimeAsync(50);
    await vi.advanceTimersByTimeAsync(1_000);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }

  // Every call settled once, within its deadline and a tick.
  expect(calls.filter((c) => c.settles !== 1)).toEqual([]);
  const late = calls.filter((c) => c.settledAt! - c.startedAt > DEADLINE_MS + BOUND_MS);
  expect(late).toEqual([]);
  // Every lane slot released, nothing in flight.
  for (const lane of Object.values(manager.lanes)) expect(lane).toMatchObject({ running: 0, queued: 0 });
  expect(manager.stats().totals.inFlight).toBe(0);
  // One terminal event per request, agreeing with what the app saw.
  expect([...byRequestId.values()].filter((n) => n !== 1)).toEqual([]);
  const disagreements = calls
    .map((call, i) => ({ i, kind: call.kind, seen: call.seen, events: (terminal.get(i) ?? []).map((e) => ('error' in e ? `failure:${e.error.code}` : 'success')) }))
    .filter(({ seen, events }) => events.length !== 1 || (seen === 'error') !== events[0]!.startsWith('failure'));
  expect(disagreements).toEqual([]);
  expect(unhandled).toEqual([]);

  // The run met every fault and both outcomes (the property is not vacuous).
  const met = new Set(Object.values(sim.tallies()).flatMap((p) => Object.entries(p.faults).filter(([, n]) => n > 0).map(([kind]) => kind)));
  expect([...met].sort()).toEqual(FAULTS.map((f) => f.kind).sort());
  expect(calls.filter((c) => c.seen === 'error').length).toBeGreaterThan(0);
  expect(calls.filter((c) => c.seen === 'complete').length).toBeGreaterThan(CALLS / 2);
  await manager.close();
});
