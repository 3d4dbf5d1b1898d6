/**
 * A Responses stream opens with events that carry no output
 * (`response.created`, `response.in_progress`, `response.queued`): keyplex
 * holds them back until the first output event (or a terminal one), so an
 * attempt that fails before any output — `response.failed`, an `error`
 * event, a dropped connection — fails over as a stream that failed before
 * its first event does, and the caller sees only the winning attempt's
 * bytes. After the first output event a failure reaches the caller as
 * before (nothing is replayed). The hold is bounded: a slow but healthy
 * stream gets its prelude at what was left of `attemptTimeoutMs` (capped by
 * `streamIdleTimeoutMs`), or once the held events pass 1 MiB.
 */
import OpenAI from 'openai';
import { describe, expect, test, vi } from 'vitest';
import { record } from '../support/events';
import { failoverPair } from '../support/managers';
import { fakeClock, until } from '../support/time';
import { cutSseReply, gate, namedSseReply, provider, type NamedEvent, type UpstreamCall } from '../support/upstream';
import { HttpResponse } from 'msw';
import type { KeySelector } from '../../src/keys/selector';
import '../support/setup';

const ONE = 'https://api.one.test/v1';
const MODEL = 'gpt-4.1';
const N = 5;
/** Key `a` for every request's first attempt (OPTIONS), `b` after. */
const { ring, manage, OPTIONS } = failoverPair(ONE);

function response(id: string, status: string, extra: Record<string, unknown> = {}) {
  return { id, object: 'response', created_at: 1_700_000_000, status, model: MODEL, output: [], error: null, incomplete_details: null, instructions: null, metadata: {}, tools: [], usage: null, ...extra };
}

/** `response.created` and `response.in_progress` of response `id`. */
function prelude(id: string, instructions: string | null = null): NamedEvent[] {
  return [
    { event: 'response.created', data: { type: 'response.created', sequence_number: 0, response: response(id, 'in_progress', { instructions }) } },
    { event: 'response.in_progress', data: { type: 'response.in_progress', sequence_number: 1, response: response(id, 'in_progress', { instructions }) } },
  ];
}

/** A whole OpenAI-shaped stream: prelude, output item, content part, deltas, their ends, `response.completed`. */
function fullStream(id: string, words = ['Hel', 'lo']): NamedEvent[] {
  const item = { id: `msg_${id}`, type: 'message', status: 'in_progress', role: 'assistant', content: [] };
  const text = words.join('');
  const part = { type: 'output_text', text: '', annotations: [] };
  const events: NamedEvent[] = [
    ...prelude(id),
    { event: 'response.output_item.added', data: { type: 'response.output_item.added', sequence_number: 2, output_index: 0, item } },
    { event: 'response.content_part.added', data: { type: 'response.content_part.added', sequence_number: 3, item_id: item.id, output_index: 0, content_index: 0, part } },
  ];
  for (const delta of words) {
    events.push({ event: 'response.output_text.delta', data: { type: 'response.output_text.delta', sequence_number: events.length, item_id: item.id, output_index: 0, content_index: 0, delta, logprobs: [] } });
  }
  const done = { ...item, status: 'completed', content: [{ ...part, text }] };
  const usage = { input_tokens: 12, input_tokens_details: { cached_tokens: 0 }, output_tokens: 4, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 16 };
  events.push(
    { event: 'response.output_item.done', data: { type: 'response.output_item.done', sequence_number: events.length, output_index: 0, item: done } },
    { event: 'response.completed', data: { type: 'response.completed', sequence_number: events.length + 1, response: response(id, 'completed', { output: [done], usage }) } },
  );
  return events;
}

/** `response.failed` of response `id`, with `error`. */
function failed(id: string, error: { code: string; message: string }, sequence = 2): NamedEvent {
  return { event: 'response.failed', data: { type: 'response.failed', sequence_number: sequence, response: response(id, 'failed', { error }) } };
}

const SERVER_ERROR = { code: 'server_error', message: 'An error occurred while processing your request.' };
const RATE_LIMITED = { code: 'rate_limit_exceeded', message: 'Rate limit reached for gpt-4.1 on requests per min (RPM): Limit 3, Used 3. Please try again in 20s.' };
const NO_QUOTA = { code: 'insufficient_quota', message: 'You exceeded your current quota, please check your plan and billing details.' };
const ERROR_EVENT: NamedEvent = { event: 'error', data: { type: 'error', sequence_number: 2, code: 'server_error', message: 'The server had an error.', param: null } };

/** The bytes `namedSseReply` sends for `events`. */
function framed(events: NamedEvent[]): string {
  return events.map((e) => `event: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`).join('');
}

/** Serves key `a` with `onA`, key `b` with its whole stream; returns the calls. */
function serve(onA: () => Response): UpstreamCall[] {
  return provider(ONE, (call) => (ring.idOf(call.key) === 'a' ? onA() : namedSseReply(fullStream('resp_b'))));
}

/** Reads a Responses stream whole: the events the app saw, and what its loop threw. */
async function readAll(stream: AsyncIterable<OpenAI.Responses.ResponseStreamEvent>) {
  const events: OpenAI.Responses.ResponseStreamEvent[] = [];
  try {
    for await (const event of stream) events.push(event);
    return { events, error: undefined };
  } catch (error) {
    return { events, error };
  }
}

/** N streamed requests; per request: what the app saw, whether it met `response.failed` or an exception. */
async function streamN(client: OpenAI) {
  const seen: { types: string[]; failed: boolean; threw: boolean }[] = [];
  for (let i = 0; i < N; i++) {
    const got = await client.responses.create({ model: MODEL, input: 'hi', stream: true }).then(readAll, (error: unknown) => error as Error);
    if (got instanceof Error) seen.push({ types: [], failed: false, threw: true });
    else seen.push({ types: got.events.map((e) => e.type), failed: got.events.some((e) => e.type === 'response.failed'), threw: got.error !== undefined });
  }
  return seen;
}

const B_TYPES = fullStream('resp_b').map((e) => e.event);

describe.each([
  ['response.failed (server_error)', () => namedSseReply([...prelude('resp_a'), failed('resp_a', SERVER_ERROR)])],
  ['an `error` event', () => namedSseReply([...prelude('resp_a'), ERROR_EVENT])],
  ['a dropped connection', () => cutSseReply(prelude('resp_a'), { after: 2 })],
  ['a body that ends without a terminal event', () => namedSseReply(prelude('resp_a'))],
])('key a answers the prelude then %s; key b the whole stream', (_name, onA) => {
  test(`${N} requests: each is served by key b, the app sees b's events only, 2 attempts, one success`, async () => {
    const calls = serve(onA);
    const { client, manager, success, failure } = manage(OPTIONS);
    const attempts = record(manager, 'attempt');
    const seen = await streamN(client);
    // Before: 5 of 5 met the failure (the response.failed event, or an exception), 5 calls, 5 attempts, 0 successes.
    expect(seen.filter((s) => s.failed || s.threw)).toEqual([]);
    expect(seen.map((s) => s.types)).toEqual(Array.from({ length: N }, () => B_TYPES));
    expect(ring.ids(calls)).toEqual(Array.from({ length: N }, () => ['a', 'b']).flat());
    expect(attempts.map((e) => e.keyId)).toEqual(ring.ids(calls));
    expect(success.map((e) => [e.keyId, e.attempts])).toEqual(Array.from({ length: N }, () => ['b', 2]));
    expect(failure).toHaveLength(0);
  });
});

describe('through a `fetch` option (its reads bounded by the request)', () => {
  test('response.failed after the prelude fails over to key b', async () => {
    const calls = serve(() => namedSseReply([...prelude('resp_a'), failed('resp_a', SERVER_ERROR)]));
    const { client, success } = manage({ ...OPTIONS, fetch: (input, init) => globalThis.fetch(input, init) });
    const { events } = await readAll(await client.responses.create({ model: MODEL, input: 'hi', stream: true }));
    expect(events.map((e) => e.type)).toEqual(B_TYPES);
    expect(ring.ids(calls)).toEqual(['a', 'b']);
    expect(success.map((e) => [e.keyId, e.attempts])).toEqual([['b', 2]]);
  });
});

describe('the bytes the caller gets', () => {
  test("exactly key b's stream, byte for byte (none of key a's)", async () => {
    serve(() => namedSseReply([...prelude('resp_a'), failed('resp_a', SERVER_ERROR)]));
    const { manager } = manage(OPTIONS);
    const reply = await manager.fetch('https://keyplex.invalid/v1/responses', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, input: 'hi', stream: true }) });
    // Before: key a's prelude and its response.failed (949 bytes; none of b's).
    expect(await reply.text()).toBe(framed(fullStream('resp_b')));
  });
});

describe('a failure that names the key, after the prelude', () => {
  test('rate_limit_exceeded: key a rests for the wait its message asks (20 s), as a 429 would; key b serves', async () => {
    const calls = serve(() => namedSseReply([...prelude('resp_a'), failed('resp_a', RATE_LIMITED)]));
    const { client, manager, success } = manage(OPTIONS);
    const cooled = record(manager, 'key:cooldown');
    const { events, error } = await readAll(await client.responses.create({ model: MODEL, input: 'hi', stream: true }));
    // Before: the app met response.failed, one call, key a cooled all the same (the stream's error is judged at its end).
    expect(error).toBeUndefined();
    expect(events.map((e) => e.type)).toEqual(B_TYPES);
    expect(ring.ids(calls)).toEqual(['a', 'b']);
    expect(cooled.map((e) => [e.keyId, e.retryAfterMs])).toEqual([['a', 20_000]]);
    expect(manager.stats().providers.one!.keys.find((k) => k.id === 'a')).toMatchObject({ status: 'cooling' });
    expect(success.map((e) => [e.keyId, e.attempts])).toEqual([['b', 2]]);
  });

  test('insufficient_quota: key a is taken out (quota); key b serves', async () => {
    const calls = serve(() => namedSseReply([...prelude('resp_a'), failed('resp_a', NO_QUOTA)]));
    const { client, manager, success } = manage(OPTIONS);
    const disabled = record(manager, 'key:disabled');
    const { events } = await readAll(await client.responses.create({ model: MODEL, input: 'hi', stream: true }));
    expect(events.map((e) => e.type)).toEqual(B_TYPES);
    expect(ring.ids(calls)).toEqual(['a', 'b']);
    expect(disabled.map((e) => [e.keyId, e.reason])).toEqual([['a', 'quota']]);
    expect(success.map((e) => [e.keyId, e.attempts])).toEqual([['b', 2]]);
  });
});

describe('a failure that names the request, after the prelude', () => {
  test('invalid_prompt: raised at the call as a 400, as when it is the first event; no other key tried, no penalty', async () => {
    const calls = serve(() => namedSseReply([...prelude('resp_a'), failed('resp_a', { code: 'invalid_prompt', message: 'Invalid prompt.' })]));
    const { client, manager, failure } = manage(OPTIONS);
    const thrown = await client.responses.create({ model: MODEL, input: 'hi', stream: true }).then(readAll, (error: unknown) => error);
    // Before: the stream, its loop ending with response.failed (a failure `stream_interrupted`).
    expect(thrown).toBeInstanceOf(OpenAI.BadRequestError);
    expect((thrown as Error).message).toContain('Invalid prompt.');
    expect(ring.ids(calls)).toEqual(['a']);
    expect(failure.map((e) => e.error.code)).toEqual(['upstream_error']);
    expect(manager.stats().providers.one!.keys.find((k) => k.id === 'a')).toMatchObject({ status: 'active' });
  });
});

describe('after the first output event, a failure reaches the caller as before (no retry, nothing repeated)', () => {
  const output = fullStream('resp_a').slice(0, 5);

  test('response.failed after output_item.added and a delta: the app gets every event once, then response.failed; one call', async () => {
    const calls = serve(() => namedSseReply([...output, failed('resp_a', SERVER_ERROR, 5)]));
    const { client, success, failure } = manage(OPTIONS);
    const { events, error } = await readAll(await client.responses.create({ model: MODEL, input: 'hi', stream: true }));
    expect(error).toBeUndefined();
    expect(events.map((e) => e.type)).toEqual([...output.map((e) => e.event), 'response.failed']);
    expect(ring.ids(calls)).toEqual(['a']);
    expect(success).toHaveLength(0);
    expect(failure.map((e) => e.error.code)).toEqual(['stream_interrupted']);
  });

  test('a dropped connection after output: the loop throws, each event seen at most once, in order; one call', async () => {
    const calls = serve(() => cutSseReply(output, { after: output.length }));
    const { client, failure } = manage(OPTIONS);
    const { events, error } = await readAll(await client.responses.create({ model: MODEL, input: 'hi', stream: true }));
    expect(error).toBeDefined();
    // The event read just before the cut may be lost with it (the stream's error drops what the SDK had not pulled yet): a prefix.
    expect(events.map((e) => e.type)).toEqual(output.map((e) => e.event).slice(0, events.length));
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    expect(events.length).toBeGreaterThanOrEqual(3);
    expect(ring.ids(calls)).toEqual(['a']);
    expect(failure.map((e) => e.error.code)).toEqual(['stream_interrupted']);
  });
});

describe('response affinity', () => {
  test("the served response (key b's) is remembered, not the failed attempt's", async () => {
    const calls = provider(ONE, (call) => {
      if (call.method === 'GET') return HttpResponse.json(response(call.path.slice('/responses/'.length), 'completed'));
      return ring.idOf(call.key) === 'a' ? namedSseReply([...prelude('resp_a'), failed('resp_a', SERVER_ERROR)]) : namedSseReply(fullStream('resp_b'));
    });
    let prefer = 'a';
    const other = (id: string) => (id === 'a' ? 'b' : 'a');
    const selector: KeySelector = { select: (keys, ctx) => keys.find((k) => k.id === (ctx.attempt === 1 ? prefer : other(prefer))) ?? keys[0] };
    const { client } = manage({ ...OPTIONS, keySelection: selector });
    await readAll(await client.responses.create({ model: MODEL, input: 'hi', stream: true }));
    const before = calls.length;
    // Unpinned, a retrieve goes to the preferred key; a pinned one to the key that made the response.
    await client.responses.retrieve('resp_b');
    prefer = 'b';
    await client.responses.retrieve('resp_a');
    // Before: ['a', 'a'] (resp_a, the failed attempt's, was remembered on a; resp_b never served).
    expect(ring.ids(calls.slice(before))).toEqual(['b', 'b']);
  });
});

describe('the hold is bounded', () => {
  test.each([
    ['what was left of attemptTimeoutMs (1 s)', { attemptTimeoutMs: 1_000 }],
    ['streamIdleTimeoutMs (1 s), under attemptTimeoutMs (300 s)', { streamIdleTimeoutMs: 1_000 }],
    ['the same through a `fetch` option', { attemptTimeoutMs: 1_000, fetch: (input: string | URL | Request, init?: RequestInit) => globalThis.fetch(input, init) }],
  ])('a slow healthy stream: the prelude is held until %s, then released; nothing lost or reordered', async (_name, bound) => {
    fakeClock();
    const later = gate();
    const events = fullStream('resp_a');
    const calls = provider(ONE, () => {
      const encoder = new TextEncoder();
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (sent === 2) await later.promise;
          if (sent === events.length) return controller.close();
          controller.enqueue(encoder.encode(framed([events[sent++]!])));
        },
      });
      return new HttpResponse(body, { headers: { 'content-type': 'text/event-stream', 'transfer-encoding': 'chunked' } });
    });
    const { manager, success } = manage({ ...OPTIONS, ...bound });
    let answered = false;
    const pending = manager
      .fetch('https://keyplex.invalid/v1/responses', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, input: 'hi', stream: true }) })
      .then((reply) => ((answered = true), reply));
    await until(() => calls.length === 1, 'the attempt sent');
    await vi.advanceTimersByTimeAsync(999);
    // Before: answered at once, with response.created.
    expect(answered).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const reply = await pending;
    const reader = reply.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toBe(framed(events.slice(0, 2)));
    later.open();
    let rest = '';
    for (let read = await reader.read(); !read.done; read = await reader.read()) rest += new TextDecoder().decode(read.value);
    expect(first + rest).toBe(framed(events));
    expect(ring.ids(calls)).toEqual(['a']);
    expect(success.map((e) => [e.keyId, e.attempts])).toEqual([['a', 1]]);
  });

  test("the caller's abort during the hold ends the request at once: its abort reason, no retry, nothing later", async () => {
    fakeClock();
    const never = gate();
    const calls = provider(ONE, () => cutSseReply(prelude('resp_a'), { after: 2, gate: never.promise }));
    const { manager, failure } = manage(OPTIONS);
    const caller = new AbortController();
    const init = { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, input: 'hi', stream: true }), signal: caller.signal };
    const pending = manager.fetch('https://keyplex.invalid/v1/responses', init).then(undefined, (error: unknown) => error);
    await until(() => calls.length === 1, 'the attempt sent');
    await vi.advanceTimersByTimeAsync(10);
    caller.abort(new Error('left'));
    expect(await pending).toMatchObject({ message: 'left' });
    expect(ring.ids(calls)).toEqual(['a']);
    expect(failure.map((e) => e.error.code)).toEqual(['aborted']);
    expect(manager.stats().totals.inFlight).toBe(0);
    // The hold's bound (what was left of the attempt timeout) passes: nothing fires, nothing is sent again.
    await vi.advanceTimersByTimeAsync(600_000);
    expect(ring.ids(calls)).toEqual(['a']);
    expect(failure).toHaveLength(1);
    never.open();
  });

  test('a prelude over 1 MiB is released as it is: a failure after it then reaches the caller', async () => {
    const big = 'x'.repeat(600 * 1024);
    const calls = serve(() => namedSseReply([...prelude('resp_a', big), failed('resp_a', SERVER_ERROR)]));
    const { client } = manage(OPTIONS);
    const { events } = await readAll(await client.responses.create({ model: MODEL, input: 'hi', stream: true }));
    expect(events.map((e) => e.type)).toEqual(['response.created', 'response.in_progress', 'response.failed']);
    expect(ring.ids(calls)).toEqual(['a']);
  });
});
