/**
 * What the adapters need of a manager (its public surface only), and
 * keyplex's own state summed for gauges: keys by status, circuits by state,
 * lanes, budgets, requests in flight.
 */
import { checkFields, describeType, isPlainObject } from '../config/check';
import { ConfigError } from '../errors';
import type { KeyplexEventName, KeyplexListener } from '../events';
import type { LaneStats } from '../resilience/bulkhead';
import type { KeyplexStats } from '../usage/stats';

/** The public surface of a `KeyManager` the adapters use (a structural type, so any copy of keyplex fits). */
export interface ObservedManager {
  on<E extends KeyplexEventName>(event: E, listener: KeyplexListener<E>): unknown;
  off<E extends KeyplexEventName>(event: E, listener: KeyplexListener<E>): unknown;
  stats(): KeyplexStats;
  readonly lanes: Record<string, LaneStats>;
  toJSON(): { providers: { id: string; baseURL: string }[] };
}

/**
 * Checks what an adapter was given, as `new KeyManager()` checks its options:
 * a manager (something with its methods) and options of known names only, so
 * that a typo (`model` for `models`) fails naming it instead of doing nothing.
 * @throws ConfigError
 */
export function checkAdapterArgs(manager: unknown, options: unknown, allowed: readonly string[], call: string): void {
  const missing = (['on', 'off', 'stats', 'toJSON'] as const).find((method) => typeof (manager as Record<string, unknown> | null | undefined)?.[method] !== 'function');
  if (missing !== undefined) {
    throw new ConfigError('manager', `${call} takes a KeyManager, \`new KeyManager(options)\`; got ${describeType(manager)} without ${missing}()`);
  }
  if (!isPlainObject(options)) throw new ConfigError('options', `${call} takes an object of options; got ${describeType(options)}`);
  checkFields(options, allowed, '', `${call} option`);
}

/** Listens to a manager's events until the returned function is called. */
export function listen(manager: ObservedManager, listeners: { [E in KeyplexEventName]?: KeyplexListener<E> }): () => void {
  const entries = Object.entries(listeners) as [KeyplexEventName, KeyplexListener<KeyplexEventName>][];
  for (const [event, listener] of entries) manager.on(event, listener);
  return () => {
    for (const [event, listener] of entries) manager.off(event, listener);
  };
}

/** One gauge value with its labels. */
export interface Sample<L extends string> {
  labels: Record<L, string>;
  value: number;
}

/** keyplex's state at one moment, summed to low-cardinality series. */
export interface StateSummary {
  /** Keys per provider and status (`active`, `cooling`, `disabled`). */
  keys: Sample<'provider' | 'status'>[];
  /** Circuits per scope (`key`, `deployment`), provider and state (`closed`, `open`, `half-open`). */
  circuits: Sample<'scope' | 'provider' | 'state'>[];
  lanes: (LaneStats & { lane: string })[];
  budgets: { budget: string; spentUsd: number; limitUsd: number; heldUsd: number }[];
  inFlight: number;
}

const KEY_STATUSES = ['active', 'cooling', 'disabled'] as const;
const CIRCUIT_STATES = ['closed', 'open', 'half-open'] as const;

/** How many `rows` carry each label set; every set of `zeroes` is present (0 when no row has it), so that a series drops to 0 instead of vanishing. */
function tally<L extends string>(rows: Record<L, string>[], zeroes: Record<L, string>[]): Sample<L>[] {
  const counts = new Map<string, Sample<L>>();
  for (const labels of zeroes) counts.set(JSON.stringify(labels), { labels, value: 0 });
  for (const labels of rows) {
    const id = JSON.stringify(labels);
    const sample = counts.get(id);
    if (sample) sample.value++;
    else counts.set(id, { labels, value: 1 });
  }
  return [...counts.values()];
}

/** Sums a stats snapshot into a {@link StateSummary}. */
export function summarise(stats: KeyplexStats): StateSummary {
  const keys: Record<'provider' | 'status', string>[] = [];
  const circuits: Record<'scope' | 'provider' | 'state', string>[] = [];
  const keyZeroes: Record<'provider' | 'status', string>[] = [];
  const circuitZeroes: Record<'scope' | 'provider' | 'state', string>[] = [];
  for (const provider of Object.values(stats.providers)) {
    for (const status of KEY_STATUSES) keyZeroes.push({ provider: provider.id, status });
    for (const state of CIRCUIT_STATES) circuitZeroes.push({ scope: 'key', provider: provider.id, state });
    for (const key of provider.keys) {
      keys.push({ provider: provider.id, status: key.status });
      if (key.circuit !== undefined) circuits.push({ scope: 'key', provider: provider.id, state: key.circuit });
    }
  }
  for (const deployment of stats.deployments) {
    if (deployment.circuit !== undefined) circuits.push({ scope: 'deployment', provider: deployment.provider, state: deployment.circuit });
  }
  return {
    keys: tally(keys, keyZeroes),
    circuits: tally(circuits, circuitZeroes),
    lanes: Object.entries(stats.lanes).map(([lane, s]) => ({ lane, ...s })),
    budgets: stats.budgets.map((b) => ({ budget: b.id, spentUsd: b.spentUsd, limitUsd: b.limitUsd, heldUsd: b.heldUsd })),
    inFlight: stats.totals.inFlight,
  };
}
