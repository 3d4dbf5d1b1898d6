/**
 * Time helpers for SDK-driven tests.
 */
import { vi } from 'vitest';

/** Fakes the clock and timers only: faking more (microtasks, nextTick, performance) stalls msw's interception. */
export function fakeClock(): void {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
}

/** The real `setImmediate`, kept before any test fakes timers. */
export const realSetImmediate = globalThis.setImmediate;

/**
 * One turn of the real event loop (the real `setImmediate`): it never moves a
 * fake clock. A caller sending in a closed loop on a fake clock takes one
 * after a failure, so that a request refused before anything waits (a
 * regression) fails the test on its counts instead of spinning in
 * microtasks for ever, the loop starved, the test's timeout never firing.
 */
export function realTurn(): Promise<void> {
  return new Promise<void>((resolve) => realSetImmediate(resolve));
}

/** Waits until `condition` holds, yielding on the real `setImmediate`: it never moves a fake clock. */
export async function until(condition: () => boolean, what = 'condition'): Promise<void> {
  for (let i = 0; i < 5000; i++) {
    if (condition()) return;
    await new Promise<void>((resolve) => realSetImmediate(resolve));
  }
  throw new Error(`until(): ${what} not met`);
}

/**
 * Waits until `probe()` has stayed the same for `turns` turns of the real
 * event loop (real `setImmediate`): the work in flight has gone as far as it
 * can without the fake clock moving (answered, or waiting on a timer). Counts
 * turns, not milliseconds, so a loaded machine needs no more of them.
 */
export async function quiesce(probe: () => number, turns = 25): Promise<void> {
  let last = probe();
  let still = 0;
  for (let i = 0; i < 100_000; i++) {
    await new Promise<void>((resolve) => realSetImmediate(resolve));
    const now = probe();
    if (now === last) {
      if (++still >= turns) return;
    } else {
      last = now;
      still = 0;
    }
  }
  throw new Error('quiesce(): still changing after 100 000 turns');
}

/** The real `setTimeout`, kept before any test fakes timers. */
const realSetTimeout = globalThis.setTimeout;

/**
 * Waits in real time, at most `ms`, until `condition` holds: for what another
 * process or connection does (Redis, pub/sub, a restarted server). The
 * default limit is generous, for a loaded machine: it only bounds how long a
 * failing test takes, a passing one returns as soon as the condition holds.
 */
export async function eventually(condition: () => boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`not seen within ${ms} ms: ${what}`);
    await new Promise((resolve) => realSetTimeout(resolve, 5));
  }
}

/**
 * `fetch`, answering on a later turn of the real event loop (the real
 * `setImmediate`), as a socket or msw would. An in-process transport such as
 * `simulatorFetch` answers in microtasks alone: callers sending in a closed
 * loop on a fake clock would then never let the loop turn if keyplex stopped
 * making them wait (a regression), and the worker would spin for ever instead
 * of failing at the test's timeout.
 */
export function onLaterTurn(fetch: typeof globalThis.fetch): typeof globalThis.fetch {
  return async (input, init) => {
    await new Promise<void>((resolve) => realSetImmediate(resolve));
    return fetch(input, init);
  };
}
