/**
 * Taps a server-sent-events body on its way to the caller: judges every
 * event (a `data:` payload must be JSON or `[DONE]`), reads usage from the
 * events, counts the text streamed so far (for partial usage), optionally
 * removes the usage-only chat chunk keyplex asked for, bounds the time the
 * upstream may go without data, and reports the stream's end or failure.
 *
 * Events pass through as the bytes they arrived as, except when one is
 * removed; bytes are decoded one run of complete events at a time (never
 * across a multi-byte character).
 */
import { Buffer } from 'node:buffer';
import { finished, judgeChunk, SKIP } from './chunk-scan';
import { endsAnswer, eventData, generatedChars, isObj } from './sse-events';
import { asBuffer, completeUpTo, eventEnd, find, holds, joined, keptBytes, lineEnd, onlyBreaks } from './sse-frames';
import { usageFromBody, type Usage } from './usage';

export { eventData, generatedChars, tokensOfText } from './sse-events';

/** What a tapped stream delivered to the caller so far. */
export interface StreamTally {
  /** Events with a `data:` payload passed on (not `[DONE]`). */
  dataEvents: number;
  /** UTF-16 code units of generated text in them (content, text and argument deltas). */
  textChars: number;
  /** True once the stream's end marker arrived (`[DONE]`, or a terminal Responses event). */
  sawEnd: boolean;
  /**
   * True once the upstream reported an error inside the stream (an `error`
   * event, or a payload with an `error` object): the SDK raises it as an
   * `APIError` in the caller's loop, so the request failed.
   */
  errorEvent: boolean;
}

/** Replaces secrets (a key's pieces) in bytes: the same array when they hold none. */
export interface ByteRedactor {
  bytes(bytes: Uint8Array): Uint8Array;
}

export interface StreamTapHooks {
  /** Remove chat/legacy completion chunks that carry usage and no choices (when `first` is raw bytes; {@link scanFirst} takes it otherwise). */
  stripUsageChunk?: boolean;
  /** Longest wait for the upstream's next data, in ms, while the tap waits for it; 0 or absent: none. Comments do not count as data. */
  idleTimeoutMs?: number;
  /** Ending this signal ends the stream: `onError` is called with its reason. */
  signal?: AbortSignal;
  /** When true, a body that ends before its end marker is a failure (`StreamTruncated`), not an end. */
  requireEnd?: boolean;
  /** Called once when the upstream stream ends normally, with the last usage seen. */
  onEnd(usage: Usage | undefined, tally: StreamTally): void;
  /** Called once when the stream fails (upstream error, idle timeout, signal, malformed event); the returned error reaches the caller. */
  onError(error: unknown, usage: Usage | undefined, tally: StreamTally): unknown;
  /** Called once when the caller cancels the stream. */
  onCancel(usage: Usage | undefined, tally: StreamTally): void;
}

/** The upstream sent no data for `idleTimeoutMs` while the tap waited for it. */
export class StreamIdleTimeout extends Error {
  constructor(readonly idleTimeoutMs: number) {
    super(`no stream data for ${idleTimeoutMs} ms`);
  }
}

/** An event's `data:` payload was neither JSON nor `[DONE]`. */
export class MalformedStreamEvent extends Error {
  constructor() {
    super('a server-sent event carried data that is not JSON');
  }
}

/** The body ended before the stream's end marker (`[DONE]` or a terminal event). */
export class StreamTruncated extends Error {
  constructor() {
    super('the stream ended before its end marker');
  }
}

const EMPTY = new Uint8Array(0);
const ERROR_EVENT = /^event: ?error\r?$/m;
const CR = 0x0d;
// Stateless between calls (no `stream` option): one serves every tap.
const decoder = new TextDecoder();
const keepMark = new TextDecoder('utf-8', { ignoreBOM: true });
const DATA = Buffer.from('data:');
const ERROR = Buffer.from('error');
/** What {@link EventScanner} judged passes on whole. */
const PASS = 1;
const DONE = Buffer.from('[DONE]');

/**
 * The events of a stream as they arrive: split at their blank lines (an
 * incomplete one held back for the next read), judged, counted, their usage
 * read, the usage-only chunk removed when asked. No I/O and no timers: the
 * tap below drives it, and send judges a stream's first read with it before
 * answering (so those events are judged once).
 */
export class EventScanner {
  readonly tally: StreamTally = { dataEvents: 0, textChars: 0, sawEnd: false, errorEvent: false };
  /** The last usage seen. */
  usage: Usage | undefined;
  /** True when a scan met an event whose data was neither JSON nor `[DONE]` (the stream is broken). */
  malformed = false;
  /** True when the last scan met an event with data (comments and keep-alives are not data). */
  sawData = false;
  /** True once a complete event was judged (data, a comment, a removed one). */
  judged = false;
  /** Bytes of an event not complete yet. */
  #pending: Uint8Array = EMPTY;

  /**
   * `redactor`, when given, replaces secrets in the events before they are
   * judged and passed on: in every run of complete events, or (`everything`
   * false) only in runs that hold `error`.
   */
  constructor(
    private readonly stripUsageChunk: boolean,
    private readonly redactor?: ByteRedactor,
    private readonly everything = true,
  ) {}

  /**
   * The complete events of `chunk` (after what was held back; all of it when
   * `final`) to pass on: as they came (`chunk` itself when it was all of
   * them), or redacted, or less a removed event; undefined when none is
   * complete yet, none is left, or one was malformed.
   */
  scan(chunk: Uint8Array | undefined, final: boolean): Uint8Array | undefined {
    this.sawData = false;
    const pending = this.#pending;
    let bytes: Uint8Array;
    if (pending.length !== 0) bytes = chunk === undefined || chunk.length === 0 ? pending : joined(pending, chunk);
    else if (chunk === undefined || chunk.length === 0) return undefined;
    else bytes = chunk;
    const end = final ? bytes.length : completeUpTo(bytes);
    if (end === bytes.length) this.#pending = EMPTY;
    else {
      this.#pending = bytes.subarray(end);
      if (end === 0) return undefined;
      bytes = bytes.subarray(0, end);
    }
    const redacted = this.#redact(bytes);
    const out = this.#judge(redacted ?? bytes);
    // Passed on unchanged, the bytes go as they came (the upstream's own chunk when it was all of them).
    return out === PASS ? (redacted ?? bytes) : out;
  }

  /** `bytes` with the secrets replaced; undefined when nothing was replaced. */
  #redact(bytes: Uint8Array): Uint8Array | undefined {
    const redactor = this.redactor;
    if (redactor === undefined || (!this.everything && asBuffer(bytes).indexOf(ERROR) === -1)) return undefined;
    const out = redactor.bytes(bytes);
    return out === bytes ? undefined : out;
  }

  /** Lets go of what was held back. */
  clear(): void {
    this.#pending = EMPTY;
  }

  /** Judges the events of `complete` (the last may lack its blank line at the stream's end); what passes on ({@link PASS}: all of it). */
  #judge(complete: Uint8Array): Uint8Array | undefined | typeof PASS {
    // Without a carriage return, events end at "\n\n" (found natively), and lines at "\n".
    const lfOnly = find(complete, CR, 0) === -1;
    const n = complete.length;
    this.judged = true;
    let start = 0;
    /** Offsets of the removed events, start and end in turn. */
    let removed: number[] | undefined;
    while (start < n) {
      const end = eventEnd(complete, start, lfOnly);
      if (!this.#event(complete, start, end, lfOnly)) {
        if (this.malformed) return undefined;
        (removed ??= []).push(start, end);
      }
      start = end;
    }
    return removed === undefined ? PASS : keptBytes(complete, removed);
  }

  /**
   * One event, `bytes[start, end)`: counted, its usage read; false when it is
   * to be removed (or is malformed). The usual one, a single `data:` line with
   * a chat chunk or `[DONE]`, is judged from its bytes ({@link judgeChunk});
   * others are decoded and parsed.
   */
  #event(bytes: Uint8Array, start: number, end: number, lfOnly: boolean): boolean {
    if (holds(bytes, start, DATA)) {
      const from = bytes[start + 5] === 32 ? start + 6 : start + 5;
      const eol = lineEnd(bytes, from, end, lfOnly);
      if (onlyBreaks(bytes, eol, end)) {
        if (eol - from === DONE.length && holds(bytes, from, DONE)) {
          this.sawData = true;
          this.tally.sawEnd = true;
          return true;
        }
        const chars = judgeChunk(bytes, from, eol);
        if (chars !== SKIP) {
          // JSON with no usage, error or event type in it, nothing to remove: counted only.
          const tally = this.tally;
          this.sawData = true;
          tally.dataEvents++;
          tally.textChars += chars;
          if (finished()) tally.sawEnd = true;
          return true;
        }
      }
    }
    // As the run would decode whole: a byte-order mark is dropped only at its start.
    const event = (start === 0 ? decoder : keepMark).decode(bytes.subarray(start, end));
    const data = eventData(event);
    return data === undefined ? true : this.#data(data, event);
  }

  /**
   * An event's data, parsed: counted, its usage read; false when it is to be
   * removed (or is malformed). `event` is the whole event when it has lines
   * besides its `data:` line.
   */
  #data(data: string, event: string | undefined): boolean {
    this.sawData = true;
    const tally = this.tally;
    if (data === '[DONE]') {
      tally.sawEnd = true;
      return true;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      this.malformed = true;
      return false;
    }
    tally.dataEvents++;
    tally.textChars += generatedChars(parsed);
    if (isObj(parsed)) {
      if (!tally.sawEnd && endsAnswer(parsed)) tally.sawEnd = true;
      // As the SDK judges it (legacy mode): an `error` event, or a payload with a truthy `error`.
      if (parsed.error || (event !== undefined && event.includes('error') && ERROR_EVENT.test(event))) tally.errorEvent = true;
    }
    const found = usageFromBody(parsed);
    if (!found) return true;
    this.usage = found;
    if (!this.stripUsageChunk) return true;
    const choices = (parsed as { choices?: unknown }).choices;
    return !(Array.isArray(choices) && choices.length === 0);
  }
}

type ReadResult = Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>['read']>>;

/** A stream's first read with its complete events judged (see {@link FirstRead}). */
export interface FirstEvents {
  readonly scanner: EventScanner;
  /** What of the first read passes on (undefined: nothing yet). */
  readonly out: Uint8Array | undefined;
}

/**
 * Judges the complete events of a stream's first read: undefined when one
 * carries data that is neither JSON nor `[DONE]` (the stream is broken before
 * anything reached the caller, so another attempt may serve it). Handed to
 * {@link tapEventStream}, those events are not judged again.
 */
export function scanFirst(first: Uint8Array, stripUsageChunk: boolean, redactor?: ByteRedactor, everything = true): FirstEvents | undefined {
  const scanner = new EventScanner(stripUsageChunk, redactor, everything);
  const out = scanner.scan(first, false);
  return scanner.malformed ? undefined : { scanner, out };
}

/**
 * A stream read until its first complete event is judged (or it ends): each
 * read is given to {@link take} until it says so, with no async frame of its
 * own. {@link broken} when the stream ended before any byte, or an event
 * carries data that is neither JSON nor `[DONE]` (the stream is broken before
 * anything reached the caller, so another attempt may serve it). Handed to
 * {@link tapEventStream}, those events are not judged again.
 */
export class FirstRead implements FirstEvents {
  readonly scanner: EventScanner;
  out: Uint8Array | undefined;
  broken = false;
  #any = false;

  constructor(stripUsageChunk: boolean, redactor?: ByteRedactor, everything = true) {
    this.scanner = new EventScanner(stripUsageChunk, redactor, everything);
  }

  /** Takes one read: true once the first events are judged, the stream ended, or it is broken (stop reading then). */
  take(read: ReadResult): boolean {
    const { done, value } = read;
    if (done && !this.#any) return (this.broken = true);
    this.#any = true;
    const scanner = this.scanner;
    this.out = scanner.scan(value, done);
    if (scanner.malformed) return (this.broken = true);
    return done || scanner.judged;
  }
}

/**
 * A stream that yields `first` then the rest of `reader`, tapped as described
 * above. `first` was read already (keyplex waits for it before answering, so
 * that a stream that fails before its first byte can still fail over); given
 * as {@link FirstEvents} it was judged already (with its own `stripUsageChunk`).
 */
export function tapEventStream(first: Uint8Array | FirstEvents, reader: ReadableStreamDefaultReader<Uint8Array>, hooks: StreamTapHooks): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>(new EventStreamTap(first, reader, hooks));
}

const ONCE = Object.freeze({ once: true });

/** The idle timer of `tap` fired. */
function checkIdle(tap: EventStreamTap): void {
  tap.checkIdle();
}

/**
 * The tap: the stream's underlying source itself (its methods, no closures
 * per stream), and the listener of the request's signal.
 */
class EventStreamTap {
  readonly #scanner: EventScanner;
  /** The first read, when it is yet to be scanned. */
  #first: Uint8Array | undefined;
  /** What of the first read passes on, judged already: queued at the start. */
  #firstOut: Uint8Array | undefined;
  #settled = false;
  #listening = false;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  /** Idle accounting: time waited for data before the current read, and the current read's start. */
  #waited = 0;
  #readStart = 0;
  #reading = false;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    first: Uint8Array | FirstEvents,
    private readonly reader: ReadableStreamDefaultReader<Uint8Array>,
    private readonly hooks: StreamTapHooks,
  ) {
    if (first instanceof Uint8Array) {
      this.#scanner = new EventScanner(hooks.stripUsageChunk === true);
      this.#first = first;
    } else {
      this.#scanner = first.scanner;
      this.#firstOut = first.out;
    }
  }

  start(controller: ReadableStreamDefaultController<Uint8Array>): void {
    this.#controller = controller;
    // What of the first read passes on (judged already) is queued at once: the first pull then reads the upstream.
    const out = this.#firstOut;
    this.#firstOut = undefined;
    if (out !== undefined) controller.enqueue(out);
    const signal = this.hooks.signal;
    if (!signal) return;
    if (signal.aborted) queueMicrotask(() => this.handleEvent());
    else {
      this.#listening = true;
      signal.addEventListener('abort', this, ONCE);
    }
  }

  /** The request's signal aborted: the stream ends with its reason. */
  handleEvent(): void {
    this.#listening = false;
    this.#fail(this.hooks.signal!.reason);
  }

  pull(): Promise<void> | undefined {
    if (this.#settled) return undefined;
    const first = this.#first;
    if (first !== undefined) {
      this.#first = undefined;
      if (this.#push(first, false)) return undefined;
    }
    return this.#read();
  }

  /** Reads the upstream until something passes on (or the stream ends): one promise per read, no async frame. */
  #read(): Promise<void> {
    const idle = this.hooks.idleTimeoutMs ?? 0;
    // The wait for the upstream is bounded by what is left of the idle timeout.
    if (idle > 0) this.#startRead(idle);
    return this.reader.read().then(this.#took, this.#broke);
  }

  readonly #took = (result: ReadResult): Promise<void> | undefined => {
    const timed = this.#reading;
    this.#reading = false;
    if (this.#settled) return undefined;
    try {
      if (result.done) this.#end();
      else {
        const passed = this.#push(result.value, false);
        // A read that brought data restarted the idle count (#push): only one that did not (a comment) adds its wait, so the clock is read for it alone.
        if (timed && !this.#scanner.sawData) this.#waited += Date.now() - this.#readStart;
        if (!passed) return this.#read();
      }
    } catch (error) {
      this.#fail(error);
    }
    return undefined;
  };

  readonly #broke = (error: unknown): void => {
    this.#reading = false;
    this.#fail(error);
  };

  async cancel(reason: unknown): Promise<void> {
    if (!this.#settled) {
      this.#settle();
      this.hooks.onCancel(this.#scanner.usage, this.#tally);
    }
    await this.reader.cancel(reason).catch(() => undefined);
  }

  get #tally(): StreamTally {
    return this.#scanner.tally;
  }

  /** A read starts: the idle timer runs (one for the whole stream, armed when none is). */
  #startRead(idle: number): void {
    this.#reading = true;
    this.#readStart = Date.now();
    if (this.#timer === undefined) this.#arm(idle - this.#waited);
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(checkIdle, Math.max(0, ms), this);
    this.#timer.unref?.();
  }

  /** The idle timer fired: ends the stream when the data-less wait reached the timeout, else waits for the rest. */
  checkIdle(): void {
    this.#timer = undefined;
    if (this.#settled || !this.#reading) return;
    const idle = this.hooks.idleTimeoutMs ?? 0;
    const left = idle - this.#waited - (Date.now() - this.#readStart);
    if (left > 0) this.#arm(left);
    else this.#fail(new StreamIdleTimeout(idle));
  }

  #end(): void {
    if (this.#push(undefined, true) === 'malformed') return;
    if (this.hooks.requireEnd && !this.#tally.sawEnd) return this.#fail(new StreamTruncated());
    this.#settle();
    this.#controller.close();
    this.hooks.onEnd(this.#scanner.usage, this.#tally);
  }

  /** Ends the stream with an error: the caller's loop gets what `onError` returns; the upstream is let go. */
  #fail(error: unknown): void {
    if (this.#settled) return;
    this.#settle();
    this.#controller.error(this.hooks.onError(error, this.#scanner.usage, this.#tally));
    this.reader.cancel(error).catch(() => undefined);
  }

  #settle(): void {
    this.#settled = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#listening) this.hooks.signal!.removeEventListener('abort', this);
    this.#listening = false;
    this.#scanner.clear();
  }

  /**
   * Passes on what is complete. False when nothing was (a read must follow,
   * or the reader would stall); 'malformed' when the stream was failed.
   */
  #push(chunk: Uint8Array | undefined, final: boolean): boolean | 'malformed' {
    const scanner = this.#scanner;
    const out = scanner.scan(chunk, final);
    if (scanner.malformed) {
      this.#fail(new MalformedStreamEvent());
      return 'malformed';
    }
    if (scanner.sawData) this.#waited = 0;
    if (out === undefined) return false;
    this.#controller.enqueue(out);
    return true;
  }
}
