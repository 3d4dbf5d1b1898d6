/**
 * Runs test code that measures against the real clock alone among test files:
 * vitest runs files in parallel processes, and two real-time measurements at
 * once (four replica processes bursting next to a pacing run) starve each
 * other of CPU on a 2-core machine. A lock directory, taken across processes.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Captured before any test fakes timers. */
const realSetTimeout = globalThis.setTimeout;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Runs `run` while holding the lock `name` (waiting for it, in real time, when another test file holds it). */
export async function exclusively<T>(name: string, run: () => Promise<T>): Promise<T> {
  const dir = path.resolve('node_modules/.cache/keyplex-test');
  mkdirSync(dir, { recursive: true });
  const lock = path.join(dir, `${name}.lock`);
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(path.join(lock, 'pid'), String(process.pid));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      let holder = 0;
      try {
        holder = Number(readFileSync(path.join(lock, 'pid'), 'utf8'));
      } catch {
        // Taken a moment ago: its pid is not written yet.
      }
      // A holder that died without releasing (a worker torn down) leaves a stale lock.
      if (holder > 0 && !alive(holder)) rmSync(lock, { recursive: true, force: true });
      else await new Promise((resolve) => realSetTimeout(resolve, 25));
    }
  }
  try {
    return await run();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}
