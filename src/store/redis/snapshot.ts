/** The shared state as Redis returns it to a load, parsed into a {@link StoreSnapshot}. */
import type { CircuitSnapshot } from '../../resilience/breaker/index';
import { circuitField, keyField, parseCircuitField, parseKeyField } from '../fields';
import type { StoreBudgetRef, StoreChange, StoreKeyStatus, StoreSnapshot } from '../types';
import { parseJson } from './session';

type Hash = Record<string, string>;

/** The statuses hash, the circuits hash and one spend hash per budget (in `budgets` order). */
export function parseSnapshot(statuses: Hash, circuits: Hash, spend: Hash[], budgets: readonly StoreBudgetRef[]): StoreSnapshot {
  const snapshot: StoreSnapshot = { keys: [], circuits: [], spend: [] };
  for (const [field, raw] of Object.entries(statuses)) {
    const key = parseKeyField(field);
    const status = parseJson(raw) as StoreKeyStatus | undefined;
    if (key && status && typeof status === 'object') snapshot.keys.push({ key, status });
  }
  for (const [field, raw] of Object.entries(circuits)) {
    const circuit = parseCircuitField(field);
    const value = parseJson(raw) as CircuitSnapshot | undefined;
    if (circuit && value && typeof value === 'object') snapshot.circuits.push({ circuit, snapshot: value });
  }
  budgets.forEach((budget, i) => {
    const buckets = Object.entries(spend[i] ?? {})
      .map(([at, nanos]) => [Number(at), Number(nanos)] as [number, number])
      .filter(([at, nanos]) => Number.isFinite(at) && Number.isFinite(nanos))
      .sort((a, b) => a[0] - b[0]);
    snapshot.spend.push({ budget: budget.id, buckets });
  });
  return snapshot;
}

/** How a load's `since` map names a status or circuit. */
export function changeField(change: StoreChange): string | undefined {
  if (change.kind === 'key') return `k${keyField(change.key)}`;
  return change.kind === 'circuit' ? `c${circuitField(change.circuit)}` : undefined;
}

/**
 * A load on its way, and what happened since it was sent: statuses and
 * circuits written or heard (Redis's answer may be read after them), and
 * this store's spend writes (they reach Redis after its read).
 */
export class LoadWatch {
  /** Statuses and circuits written or heard since, by {@link changeField}: the newest. */
  readonly since = new Map<string, StoreChange>();
  readonly #spends: Promise<void>[] = [];

  heard(change: StoreChange): void {
    const field = changeField(change);
    if (field !== undefined) this.since.set(field, change);
  }

  /** A spend write sent since the load; `written` resolves once its reply (the buckets' new totals) was taken (never rejects). */
  wrote(written: Promise<void>): void {
    this.#spends.push(written);
  }

  /**
   * Resolves once every spend write sent since the load, those sent
   * meanwhile included, was answered: their totals are known before the
   * answer is merged, so that the load does not set back spend its own
   * manager recorded while it was on its way. They were sent after the
   * load on the same connection, so their replies follow its own.
   */
  async spendsAnswered(): Promise<void> {
    for (let waited = 0; waited < this.#spends.length; ) {
      const next = this.#spends.slice(waited);
      waited = this.#spends.length;
      await Promise.all(next);
    }
  }
}

/**
 * Puts over a load's answer the statuses and circuits written or heard while
 * it was on its way (`since`, by {@link changeField}): each is at least as new
 * as what Redis answered, whose reply may be read after them.
 */
export function newerThan(snapshot: StoreSnapshot, since: ReadonlyMap<string, StoreChange>): void {
  if (since.size === 0) return;
  snapshot.keys = snapshot.keys.filter(({ key }) => !since.has(`k${keyField(key)}`));
  snapshot.circuits = snapshot.circuits.filter(({ circuit }) => !since.has(`c${circuitField(circuit)}`));
  for (const change of since.values()) {
    if (change.kind === 'key') snapshot.keys.push({ key: change.key, status: change.status });
    else if (change.kind === 'circuit') snapshot.circuits.push({ circuit: change.circuit, snapshot: change.snapshot });
  }
}
