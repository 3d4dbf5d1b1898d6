/**
 * A 200 whose gzip body breaks (a truncated gzip stream then bytes that are
 * none, or a whole one with garbage after it), from a real HTTP server on
 * loopback (msw builds bodies in JavaScript, with no decoding to break).
 * Node's fetch then holds a read of the body pending for ever, and aborting
 * the request's signal does not end it: keyplex must still end the attempt
 * at `attemptTimeoutMs` and go on, as for any upstream that stalls, not wait
 * with the request's lane slot held past its deadline and `close()`.
 */
import { gzipSync } from 'node:zlib';
import OpenAI from 'openai';
import { describe, expect, test } from 'vitest';
import { getKeyplexDetails, KeyManager } from '../../src/index';
import { fakeKey } from '../support/fake-keys';
import { loopbackSuite } from '../support/loopback';

const CHUNK = JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4.1', choices: [{ index: 0, delta: { content: 'Hel' }, finish_reason: null }] });
const REPLY = JSON.stringify({ id: 'r1', object: 'chat.completion', created: 1, model: 'gpt-4.1', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } });

/** The broken bodies: what of a gzip stream is sent before the garbage. */
const BROKEN: Record<string, (stream: boolean) => Buffer> = {
  'a truncated gzip stream, then garbage': (stream) => gzipSync(stream ? `data: ${CHUNK}\n\n` : REPLY).subarray(0, stream ? 40 : 10),
  'a whole gzip stream, then garbage': (stream) => gzipSync(stream ? `data: ${CHUNK}\n\n` : REPLY),
};

const { upstream, managed } = loopbackSuite();

/** A server answering every request 200 with `body(stream)` gzip-encoded, then (GAP_MS later) garbage; counts the requests. */
async function brokenGzip(body: (stream: boolean) => Buffer): Promise<{ baseURL: string; requests: () => number; garbageSent: Promise<void> }> {
  let sent!: () => void;
  const garbageSent = new Promise<void>((resolve) => (sent = resolve));
  const server = await upstream((res, stream) => {
    res.writeHead(200, { 'content-type': stream ? 'text/event-stream' : 'application/json', 'content-encoding': 'gzip' });
    res.write(body(stream));
    // The garbage in a later packet: sent with the gzip bytes, it ends the body with an error instead. GAP_MS apart, so that a
    // client held off the CPU on a loaded machine still reads them apart; well before the timeouts (TIMEOUT_MS), so that they end a held read.
    setTimeout(() => res.end(Buffer.from('garbage, not gzip'), () => setTimeout(sent, 50)), GAP_MS);
  });
  return { ...server, garbageSent };
}

const ask = [{ role: 'user' as const, content: 'hi' }];
/** Between the gzip bytes and the garbage after them. */
const GAP_MS = 200;
/** The attempt's and the stream's idle timeout: three gaps. */
const TIMEOUT_MS = 3 * GAP_MS;

function managerOf(baseURL: string, attemptTimeoutMs: number): KeyManager {
  const manager = new KeyManager({ providers: { one: { baseURL, keys: [fakeKey('gz'), fakeKey('gz')] } }, attemptTimeoutMs, streamIdleTimeoutMs: TIMEOUT_MS, deadlineMs: 30_000, retry: { baseDelayMs: 0, maxAttempts: 2 } });
  return managed(manager);
}

/** Makes the call (reading a stream to its end); the error it ended with. */
async function callError(client: OpenAI, stream: boolean): Promise<unknown> {
  try {
    const reply = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream });
    if (stream) for await (const _ of reply as AsyncIterable<unknown>);
    return undefined;
  } catch (error) {
    return error;
  }
}

describe('a 200 whose gzip body breaks before keyplex has read its JSON or its first event', () => {
  const cases: [string, boolean][] = [
    ['a truncated gzip stream, then garbage', false],
    ['a whole gzip stream, then garbage', false],
    ['a truncated gzip stream, then garbage', true],
  ];
  for (const [name, stream] of cases) {
    test(`${name} (stream: ${stream}): each attempt ends at attemptTimeoutMs, the next key is tried, and the call fails with a 504 (timeout)`, async () => {
      const upstream = await brokenGzip(BROKEN[name]!);
      const manager = managerOf(upstream.baseURL, TIMEOUT_MS);
      const failures: string[] = [];
      manager.on('failure', (e) => failures.push(e.error.code));

      const error = await callError(manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' })), stream);

      expect(error).toBeInstanceOf(OpenAI.APIError);
      expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(504);
      expect(getKeyplexDetails(error)?.attempts.map((a) => a.kind)).toEqual(['timeout', 'timeout']);
      expect(upstream.requests()).toBe(2);
      expect(failures).toEqual(['upstream_error']);
      expect(manager.lanes.standard?.running).toBe(0);
    }, 15_000);
  }

  test('close() ends a call held so, with a 503 (manager_closed), and resolves', async () => {
    const upstream = await brokenGzip(BROKEN['a truncated gzip stream, then garbage']!);
    const manager = managerOf(upstream.baseURL, 60_000);
    const call = callError(manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' })), false);
    await upstream.garbageSent;

    await manager.close();

    const error = await call;
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect(getKeyplexDetails(error)?.code).toBe('manager_closed');
  }, 15_000);
});

describe('a gzip body that breaks after its first event reached the caller', () => {
  test('ends in the loop at streamIdleTimeoutMs (stream_idle_timeout), as any stalled stream', async () => {
    const upstream = await brokenGzip(BROKEN['a whole gzip stream, then garbage']!);
    const manager = managerOf(upstream.baseURL, TIMEOUT_MS);

    const error = await callError(manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' })), true);

    expect(getKeyplexDetails(error)?.code).toBe('stream_idle_timeout');
    expect(upstream.requests()).toBe(1);
    expect(manager.lanes.standard?.running).toBe(0);
  }, 15_000);
});
