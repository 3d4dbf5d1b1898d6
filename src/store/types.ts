/**
 * The state store: what several managers — in one process or many — must share
 * about keys so that together they behave like one (DESIGN.md §5): rate windows
 * and their reservations, cooldowns, disabled keys, circuit states and spend.
 *
 * A manager opens one {@link StoreSession} on its store. Everything else it
 * keeps in its own memory, which stays the fast path: a store is consulted
 * only where sharing is the point (one reservation per attempt on a key with a
 * known limit), and told of changes without waiting for it.
 */
import type { KeyDisabledReason, StoreLossCause } from '../events';
import type { CircuitSnapshot } from '../resilience/breaker/index';
import type { ObjectKind } from '../routing/affinity';

/** A key, named by provider and id (never by its secret). */
export interface StoreKeyRef {
  readonly provider: string;
  readonly keyId: string;
}

/** The limits in force on a key; `undefined` = not limited in that dimension. */
export interface StoreLimits {
  /** Requests per `requestsPeriodMs`. */
  readonly rpm: number | undefined;
  /** Tokens per `tokensPeriodMs`. */
  readonly tpm: number | undefined;
  /** The requests window's period in ms; default a minute. */
  readonly requestsPeriodMs?: number | undefined;
  /** The tokens window's period in ms; default a minute. */
  readonly tokensPeriodMs?: number | undefined;
}

/**
 * The answer to {@link StoreSession.reserve}: whether 1 request and the tokens
 * fit in the key's shared windows (and were taken), else how long until they
 * would (`Infinity`: never, the tokens exceed the limit). `requests` and
 * `tokens` are the shared windows' levels after the call (units left, possibly
 * negative), `undefined` in a dimension without a limit; the manager mirrors
 * them, so its own picks see what other managers took.
 *
 * Optional, from the built-in stores: `requestsFreeMs` / `tokensFreeMs`, ms
 * until the window's oldest units leave (nothing frees before; `undefined`
 * when it holds none), which the manager's mirror of the levels lasts; and
 * `at`, the moment the store counted the reservation from (its clock), which
 * an adjustment of this reservation passes back.
 *
 * `degraded` is set when the store could not be asked and the session let the
 * reservation through on local state (fail-open). `disabled` is set when the
 * store refused because it holds the key disabled (another manager found it
 * revoked and this one has not heard yet): the manager takes that on at once.
 */
export type StoreReservation = SharedLevels &
  ({ ok: true; at?: number; degraded?: boolean } | { ok: false; waitMs: number; disabled?: KeyDisabledReason });

/** The levels of a key's shared windows, in a {@link StoreReservation}. */
export interface SharedLevels {
  requests: number | undefined;
  tokens: number | undefined;
  requestsFreeMs?: number | undefined;
  tokensFreeMs?: number | undefined;
}

/** A key's shared status. `cooldownUntil` is an epoch time in ms (0 = none). */
export interface StoreKeyStatus {
  disabled: KeyDisabledReason | null;
  cooldownUntil: number;
}

/** A circuit: one key's, or one deployment's (provider × upstream model). */
export type StoreCircuitRef =
  | { readonly scope: 'key'; readonly provider: string; readonly keyId: string }
  | { readonly scope: 'deployment'; readonly provider: string; readonly upstreamModel: string };

/**
 * A budget whose spend is shared. Spend is kept in buckets of `bucketMs`
 * (a 60th of the window's length, which divides every calendar window's start
 * too), each kept for at least `windowMs`.
 */
export interface StoreBudgetRef {
  readonly id: string;
  readonly bucketMs: number;
  readonly windowMs: number;
}

/** Spend recorded against budgets: `nanos` nano-dollars at epoch ms `at`, once per budget in `budgets`. */
export interface StoreSpend {
  readonly budgets: readonly StoreBudgetRef[];
  readonly nanos: number;
  readonly at: number;
}

/**
 * Where an object kept per project (a response, a file, a batch, a
 * conversation, an upload) was created: the provider and key id of the key
 * that created it (never its secret), and what it is. See
 * {@link StoreSession.rememberObject}.
 */
export interface StoreObjectHome {
  readonly provider: string;
  readonly keyId: string;
  readonly kind: ObjectKind;
}

/** A change another manager made, as the store delivers it. */
export type StoreChange =
  | { kind: 'key'; key: StoreKeyRef; status: StoreKeyStatus }
  | { kind: 'circuit'; circuit: StoreCircuitRef; snapshot: CircuitSnapshot }
  | { kind: 'spend'; budgets: readonly string[]; nanos: number; at: number };

/** Everything shared, as {@link StoreSession.load} returns it (for a start or a resync). */
export interface StoreSnapshot {
  keys: { key: StoreKeyRef; status: StoreKeyStatus }[];
  circuits: { circuit: StoreCircuitRef; snapshot: CircuitSnapshot }[];
  /** Per budget asked for: its spend buckets as `[bucket start (epoch ms), nano-dollars]`. */
  spend: { budget: string; buckets: [number, number][] }[];
}

/** The operation of the store that failed, in `store:error`. */
export type StoreOperation = 'connect' | 'reserve' | 'adjust' | 'write' | 'load' | 'subscribe';

/** A store failure, as the session reports it to its manager. */
export interface StoreFailure {
  operation: StoreOperation;
  /** What went wrong (the client's message; never a key). */
  message: string;
  /** `open`: requests go on, on local state; `closed`: requests that need the store are refused. */
  failMode: 'open' | 'closed';
}

/** What a manager hands its store when it opens a session. */
export interface StoreListener {
  /** A change another session made. */
  change(change: StoreChange): void;
  /** The store failed; the session keeps trying to reconnect. */
  error(failure: StoreFailure): void;
  /**
   * The store answers again after a failure (kept writes flushed), or for the
   * first time when it was not connected at `open()`: the manager reloads the
   * shared state.
   */
  recovered(downMs: number): void;
  /**
   * The store lost the shared state while connected (a flush, an empty
   * replica, an eviction) and wrote back what it knew; `recovered(0)`
   * follows, for the reload. Optional for a listener.
   */
  lost?(cause: StoreLossCause): void;
}

/**
 * One manager's connection to a {@link StateStore}. Writes (`adjust`,
 * `setKey`, `setCircuit`, `addSpend`) never throw (nor reject); a store that
 * cannot take them now keeps what must not be lost (statuses, circuits,
 * spend) and writes it when it is back. `setKey` and `setCircuit` may return
 * a promise that resolves once the other sessions can hear of the change: a
 * request that found it (a revoked key, a 429) waits for that, briefly,
 * before it tries another key, so that other replicas do not repeat its
 * discovery. Spend and adjustments are never waited for.
 */
export interface StoreSession {
  /**
   * Whether the state is shared with another session. While false the manager's
   * own state is the whole truth and it skips {@link reserve} (no cost for a
   * manager alone on its store).
   */
  readonly shared: boolean;
  /**
   * Atomically checks the key's shared request and token windows and takes 1
   * request and `tokens` tokens when both fit. A window admits at most its
   * limit in any sliding period (a minute unless the limits give one): a
   * reservation counts from when the upstream counts it (within 250 ms) for a
   * whole period, so the limit holds whatever the upstream's window shape.
   * One round trip at most. `owner` is the key the attempt is for (the
   * windows may be its model's or its quota group's): a store that holds it
   * disabled refuses, with the reason (`disabled`), in the same call.
   *
   * @throws StoreUnavailableError (rejects) when the store cannot answer and
   *   the store fails closed.
   */
  reserve(key: StoreKeyRef, limits: StoreLimits, tokens: number, owner?: StoreKeyRef): StoreReservation | Promise<StoreReservation>;
  /**
   * Gives back (negative) or charges (positive) requests and tokens of the
   * reservation made at `at` (its {@link StoreReservation} `at`; default: now)
   * on the key's shared windows. A give-back for a reservation already out of
   * the window changes nothing.
   */
  adjust(key: StoreKeyRef, limits: StoreLimits, requests: number, tokens: number, at?: number): void;
  /**
   * Like {@link adjust}, without a round trip of its own: the adjustment
   * rides with this session's next {@link reserve} on the key (one round trip
   * per attempt), or is written within a second when none comes. Optional: a
   * store without it is sent {@link adjust}.
   */
  defer?(key: StoreKeyRef, limits: StoreLimits, requests: number, tokens: number, at?: number): void;
  /** Records a key's status and tells the other sessions. */
  setKey(key: StoreKeyRef, status: StoreKeyStatus): void | Promise<void>;
  /** Records a circuit's state and tells the other sessions. */
  setCircuit(circuit: StoreCircuitRef, snapshot: CircuitSnapshot): void | Promise<void>;
  /** Records spend and tells the other sessions. */
  addSpend(spend: StoreSpend): void | Promise<void>;
  /**
   * Optional (object affinity across replicas): records that object `id` was
   * created with `home`'s key, for `ttlMs` (the manager's `affinity.ttlMs`),
   * so that another manager on the store sends the requests naming it to
   * that key. Called once per object created, after the reply; a promise it
   * returns is waited for before the reply is handed to the application (at
   * most one second, and never past the request's end), so that the
   * application's next request, on another manager, finds the object:
   * resolve once written, or soon. Like the other writes it never throws
   * nor rejects: a store that cannot write now drops it (that object is then
   * known to its own manager only) and reports the failure through
   * {@link StoreListener.error}.
   */
  rememberObject?(id: string, home: StoreObjectHome, ttlMs: number): void | Promise<void>;
  /**
   * Optional, with {@link rememberObject}: where object `id` was created, or
   * `undefined` when the store does not hold it (never recorded, expired) or
   * cannot answer now. Asked only for a request that names an object its
   * manager does not know, before routing it, and waited for: a store should
   * answer within a short bound (the Redis store answers `undefined` at once
   * while Redis is away, and within its `timeoutMs` otherwise) and resolve
   * `undefined` rather than reject. The manager keeps the answer in its own memory.
   */
  objectHome?(id: string): StoreObjectHome | undefined | Promise<StoreObjectHome | undefined>;
  /** Everything shared: key statuses, circuits, and the spend of `budgets`. */
  load(budgets: readonly StoreBudgetRef[]): StoreSnapshot | Promise<StoreSnapshot>;
  /** Ends the session (the manager's `close()` calls it); the store stays open for others. */
  close(): Promise<void>;
}

/**
 * Where managers keep what they share. keyplex ships two: `MemoryStore` (the
 * default: one process) and `RedisStore` (`keyplex/redis`: many processes).
 * A custom store implements `open()`, returning a {@link StoreSession} per
 * manager; wrapping a built-in is the short way to observe or extend one:
 *
 * ```ts
 * const inner = new MemoryStore();
 * const audited: StateStore = {
 *   open(listener) {
 *     const s = inner.open(listener);
 *     return {
 *       shared: s.shared,
 *       reserve: (key, limits, tokens, owner) => s.reserve(key, limits, tokens, owner),
 *       adjust: (key, limits, requests, tokens, at) => s.adjust(key, limits, requests, tokens, at),
 *       setKey: (key, status) => { audit.log(key.keyId, status); s.setKey(key, status); },
 *       setCircuit: (circuit, snapshot) => s.setCircuit(circuit, snapshot),
 *       addSpend: (spend) => s.addSpend(spend),
 *       load: (budgets) => s.load(budgets),
 *       close: () => s.close(),
 *     };
 *   },
 * };
 * new KeyManager({ providers, store: audited });
 * ```
 *
 * A wrapper that leaves out an optional session method (`defer`,
 * `rememberObject`, `objectHome`) turns off what it gives: forward those too.
 * The store contract (what every store must do) is tested on memory and
 * Redis in `test/store/contract.test.ts`.
 */
export interface StateStore {
  /** Opens a session for one manager; `listener` hears other sessions' changes and the store's health. */
  open(listener: StoreListener): StoreSession;
  /**
   * Optional: the cached answer stored under `key` (the response cache with
   * `cache: { store: 'store' }`), or `undefined` when absent or expired. A
   * store that cannot answer should resolve `undefined` (a miss) rather than reject.
   */
  cacheGet?(key: string): string | undefined | Promise<string | undefined>;
  /** Optional: stores `value` under `key` for `ttlMs` (never awaited by the request path). */
  cacheSet?(key: string, value: string, ttlMs: number): void | Promise<void>;
}
