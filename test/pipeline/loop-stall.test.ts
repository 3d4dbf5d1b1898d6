/**
 * The application's event loop blocked while keyplex has a request in
 * flight (a large synchronous JSON.parse, a CPU-bound handler, a long GC
 * pause, a container throttled by its CPU quota). When the loop resumes,
 * Node runs the timers that expired meanwhile before it reads the sockets
 * whose data arrived meanwhile: an answer already waiting there must be read
 * before a timeout is judged, or a healthy key is blamed for this process's
 * stall (a timeout counted against its circuits), the request sent again (paid
 * twice) and the app given a timeout although its answer had come.
 *
 * A real server on loopback in this process: it writes its answer, then
 * blocks the loop (a busy wait) for longer than the timeout under test.
 */
import OpenAI from 'openai';
import { describe, expect, test } from 'vitest';
import { KeyManager, type KeyManagerOptions } from '../../src/index';
import { fakeKey } from '../support/fake-keys';
import { loopbackSuite } from '../support/loopback';

const REPLY = JSON.stringify({ id: 'r1', object: 'chat.completion', created: 1, model: 'gpt-4.1', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } });
const chunk = (content: string, finish: string | null = null) => `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4.1', choices: [{ index: 0, delta: { content }, finish_reason: finish }] })}\n\n`;

/**
 * The timeouts under test; the stall is three of them. Long enough that, on
 * a loaded machine, a request reaches the loopback server well within one
 * (the tests' premise: only the stall runs past it). At 100 ms a full run
 * beside other test files once saw the deadline pass before the server
 * answered (deadline_exceeded, no stall involved).
 */
const TIMEOUT_MS = 400;
const STALL_MS = 3 * TIMEOUT_MS;

/** Blocks this process's event loop for `ms`. */
function stall(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until);
}

const { upstream, managed } = loopbackSuite();

function managerOf(baseURL: string, options: Partial<KeyManagerOptions> = {}): KeyManager {
  const manager = new KeyManager({ providers: { one: { baseURL, keys: [fakeKey('stall'), fakeKey('stall')], rpm: 1000 } }, retry: { baseDelayMs: 0, maxAttempts: 2 }, ...options });
  return managed(manager);
}

/** What the upstream's stats count against it. */
function failuresOf(manager: KeyManager): Record<string, number> {
  return manager.stats().providers.one!.failures;
}

const ask = [{ role: 'user' as const, content: 'hi' }];

describe('an answer that arrived while the loop was blocked for longer than a timeout is read, not timed out', () => {
  test('a JSON reply, the stall longer than attemptTimeoutMs: answered, sent once, no timeout counted', async () => {
    const server = await upstream((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(REPLY);
      stall(STALL_MS);
    });
    const manager = managerOf(server.baseURL, { attemptTimeoutMs: TIMEOUT_MS });
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));

    const reply = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask });

    expect(reply.choices[0]?.message.content).toBe('hi');
    expect(server.requests()).toBe(1);
    expect(failuresOf(manager)).toEqual({});
  }, 15_000);

  test('a JSON reply, the stall longer than deadlineMs: answered, not deadline_exceeded', async () => {
    const server = await upstream((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(REPLY);
      stall(STALL_MS);
    });
    const manager = managerOf(server.baseURL, { deadlineMs: TIMEOUT_MS });
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));

    const reply = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask });

    expect(reply.choices[0]?.message.content).toBe('hi');
    expect(server.requests()).toBe(1);
  }, 15_000);

  test("a stream's first events, the stall longer than attemptTimeoutMs: streamed, sent once, no timeout counted", async () => {
    const server = await upstream((res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(chunk('hi', 'stop') + 'data: [DONE]\n\n');
      stall(STALL_MS);
    });
    const manager = managerOf(server.baseURL, { attemptTimeoutMs: TIMEOUT_MS });
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));

    let text = '';
    for await (const part of await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true })) text += part.choices[0]?.delta.content ?? '';

    expect(text).toBe('hi');
    expect(server.requests()).toBe(1);
    expect(failuresOf(manager)).toEqual({});
  }, 15_000);

  test('the rest of a stream, the stall longer than streamIdleTimeoutMs: read to its end, no stream_idle_timeout', async () => {
    let rest!: () => void;
    const server = await upstream((res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(chunk('Hel'));
      rest = () => res.end(chunk('lo', 'stop') + 'data: [DONE]\n\n');
    });
    const manager = managerOf(server.baseURL, { streamIdleTimeoutMs: TIMEOUT_MS });
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));

    let text = '';
    for await (const part of await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true })) {
      // Once the loop waits for more: the rest arrives while something else in the app blocks the loop.
      if (text === '')
        setImmediate(() => {
          rest();
          stall(STALL_MS);
        });
      text += part.choices[0]?.delta.content ?? '';
    }

    expect(text).toBe('Hello');
    expect(server.requests()).toBe(1);
  }, 15_000);

  test('a stall right after the attempt started, before its request went out, longer than attemptTimeoutMs: the attempt waits its timeout again; answered, sent once', async () => {
    const server = await upstream((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(REPLY);
    });
    const manager = managerOf(server.baseURL, { attemptTimeoutMs: TIMEOUT_MS });
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
    // A listener that blocks (a synchronous logger): the attempt's timer runs, its request is not sent yet.
    manager.on('attempt', () => stall(STALL_MS));

    const reply = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask });

    expect(reply.choices[0]?.message.content).toBe('hi');
    expect(server.requests()).toBe(1);
    expect(failuresOf(manager)).toEqual({});
  }, 15_000);
});

describe("a stream's held prelude, the stall longer than the hold's bound", () => {
  const ROLE = `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4.1', choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] })}\n\n`;
  const ERROR = `data: ${JSON.stringify({ error: { message: 'The server had an error while processing your request.', type: 'server_error', param: null, code: null } })}\n\n`;

  test('a failure right after the role chunk, in the socket when the loop resumes: fails over to the next key, the app sees its text only', async () => {
    let fail!: () => void;
    const server = await upstream((res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      if (server.requests() > 1) {
        res.end(chunk('hi', 'stop') + 'data: [DONE]\n\n');
        return;
      }
      res.write(ROLE);
      fail = () => res.end(ERROR);
    });
    // The body passed on as it is; once keyplex holds the role chunk, the failure comes while the loop is blocked past the hold's bound.
    let held = false;
    const fetchThrough: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      const body = response.body!.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(part, out) {
            out.enqueue(part);
            if (held) return;
            held = true;
            setImmediate(() => {
              fail();
              stall(STALL_MS);
            });
          },
        }),
      );
      return new Response(body, { status: response.status, headers: response.headers });
    };
    const manager = managerOf(server.baseURL, { attemptTimeoutMs: TIMEOUT_MS, fetch: fetchThrough });
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));

    let text = '';
    for await (const part of await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true })) text += part.choices[0]?.delta.content ?? '';

    expect(text).toBe('hi');
    expect(server.requests()).toBe(2);
  }, 15_000);
});
