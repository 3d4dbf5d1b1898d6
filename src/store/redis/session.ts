/** One manager's session on a Redis store: what it asks of the store, and what the store tells it. */
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
  detach(session: RedisSession): void;
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

  constructor(store: SessionHost, id: string, listener: StoreListener) {
    this.#store = store;
    this.id = id;
    this.#listener = listener;
  }

  deliver(change: StoreChange): void {
    this.#listener.change(change);
  }

  failed(failure: StoreFailure): void {
    this.#listener.error(failure);
  }

  recovered(downMs: number): void {
    this.#listener.recovered(downMs);
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

  load(budgets: readonly StoreBudgetRef[]): Promise<StoreSnapshot> {
    return this.#store.load(budgets);
  }

  async close(): Promise<void> {
    this.#store.detach(this);
  }
}
