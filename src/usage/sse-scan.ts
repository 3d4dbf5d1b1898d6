/**
 * The events of a server-sent-events body as they arrive, judged: split at
 * their blank lines, every `data:` payload checked (JSON or `[DONE]`), the
 * text counted, usage read, the usage-only chunk removed when asked. And a
 * stream's first read, judged before the stream is handed on. No I/O, no
 * timers: the tap (sse.ts) and send drive it.
 */
import { Buffer } from 'node:buffer';
import { finished, judgeChunk, opening, SKIP } from './chunk-scan';
import { createdId, endsAnswer, eventData, eventError, generatedChars, isObj, isPrelude } from './sse-events';
import { asBuffer, completeUpTo, concat, eventEnd, find, holds, joined, keptBytes, lineEnd, onlyBreaks } from './sse-frames';
import { usageFromBody, type Usage } from './usage';

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
   * event, or a payload with an `error` object: the SDK raises it as an
   * `APIError` in the caller's loop), or ended a Responses answer with
   * `response.failed` (the SDK hands it to the app as the last event): the
   * request failed.
   */
  errorEvent: boolean;
  /** The error reported (see {@link errorEvent}): its `error` object (a failed response's), else the event's data. */
  error?: Record<string, unknown>;
  /** True when the error was a Responses `response.failed`. */
  failedResponse?: true;
  /** The object the stream creates: the first `response.id` of a Responses stream's events (`response.created` opens it), a chat completion chunk's `id` (see `createdId`); undefined for other streams. */
  responseId: string | undefined;
}

/** Replaces secrets (a key's pieces) in bytes: the same array when they hold none. */
export interface ByteRedactor {
  bytes(bytes: Uint8Array): Uint8Array;
}

const EMPTY = new Uint8Array(0);
const CR = 0x0d;
// Stateless between calls (no `stream` option): one serves every tap.
const decoder = new TextDecoder();
const keepMark = new TextDecoder('utf-8', { ignoreBOM: true });
const DATA = Buffer.from('data:');
const ERROR = Buffer.from('error');
/** What {@link EventScanner} judged passes on whole. */
const PASS = 1;
const DONE = Buffer.from('[DONE]');
/** Offsets of the events a judgement removes, start and end in turn: one array serves every judgement (none yields). */
const REMOVED: number[] = [];
/**
 * The most a stream's first event may hold before its blank line: past it,
 * {@link FirstRead} calls the stream broken (a hostile or broken upstream
 * sending megabytes without an event boundary is not held until the attempt
 * timeout). Room for the largest real first events: a whole image, base64, in
 * an `image_generation.completed` event (a few MiB).
 */
export const MAX_FIRST_EVENT_BYTES = 16 * 1024 * 1024;

/**
 * The events of a stream as they arrive: split at their blank lines (an
 * incomplete one held back for the next read), judged, counted, their usage
 * read, the usage-only chunk removed when asked. No I/O and no timers: the
 * tap below drives it, and send judges a stream's first read with it before
 * answering (so those events are judged once).
 */
export class EventScanner {
  readonly tally: StreamTally = { dataEvents: 0, textChars: 0, sawEnd: false, errorEvent: false, responseId: undefined };
  /** The last usage seen. */
  usage: Usage | undefined;
  /** True when a scan met an event whose data was neither JSON nor `[DONE]` (the stream is broken). */
  malformed = false;
  /**
   * The upstream's error when the stream's first data event was one (see
   * {@link StreamTally.error}), or came after a held prelude (see
   * {@link holding}): it failed before any answer.
   */
  openingError: Record<string, unknown> | undefined;
  /**
   * True while every data event so far opened the stream without output
   * (Responses: `response.created`, `response.in_progress`,
   * `response.queued`; chat: the role chunk, Azure's prompt filter results):
   * set by {@link FirstRead} for the streams whose prelude it holds back,
   * cleared by the first other event (output, the end, an error) or by
   * {@link FirstRead.release}. False for every other stream.
   */
  holding = false;
  /**
   * Whether the id of the object the stream creates is wanted (a stored chat
   * completion's, object affinity): a chat chunk is then parsed until one
   * gave it (see {@link StreamTally.responseId}), not judged from its bytes.
   */
  wantsId = false;
  /** True when the last scan met an event with data (comments and keep-alives are not data). */
  sawData = false;
  /** True once `[DONE]` was judged: the SDK reads nothing after it, so what follows is passed on unjudged. */
  #done = false;
  /** Bytes of an event not complete yet. */
  #pending: Uint8Array = EMPTY;
  /** Reads after {@link #pending} that completed no event: kept apart, joined once one does. */
  #later: Uint8Array[] | undefined;
  #laterBytes = 0;

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
    if (pending.length !== 0) {
      if (chunk === undefined || chunk.length === 0) bytes = this.#joined(undefined);
      else if (!final && !this.#completes(chunk)) {
        // Only the new bytes can end the held event: kept apart, so that a long one is not copied and searched again on every read.
        (this.#later ??= []).push(chunk);
        this.#laterBytes += chunk.length;
        return undefined;
      } else bytes = this.#joined(chunk);
    } else if (chunk === undefined || chunk.length === 0) return undefined;
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

  /** Whether `chunk`, after what is held, ends an event: a blank line in it, or one begun by the held part's last bytes. */
  #completes(chunk: Uint8Array): boolean {
    const later = this.#later;
    const last = later === undefined || later.length === 0 ? this.#pending : later[later.length - 1]!;
    if (completeUpTo(chunk) > 0) return true;
    // A blank line is at most 4 bytes (\r\n\r\n): one begun in the held part ends in the read's first 3 bytes,
    // or at its end (a `\r\n\r` held for its next byte).
    const tail = last.subarray(Math.max(0, last.length - 3));
    return tail.length !== 0 && completeUpTo(joined(tail, chunk.subarray(0, 3))) >= tail.length;
  }

  /** What is held and `chunk` after it, in one array. */
  #joined(chunk: Uint8Array | undefined): Uint8Array {
    const later = this.#later;
    if (later === undefined || later.length === 0) return chunk === undefined ? this.#pending : joined(this.#pending, chunk);
    const size = this.#pending.length + this.#laterBytes + (chunk?.length ?? 0);
    later.unshift(this.#pending);
    if (chunk !== undefined) later.push(chunk);
    const out = concat(later, size);
    later.length = 0;
    this.#laterBytes = 0;
    return out;
  }

  /** `bytes` with the secrets replaced; undefined when nothing was replaced. */
  #redact(bytes: Uint8Array): Uint8Array | undefined {
    const redactor = this.redactor;
    if (redactor === undefined || (!this.everything && asBuffer(bytes).indexOf(ERROR) === -1)) return undefined;
    const out = redactor.bytes(bytes);
    return out === bytes ? undefined : out;
  }

  /** Bytes held back: the start of an event not complete yet. */
  get held(): number {
    return this.#pending.length + this.#laterBytes;
  }

  /** Lets go of what was held back. */
  clear(): void {
    this.#pending = EMPTY;
    this.#later = undefined;
    this.#laterBytes = 0;
  }

  /** Judges the events of `complete` up to `[DONE]` (the last may lack its blank line at the stream's end); what passes on ({@link PASS}: all of it). */
  #judge(complete: Uint8Array): Uint8Array | undefined | typeof PASS {
    // Without a carriage return, events end at "\n\n" (found natively), and lines at "\n".
    const lfOnly = find(complete, CR, 0) === -1;
    const n = complete.length;
    let start = 0;
    const removed = REMOVED;
    /** Offsets in `removed` this judgement wrote (the array keeps its length: no store made again per stream). */
    let count = 0;
    while (start < n) {
      const end = eventEnd(complete, start, lfOnly);
      if (!this.#done && !this.#event(complete, start, end, lfOnly)) {
        if (this.malformed) return undefined;
        removed[count++] = start;
        removed[count++] = end;
      }
      start = end;
    }
    return count === 0 ? PASS : keptBytes(complete, removed, count);
  }

  /**
   * One event, `bytes[start, end)`: counted, its usage read; false when it is
   * to be removed (or is malformed). The usual one, a single `data:` line with
   * a chat chunk or `[DONE]`, is judged from its bytes ({@link judgeChunk});
   * others are decoded and parsed.
   */
  #event(bytes: Uint8Array, start: number, end: number, lfOnly: boolean): boolean {
    if (holds(bytes, start, DATA) && !(this.wantsId && this.tally.responseId === undefined)) {
      const from = bytes[start + 5] === 32 ? start + 6 : start + 5;
      const eol = lineEnd(bytes, from, end, lfOnly);
      if (onlyBreaks(bytes, eol, end)) {
        if (eol - from === DONE.length && holds(bytes, from, DONE)) {
          this.sawData = true;
          this.tally.sawEnd = true;
          this.#done = true;
          return true;
        }
        const chars = judgeChunk(bytes, from, eol);
        // A chunk that finishes a choice and names an error is parsed: its finish reason may be "error" (OpenRouter's, its choice carrying the error).
        // While a prelude is held, a chunk judged here either adds output or finishes (the hold ends), or surely carries none (it goes on); else it is parsed.
        if (chars !== SKIP && !(finished() && namesError(bytes, from, eol)) && (!this.holding || chars !== 0 || finished() || opening())) {
          // JSON with no usage, error or event type in it, nothing to remove: counted only.
          if (chars !== 0 || finished()) this.holding = false;
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
      this.#done = true;
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
      // Every data event before this one was a held prelude: an error here still comes before any answer.
      const prelude = this.holding;
      if (prelude && !isPrelude(parsed)) this.holding = false;
      if (!tally.sawEnd && endsAnswer(parsed)) tally.sawEnd = true;
      if (tally.responseId === undefined) tally.responseId = createdId(parsed);
      const error = eventError(parsed, event);
      // The first error is the one the caller meets (the SDK raises it, or the app reads it as the answer's end).
      if (error !== undefined && !tally.errorEvent) {
        tally.errorEvent = true;
        tally.error = error;
        if (parsed.type === 'response.failed') tally.failedResponse = true;
        if (tally.dataEvents === 1 || prelude) this.openingError = error;
      }
    }
    const found = usageFromBody(parsed);
    if (!found) return true;
    this.usage = found;
    if (!this.stripUsageChunk) return true;
    const choices = (parsed as { choices?: unknown }).choices;
    return !(Array.isArray(choices) && choices.length === 0);
  }
}

/** Whether `bytes[from, to)` hold the word `error` (a native search). */
function namesError(bytes: Uint8Array, from: number, to: number): boolean {
  const at = asBuffer(bytes).indexOf(ERROR, from);
  return at !== -1 && at < to;
}

export type ReadResult = Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>['read']>>;

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
 * The most a held Responses prelude ({@link FirstRead.hold}) may hold, in
 * bytes of complete events: past it, the events are released as they are
 * (OpenAI's prelude is two copies of the response object, a few KiB unless
 * the instructions are long), so the memory a stream holds stays bounded.
 */
export const MAX_HELD_PRELUDE_BYTES = 1024 * 1024;

/**
 * A stream read until its first data event is judged (or it ends): each
 * read is given to {@link take} until it says so, with no async frame of its
 * own. {@link broken} when the stream ended before any data event (no byte,
 * or only comments, fields without data, a bare `[DONE]`: an empty answer),
 * an event carries data that is neither JSON nor `[DONE]`, or more than
 * {@link MAX_FIRST_EVENT_BYTES} came before a data event (the stream is
 * broken before anything reached the caller, so another attempt may serve it). Handed to
 * {@link tapEventStream}, those events are not judged again.
 *
 * With `holdPrelude` (a Responses or chat completion stream), events that
 * carry no output (`response.created`, `response.in_progress`; a chat
 * chunk with only the assistant's role) are held back after that:
 * {@link holding} says so, and the reads go to {@link hold} until the first
 * other event, so that a failure before any output can still fail over.
 */
export class FirstRead implements FirstEvents {
  readonly scanner: EventScanner;
  broken = false;
  /**
   * What of the reads so far passes on, in order: joined once, when
   * {@link out} is asked for (not on every read). Made with its first part
   * (an empty list's first push reserves 17 places, ~0.13 KiB more, where
   * one read is the usual).
   */
  #parts: Uint8Array[] | undefined = undefined;
  #size = 0;

  constructor(stripUsageChunk: boolean, redactor?: ByteRedactor, everything = true, holdPrelude = false) {
    this.scanner = new EventScanner(stripUsageChunk, redactor, everything);
    this.scanner.holding = holdPrelude;
  }

  /**
   * Takes one read: true once a data event is judged (comments before it,
   * keep-alives such as OpenRouter's `: OPENROUTER PROCESSING`, are kept to
   * pass on with it: until data comes nothing reaches the caller, so an error
   * or a broken event in its place, or the end, can still fail over), or
   * once it is broken (stop reading then).
   */
  take(read: ReadResult): boolean {
    if (this.#scan(read)) return true;
    const tally = this.scanner.tally;
    if (tally.dataEvents > 0) return true;
    // Ended (the body, or at a `[DONE]`) before any data event: nothing was answered.
    if (read.done || tally.sawEnd) return (this.broken = true);
    return this.#tooLarge();
  }

  /** True while the data events judged are a held prelude (see {@link EventScanner.holding}). */
  get holding(): boolean {
    return this.scanner.holding;
  }

  /**
   * Takes one read of a held prelude: true once the event that ends it is
   * judged (output, the end, an error: {@link EventScanner.openingError}),
   * once the held events pass {@link MAX_HELD_PRELUDE_BYTES} (released), or
   * once the stream is broken — it ended before any output, or sent a
   * malformed event.
   */
  hold(read: ReadResult): boolean {
    if (this.#scan(read) || !this.scanner.holding) return true;
    if (read.done) return (this.broken = true);
    if (this.#size > MAX_HELD_PRELUDE_BYTES) {
      this.release();
      return true;
    }
    return this.#tooLarge();
  }

  /** The held prelude goes to the caller as it is: the stream is judged as any other from here. */
  release(): void {
    this.scanner.holding = false;
  }

  /** Scans one read, keeping what passes on; true when it was malformed (broken). */
  #scan(read: ReadResult): boolean {
    const scanner = this.scanner;
    const out = scanner.scan(read.value, read.done);
    if (out !== undefined) {
      if (this.#parts === undefined) this.#parts = [out];
      else this.#parts.push(out);
      this.#size += out.length;
    }
    return scanner.malformed ? (this.broken = true) : false;
  }

  /** Broken when more than {@link MAX_FIRST_EVENT_BYTES} came before an event that ends the wait. */
  #tooLarge(): boolean {
    const scanner = this.scanner;
    if (scanner.held + this.#size <= MAX_FIRST_EVENT_BYTES) return false;
    scanner.clear();
    return (this.broken = true);
  }

  /** What of the reads passes on (undefined: nothing yet), in one array. */
  get out(): Uint8Array | undefined {
    const parts = this.#parts;
    if (parts === undefined) return undefined;
    if (parts.length > 1) parts.splice(0, parts.length, concat(parts, this.#size));
    return parts[0];
  }
}
