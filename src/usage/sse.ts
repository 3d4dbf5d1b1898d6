/**
 * Taps a server-sent-events body on its way to the caller: reads usage from
 * the events, optionally removes the usage-only chat chunk keyplex asked for,
 * and reports the stream's end or failure. Events are passed through as the
 * bytes they arrived as, except a removed one.
 *
 * Bytes are only decoded where an event carries a usage object (`"usage": {`,
 * typically one event at the end of a stream); every other complete event
 * passes as the very bytes that arrived, without decoding or copying.
 */
import { Buffer } from 'node:buffer';
import { usageFromBody, type Usage } from './usage';

export interface StreamTapHooks {
  /** Remove chat/legacy completion chunks that carry usage and no choices. */
  stripUsageChunk: boolean;
  /** Called once when the upstream stream ends normally, with the last usage seen. */
  onEnd(usage: Usage | undefined): void;
  /** Called once when the upstream stream fails; the returned error reaches the caller. */
  onError(error: unknown, usage: Usage | undefined): unknown;
  /** Called once when the caller cancels the stream. */
  onCancel(usage: Usage | undefined): void;
}

const EVENT_END = /\r?\n\r?\n|\r\r/g;
const HAS_USAGE = /"usage"\s*:\s*\{/;
const EMPTY = Buffer.alloc(0);
const QUOTED_USAGE = Buffer.from('"usage"');
const BOUNDARIES = [Buffer.from('\n\n'), Buffer.from('\r\r'), Buffer.from('\r\n\r\n')];

function isSpace(byte: number | undefined): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d;
}

/** Where `bytes` first hold `"usage"`, optional whitespace, `:`, optional whitespace, `{` (as {@link HAS_USAGE}); -1 when nowhere. */
function usageObjectAt(bytes: Buffer): number {
  for (let at = bytes.indexOf(QUOTED_USAGE); at !== -1; at = bytes.indexOf(QUOTED_USAGE, at + QUOTED_USAGE.length)) {
    let i = at + QUOTED_USAGE.length;
    while (isSpace(bytes[i])) i++;
    if (bytes[i] !== 0x3a) continue;
    i++;
    while (isSpace(bytes[i])) i++;
    if (bytes[i] === 0x7b) return at;
  }
  return -1;
}

/** Where the last complete event of `bytes` ends (after its blank line); 0 when none does. */
function completeUpTo(bytes: Buffer): number {
  let end = 0;
  for (const boundary of BOUNDARIES) {
    const at = bytes.lastIndexOf(boundary);
    if (at !== -1) end = Math.max(end, at + boundary.length);
  }
  return end;
}

/** A Buffer's bytes as a plain Uint8Array (no copy), for the caller's stream. */
function plain(bytes: Buffer): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** One event's `data:` payload joined, or undefined when it has none. */
function eventData(event: string): string | undefined {
  let data: string | undefined;
  for (const line of event.split(/\r?\n|\r/)) {
    if (!line.startsWith('data:')) continue;
    const value = line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5);
    data = data === undefined ? value : `${data}\n${value}`;
  }
  return data;
}

/**
 * A stream that yields `first` then the rest of `reader`, tapped as described
 * above. `first` was read already (keyplex waits for it before answering, so
 * that a stream that fails before its first byte can still fail over).
 */
export function tapEventStream(
  first: Uint8Array,
  reader: ReadableStreamDefaultReader<Uint8Array>,
  hooks: StreamTapHooks,
): ReadableStream<Uint8Array> {
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  /** Bytes of an event not complete yet. */
  let pending: Buffer = EMPTY;
  let usage: Usage | undefined;
  let settled = false;

  /** The events of `text` (complete ones; the last may lack its blank line at the stream's end) to pass on. */
  const filter = (text: string): string => {
    EVENT_END.lastIndex = 0;
    let out = '';
    let start = 0;
    for (let match = EVENT_END.exec(text); match; match = EVENT_END.exec(text)) {
      const end = match.index + match[0].length;
      const event = text.slice(start, end);
      out += keep(event) ? event : '';
      start = end;
    }
    if (start < text.length) {
      const rest = text.slice(start);
      out += keep(rest) ? rest : '';
    }
    return out;
  };

  const keep = (event: string): boolean => {
    if (!HAS_USAGE.test(event)) return true;
    const data = eventData(event);
    if (data === undefined) return true;
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      return true;
    }
    const found = usageFromBody(parsed);
    if (!found) return true;
    usage = found;
    if (!hooks.stripUsageChunk) return true;
    const choices = (parsed as { choices?: unknown }).choices;
    return !(Array.isArray(choices) && choices.length === 0);
  };

  /** Passes on what is complete; false when nothing was (a read must follow, or the reader would stall). */
  const push = (controller: ReadableStreamDefaultController<Uint8Array>, chunk: Uint8Array | undefined, final: boolean): boolean => {
    const arrived = chunk ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength) : EMPTY;
    const bytes = pending.length === 0 ? arrived : arrived.length === 0 ? pending : Buffer.concat([pending, arrived]);
    const end = final ? bytes.length : completeUpTo(bytes);
    pending = bytes.subarray(end);
    if (end === 0) return false;
    const complete = bytes.subarray(0, end);
    const at = usageObjectAt(complete);
    if (at === -1) {
      controller.enqueue(plain(complete));
      return true;
    }
    // The events before the one with usage pass as they are; from it on, events are decoded and judged.
    const cut = completeUpTo(complete.subarray(0, at));
    if (cut > 0) controller.enqueue(plain(complete.subarray(0, cut)));
    // Starts and (but at the stream's end) ends on an event boundary, so no character is cut.
    const text = filter(decoder.decode(complete.subarray(cut)));
    if (text) controller.enqueue(encoder.encode(text));
    return cut > 0 || text.length > 0;
  };

  let started = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!started) {
        started = true;
        if (push(controller, first, false)) return;
      }
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) {
            push(controller, undefined, true);
            controller.close();
            if (!settled) {
              settled = true;
              hooks.onEnd(usage);
            }
            return;
          }
          if (push(controller, value, false)) return;
        }
      } catch (error) {
        if (settled) throw error;
        settled = true;
        controller.error(hooks.onError(error, usage));
      }
    },
    async cancel(reason) {
      if (!settled) {
        settled = true;
        hooks.onCancel(usage);
      }
      await reader.cancel(reason).catch(() => undefined);
    },
  });
}
