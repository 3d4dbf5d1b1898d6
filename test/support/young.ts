/**
 * What finished work leaves to V8's old generation through young
 * collections alone: objects kept alive through scavenges (by a listener,
 * a weak reference or a dead old object pointing at them) are promoted until
 * the next full collection. Counted, not timed.
 */
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as (options?: { type: 'minor' | 'major' }) => void;

/** Bytes in the old generation (and its large objects). */
function oldBytes(): number {
  let bytes = 0;
  for (const space of getHeapSpaceStatistics()) if (space.space_name === 'old_space' || space.space_name === 'lo_space') bytes += space.space_used_size;
  return bytes;
}

/**
 * The old generation's growth, in bytes, when `run` has been awaited `count`
 * times (after `warmup` runs and a full collection) and two young
 * collections followed: the first copies what is still reachable, the
 * second promotes it.
 */
export async function promotedBy(run: () => Promise<void>, warmup: number, count: number): Promise<number> {
  for (let i = 0; i < warmup; i++) await run();
  gc();
  const before = oldBytes();
  for (let i = 0; i < count; i++) await run();
  gc({ type: 'minor' });
  gc({ type: 'minor' });
  return oldBytes() - before;
}
