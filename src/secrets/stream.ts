/**
 * Redaction of an event stream as it passes: a reader over the upstream's
 * reader that replaces every piece of the key ({@link KeyRedactor}) in the
 * bytes it yields, pieces split across reads included.
 *
 * It passes on each read up to its last line break and holds the rest of
 * the line back until the next read (a key holds no line break, so no piece
 * spans one). An event is complete only at a blank line, so holding part of
 * a line back delays no event. A line longer than the key written with
 * JSON escapes (up to 6 bytes a character) plus 8 bytes is passed on in
 * parts, cut outside any piece.
 *
 * With `everything` false (option `redactReplies: false`) only reads that
 * hold `error` (an SSE `error` event, an error object) are scanned.
 */
import { Buffer } from 'node:buffer';
import { MAX_ESCAPE } from './escapes';
import { PIECE, type KeyRedactor } from './redact';

type Reader = ReadableStreamDefaultReader<Uint8Array>;
const LF = 0x0a;
const CR = 0x0d;
const ERROR = new TextEncoder().encode('error');

class RedactingReader implements Reader {
  readonly #inner: ReadableStreamDefaultReader<Uint8Array>;
  readonly #redactor: KeyRedactor;
  /** The most of a line held back before its start is passed on. */
  readonly #hold: number;
  readonly #everything: boolean;
  #carry: Uint8Array | undefined;
  #ended = false;

  constructor(inner: Reader, redactor: KeyRedactor, everything: boolean) {
    this.#inner = inner;
    this.#redactor = redactor;
    this.#everything = everything;
    // A piece written with JSON escapes (`\u0041`) spans up to MAX_ESCAPE bytes a character.
    this.#hold = MAX_ESCAPE * redactor.length + PIECE;
  }

  get closed(): Reader['closed'] {
    return this.#inner.closed;
  }

  releaseLock(): void {
    this.#inner.releaseLock();
  }

  cancel(reason?: unknown): Promise<void> {
    this.#carry = undefined;
    return this.#inner.cancel(reason);
  }

  async read(): ReturnType<Reader['read']> {
    for (;;) {
      if (this.#ended) return { done: true, value: undefined };
      const next = await this.#inner.read();
      if (next.done) {
        this.#ended = true;
        const rest = this.#carry;
        this.#carry = undefined;
        if (rest !== undefined) return { done: false, value: this.#redact(rest) };
        return next;
      }
      const out = this.#take(next.value);
      if (out === undefined) continue;
      // The inner read's result is ours alone: passed on as it is, its bytes redacted.
      next.value = out;
      return next;
    }
  }

  /** What of `chunk` (after what was held back) can be passed on, redacted; the rest is held back. */
  #take(chunk: Uint8Array): Uint8Array | undefined {
    const carry = this.#carry;
    let bytes = chunk;
    if (carry !== undefined) {
      bytes = new Uint8Array(carry.length + chunk.length);
      bytes.set(carry);
      bytes.set(chunk, carry.length);
    }
    const last = bytes[bytes.length - 1];
    // Events usually end a read: then nothing is held back, and no search is needed.
    let cut = last === LF || last === CR ? bytes.length : Math.max(bytes.lastIndexOf(LF), bytes.lastIndexOf(CR)) + 1;
    if (bytes.length - cut > this.#hold) {
      cut = bytes.length - this.#hold;
      // Never between the two halves of a piece: hold it back whole.
      const runs = this.#redactor.findBytes(bytes) ?? [];
      for (let r = 0; r < runs.length; r += 2) if (runs[r]! < cut && runs[r + 1]! > cut) cut = runs[r]!;
    }
    this.#carry = cut < bytes.length ? bytes.slice(cut) : undefined;
    if (cut === 0) return undefined;
    return this.#redact(cut === bytes.length ? bytes : bytes.subarray(0, cut));
  }

  #redact(bytes: Uint8Array): Uint8Array {
    if (!this.#everything && Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf(ERROR) === -1) return bytes;
    return this.#redactor.bytes(bytes);
  }
}

/** `body` with every piece of `redactor`'s key replaced (see {@link redactingReader}). */
export function redactedBody(body: ReadableStream<Uint8Array>, redactor: KeyRedactor, everything = true): ReadableStream<Uint8Array> {
  const reader = redactingReader(body.getReader(), redactor, everything);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await reader.read();
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    cancel: (reason) => reader.cancel(reason),
  });
}

/** A reader of `inner`'s bytes with every piece of `redactor`'s key replaced. */
export function redactingReader(inner: Reader, redactor: KeyRedactor, everything = true): Reader {
  return new RedactingReader(inner, redactor, everything);
}
