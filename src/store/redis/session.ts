/** One manager's session on a Redis store: what it asks of the store, and what the store tells it. */
import type { StoreLossCause } from '../../events';
import type { CircuitSnapshot } from '../../resilience/breaker/index';
import { circuitField, keyField } from '../fields';
import type {
  StoreBudgetRef,
  StoreChange,
  StoreCircuitRef,
  StoreFailure,
  StoreKeyRef,
  StoreKeyStatus,
  StoreLimits,
  StoreListener,
  StoreObjectHome,
  StoreReservation,
  StoreSession,
  StoreSnapshot,
  StoreSpend,
} from '../types';

/** What a session needs of its store (the `RedisStore`), apart so that the two files do not import each other. */
export interface SessionHost {
  reserve(key: StoreKeyRef, limits: StoreLimits, tokens: number, owner?: StoreKeyRef): Promise<StoreReservation>;
  adjust(key: StoreKeyRef, limits: StoreLimits, requests: number, tokens: number, at?: number): void;
  defer(key: StoreKeyRef, limits: StoreLimits, requests: number, tokens: number, at?: number): void;
  write(origin: string, hash: 'keys' | 'circuits', field: string, value: unknown, change: StoreChange): Promise<void>;
  addSpend(origin: string, spend: StoreSpend): Promise<void>;
  load(budgets: readonly StoreBudgetRef[]): Promise<StoreSnapshot>;
  rememberObject(id: string, home: StoreObjectHome, ttlMs: number): Promise<void>;
  objectHome(id: string): Promise<StoreObjectHome | undefined> | undefined;
  detach(session: RedisSession): void;
}

/** Spend as announced on the channel: with each budget's bucket and its new total. */
export interface AnnouncedSpend {
  readonly kind: 'spend';
  readonly budgets: readonly string[];
  readonly nanos: number;
  readonly at: number;
  readonly starts?: unknown;
  readonly totals?: unknown;
}

/** JSON from Redis, or `undefined` when it does not parse. */
export function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return undefined;
  }
}

/** One manager's session on a {@link RedisStore}. */
export class RedisSession implements StoreSession {
  readonly id: string;
  readonly #store: SessionHost;
  readonly #listener: StoreListener;
  readonly shared = true;
  /** Per budget, bucket start → the total the last load read (what this session's view was set to). */
  #floors: Map<string, Map<number, number>> | undefined;

  constructor(store: SessionHost, id: string, listener: StoreListener) {
    this.#store = store;
    this.id = id;
    this.#listener = listener;
  }

  /**
   * A change another session made. Spend is announced with each bucket's new
   * total: spend up to a total this session's last load already read is in
   * its view, and is not counted again.
   */
  deliver(change: StoreChange | AnnouncedSpend): void {
    if (change.kind !== 'spend') {
      this.#listener.change(change);
      return;
    }
    const floors = this.#floors;
    const { starts, totals } = change as AnnouncedSpend;
    const budgets =
      floors === undefined || !Array.isArray(starts) || !Array.isArray(totals)
        ? change.budgets
        : change.budgets.filter((id, i) => !(Number(totals[i]) <= (floors.get(id)?.get(Number(starts[i])) ?? -1)));
    if (budgets.length > 0) this.#listener.change({ kind: 'spend', budgets, nanos: change.nanos, at: change.at });
  }

  failed(failure: StoreFailure): void {
    // Redis may come back empty (restarted): totals start again below what was read.
    this.#floors = undefined;
    this.#listener.error(failure);
  }

  recovered(downMs: number): void {
    this.#listener.recovered(downMs);
  }

  /** Redis lost the shared state with the connection open, and the store wrote back what it knew: said, then a reload, as after an outage. */
  lost(cause: StoreLossCause): void {
    this.#floors = undefined;
    this.#listener.lost?.(cause);
    this.#listener.recovered(0);
  }

  reserve(key: StoreKeyRef, limits: StoreLimits, tokens: number, owner?: StoreKeyRef): Promise<StoreReservation> {
    return this.#store.reserve(key, limits, tokens, owner);
  }

  adjust(key: StoreKeyRef, limits: StoreLimits, requests: number, tokens: number, at?: number): void {
    this.#store.adjust(key, limits, requests, tokens, at);
  }

  defer(key: StoreKeyRef, limits: StoreLimits, requests: number, tokens: number, at?: number): void {
    this.#store.defer(key, limits, requests, tokens, at);
  }

  setKey(key: StoreKeyRef, status: StoreKeyStatus): Promise<void> {
    const ref = { provider: key.provider, keyId: key.keyId };
    return this.#store.write(this.id, 'keys', keyField(ref), status, { kind: 'key', key: ref, status });
  }

  setCircuit(circuit: StoreCircuitRef, snapshot: CircuitSnapshot): Promise<void> {
    return this.#store.write(this.id, 'circuits', circuitField(circuit), snapshot, { kind: 'circuit', circuit, snapshot });
  }

  addSpend(spend: StoreSpend): Promise<void> {
    return this.#store.addSpend(this.id, spend);
  }

  rememberObject(id: string, home: StoreObjectHome, ttlMs: number): Promise<void> {
    return this.#store.rememberObject(id, home, ttlMs);
  }

  objectHome(id: string): Promise<StoreObjectHome | undefined> | undefined {
    return this.#store.objectHome(id);
  }

  async load(budgets: readonly StoreBudgetRef[]): Promise<StoreSnapshot> {
    const snapshot = await this.#store.load(budgets);
    this.#floors = new Map(snapshot.spend.map(({ budget, buckets }) => [budget, new Map(buckets)]));
    return snapshot;
  }

  async close(): Promise<void> {
    this.#store.detach(this);
  }
}
