/**
 * Lane options: their type, the defaults (in `config/defaults.ts`, the one
 * set) and their validation.
 */
import { DEFAULT_LANES as DEFAULTS } from '../../config/defaults';
import { describe, isPlainObject, MAX_TIMER_MS, prop, secretIdProblem, unknownFieldProblem, type Problem } from '../../config/check';

/**
 * How one bulkhead lane admits requests. Lanes are configured by name under
 * `lanes` (merged over `critical`, `standard`, `batch`); a request picks one
 * with `keyplex.options({ lane })`.
 *
 * ```ts
 * new KeyManager({ providers, lanes: { interactive: { concurrency: 32, maxQueue: 64, queueTimeoutMs: 2_000 } } });
 * await client.chat.completions.create(body, keyplex.options({ lane: 'interactive' }));
 * ```
 */
export interface LaneOptions {
  /** Requests of this lane running at once: an integer ≥ 1, or `Infinity` for no limit. */
  concurrency: number;
  /**
   * Requests that may wait for a slot (an integer ≥ 0); one more is rejected at
   * once with a {@link LaneFullError} (load shedding). `0` rejects every
   * request that cannot start at once.
   */
  maxQueue: number;
  /**
   * Longest wait in the queue, ms (> 0, at most 2147483647); a request still
   * waiting then fails with a {@link QueueTimeoutError} and is never sent.
   */
  queueTimeoutMs: number;
  /**
   * Its place in the line of requests waiting for a key (every key that
   * could serve them at its rate limit): a lower number goes first, and
   * requests of one priority go in arrival order. A request waits behind at
   * most the one already first in line, whose key it would otherwise take.
   * A finite number; defaults `critical` 0, `standard` 1, `batch` 2, and a
   * lane the options add 1.
   */
  priority?: number;
}

/**
 * The lanes every manager has unless its options change them. `critical` is
 * for interactive work that must not wait behind anything, `standard` is the
 * default lane, `batch` takes floods of background work.
 */
export const DEFAULT_LANES: Readonly<Record<'critical' | 'standard' | 'batch', Readonly<LaneOptions>>> = DEFAULTS;

const LANE_OPTIONS = ['concurrency', 'maxQueue', 'queueTimeoutMs', 'priority'] as const;

/**
 * Validates the `lanes` option and merges it over {@link DEFAULT_LANES}: a
 * default lane keeps the defaults of the options it does not set; a new lane
 * takes the options it does not set from `standard`'s defaults. A lane set to
 * `undefined`, like an option set to `undefined`, counts as not given.
 *
 * @returns `{ lanes }`, or `{ field, problem }` for the first malformed option
 *   (e.g. `lanes.batch.maxQueue`), which the config layer turns into a
 *   {@link ConfigError}.
 */
export function resolveLanes(user: Readonly<Record<string, Partial<LaneOptions> | undefined>> | undefined): { lanes: Record<string, LaneOptions> } | Problem {
  const lanes = new Map<string, LaneOptions>(Object.entries(DEFAULT_LANES).map(([name, options]) => [name, { ...options }]));
  if (user !== undefined) {
    if (!isPlainObject(user)) {
      return { field: 'lanes', problem: `expected an object of lane names to { concurrency?, maxQueue?, queueTimeoutMs?, priority? }; got ${describe(user)}` };
    }
    for (const [name, raw] of Object.entries(user)) {
      if (raw === undefined) continue;
      const defaults = Object.hasOwn(DEFAULT_LANES, name) ? DEFAULT_LANES[name as keyof typeof DEFAULT_LANES] : DEFAULT_LANES.standard;
      const checked = checkLane(name, raw, defaults);
      if ('field' in checked) return checked;
      lanes.set(name, checked.lane);
    }
  }
  return { lanes: Object.fromEntries(lanes) };
}

/**
 * Checks one lane; options it leaves out come from `defaults`, or are
 * required when there are none. Bounds: `concurrency` an integer ≥ 1 or
 * `Infinity`; `maxQueue` a safe integer ≥ 0; `queueTimeoutMs` > 0 and at most
 * 2^31 − 1 ms (the longest timer).
 */
export function checkLane(name: string, raw: unknown, defaults: Readonly<LaneOptions> | undefined): { lane: LaneOptions } | Problem {
  const field = prop('lanes', name);
  if (name === '') return { field, problem: 'expected a non-empty lane name; got an empty string' };
  const secret = secretIdProblem(name, 'a lane name');
  if (secret !== undefined) return { field, problem: secret };
  if (!isPlainObject(raw)) return { field, problem: `expected an object { concurrency?, maxQueue?, queueTimeoutMs?, priority? }; got ${describe(raw)}` };
  const unknown = unknownFieldProblem(raw, LANE_OPTIONS, field, 'lane option');
  if (unknown !== undefined) return unknown;
  const value = (option: keyof LaneOptions): unknown => {
    const given = Object.hasOwn(raw, option) ? raw[option] : undefined;
    return given === undefined ? defaults?.[option] : given;
  };
  const concurrency = value('concurrency');
  if (!(concurrency === Infinity || (typeof concurrency === 'number' && Number.isInteger(concurrency) && concurrency >= 1))) {
    return {
      field: `${field}.concurrency`,
      problem: `expected an integer >= 1 (requests of this lane running at once), or Infinity for no limit; got ${describe(concurrency)}`,
    };
  }
  const maxQueue = value('maxQueue');
  if (!(typeof maxQueue === 'number' && Number.isSafeInteger(maxQueue) && maxQueue >= 0)) {
    return {
      field: `${field}.maxQueue`,
      problem:
        maxQueue === Infinity
          ? 'expected an integer >= 0; got Infinity. An unbounded queue defeats load shedding: pick the most requests that may wait'
          : `expected an integer >= 0 (requests that may wait; 0 rejects any request that cannot start at once); got ${describe(maxQueue)}`,
    };
  }
  const queueTimeoutMs = value('queueTimeoutMs');
  if (!(typeof queueTimeoutMs === 'number' && Number.isFinite(queueTimeoutMs) && queueTimeoutMs > 0 && queueTimeoutMs <= MAX_TIMER_MS)) {
    return {
      field: `${field}.queueTimeoutMs`,
      problem: `expected a finite number (ms) > 0 and <= ${MAX_TIMER_MS} (about 24.8 days, the longest timer Node.js supports); got ${describe(queueTimeoutMs)}`,
    };
  }
  const priority = value('priority') ?? DEFAULT_LANES.standard.priority;
  if (!(typeof priority === 'number' && Number.isFinite(priority))) {
    return { field: `${field}.priority`, problem: `expected a finite number (its place in the line for a key: lower goes first; critical 0, standard 1, batch 2); got ${describe(priority)}` };
  }
  return { lane: { concurrency, maxQueue, queueTimeoutMs, priority } };
}
