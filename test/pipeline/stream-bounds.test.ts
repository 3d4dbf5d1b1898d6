/**
 * Streams are bounded and report what they used (issue 12 items 1 and 8,
 * issue 13 "Streams broken off early"), through the real SDK: an idle
 * timeout between data chunks (SSE comments do not count), the request
 * deadline over the whole stream unless `streamDeadline: 'first-byte'`, and
 * partial usage when a stream ends before its end. Fake timers drive every wait.
 */
import OpenAI from 'openai';
import { HttpResponse } from 'msw';
import { describe, expect, test, vi } from 'vitest';
import {
  ConfigError,
  DeadlineExceededError,
  getKeyplexDetails,
  KeyManager,
  keyplex,
  RequestOptionsError,
  StreamInterruptedError,
  StreamStalledError,
} from '../../src/index';
import { managedClients } from '../support/managers';
import { fakeKey } from '../support/fake-keys';
import { fakeClock, until } from '../support/time';
import { chatChunks, chatReply, provider } from '../support/upstream';
import '../support/setup';

const ONE = 'https://api.one.test/v1';
const ask = [{ role: 'user' as const, content: 'hello there, how are you today?' }];
type Chunk = OpenAI.Chat.Completions.ChatCompletionChunk;

const manage = managedClients({ one: { baseURL: ONE, keys: [fakeKey('one')] } });

/** One step of a scripted SSE body: wait `waitMs` (fake time), then send `text`. */
type Step = { waitMs: number; text: string };
const data = (payload: string, waitMs = 0): Step => ({ waitMs, text: `data: ${payload}\n\n` });
const ping = (waitMs: number): Step => ({ waitMs, text: ': ping\n\n' });

/** An SSE reply that sends `steps`, then ends (`then: 'end'`) or never sends anything again (`'stall'`). */
function scripted(steps: Step[], then: 'end' | 'stall', onStall?: () => void): Response {
  const encoder = new TextEncoder();
  let at = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const step = steps[at++];
      if (step === undefined) {
        if (then === 'end') controller.close();
        else {
          onStall?.();
          await new Promise(() => undefined);
        }
        return;
      }
      if (step.waitMs > 0) await new Promise((resolve) => setTimeout(resolve, step.waitMs));
      controller.enqueue(encoder.encode(step.text));
    },
  });
  return new HttpResponse(body, { headers: { 'content-type': 'text/event-stream', 'transfer-encoding': 'chunked' } });
}

/** Two chat chunks ("Hel", "lo"), the rest of the answer never sent. */
const twoChunks = () => chatChunks('gpt-4.1', ['Hel', 'lo', ' wor', 'ld'], false).slice(0, 2).map((e) => data(e));

/** Reads a stream in the background: the chunks so far, and a promise of how it ended. */
function consume(stream: AsyncIterable<Chunk>) {
  const chunks: Chunk[] = [];
  let settled = false;
  const ended = (async () => {
    try {
      for await (const chunk of stream) chunks.push(chunk);
      return { error: undefined as unknown };
    } catch (error) {
      return { error };
    } finally {
      settled = true;
    }
  })();
  return { chunks, ended, settled: () => settled };
}

describe('stream idle timeout', () => {
  test('a stream that stalls after its first chunks ends with a StreamStalledError (stream_idle_timeout) once the idle timeout passes', async () => {
    fakeClock();
    provider(ONE, () => scripted(twoChunks(), 'stall'));
    const { client } = manage({ streamIdleTimeoutMs: 1_000 });

    const reading = consume(await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true }));
    await until(() => reading.chunks.length === 2, 'two chunks read');
    await vi.advanceTimersByTimeAsync(999);
    expect(reading.settled()).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const { error } = await reading.ended;

    expect(error).toBeInstanceOf(StreamStalledError);
    expect(error).toBeInstanceOf(StreamInterruptedError);
    expect(getKeyplexDetails(error)?.code).toBe('stream_idle_timeout');
    expect((error as Error).message).toContain('1000 ms');
  });

  test('a stalled stream emits one failure (stream_idle_timeout), no success, and frees its lane slot and key', async () => {
    fakeClock();
    provider(ONE, () => scripted(twoChunks(), 'stall'));
    const { manager, client, success, failure } = manage({ streamIdleTimeoutMs: 1_000 });

    const reading = consume(await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true }));
    await until(() => reading.chunks.length === 2, 'two chunks read');
    expect(manager.lanes.standard?.running).toBe(1);
    await vi.advanceTimersByTimeAsync(1_000);
    await reading.ended;

    expect(failure.map((e) => e.error.code)).toEqual(['stream_idle_timeout']);
    expect(success).toEqual([]);
    expect(manager.lanes.standard).toMatchObject({ running: 0, queued: 0 });
    expect(manager.stats().totals.inFlight).toBe(0);
    expect(manager.stats().providers.one?.keys[0]?.inFlight).toBe(0);
  });

  test('SSE comments (keep-alives) after the first chunks are not data: the stream still ends at the idle timeout', async () => {
    fakeClock();
    provider(ONE, () => scripted([...twoChunks(), ...Array.from({ length: 50 }, () => ping(200))], 'stall'));
    const { client, failure } = manage({ streamIdleTimeoutMs: 1_000 });

    const reading = consume(await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true }));
    await until(() => reading.chunks.length === 2, 'two chunks read');
    await vi.advanceTimersByTimeAsync(1_000);
    const { error } = await reading.ended;

    expect(getKeyplexDetails(error)?.code).toBe('stream_idle_timeout');
    expect(failure).toHaveLength(1);
  });

  test('data chunks closer together than the idle timeout keep a stream going for longer than the timeout', async () => {
    fakeClock();
    const events = chatChunks('gpt-4.1', ['a', 'b', 'c', 'd', 'e'], false);
    provider(ONE, () => scripted([...events.map((e, i) => data(e, i === 0 ? 0 : 600)), data('[DONE]')], 'end'));
    const { client, success, failure } = manage({ streamIdleTimeoutMs: 1_000 });

    const reading = consume(await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true }));
    await vi.advanceTimersByTimeAsync(5_000);
    const { error } = await reading.ended;

    expect(error).toBeUndefined();
    expect(reading.chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('abcde');
    expect(success).toHaveLength(1);
    expect(failure).toEqual([]);
  });

  test('the request option streamIdleTimeoutMs overrides the manager option', async () => {
    fakeClock();
    provider(ONE, () => scripted(twoChunks(), 'stall'));
    const { client } = manage({ streamIdleTimeoutMs: 60_000 });

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true }, keyplex.options({ streamIdleTimeoutMs: 500 }));
    const reading = consume(stream);
    await until(() => reading.chunks.length === 2, 'two chunks read');
    await vi.advanceTimersByTimeAsync(500);
    const { error } = await reading.ended;

    expect(error).toBeInstanceOf(StreamStalledError);
    expect((error as StreamStalledError).idleTimeoutMs).toBe(500);
  });

  test('behind four stalled streams in a lane of concurrency 4, a JSON request is served once they time out (no queue_timeout)', async () => {
    fakeClock();
    provider(ONE, (call) => (call.body?.stream ? scripted(twoChunks(), 'stall') : chatReply('gpt-4.1')));
    const { manager, client } = manage({ streamIdleTimeoutMs: 1_000, lanes: { standard: { concurrency: 4, maxQueue: 10, queueTimeoutMs: 5_000 } } });

    const readings: ReturnType<typeof consume>[] = [];
    for (let i = 0; i < 4; i++) readings.push(consume(await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true })));
    await until(() => readings.every((r) => r.chunks.length === 2), 'every stream started');
    const plain = client.chat.completions.create({ model: 'gpt-4.1', messages: ask });
    await until(() => manager.lanes.standard?.queued === 1, 'the JSON request queued');
    await vi.advanceTimersByTimeAsync(1_000);
    const answer = await plain;

    expect(answer.choices[0]?.message.content).toBe('hello');
    for (const r of readings) expect(getKeyplexDetails((await r.ended).error)?.code).toBe('stream_idle_timeout');
    expect(manager.lanes.standard).toMatchObject({ running: 0, queued: 0 });
  });

  test('a stalled stream leaves no timer behind once it ended and the manager closed', async () => {
    fakeClock();
    // Answered by a fetch of its own, not through msw and undici: undici's own tick timer, armed by the first
    // request of a process that goes through it, would be counted here when this test runs first.
    const fetch = (async () => scripted(twoChunks(), 'stall')) as typeof globalThis.fetch;
    const { manager, client } = manage({ streamIdleTimeoutMs: 1_000, fetch });

    const reading = consume(await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true }));
    await until(() => reading.chunks.length === 2, 'two chunks read');
    await vi.advanceTimersByTimeAsync(1_000);
    await reading.ended;
    await manager.close();

    expect(vi.getTimerCount()).toBe(0);
  });

  // openai@6, the AI SDK and a raw reader read on after `[DONE]` until the body ends: an upstream that keeps the connection open must not fail the answer.
  test.each([
    ['[DONE]', true],
    ['its finish chunk and usage (no [DONE])', false],
  ])('a stream that stalls after %s is complete: the body ends at the idle timeout with every byte, one success with its usage, no failure', async (_name, done) => {
    fakeClock();
    const events = [...chatChunks('gpt-4.1', ['Hel', 'lo'], true, { prompt: 12, completion: 4 }), ...(done ? ['[DONE]'] : [])];
    provider(ONE, () => scripted(events.map((e) => data(e)), 'stall'));
    const { client, manager, success, failure } = manage({ streamIdleTimeoutMs: 1_000 });

    const response = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true, stream_options: { include_usage: true } }).asResponse();
    const text = response.text();
    await vi.advanceTimersByTimeAsync(1_000);

    expect(await text).toBe(events.map((e) => `data: ${e}\n\n`).join(''));
    expect(failure).toEqual([]);
    expect(success.map((e) => e.usage)).toMatchObject([{ inputTokens: 12, outputTokens: 4 }]);
    expect(manager.lanes.standard).toMatchObject({ running: 0, queued: 0 });
  });
});

describe('a stream held open after its end marker', () => {
  // As at the idle timeout (above): the answer is whole once [DONE] came, whatever ends the wait for the body's end.
  const events = [...chatChunks('gpt-4.1', ['Hel', 'lo'], true, { prompt: 12, completion: 4 }), '[DONE]'];
  const whole = events.map((e) => `data: ${e}\n\n`).join('');

  test('the deadline ends it as complete: every byte, one success with its usage, no failure', async () => {
    fakeClock();
    provider(ONE, () => scripted(events.map((e) => data(e)), 'stall'));
    const { client, manager, success, failure } = manage({ deadlineMs: 3_000, streamIdleTimeoutMs: 60_000 });

    const response = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true, stream_options: { include_usage: true } }).asResponse();
    const text = response.text();
    await vi.advanceTimersByTimeAsync(3_000);

    expect(await text).toBe(whole);
    expect(failure).toEqual([]);
    expect(success.map((e) => e.usage)).toMatchObject([{ inputTokens: 12, outputTokens: 4 }]);
    expect(manager.lanes.standard).toMatchObject({ running: 0, queued: 0 });
  });

  test('close() ends it as complete', async () => {
    let stalled = false;
    provider(ONE, () => scripted(events.map((e) => data(e)), 'stall', () => void (stalled = true)));
    const { client, manager, success, failure } = manage({ streamIdleTimeoutMs: 60_000 });

    const response = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true, stream_options: { include_usage: true } }).asResponse();
    const text = response.text();
    await until(() => stalled, 'every event read, the upstream holding the connection open');
    await manager.close();

    expect(await text).toBe(whole);
    expect(failure).toEqual([]);
    expect(success).toHaveLength(1);
  });
});

describe('close() ends streams being read', () => {
  test("each stream's error names its own request and attempts, as its failure event does", async () => {
    fakeClock();
    provider(ONE, () => scripted(twoChunks(), 'stall'));
    const { client, manager, failure } = manage({ streamIdleTimeoutMs: 60_000 });

    const readings = [await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true }), await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true })].map(consume);
    await until(() => readings.every((r) => r.chunks.length === 2), 'two chunks read on each stream');
    await manager.close();
    const errors = await Promise.all(readings.map(async (r) => (await r.ended).error));

    const details = errors.map((error) => getKeyplexDetails(error));
    expect(details.map((d) => d?.code)).toEqual(['manager_closed', 'manager_closed']);
    expect(details.map((d) => d?.attempts.map((a) => a.status))).toEqual([[200], [200]]);
    // Each error names its own request (the order of the failure events is close()'s, not the readers').
    expect(new Set(details.map((d) => d?.requestId)).size).toBe(2);
    expect(details.map((d) => d?.requestId).sort()).toEqual(failure.map((e) => e.requestId).sort());
    expect(failure.map((e) => e.error.requestId)).toEqual(failure.map((e) => e.requestId));
    expect(failure.map((e) => e.error.attempts.length)).toEqual([1, 1]);
    expect(errors[0]).not.toBe(errors[1]);
  });
});

describe('a stream nobody reads', () => {
  test('is let go at the idle timeout: its lane slot, key and upstream freed, one failure (stream_interrupted) saying why', async () => {
    fakeClock();
    let cancelled = false;
    provider(ONE, () => {
      // Two chunks, then nothing more (not even an end); `cancelled` once keyplex lets the upstream go.
      const first = new TextEncoder().encode(twoChunks().map((step) => step.text).join(''));
      const stream = new ReadableStream<Uint8Array>({
        start: (c) => c.enqueue(first),
        pull: () => new Promise<void>(() => undefined),
        cancel: () => void (cancelled = true),
      });
      return new HttpResponse(stream, { headers: { 'content-type': 'text/event-stream', 'transfer-encoding': 'chunked' } });
    });
    const { manager, client, failure } = manage({ streamIdleTimeoutMs: 1_000 });

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    expect(manager.lanes.standard?.running).toBe(1);
    await vi.advanceTimersByTimeAsync(999);
    expect(failure).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    await until(() => failure.length === 1, 'the stream let go');

    expect(failure.map((e) => e.error.code)).toEqual(['stream_interrupted']);
    expect(failure[0]!.error.message).toContain('not read for 1000 ms');
    expect(manager.lanes.standard).toMatchObject({ running: 0, queued: 0 });
    expect(manager.stats().providers.one?.keys[0]?.inFlight).toBe(0);
    expect(cancelled).toBe(true);
    // A reader that comes back late gets the error.
    const { error } = await consume(stream).ended;
    expect(getKeyplexDetails(error)?.code).toBe('stream_interrupted');
  });

  test('a reader that pauses for most of the idle timeout between reads keeps its stream', async () => {
    fakeClock();
    provider(ONE, () => scripted(chatChunks('gpt-4.1', ['a', 'b', 'c', 'd'], true).map((e) => data(e)), 'end'));
    const { client, success, failure } = manage({ streamIdleTimeoutMs: 1_000 });

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    const iterator = stream[Symbol.asyncIterator]();
    let text = '';
    for (;;) {
      const next = iterator.next();
      const result = await next;
      if (result.done) break;
      text += result.value.choices[0]?.delta.content ?? '';
      await vi.advanceTimersByTimeAsync(900);
    }

    expect(text).toBe('abcd');
    expect(success).toHaveLength(1);
    expect(failure).toEqual([]);
  });
});

describe('the request deadline bounds the whole stream', () => {
  /** A stream that keeps sending a chunk every 500 ms for 50 s. */
  const endless = () => chatChunks('gpt-4.1', Array.from({ length: 100 }, () => 'x'), false).map((e, i) => data(e, i === 0 ? 0 : 500));

  test('by default, a stream still sending at its deadline ends with a DeadlineExceededError (deadline_exceeded) and a failure event', async () => {
    fakeClock();
    provider(ONE, () => scripted(endless(), 'end'));
    const { manager, client, failure } = manage({ deadlineMs: 3_000, streamIdleTimeoutMs: 1_000 });

    const reading = consume(await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true }));
    await vi.advanceTimersByTimeAsync(3_000);
    const { error } = await reading.ended;

    expect(error).toBeInstanceOf(DeadlineExceededError);
    expect(getKeyplexDetails(error)?.code).toBe('deadline_exceeded');
    expect(reading.chunks.length).toBeGreaterThan(1);
    expect(failure.map((e) => e.error.code)).toEqual(['deadline_exceeded']);
    expect(manager.lanes.standard).toMatchObject({ running: 0, queued: 0 });
  });

  test("with streamDeadline 'first-byte', a stream that keeps sending may outlive the deadline", async () => {
    fakeClock();
    const events = chatChunks('gpt-4.1', Array.from({ length: 10 }, () => 'x'), false).map((e, i) => data(e, i === 0 ? 0 : 500));
    provider(ONE, () => scripted([...events, data('[DONE]')], 'end'));
    const { client, success, failure } = manage({ deadlineMs: 2_000, streamIdleTimeoutMs: 1_000, streamDeadline: 'first-byte' });

    const reading = consume(await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true }));
    await vi.advanceTimersByTimeAsync(6_000);
    const { error } = await reading.ended;

    expect(error).toBeUndefined();
    expect(reading.chunks).toHaveLength(11);
    expect(success).toHaveLength(1);
    expect(failure).toEqual([]);
  });
});

describe('stream bounds are validated', () => {
  test.each([
    ['streamIdleTimeoutMs below 0', { streamIdleTimeoutMs: -1 }, 'streamIdleTimeoutMs'],
    ['streamIdleTimeoutMs above the longest timer', { streamIdleTimeoutMs: 2 ** 31 }, 'streamIdleTimeoutMs'],
    ['streamIdleTimeoutMs not a number', { streamIdleTimeoutMs: '60s' }, 'streamIdleTimeoutMs'],
    ['streamDeadline not whole or first-byte', { streamDeadline: 'sometimes' }, 'streamDeadline'],
  ])('%s is refused at construction, naming the field', (_name, options, field) => {
    const build = () => new KeyManager({ providers: { one: { baseURL: ONE, keys: [fakeKey('one')] } }, ...(options as object) });
    expect(build).toThrow(ConfigError);
    expect(build).toThrow(expect.objectContaining({ field }));
  });

  test('a request option streamIdleTimeoutMs below 0 is refused at the call', () => {
    expect(() => keyplex.options({ streamIdleTimeoutMs: -5 })).toThrow(RequestOptionsError);
    expect(() => keyplex.options({ streamIdleTimeoutMs: -5 })).toThrow(/streamIdleTimeoutMs/);
  });

  test('streamIdleTimeoutMs 0 turns the idle timeout off', async () => {
    fakeClock();
    provider(ONE, () => scripted(twoChunks(), 'stall'));
    const { client } = manage({ streamIdleTimeoutMs: 0, deadlineMs: 100_000 });

    const reading = consume(await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true }));
    await until(() => reading.chunks.length === 2, 'two chunks read');
    await vi.advanceTimersByTimeAsync(99_000);
    expect(reading.settled()).toBe(false);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(getKeyplexDetails((await reading.ended).error)?.code).toBe('deadline_exceeded');
  });
});

describe('the idle timeout with the wall clock stepped while the stream stalls (NTP, a resumed VM)', () => {
  test.each([
    ['back', -3_600_000],
    ['forward', 3_600_000],
  ])('stepped %s an hour: the stream ends as stalled when the idle timeout (60 s) has passed since its last data', async (_way, step) => {
    fakeClock();
    // Data at 0 and at 30 s restart the idle count: the stream stalls from 30 s; the clock steps 10 s later.
    provider(ONE, () => scripted([...twoChunks(), data(chatChunks('gpt-4.1', [' wor'], false)[0]!, 30_000)], 'stall'));
    const { client } = manage({ streamIdleTimeoutMs: 60_000, deadlineMs: 10 * 3_600_000 });
    const reading = consume(await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true }));
    await until(() => reading.chunks.length === 2, 'two chunks read');
    await vi.advanceTimersByTimeAsync(30_000);
    await until(() => reading.chunks.length === 3, 'the third chunk read');
    await vi.advanceTimersByTimeAsync(10_000);
    vi.setSystemTime(Date.now() + step);
    await vi.advanceTimersByTimeAsync(49_000);
    expect(reading.settled()).toBe(false);
    await vi.advanceTimersByTimeAsync(1_000);
    await until(reading.settled, 'the stream ends');
    expect(getKeyplexDetails((await reading.ended).error)?.code).toBe('stream_idle_timeout');
  });
});
