/**
 * A reply body keyplex passes on as it comes (audio, file contents, text):
 * the request is complete for keyplex at its headers (accounted, its lane
 * slot freed, detached from the caller's signal), but the caller's signal
 * still ends the reading, as it ends a fetch's body: the read fails with the
 * signal's reason and the upstream body is cancelled, rather than downloaded
 * whole for nobody.
 */
export function callerAbortable(body: ReadableStream<Uint8Array>, signal: AbortSignal | undefined): ReadableStream<Uint8Array> {
  if (signal === undefined) return body;
  const reader = body.getReader();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let ended = false;
  const end = (): void => {
    ended = true;
    signal.removeEventListener('abort', onAbort);
  };
  const onAbort = (): void => {
    if (ended) return;
    end();
    controller.error(signal.reason);
    reader.cancel(signal.reason).catch(() => undefined);
  };
  return new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    },
    async pull(c) {
      let next: Awaited<ReturnType<typeof reader.read>>;
      try {
        next = await reader.read();
      } catch (error) {
        if (!ended) end();
        throw error;
      }
      if (ended) return;
      if (next.done) {
        end();
        c.close();
      } else c.enqueue(next.value);
    },
    cancel(reason) {
      end();
      return reader.cancel(reason);
    },
  });
}
