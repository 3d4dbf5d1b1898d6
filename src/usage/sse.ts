/**
 * Taps a server-sent-events body on its way to the caller: reads usage from
 * the events, optionally removes the usage-only chat chunk keyplex asked for,
 * and reports the stream's end or failure. Events are passed through as the
 * bytes they arrived as, except a removed one.
 */
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
  let pending = '';
  let usage: Usage | undefined;
  let settled = false;

  /** Returns the text of the complete events in `pending` to pass on, keeping the tail. */
  const take = (final: boolean): string => {
    EVENT_END.lastIndex = 0;
    let out = '';
    let start = 0;
    for (let match = EVENT_END.exec(pending); match; match = EVENT_END.exec(pending)) {
      const end = match.index + match[0].length;
      const event = pending.slice(start, end);
      out += keep(event) ? event : '';
      start = end;
    }
    pending = pending.slice(start);
    if (final && pending) {
      out += keep(pending) ? pending : '';
      pending = '';
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
    if (chunk) pending += decoder.decode(chunk, { stream: !final });
    else if (final) pending += decoder.decode();
    const text = take(final);
    if (text) controller.enqueue(encoder.encode(text));
    return text.length > 0;
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
