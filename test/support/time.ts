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
