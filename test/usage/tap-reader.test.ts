/**
 * The tapped stream's own reader (src/usage/tap-reader.ts): reads through
 * `getReader()` (the SDK's way) skip the stream's queue, and must still
 * behave as a stream's default reader does — the same bytes, in order, for
 * reads asked for at once, a lock handed over mid-stream, cancel, errors,
 * `closed`, `bodyUsed`.
 */
import { describe, expect, test } from 'vitest';
import { tapEventStream } from '../../src/usage/sse';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const EVENTS = Array.from({ length: 12 }, (_, i) => `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: `part ${i} ` } }] })}\n\n`).concat('data: [DONE]\n\n');
const BODY = EVENTS.join('');

interface Heard {
  ended: number;
  cancelled: number;
  errors: unknown[];
}

/** A tapped stream over the events, one per upstream read (as a network delivers them); `failAt`: the upstream breaks at that read. */
async function tapped(failAt = -1, events = EVENTS): Promise<{ stream: ReadableStream<Uint8Array>; heard: Heard; upstreamCancelled: () => boolean }> {
  let i = 0;
  let cancelled = false;
  const reader = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i === failAt) return controller.error(new Error('connection reset'));
      if (i < events.length) controller.enqueue(encoder.encode(events[i++]!));
      else controller.close();
    },
    cancel: () => void (cancelled = true),
  }).getReader();
  const first = (await reader.read()).value!;
  const heard: Heard = { ended: 0, cancelled: 0, errors: [] };
  const stream = tapEventStream(first, reader, {
    requireEnd: true,
    onEnd: () => void heard.ended++,
    onError: (e) => {
      heard.errors.push(e);
      return new Error('keyplex: the stream broke', { cause: e });
    },
    onCancel: () => void heard.cancelled++,
  });
  return { stream, heard, upstreamCancelled: () => cancelled };
}

async function readAll(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<string> {
  let text = '';
  for (let r = await reader.read(); !r.done; r = await reader.read()) text += decoder.decode(r.value, { stream: true });
  return text;
}

describe("the tapped stream's reader", () => {
  test('is a default reader that locks the stream, and reads every byte once, in order, to the end', async () => {
    const { stream, heard } = await tapped();
    const reader = stream.getReader();
    expect(reader).toBeInstanceOf(ReadableStreamDefaultReader);
    expect(stream.locked).toBe(true);
    expect(await readAll(reader)).toBe(BODY);
    expect(await reader.read()).toEqual({ done: true, value: undefined });
    await expect(reader.closed).resolves.toBeUndefined();
    expect(heard).toEqual({ ended: 1, cancelled: 0, errors: [] });
  });

  test('a last event the body ends without its blank line is read before the end', async () => {
    const unterminated = [...EVENTS.slice(0, -1), 'data: [DONE]'];
    const { stream, heard } = await tapped(-1, unterminated);
    expect(await readAll(stream.getReader())).toBe(unterminated.join(''));
    expect(heard.ended).toBe(1);
  });

  test('reads asked for at once are answered in order, each with the next chunk', async () => {
    const { stream, heard } = await tapped();
    const reader = stream.getReader();
    const results = await Promise.all(Array.from({ length: EVENTS.length + 2 }, () => reader.read()));
    expect(results.filter((r) => !r.done).map((r) => decoder.decode(r.value))).toEqual(EVENTS);
    expect(results.slice(EVENTS.length).every((r) => r.done)).toBe(true);
    expect(heard.ended).toBe(1);
  });

  test('a reader released mid-stream hands on the rest: the next reader gets every remaining byte', async () => {
    const { stream } = await tapped();
    const first = stream.getReader();
    let text = '';
    for (let n = 0; n < 5; n++) text += decoder.decode((await first.read()).value);
    first.releaseLock();
    expect(stream.locked).toBe(false);
    text += await readAll(stream.getReader());
    expect(text).toBe(BODY);
  });

  test('a reader released with no read left a for-await loop to read the rest', async () => {
    const { stream } = await tapped();
    const reader = stream.getReader();
    let text = decoder.decode((await reader.read()).value) + decoder.decode((await reader.read()).value);
    reader.releaseLock();
    for await (const part of stream) text += decoder.decode(part);
    expect(text).toBe(BODY);
  });

  test('cancel() mid-stream reports the cancel once, lets the upstream go, and closes the reader', async () => {
    const { stream, heard, upstreamCancelled } = await tapped();
    const reader = stream.getReader();
    await reader.read();
    await reader.read();
    await reader.cancel('caller left');
    expect(heard).toEqual({ ended: 0, cancelled: 1, errors: [] });
    expect(upstreamCancelled()).toBe(true);
    expect(await reader.read()).toEqual({ done: true, value: undefined });
    await expect(reader.closed).resolves.toBeUndefined();
  });

  test('an upstream that breaks mid-stream rejects the read with what onError made of it, and every read after', async () => {
    const { stream, heard } = await tapped(6);
    const reader = stream.getReader();
    const read: string[] = [];
    let error: unknown;
    try {
      for (;;) {
        const r = await reader.read();
        if (r.done) break;
        read.push(decoder.decode(r.value));
      }
    } catch (e) {
      error = e;
    }
    expect(read).toEqual(EVENTS.slice(0, 6));
    expect((error as Error).message).toBe('keyplex: the stream broke');
    expect(heard.errors).toHaveLength(1);
    await expect(reader.read()).rejects.toBe(error);
    await expect(reader.closed).rejects.toBe(error);
  });

  test('a Response over the stream counts as read once its reader has read (bodyUsed), and text() reads it whole', async () => {
    const read = new Response((await tapped()).stream);
    const reader = read.body!.getReader();
    await reader.read();
    expect(read.bodyUsed).toBe(true);
    reader.releaseLock();
    const whole = new Response((await tapped()).stream);
    expect(await whole.text()).toBe(BODY);
  });

  test('a byob reader is refused, as for any stream that is not a byte stream', async () => {
    const { stream } = await tapped();
    expect(() => stream.getReader({ mode: 'byob' })).toThrow(TypeError);
    expect(stream.locked).toBe(false);
  });
});
