/**
 * Waiting lines: requests that found no usable key wait in line, first come
 * first served, per set of deployments, so a newcomer does not take a
 * refilled slot from a request that has waited longer. And the wait itself:
 * until a key may be usable, woken early when keys change.
 */
import type { Core, LinePlace } from './core';

export function joinLine(core: Core, lineId: string): LinePlace {
  let line = core.lines.get(lineId);
  if (line === undefined) {
    line = [];
    core.lines.set(lineId, line);
  }
  const place: LinePlace = { turn: undefined };
  line.push(place);
  return place;
}

/** Leaves the line; the next in line (now first) gets its turn. */
export function leaveLine(core: Core, lineId: string, place: LinePlace): void {
  const line = core.lines.get(lineId);
  if (line === undefined) return;
  const index = line.indexOf(place);
  if (index !== -1) line.splice(index, 1);
  if (line.length === 0) core.lines.delete(lineId);
  else if (index === 0) line[0]!.turn?.();
}

/** Resolves when `place` is first in its line. */
export function waitForTurn(place: LinePlace, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      place.turn = undefined;
      reject(signal.reason);
    };
    place.turn = () => {
      place.turn = undefined;
      signal.removeEventListener('abort', onAbort);
      resolve();
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Sleeps `ms`, or less when keys change meanwhile (added, enabled, a circuit half-opens); rejects at once when `signal` has aborted. */
export function waitForKey(core: Core, ms: number, signal: AbortSignal): Promise<void> {
  // An aborted signal fires no more: listening to it would sleep the whole wait.
  if (signal.aborted) return Promise.reject(signal.reason as unknown);
  return new Promise<void>((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      core.keyWaiters.delete(done);
      resolve();
    };
    const onAbort = () => {
      clearTimeout(timer);
      core.keyWaiters.delete(done);
      reject(signal.reason);
    };
    const timer = setTimeout(done, ms);
    core.keyWaiters.add(done);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
