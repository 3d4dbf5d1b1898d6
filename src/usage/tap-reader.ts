/**
 * The tapped stream's own reader: a read goes to the tap at once, and the
 * chunk it passes on comes back as the read's result, with no stream queue,
 * read request or pull promise between them. Node's stream machinery cost
 * ~0.85 KiB and a pull cycle per chunk on top of the upstream's read (the
 * SDK reads through `getReader()`); a stream answers a chunk per event as it
 * comes from the network, so that was paid hundreds of times per answer.
 *
 * It is a real ReadableStreamDefaultReader (`instanceof`, the lock, `closed`,
 * `cancel`, `releaseLock`): only `read()` is shortened, and only after the
 * first one, which goes the stream's own way so that the stream counts as
 * read (`bodyUsed`). Once the tap has ended or failed, reads are the
 * stream's own again (done, or its error). Reads asked for while one is on
 * its way wait for it, in order. Other ways of reading (`for await`, `pipeTo`,
 * `tee`, another realm's reader) take the stream's own path, as before.
 */

/** What the reader needs of the tap (src/usage/sse.ts EventStreamTap). */
export interface DirectTap {
  /** While true, what the tap passes on is held for {@link takeHeld}, not queued on the stream. */
  direct: boolean;
  /** Reads the upstream as the stream's pull would; undefined when nothing is to wait for (a chunk is held, or the tap has settled). */
  pullDirect(): Promise<void> | undefined;
  /** The chunk passed on since the last call, if any. */
  takeHeld(): Uint8Array | undefined;
  /** The reader let go of the stream: a chunk still held is queued on it for the next reader. */
  undirect(): void;
}

type Result = Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>['read']>>;

export class TapReader extends ReadableStreamDefaultReader<Uint8Array> {
  readonly #tap: DirectTap;
  #first = true;
  /** The read on its way, while there is one. */
  #busy: Promise<Result> | undefined = undefined;

  constructor(stream: ReadableStream<Uint8Array>, tap: DirectTap) {
    super(stream);
    this.#tap = tap;
  }

  override read(): Promise<Result> {
    if (this.#busy !== undefined) {
      // Made when first needed: most readers never ask again before a read is answered.
      const again = (this.#again ??= () => this.read());
      return this.#busy.then(again, again);
    }
    if (this.#first) {
      // The stream's own way once: it is then disturbed (read), as any reader leaves it; direct once that read is answered.
      this.#first = false;
      return (this.#busy = super.read().then(this.#firstRead, this.#firstFailed));
    }
    const pending = this.#tap.pullDirect();
    if (pending === undefined) return Promise.resolve(this.#next());
    return (this.#busy = pending.then(this.#after, this.#after));
  }

  override releaseLock(): void {
    super.releaseLock();
    this.#tap.undirect();
  }

  /** Reads again once the read on its way is answered (made on first use). */
  #again: (() => Promise<Result>) | undefined = undefined;

  readonly #firstRead = (result: Result): Result => {
    this.#busy = undefined;
    this.#tap.direct = true;
    return result;
  };

  readonly #firstFailed = (error: unknown): never => {
    this.#busy = undefined;
    throw error;
  };

  readonly #after = (): Result | Promise<Result> => {
    this.#busy = undefined;
    return this.#next();
  };

  /** The chunk the tap passed on; none: the tap has ended or failed, and the stream says so. */
  #next(): Result | Promise<Result> {
    const held = this.#tap.takeHeld();
    return held === undefined ? super.read() : { value: held, done: false };
  }
}
