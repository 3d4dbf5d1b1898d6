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

/** Waits until `condition` holds, yielding on the real `setImmediate`: it never moves a fake clock. */
export async function until(condition: () => boolean, what = 'condition'): Promise<void> {
  for (let i = 0; i < 5000; i++) {
    if (condition()) return;
    await new Promise<void>((resolve) => realSetImmediate(resolve));
  }
  throw new Error(`until(): ${what} not met`);
}

/** The real `setTimeout`, kept before any test fakes timers. */
const realSetTimeout = globalThis.setTimeout;

/**
 * Waits in real time, at most `ms`, until `condition` holds: for what another
 * process or connection does (Redis, pub/sub, a restarted server).
 */
export async function eventually(condition: () => boolean, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`not seen within ${ms} ms: ${what}`);
    await new Promise((resolve) => realSetTimeout(resolve, 5));
  }
}
