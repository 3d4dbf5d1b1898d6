/**
 * The SSE tap (src/usage/sse.ts) on its own: whatever the framing and however
 * the network splits the bytes, the caller gets exactly the bytes that arrived,
 * minus the usage-only chunk when it is to be removed, and the usage is read.
 */
import { describe, expect, test } from 'vitest';
import { scanFirst, tapEventStream } from '../../src/usage/sse';
import type { Usage } from '../../src/usage/usage';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const chunk = (content: string, extra: object = {}) =>
  JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'gpt-4.1', choices: [{ index: 0, delta: { content }, finish_reason: null }], ...extra });
const USAGE = { prompt_tokens: 11, completion_tokens: 5, total_tokens: 16 };
const usageOnly = JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'gpt-4.1', choices: [], usage: USAGE });

/** The body split into pieces of `size` bytes (whole when 0). */
function pieces(body: Uint8Array, size: number): Uint8Array[] {
  if (size === 0) return [body];
  const out: Uint8Array[] = [];
  for (let i = 0; i < body.length; i += size) out.push(body.slice(i, i + size));
  return out;
}

/** Runs the tap over `chunks`; returns the bytes the caller got and what the hooks heard. */
async function tap(chunks: Uint8Array[], stripUsageChunk: boolean, prescan = false): Promise<{ bytes: Uint8Array; usage: Usage | undefined; ended: boolean }> {
  let i = 0;
  const reader = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i < chunks.length) controller.enqueue(chunks[i++]!);
      else controller.close();
    },
  }).getReader();
  const first = (await reader.read()).value!;
  let usage: Usage | undefined;
  let ended = false;
  // As send hands it over: the first read's events judged before the tap goes on from them.
  const stream = tapEventStream(prescan ? scanFirst(first, stripUsageChunk)! : first, reader, {
    stripUsageChunk,
    onEnd: (u) => {
      usage = u;
      ended = true;
    },
    onError: (e) => e,
    onCancel: () => {},
  });
  const parts: Uint8Array[] = [];
  for await (const part of stream) parts.push(part);
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  return { bytes, usage, ended };
}

const FRAMINGS = { LF: '\n\n', CRLF: '\r\n\r\n', CR: '\r\r' } as const;
const SPLITS = [0, 1, 3, 7, 64];

describe.each(Object.entries(FRAMINGS))('%s framing', (_name, end) => {
  const events = [chunk('héllo '), chunk('🌍'), chunk(' wörld', { usage: null }), usageOnly, '[DONE]'];
  const frame = (data: string) => `data: ${data}${end}`;
  const body = events.map(frame).join('');
  const stripped = events.filter((e) => e !== usageOnly).map(frame).join('');

  test.each(SPLITS)('pieces of %i bytes (0 = whole): the usage-only event is removed, every other byte passes as it came', async (size) => {
    const result = await tap(pieces(encoder.encode(body), size), true);
    expect(decoder.decode(result.bytes)).toBe(stripped);
    expect(result.usage).toMatchObject({ inputTokens: 11, outputTokens: 5 });
    expect(result.ended).toBe(true);
  });

  test.each(SPLITS)('pieces of %i bytes, the first read judged before the tap: the same bytes and usage', async (size) => {
    const result = await tap(pieces(encoder.encode(body), size), true, true);
    expect(decoder.decode(result.bytes)).toBe(stripped);
    expect(result.usage).toMatchObject({ inputTokens: 11, outputTokens: 5 });
    expect(result.ended).toBe(true);
  });

  test.each(SPLITS)('pieces of %i bytes, nothing to remove: the caller gets the body byte for byte', async (size) => {
    const input = encoder.encode(body);
    const result = await tap(pieces(input, size), false);
    expect(result.bytes).toEqual(input);
    expect(result.usage).toMatchObject({ inputTokens: 11, outputTokens: 5 });
  });
});

test('a usage object on a chunk that has choices is read and kept', async () => {
  const body = `data: ${chunk('hi', { usage: USAGE })}\n\ndata: [DONE]\n\n`;
  const result = await tap([encoder.encode(body)], true);
  expect(decoder.decode(result.bytes)).toBe(body);
  expect(result.usage).toMatchObject({ totalTokens: 16 });
});

test('`"usage": null` on every chunk is passed through and reads as no usage', async () => {
  const body = [chunk('a', { usage: null }), chunk('b', { usage: null }), '[DONE]'].map((e) => `data: ${e}\n\n`).join('');
  const result = await tap(pieces(encoder.encode(body), 5), true);
  expect(decoder.decode(result.bytes)).toBe(body);
  expect(result.usage).toBeUndefined();
});

test('a last event without its blank line is still judged and passed (or removed)', async () => {
  const body = `data: ${chunk('a')}\n\ndata: ${usageOnly}`;
  const result = await tap(pieces(encoder.encode(body), 9), true);
  expect(decoder.decode(result.bytes)).toBe(`data: ${chunk('a')}\n\n`);
  expect(result.usage).toMatchObject({ totalTokens: 16 });
});

test('"usage" inside the text of a message is not mistaken for a usage object', async () => {
  const body = `data: ${chunk('the "usage": {limits} of it')}\n\ndata: [DONE]\n\n`;
  const result = await tap([encoder.encode(body)], true);
  expect(decoder.decode(result.bytes)).toBe(body);
  expect(result.usage).toBeUndefined();
});

test('a usage-only event between others in one read is cut out of the bytes; the rest pass as they came', async () => {
  const before = `data: ${chunk('a')}\n\n`;
  const after = `: keep-alive\n\ndata: ${chunk('b')}\n\ndata: [DONE]\n\n`;
  const result = await tap([encoder.encode(`${before}data: ${usageOnly}\n\n${after}`)], true);
  expect(decoder.decode(result.bytes)).toBe(before + after);
  expect(result.usage).toMatchObject({ totalTokens: 16 });
});

test('an event whose JSON spans several `data:` lines is joined, judged and its usage read', async () => {
  const [head, tail] = [usageOnly.slice(0, 20), usageOnly.slice(20)];
  const body = `event: message\ndata: ${head}\ndata:${tail}\n\ndata: [DONE]\n\n`;
  const result = await tap([encoder.encode(body)], false);
  expect(decoder.decode(result.bytes)).toBe(body);
  expect(result.usage).toMatchObject({ totalTokens: 16 });
});

test('a first read whose event is not JSON is judged broken before the tap', () => {
  expect(scanFirst(encoder.encode('data: {"id": \n\n'), true)).toBeUndefined();
  expect(scanFirst(encoder.encode(`data: ${chunk('a')}\n\ndata: {"cut`), true)?.out).toBeDefined();
});
