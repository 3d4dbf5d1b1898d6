/**
 * A stream's prelude held back. OpenAI's Responses streams open with events
 * that carry no output (`response.created`, `response.in_progress`), chat
 * completion streams with a chunk that carries none (the assistant's role,
 * an empty content; Azure's prompt filter results): were they passed on at once, a stream that fails
 * right after them (`response.failed`, an `error` event, a dropped
 * connection) could no longer fail over, though nothing of the answer was
 * made. So they are held until the first event that adds output or ends the
 * answer: a failure before it fails over as one before the stream's first
 * event does. The hold is bounded in time (a slow but healthy stream is not
 * kept from its caller) and in bytes (`MAX_HELD_PRELUDE_BYTES`, usage/sse-scan.ts).
 */
import { withoutQuery } from '../request';
import type { FirstRead, ReadResult, StreamReader } from '../usage/sse';
import type { RequestAbort } from './abort';
import type { RequestContext } from './context';
import type { Core } from './core';

/**
 * Whether the request's stream opens with a prelude to hold: a streamed
 * `POST /responses`, or `POST /chat/completions` (whose first chunk is the
 * assistant's role with no text at OpenAI, Anthropic's and OpenRouter's
 * endpoints, or Azure's prompt filter results: a provider overloaded before
 * its first token fails right after it).
 */
export function holdsPrelude(ctx: RequestContext): boolean {
  const { request } = ctx;
  if (!request.stream || request.method !== 'POST') return false;
  const path = withoutQuery(request.path);
  return path === '/responses' || path === '/chat/completions';
}

/** The hold's time ran out. */
const EXPIRED: unique symbol = Symbol('prelude hold expired');

/**
 * Reads a held prelude on ({@link FirstRead.hold}) until the event that ends
 * it, or until its bound: what was left of the attempt's timeout when the
 * prelude came (that timeout bounds the wait for a stream's first event; a
 * Responses stream's wait for its first output is the same wait, so the
 * attempt timeout stands still while the hold's bound runs instead), at most
 * the stream's idle timeout (`streamIdleTimeoutMs`: how long a stream may
 * go without data once it reached the caller). At the bound the held events
 * are released, and the stream goes on as any other: a failure after it
 * reaches the caller. Returns the reader the tap goes on with: `reader`, or
 * one that goes on from the read in flight when the bound came.
 */
export async function readPrelude(core: Core, ctx: RequestContext, abort: RequestAbort, reader: ReadableStreamDefaultReader<Uint8Array>, first: FirstRead): Promise<StreamReader> {
  const idle = ctx.request.options.streamIdleTimeoutMs ?? core.options.streamIdleTimeoutMs;
  const bound = Math.min(abort.pauseAttempt(Date.now()), idle > 0 ? idle : Infinity);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let turn: ReturnType<typeof setImmediate> | undefined;
  // The bound's verdict waits one setImmediate turn, as RequestAbort's (abort.ts #fire): after a blocked loop, the output or failure already in the socket is read first.
  const expired = bound === Infinity ? undefined : new Promise<typeof EXPIRED>((resolve) => (timer = setTimeout(() => (turn = setImmediate(resolve, EXPIRED)), Math.max(0, bound))));
  try {
    for (;;) {
      const read = reader.read();
      // A body may not honour the attempt's signal (the `fetch` option's, or the global fetch's once its gzip broke): its read is ended by the request's end (RequestAbort.bounded).
      const next = abort.bounded(read);
      const got = expired === undefined ? await next : await Promise.race([next, expired]);
      if (got === EXPIRED) {
        first.release();
        return new ResumedReader(reader, read);
      }
      if (first.hold(got)) return reader;
    }
  } finally {
    clearTimeout(timer);
    clearImmediate(turn);
  }
}

/** A body's reader whose first read is one already in flight (a prelude released at its bound): the tap goes on from it. */
class ResumedReader implements StreamReader {
  #pending: Promise<ReadResult> | undefined;

  constructor(
    private readonly reader: ReadableStreamDefaultReader<Uint8Array>,
    pending: Promise<ReadResult>,
  ) {
    this.#pending = pending;
  }

  read(): Promise<ReadResult> {
    const pending = this.#pending;
    if (pending === undefined) return this.reader.read();
    this.#pending = undefined;
    return pending;
  }

  cancel(reason?: unknown): Promise<void> {
    return this.reader.cancel(reason);
  }
}
