/**
 * The in-process state store: the default. A manager alone on it keeps its
 * own state and never consults it; managers in one process that share one
 * `MemoryStore` share their keys' windows, statuses, circuits and spend
 * through it, as replicas do through Redis.
 */
import { ConfigError } from '../errors';
import { Lru } from '../cache/lru';
import type { CircuitSnapshot } from '../resilience/breaker/index';
import { circuitField, homeValue, keyField, parseHome } from './fields';
import { periodOf, SlidingSlots } from './shared-window';
import type {
  StateStore,
  StoreBudgetRef,
  StoreChange,
  StoreCircuitRef,
  StoreKeyRef,
  StoreKeyStatus,
  StoreLimits,
  StoreListener,
  StoreObjectHome,
  StoreReservation,
  StoreSession,
  StoreSnapshot,
  StoreSpend,
} from './types';

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** The clock the windows run on, in epoch ms. Default `Date.now`. */
  now?: () => number;
}

/** One dimension of a key's shared window under the limits of a call: its slots, limit and period. */
interface Dimension {
  readonly slots: SlidingSlots;
  readonly limit: number | undefined;
  readonly periodMs: number;
}

/** A limit in force, else `undefined` (0 and non-numbers included, as the Redis scripts read them). */
function limitOf(limit: number | undefined): number | undefined {
  return limit !== undefined && limit > 0 ? limit : undefined;
}

/**
 * A {@link StateStore} in this process's memory. Pass one instance to several
 * managers to make them share keys as if they were one:
 *
 * ```ts
 * const store = new MemoryStore();
 * const a = new KeyManager({ providers, store });
 * const b = new KeyManager({ providers, store });
 * ```
 *
 * Reservations answer synchronously; changes reach the other managers in a
 * microtask. Nothing is persisted.
 */
export class MemoryStore implements StateStore {
  readonly #now: () => number;
  readonly #sessions = new Set<MemorySession>();
  readonly #windows = new Map<string, [SlidingSlots, SlidingSlots]>();
  readonly #keys = new Map<string, { key: StoreKeyRef; status: StoreKeyStatus }>();
  readonly #circuits = new Map<string, { circuit: StoreCircuitRef; snapshot: CircuitSnapshot }>();
  /** Per budget id: bucket start → nano-dollars. */
  readonly #spend = new Map<string, Map<number, number>>();
  /** The response cache of managers with `cache: { store: 'store' }`, made on first use. */
  #cache: Lru | undefined;
  /** Where each object its managers created was (object affinity: `rememberObject`), made on first use. */
  #objects: Lru | undefined;

  constructor(options: MemoryStoreOptions = {}) {
    if (options.now !== undefined && typeof options.now !== 'function') {
      throw new ConfigError('now', `expected a function returning epoch ms; got a ${typeof options.now} (new MemoryStore())`);
    }
    this.#now = options.now ?? Date.now;
  }

  open(listener: StoreListener): StoreSession {
    const session = new MemorySession(this, listener);
    this.#sessions.add(session);
    return session;
  }

  /** A cached answer (the response cache with `cache: { store: 'store' }`); bounded to 10,000 entries and 64 MiB. */
  cacheGet(key: string): string | undefined {
    return this.#cache?.get(key, this.#now());
  }

  /** Stores a cached answer for `ttlMs`. */
  cacheSet(key: string, value: string, ttlMs: number): void {
    (this.#cache ??= new Lru(10_000, 64 * 1024 * 1024)).set(key, value, ttlMs, this.#now());
  }

  /** @internal Records where object `id` was created, for `ttlMs`; bounded to the last 100,000 ids (about 200 bytes each). */
  rememberObject(id: string, home: StoreObjectHome, ttlMs: number): void {
    (this.#objects ??= new Lru(100_000, Number.MAX_SAFE_INTEGER)).set(id, homeValue(home), ttlMs, this.#now());
  }

  /** @internal */
  objectHome(id: string): StoreObjectHome | undefined {
    return parseHome(this.#objects?.get(id, this.#now()));
  }

  /** @internal */
  get sessions(): number {
    return this.#sessions.size;
  }

  /** @internal */
  detach(session: MemorySession): void {
    this.#sessions.delete(session);
  }

  /** @internal Delivers a change to every session but `from`, in a microtask. */
  broadcast(from: MemorySession, change: StoreChange): void {
    for (const session of this.#sessions) {
      if (session !== from) queueMicrotask(() => session.deliver(change));
    }
  }

  /** The key's two dimensions under `limits` (a dimension without a limit holds nothing). */
  #windowsOf(key: StoreKeyRef, limits: StoreLimits): [Dimension, Dimension] {
    const field = keyField(key);
    let windows = this.#windows.get(field);
    if (windows === undefined) {
      windows = [new SlidingSlots(), new SlidingSlots()];
      this.#windows.set(field, windows);
    }
    const dimension = (slots: SlidingSlots, limit: number | undefined, periodMs: number | undefined): Dimension => {
      if (limitOf(limit) === undefined) slots.clear();
      return { slots, limit: limitOf(limit), periodMs: periodOf(periodMs) };
    };
    return [dimension(windows[0], limits.rpm, limits.requestsPeriodMs), dimension(windows[1], limits.tpm, limits.tokensPeriodMs)];
  }

  /** @internal The same steps as the Redis reserve script (scripts.ts). */
  reserve(key: StoreKeyRef, limits: StoreLimits, tokens: number, owner?: StoreKeyRef): StoreReservation {
    const disabled = owner === undefined ? null : (this.#keys.get(keyField(owner))?.status.disabled ?? null);
    if (disabled !== null) return { ok: false, waitMs: Infinity, requests: undefined, tokens: undefined, disabled };
    const now = this.#now();
    const dimensions = this.#windowsOf(key, limits);
    const needs = [1, tokens > 0 ? tokens : 0];
    const used = dimensions.map((d) => d.slots.used(now, d.periodMs));
    let waitMs = 0;
    dimensions.forEach((d, i) => {
      if (d.limit === undefined || waitMs < 0) return;
      const wait = d.slots.waitMs(needs[i]!, d.limit, used[i]!, now, d.periodMs);
      waitMs = wait < 0 ? -1 : Math.max(waitMs, wait);
    });
    if (waitMs === 0) {
      dimensions.forEach((d, i) => {
        if (d.limit === undefined) return;
        d.slots.take(needs[i]!, now, d.periodMs);
        used[i] = used[i]! + needs[i]!;
      });
    }
    const level = (i: number) => (dimensions[i]!.limit === undefined ? undefined : dimensions[i]!.limit! - used[i]!);
    const free = (i: number) => (dimensions[i]!.limit === undefined ? undefined : dimensions[i]!.slots.freeMs(now, dimensions[i]!.periodMs));
    const levels = { requests: level(0), tokens: level(1), requestsFreeMs: free(0), tokensFreeMs: free(1) };
    if (waitMs === 0) return { ok: true, at: now, ...levels };
    return { ok: false, waitMs: waitMs < 0 ? Infinity : waitMs, ...levels };
  }

  /** @internal */
  adjust(key: StoreKeyRef, limits: StoreLimits, requests: number, tokens: number, at?: number): void {
    const now = this.#now();
    const dimensions = this.#windowsOf(key, limits);
    [requests, tokens].forEach((delta, i) => {
      const d = dimensions[i]!;
      if (d.limit !== undefined) d.slots.adjust(at ?? now, delta, now, d.periodMs);
    });
  }

  /** @internal */
  setKey(key: StoreKeyRef, status: StoreKeyStatus): void {
    this.#keys.set(keyField(key), { key: { provider: key.provider, keyId: key.keyId }, status: { ...status } });
  }

  /** @internal */
  setCircuit(circuit: StoreCircuitRef, snapshot: CircuitSnapshot): void {
    this.#circuits.set(circuitField(circuit), { circuit: { ...circuit }, snapshot: structuredClone(snapshot) });
  }

  /** @internal */
  addSpend(spend: StoreSpend): void {
    for (const budget of spend.budgets) {
      let buckets = this.#spend.get(budget.id);
      if (buckets === undefined) {
        buckets = new Map();
        this.#spend.set(budget.id, buckets);
      }
      const start = Math.floor(spend.at / budget.bucketMs) * budget.bucketMs;
      const held = buckets.get(start);
      buckets.set(start, (held ?? 0) + spend.nanos);
      if (held !== undefined) continue;
      // A new bucket: those older than the window can no longer count toward it.
      const oldest = spend.at - budget.windowMs - budget.bucketMs;
      for (const at of buckets.keys()) if (at < oldest) buckets.delete(at);
    }
  }

  /** @internal */
  load(budgets: readonly StoreBudgetRef[]): StoreSnapshot {
    return {
      keys: [...this.#keys.values()].map(({ key, status }) => ({ key: { ...key }, status: { ...status } })),
      circuits: [...this.#circuits.values()].map(({ circuit, snapshot }) => ({ circuit: { ...circuit }, snapshot: structuredClone(snapshot) })),
      spend: budgets.map((budget) => ({
        budget: budget.id,
        buckets: [...(this.#spend.get(budget.id) ?? new Map<number, number>()).entries()].sort((a, b) => a[0] - b[0]),
      })),
    };
  }
}

/** One manager's session on a {@link MemoryStore}. */
class MemorySession implements StoreSession {
  readonly #store: MemoryStore;
  readonly #listener: StoreListener;
  #closed = false;

  constructor(store: MemoryStore, listener: StoreListener) {
    this.#store = store;
    this.#listener = listener;
  }

  get shared(): boolean {
    return this.#store.sessions > 1;
  }

  deliver(change: StoreChange): void {
    if (!this.#closed) this.#listener.change(change);
  }

  reserve(key: StoreKeyRef, limits: StoreLimits, tokens: number, owner?: StoreKeyRef): StoreReservation {
    return this.#store.reserve(key, limits, tokens, owner);
  }

  adjust(key: StoreKeyRef, limits: StoreLimits, requests: number, tokens: number, at?: number): void {
    this.#store.adjust(key, limits, requests, tokens, at);
  }

  /** In memory an adjustment costs no round trip: applied at once. */
  defer(key: StoreKeyRef, limits: StoreLimits, requests: number, tokens: number, at?: number): void {
    this.#store.adjust(key, limits, requests, tokens, at);
  }

  setKey(key: StoreKeyRef, status: StoreKeyStatus): void {
    this.#store.setKey(key, status);
    this.#store.broadcast(this, { kind: 'key', key: { provider: key.provider, keyId: key.keyId }, status: { ...status } });
  }

  setCircuit(circuit: StoreCircuitRef, snapshot: CircuitSnapshot): void {
    this.#store.setCircuit(circuit, snapshot);
    this.#store.broadcast(this, { kind: 'circuit', circuit: { ...circuit }, snapshot: structuredClone(snapshot) });
  }

  addSpend(spend: StoreSpend): void {
    this.#store.addSpend(spend);
    this.#store.broadcast(this, { kind: 'spend', budgets: spend.budgets.map((b) => b.id), nanos: spend.nanos, at: spend.at });
  }

  rememberObject(id: string, home: StoreObjectHome, ttlMs: number): void {
    this.#store.rememberObject(id, home, ttlMs);
  }

  objectHome(id: string): StoreObjectHome | undefined {
    return this.#store.objectHome(id);
  }

  load(budgets: readonly StoreBudgetRef[]): StoreSnapshot {
    return this.#store.load(budgets);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#store.detach(this);
  }
}
