/**
 * An event not complete yet is held back until its blank line arrives. However
 * many reads it comes in, holding it costs work in proportion to its size:
 * each read's bytes are looked at a bounded number of times, not the whole
 * held part again on every read (a hostile upstream trickling megabytes in
 * small reads would otherwise block the event loop for seconds). Counted, not
 * timed: the bytes the scanner copies and searches. The same for what comes
 * before a stream's first data event (keep-alive comments), kept to pass on
 * with it.
 */
import { Buffer } from 'node:buffer';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { EventScanner, FirstRead } from '../../src/usage/sse-scan';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

afterEach(() => {
  vi.restoreAllMocks();
});

/** Bytes copied (`Uint8Array#set`) and searched (`Buffer#lastIndexOf`, `#indexOf`) while `run` runs. */
function bytesTouched(run: () => void): number {
  let touched = 0;
  const set = Uint8Array.prototype.set;
  vi.spyOn(Uint8Array.prototype, 'set').mockImplementation(function (this: Uint8Array, source: ArrayLike<number>, offset?: number) {
    touched += source.length;
    return set.call(this, source, offset);
  });
  const searches = Buffer.prototype as unknown as Record<'lastIndexOf' | 'indexOf', (...args: unknown[]) => number>;
  for (const name of ['lastIndexOf', 'indexOf'] as const) {
    const original = searches[name];
    vi.spyOn(searches, name).mockImplementation(function (this: Buffer, ...args: unknown[]) {
      touched += this.length;
      return original.apply(this, args);
    });
  }
  run();
  vi.restoreAllMocks();
  return touched;
}

describe('an event held back across many reads', () => {
  test('1 MiB of one data line in 1 KiB reads: the bytes touched stay a small multiple of 1 MiB', () => {
    const size = 1024 * 1024;
    const read = 1024;
    const event = encoder.encode(`data: {"x":"${'a'.repeat(size)}"}\n\n`);
    const scanner = new EventScanner(false);
    const passed: Uint8Array[] = [];
    const touched = bytesTouched(() => {
      for (let i = 0; i < event.length; i += read) {
        const out = scanner.scan(event.slice(i, i + read), false);
        if (out !== undefined) passed.push(out);
      }
    });
    expect(passed).toHaveLength(1);
    expect(decoder.decode(passed[0])).toBe(decoder.decode(event));
    expect(scanner.held).toBe(0);
    // Rescanning what is held on every read touches ~size²/(2·read) = 512 MiB here.
    expect(touched).toBeLessThan(8 * size);
  });

  test('what is held is counted whole, and let go of at once', () => {
    const scanner = new EventScanner(false);
    for (let i = 0; i < 10; i++) expect(scanner.scan(encoder.encode('data: {"x":"aaaaaaaa'), false)).toBeUndefined();
    expect(scanner.held).toBe(200);
    scanner.clear();
    expect(scanner.held).toBe(0);
    const out = scanner.scan(encoder.encode('data: {}\n\n'), false);
    expect(decoder.decode(out)).toBe('data: {}\n\n');
  });

  test('a blank line split across reads (\\r\\n | \\r\\n) completes the held event', () => {
    const scanner = new EventScanner(false);
    expect(scanner.scan(encoder.encode('data: {"a":1}'), false)).toBeUndefined();
    expect(scanner.scan(encoder.encode('\r\n\r'), false)).toBeUndefined();
    const out = scanner.scan(encoder.encode('\ndata: {"b"'), false);
    expect(decoder.decode(out)).toBe('data: {"a":1}\r\n\r\n');
    expect(scanner.held).toBe(10);
  });
});

describe("keep-alive comments before a stream's first data event", () => {
  test('256 KiB of comments in 32-byte reads, then a data event: the bytes touched stay a small multiple of 256 KiB, and all of it passes on in order', () => {
    const comment = ': OPENROUTER PROCESSING\n\n'.padStart(32, ' ');
    const reads = (256 * 1024) / comment.length;
    const data = 'data: {"choices":[]}\n\n';
    const first = new FirstRead(false);
    let ended = false;
    const touched = bytesTouched(() => {
      for (let i = 0; i < reads; i++) expect(first.take({ done: false, value: encoder.encode(comment) })).toBe(false);
      ended = first.take({ done: false, value: encoder.encode(data) });
    });
    expect(ended).toBe(true);
    expect(first.broken).toBe(false);
    expect(decoder.decode(first.out)).toBe(comment.repeat(reads) + data);
    // Joining what passes on at every read touches ~size²/(2·read) = 1 GiB here.
    expect(touched).toBeLessThan(8 * 256 * 1024);
  });
});
