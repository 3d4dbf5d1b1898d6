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
import { EventScanner, MAX_FIRST_EVENT_BYTES, type FirstEvents, type ReadResult, type StreamTally } from './sse-scan';
import { TapReader, type DirectTap } from './tap-reader';
import type { Usage } from './usage';
import { CLOCK_STEP_MS, elapsedMs } from '../wall-clock';

export { eventData, generatedChars, tokensOfText } from './sse-events';
export { EventScanner, FirstRead, MAX_FIRST_EVENT_BYTES, MAX_HELD_PRELUDE_BYTES, scanFirst, type ByteRedactor, type FirstEvents, type ReadResult, type StreamTally } from './sse-scan';

export interface StreamTapHooks {
  /** Remove chat/legacy completion chunks that carry usage and no choices (when `first` is raw bytes; {@link scanFirst} takes it otherwise). */
  stripUsageChunk?: boolean;
  /** Longest wait for the upstream's next data, in ms, while the tap waits for it; 0 or absent: none. Comments do not count as data. */
  idleTimeoutMs?: number;
  /** The request's end, which ends the stream: `onError` is called with its reason. */
  end?: StreamEnding;
  /** When true, a body that ends before its end marker is a failure (`StreamTruncated`), not an end. */
  requireEnd?: boolean;
  /** Called once when the upstream stream ends normally, with the last usage seen. */
  onEnd(usage: Usage | undefined, tally: StreamTally): void;
  /** Called once when the stream fails (upstream error, idle timeout, signal, malformed event); the returned error reaches the caller. */
  onError(error: unknown, usage: Usage | undefined, tally: StreamTally): unknown;
  /** Called once when the caller cancels the stream. */
  onCancel(usage: Usage | undefined, tally: StreamTally): void;
}

/**
 * The request's end as the tap watches it (the pipeline's RequestAbort): no
 * listener on an AbortSignal, whose adding and removing cost ~0.45 KiB and
 * ~11,000 instructions per stream.
 */
export interface StreamEnding {
  /**
   * Calls `ended` once, with the end's reason, when the request ends (as its
   * signal aborts); true. When it has ended already: false, and `ended` is
   * called in a microtask.
   */
  watch(ended: (reason: unknown) => void): boolean;
  /** `ended` is no longer to be called. */
  unwatch(): void;
}

/** What the tap reads the upstream with: a body's reader, or one that goes on from a read already in flight. */
export type StreamReader = Pick<ReadableStreamDefaultReader<Uint8Array>, 'read' | 'cancel'>;

/** The upstream sent no data for `idleTimeoutMs` while the tap waited for it. */
export class StreamIdleTimeout extends Error {
  constructor(readonly idleTimeoutMs: number) {
    super(`no stream data for ${idleTimeoutMs} ms`);
  }
}

/** The caller did not read the stream at all within the idle timeout. */
export class StreamReaderIdle extends Error {
  constructor(readonly idleTimeoutMs: number) {
    super(`the stream was not read for ${idleTimeoutMs} ms`);
  }
}

/** An event's `data:` payload was neither JSON nor `[DONE]`, or (`tooLarge`) an event grew past {@link MAX_FIRST_EVENT_BYTES} without its end. */
export class MalformedStreamEvent extends Error {
  constructor(readonly tooLarge = false) {
    super(tooLarge ? 'a server-sent event grew past 16 MiB without its end' : 'a server-sent event carried data that is not JSON');
  }
}

/** The body ended before the stream's end marker (`[DONE]` or a terminal event). */
export class StreamTruncated extends Error {
  constructor() {
    super('the stream ended before its end marker');
  }
}

/**
 * A stream that yields `first` then the rest of `reader`, tapped as described
 * above. `first` was read already (keyplex waits for it before answering, so
 * that a stream that fails before its first byte can still fail over); given
 * as {@link FirstEvents} it was judged already (with its own `stripUsageChunk`).
 */
export function tapEventStream(first: Uint8Array | FirstEvents, reader: StreamReader, hooks: StreamTapHooks): ReadableStream<Uint8Array> {
  return new TappedStream(new EventStreamTap(first, reader, hooks));
}

/** The tapped stream: its default reader reads the tap directly (tap-reader.ts). */
class TappedStream extends ReadableStream<Uint8Array> {
  readonly #tap: EventStreamTap;

  constructor(tap: EventStreamTap) {
    super(tap, NO_READ_AHEAD);
    this.#tap = tap;
  }

  static {
    // Defined on the prototype, not as a method: TypeScript's overloads of getReader cannot be overridden one by one.
    Object.defineProperty(TappedStream.prototype, 'getReader', {
      configurable: true,
      writable: true,
      value: function getReader(this: TappedStream, options?: { mode?: string }) {
        // A `byob` reader (refused: not a byte stream) and anything else asked for: the stream's own answer.
        if (options?.mode !== undefined) return ReadableStream.prototype.getReader.call(this, options as { mode: 'byob' });
        return new TapReader(this, this.#tap);
      },
    });
  }
}

/**
 * The tap reads the upstream only when the caller asks for data: each read
 * then goes straight to the caller's pending read, with no queue entry (a
 * read ahead queued every chunk after the first).
 */
const NO_READ_AHEAD = Object.freeze({ highWaterMark: 0 });

function ignore(): undefined {
  return undefined;
}

/**
 * The idle timer of `tap` fired: judged once the sockets were read. After a
 * blocked loop Node runs the timers due before it reads what arrived
 * meanwhile; setImmediate runs after that read, so chunks that came during
 * the stall are not taken for silence (as the request's timer, abort.ts).
 */
function idleTimerFired(tap: EventStreamTap): void {
  setImmediate(checkIdle, tap);
}

function checkIdle(tap: EventStreamTap): void {
  tap.checkIdle();
}

/**
 * The tap: the stream's underlying source itself (its methods, no closures
 * per stream but the watcher of the request's end).
 */
class EventStreamTap implements DirectTap {
  readonly #scanner: EventScanner;
  direct = false;
  /** What passed on while {@link direct}, for the reader to take. */
  #held: Uint8Array | undefined = undefined;
  /** The first read, when it is yet to be scanned. */
  #first: Uint8Array | undefined;
  /** What of the first read passes on, judged already: handed to the first pull. */
  #firstOut: Uint8Array | undefined;
  #settled = false;
  #listening = false;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  /** Idle accounting: time waited for data before the current read, and the current read's start. */
  #waited = 0;
  #readStart = 0;
  #reading = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When the idle timer is due, on the clock as read when it was armed (a clock stepped since is found against it). */
  #due = 0;
  /** Whether the caller has read at all (its first read pulls: what the first read judged waits for it). */
  #pulled = false;

  constructor(
    first: Uint8Array | FirstEvents,
    private readonly reader: StreamReader,
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
    // The idle timer runs from the start: a stream the caller never reads is let go after it.
    const idle = this.hooks.idleTimeoutMs ?? 0;
    if (idle > 0) this.#arm(idle, Date.now());
    this.#listening = this.hooks.end?.watch(this.#aborted) === true;
  }

  /**
   * The request ended: the stream ends with its reason. (When the tap itself
   * listened to the request's signal, as an object with `handleEvent`, every
   * finished stream's objects outlived the young-generation collections until
   * the next full one: test/usage/sse-young.test.ts.)
   */
  readonly #aborted = (reason: unknown): void => {
    this.#listening = false;
    // After the end marker the answer is whole: the request's end (deadline, close(), the caller) while the
    // upstream holds the connection open ends the body as the upstream's close would (as the idle timeout does).
    if (this.#tally.sawEnd) this.#endAfterMarker();
    else this.#fail(reason);
  };

  pull(): Promise<void> | undefined {
    if (this.#settled) return undefined;
    this.#pulled = true;
    // What of the first read passes on (judged already) goes to the first pull: the next one reads the upstream.
    const out = this.#firstOut;
    if (out !== undefined) {
      this.#firstOut = undefined;
      this.#enqueue(out);
      return undefined;
    }
    const first = this.#first;
    if (first !== undefined) {
      this.#first = undefined;
      if (this.#push(first, false)) return undefined;
    }
    return this.#read();
  }

  #enqueue(chunk: Uint8Array): void {
    if (this.direct) this.#held = chunk;
    else this.#controller.enqueue(chunk);
  }

  pullDirect(): Promise<void> | undefined {
    return this.#settled ? undefined : this.pull();
  }

  takeHeld(): Uint8Array | undefined {
    const held = this.#held;
    this.#held = undefined;
    return held;
  }

  undirect(): void {
    this.direct = false;
    // Once the tap has failed, the stream holds its error for the next reader.
    const held = this.takeHeld();
    if (held !== undefined && !this.#settled) this.#controller.enqueue(held);
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
        if (timed && !this.#scanner.sawData) this.#waited += elapsedMs(this.#readStart, Date.now());
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

  /** The caller cancelled: the upstream is let go (its failure to cancel is not the caller's). A throw here rejects the caller's cancel, as the stream makes it. */
  cancel(reason: unknown): Promise<void> {
    if (!this.#settled) {
      this.#settle();
      this.hooks.onCancel(this.#scanner.usage, this.#tally);
    }
    return this.reader.cancel(reason).then(ignore, ignore);
  }

  get #tally(): StreamTally {
    return this.#scanner.tally;
  }

  /** A read starts: the idle timer runs (one for the whole stream, armed when none is). */
  #startRead(idle: number): void {
    this.#reading = true;
    this.#readStart = Date.now();
    if (this.#timer === undefined) this.#arm(idle - this.#waited, this.#readStart);
  }

  #arm(ms: number, now: number): void {
    this.#due = now + Math.max(0, ms);
    this.#timer = setTimeout(idleTimerFired, Math.max(0, ms), this);
    this.#timer.unref?.();
  }

  /**
   * The idle timer fired. While the stream waits for the upstream: ends it
   * when the data-less wait reached the timeout, else waits for the rest —
   * as the body's end would once the answer's end marker came (an upstream
   * that keeps the connection open after `[DONE]` has answered; readers that
   * read on to the body's end, not the SDK's, would otherwise fail), else as
   * stalled. A stream the caller has never read is let go (it would hold its
   * lane slot and upstream until the deadline). Once the caller reads, a
   * pause of its own is not judged: the SDK reads ahead, so its progress is
   * not seen here.
   */
  checkIdle(): void {
    this.#timer = undefined;
    if (this.#settled) return;
    const idle = this.hooks.idleTimeoutMs ?? 0;
    if (!this.#reading) {
      if (!this.#pulled) this.#fail(new StreamReaderIdle(idle));
      return;
    }
    const now = Date.now();
    // The timer ran when its time had passed (the monotonic clock): a clock far from its moment stepped (NTP, a resumed VM),
    // and the read's start moves with it, so that the wait counts as long as it lasted.
    const drift = now - this.#due;
    if (drift > CLOCK_STEP_MS || drift < -CLOCK_STEP_MS) this.#readStart += drift;
    const left = idle - this.#waited - (now - this.#readStart);
    if (left > 0) this.#arm(left, now);
    else if (this.#tally.sawEnd) this.#endAfterMarker();
    else this.#fail(new StreamIdleTimeout(idle));
  }

  /** The stream came to its end marker and the upstream holds the connection open: it ends here, the upstream let go. */
  #endAfterMarker(): void {
    this.#end();
    this.reader.cancel().catch(() => undefined);
  }

  #end(): void {
    if (this.#push(undefined, true) === 'malformed') return;
    if (this.hooks.requireEnd && !this.#tally.sawEnd) return this.#fail(new StreamTruncated());
    this.#settle();
    // The last chunk waits in the stream's queue: readable before the end, by this reader or the next.
    const held = this.takeHeld();
    if (held !== undefined) this.#controller.enqueue(held);
    this.#controller.close();
    this.hooks.onEnd(this.#scanner.usage, this.#tally);
  }

  /** Ends the stream with an error: the caller's loop gets what `onError` returns; the upstream is let go. */
  #fail(error: unknown): void {
    if (this.#settled) return;
    this.#settle();
    // A chunk held is still the reader's (it came before the error, as a chunk handed to a read waiting for it).
    this.#controller.error(this.hooks.onError(error, this.#scanner.usage, this.#tally));
    this.reader.cancel(error).catch(() => undefined);
  }

  #settle(): void {
    this.#settled = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#listening) this.hooks.end!.unwatch();
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
    // An event held past the bound of a first one is no event: the stream ends rather than hold the upstream's bytes without end.
    if (scanner.malformed || scanner.held > MAX_FIRST_EVENT_BYTES) {
      this.#fail(new MalformedStreamEvent(!scanner.malformed));
      return 'malformed';
    }
    if (scanner.sawData) this.#waited = 0;
    if (out === undefined) return false;
    this.#enqueue(out);
    return true;
  }
}
