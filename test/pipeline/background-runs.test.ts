/**
 * The background responses a manager remembers are bounded: at most
 * `maxIds`, the oldest first out, each forgotten `ttlMs` after its create.
 */
import { describe, expect, test } from 'vitest';
import { BackgroundRuns } from '../../src/pipeline/background-runs';

type Run = Parameters<BackgroundRuns['add']>[1];

/** A run created at `at` for `runs` (only its expiry matters here). */
const runAt = (runs: BackgroundRuns, at: number) => ({ expiresAt: at + runs.ttlMs }) as Run;

describe('BackgroundRuns', () => {
  test('a run is forgotten ttlMs after its create', () => {
    const runs = new BackgroundRuns(10, 1_000);
    runs.add('resp_1', runAt(runs, 0));

    expect(runs.get('resp_1', 999)).toBeDefined();
    expect(runs.get('resp_1', 1_000)).toBeUndefined();
    expect(runs.size).toBe(0);
  });

  test('past maxIds the oldest goes first', () => {
    const runs = new BackgroundRuns(2, 1_000);
    for (const [i, id] of ['resp_1', 'resp_2', 'resp_3'].entries()) runs.add(id, runAt(runs, i));

    expect(runs.size).toBe(2);
    expect(runs.get('resp_1', 3)).toBeUndefined();
    expect(runs.get('resp_3', 3)).toBeDefined();
  });

  test('adding drops the runs expired by then, so expired ones do not fill the map', () => {
    const runs = new BackgroundRuns(100, 1_000);
    for (let i = 0; i < 50; i++) runs.add(`resp_${i}`, runAt(runs, i));
    runs.add('resp_late', runAt(runs, 5_000));

    expect(runs.size).toBe(1);
  });
});
