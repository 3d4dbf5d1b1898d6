/**
 * Memory held, measured after full collections, for tests that pin what a
 * request or a reply keeps alive. A collection frees what is unreachable,
 * but V8 may finish sweeping (and return `ArrayBuffer` memory) on another
 * thread a little later, later still on a loaded machine: a figure is read
 * again after more collections and turns of the event loop until it is
 * under what the test allows, or 100 tries have passed. What is truly held
 * never drops, whatever the load; what was only waiting to be swept does.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** `read()` after a full collection. */
export function collected(read: () => number): number {
  gc();
  return read();
}

/** `read()` after full collections, read again until it is under `below` (at most 100 tries): the last figure. */
export async function settled(read: () => number, below: number): Promise<number> {
  let value = collected(read);
  for (let tries = 1; value >= below && tries < 100; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    value = collected(read);
  }
  return value;
}
