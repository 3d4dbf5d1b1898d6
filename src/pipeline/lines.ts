/**
 * Waiting lines: requests that found no usable key wait in line per set of
 * deployments, by their lane's priority and then first come first served,
 * so a newcomer does not take a refilled slot from a request that has
 * waited longer (unless its lane outranks it: behind the first in line, a
 * critical request goes before batch ones). And the wait itself: until a key
 * may be usable, woken early when keys change.
 */
import type { Core, LinePlace } from './core';

/**
 * Why a request waiting for its turn (or about to join the line) is refused:
 * the first in line can go no sooner than `soonestAt`, after the request's
 * deadline, and expects to at `readyAt`; `ahead` requests wait before it.
 */
export class LineRefusal {
  constructor(
    readonly soonestAt: number,
    readonly readyAt: number,
    readonly ahead: number,
  ) {}
}

/**
 * A place in `lineId` for a request of lane priority `priority`: behind
 * every place of its priority or a lower one, ahead of the others, but never
 * ahead of the first (which waits for a key already: its turn is not taken
 * back).
 */
export function joinLine(core: Core, lineId: string, deadlineAt: number, priority: number): LinePlace {
  let line = core.lines.get(lineId);
  if (line === undefined) {
    line = [];
    core.lines.set(lineId, line);
  }
  const place: LinePlace = { turn: undefined, refuse: undefined, deadlineAt, priority, soonestAt: undefined, readyAt: Infinity };
  let at = line.length;
  while (at > 1 && line[at - 1]!.priority > priority) at--;
  if (at === line.length) line.push(place);
  else line.splice(at, 0, place);
  return place;
}

/** For a request about to join `lineId`: the refusal when the first in line can go only after `deadlineAt` (nobody goes before the first in line, whatever its lane). */
export function refusedAtJoin(core: Core, lineId: string, deadlineAt: number, priority: number): LineRefusal | undefined {
  const line = core.lines.get(lineId);
  const first = line?.[0];
  if (first?.soonestAt === undefined || deadlineAt >= first.soonestAt) return undefined;
  // Ahead of it: the first, and those behind the first of its priority or a lower one.
  let ahead = 1;
  for (let i = 1; i < line!.length; i++) if (line![i]!.priority <= priority) ahead++;
  return new LineRefusal(first.soonestAt, first.readyAt, ahead);
}

/**
 * `place`, first in its line, waits for a key: it can go no sooner than
 * `soonestAt` and expects to at `readyAt`. The requests behind it whose
 * deadline comes before `soonestAt` are refused now rather than at their
 * deadline (none can go before it). O(line) when `soonestAt` moves later.
 */
export function firstWaits(core: Core, lineId: string, place: LinePlace, soonestAt: number, readyAt: number): void {
  const line = core.lines.get(lineId);
  if (line === undefined || line[0] !== place) return;
  const before = place.soonestAt;
  place.soonestAt = soonestAt;
  place.readyAt = readyAt;
  if (before !== undefined && soonestAt <= before) return;
  for (let i = 1; i < line.length; i++) {
    const behind = line[i]!;
    if (behind.deadlineAt < soonestAt) behind.refuse?.(new LineRefusal(soonestAt, readyAt, i));
  }
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

/** Resolves when `place` is first in its line; rejects with the signal's reason, or a {@link LineRefusal}. */
export function waitForTurn(place: LinePlace, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      place.turn = place.refuse = undefined;
      reject(signal.reason);
    };
    place.turn = () => {
      place.turn = place.refuse = undefined;
      signal.removeEventListener('abort', onAbort);
      resolve();
    };
    place.refuse = (why) => {
      place.turn = place.refuse = undefined;
      signal.removeEventListener('abort', onAbort);
      reject(why);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Sleeps `ms`, or less when keys change meanwhile (added, enabled, a circuit half-opens); rejects at once when `signal`
 * has aborted. Resolves true when the whole `ms` passed (its timer ran: a moment the wall clock may disagree with).
 */
export function waitForKey(core: Core, ms: number, signal: AbortSignal): Promise<boolean> {
  // An aborted signal fires no more: listening to it would sleep the whole wait.
  if (signal.aborted) return Promise.reject(signal.reason as unknown);
  return new Promise<boolean>((resolve, reject) => {
    const done = (slept?: true) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      core.keyWaiters.delete(done);
      resolve(slept === true);
    };
    const onAbort = () => {
      clearTimeout(timer);
      core.keyWaiters.delete(done);
      reject(signal.reason);
    };
    const timer = setTimeout(done, ms, true);
    core.keyWaiters.add(done);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
