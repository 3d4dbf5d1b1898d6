/**
 * `keyplex/redis`: the Redis state store, for many processes sharing keys
 * (DESIGN.md §5). Loaded only by those who import it, so `ioredis` is an
 * optional peer dependency.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import type { CircuitSnapshot } from '../../resilience/breaker/index';
import { describe, MS_POSITIVE, numberProblem } from '../../config/check';
import { StoreUnavailableError } from '../../errors';
import { parseJson, RedisSession } from './session';
import { circuitField, keyField, parseCircuitField, parseKeyField } from '../fields';
import { ADJUST, DeferredAdjustments, RESERVE, windowArgs } from '../scripts';
import type {
  StateStore,
  StoreBudgetRef,
  StoreChange,
  StoreCircuitRef,
  StoreFailure,
  StoreKeyRef,
  StoreKeyStatus,
  StoreLimits,
  StoreListener,
  StoreOperation,
  StoreReservation,
  StoreSession,
  StoreSnapshot,
  StoreSpend,
} from '../types';

export type * from '../types';

/** Options of {@link RedisStore}. */
export interface RedisStoreOptions {
  /**
   * An ioredis client to use (the store adds a second connection for
   * pub/sub with `client.duplicate()`, and leaves the client open on close).
   * Give it `enableOfflineQueue: false`, so commands fail at once while Redis
   * is away instead of piling up. Default: the store makes its own from `url`.
   */
  client?: Redis;
  /** Where Redis is, for the store's own client. Default `redis://127.0.0.1:6379`. */
  url?: string;
  /** More ioredis options for the store's own client (TLS, password, db…). */
  redis?: RedisOptions;
  /** Prefix of every Redis key and channel, so several keyplex deployments can share one Redis. Default `'keyplex:'`. */
  prefix?: string;
  /**
   * When Redis cannot answer: `'open'` (default) keeps serving on each
   * process's own state (limits then hold per process, not together) and
   * resyncs when Redis is back; `'closed'` refuses requests that need a shared
   * reservation with `StoreUnavailableError` (503) until it is back.
   */
  failMode?: 'open' | 'closed';
  /** A reservation slower than this counts as a failure (Redis is "slow"). Default 250 ms. */
  timeoutMs?: number;
  /** While Redis is away, how often the store checks whether it is back. Default 500 ms. */
  retryMs?: number;
  /**
   * The clock the shared windows run on, in epoch ms. Default: Redis's own
   * `TIME`, one clock for every replica whatever their machines' clocks say.
   * Give one for tests with fake timers.
   */
  now?: () => number;
}

/** A Lua script and its SHA-1, for EVALSHA. */
interface Script {
  readonly lua: string;
  readonly sha: string;
}

function script(lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

const RESERVE_SCRIPT = script(RESERVE);
const ADJUST_SCRIPT = script(ADJUST);
const MAX_PENDING_SPEND = 10_000;

/** A duration option: > 0 and at most the longest timer (2^31 − 1 ms). */
function positiveMs(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const problem = numberProblem(value, MS_POSITIVE);
  if (problem !== undefined) throw new TypeError(`RedisStore: \`${name}\`: ${problem}`);
  return value as number;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A level from a script: '' = no limit. */
function level(raw: unknown): number | undefined {
  if (raw === '' || raw === null || raw === undefined) return undefined;
  const n = Number(raw);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * A {@link StateStore} on Redis, shared by every process that opens one with
 * the same Redis and prefix.
 *
 * - Each attempt on a key with a known limit makes one round trip: a Lua
 *   script that checks and takes the key's request and token windows
 *   atomically, so the limit holds across replicas.
 * - Cooldowns, disabled keys and circuit changes are written to hashes and
 *   published on a channel; other replicas apply them as they arrive
 *   (milliseconds). Spend goes to per-budget hashes of time buckets and is
 *   published likewise.
 * - When Redis fails or is slower than `timeoutMs`, each session reports
 *   `store:error` once and the store serves on local state (`failMode: 'open'`)
 *   or refuses (`'closed'`), checks every `retryMs`, and when Redis is back
 *   writes what it kept (statuses, circuits, spend), then every manager
 *   reloads the shared state (`store:recovered`).
 *
 * ```ts
 * import { RedisStore } from 'keyplex/redis';
 * const manager = new KeyManager({ providers, store: new RedisStore({ url: process.env.REDIS_URL }) });
 * ```
 */
export class RedisStore implements StateStore {
  readonly prefix: string;
  readonly failMode: 'open' | 'closed';
  readonly #timeoutMs: number;
  readonly #retryMs: number;
  readonly #now: (() => number) | undefined;
  readonly #client: Redis;
  readonly #sub: Redis;
  readonly #ownsClient: boolean;
  readonly #channel: string;
  readonly #sessions = new Map<string, RedisSession>();
  /** Adjustments waiting for their key's next reservation; what none carries is written by a flush. */
  readonly #deferred = new DeferredAdjustments((key, limits, requests, tokens) => this.adjust(key, limits, requests, tokens));
  #healthy: boolean;
  /** Whether this outage (or failed start) was reported to the sessions. */
  #reported = false;
  #downSince = 0;
  #probe: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** Writes kept while Redis is away, by field (latest wins), with the message that announces each. */
  readonly #pendingStatus = new Map<string, { hash: string; field: string; value: string; message: string }>();
  #pendingSpend: { origin: string; spend: StoreSpend }[] = [];
  #readyWaiters: (() => void)[] = [];

  constructor(options: RedisStoreOptions = {}) {
    if (typeof options !== 'object' || options === null) throw new TypeError('RedisStore: options must be an object');
    const failMode = options.failMode ?? 'open';
    if (failMode !== 'open' && failMode !== 'closed') throw new TypeError(`RedisStore: \`failMode\` must be 'open' or 'closed' (got ${describe(failMode)})`);
    if (options.prefix !== undefined && (typeof options.prefix !== 'string' || options.prefix === '')) {
      throw new TypeError('RedisStore: `prefix` must be a non-empty string');
    }
    if (options.now !== undefined && typeof options.now !== 'function') throw new TypeError('RedisStore: `now` must be a function returning epoch ms');
    this.prefix = options.prefix ?? 'keyplex:';
    this.failMode = failMode;
    this.#timeoutMs = positiveMs(options.timeoutMs, 'timeoutMs', 250);
    this.#retryMs = positiveMs(options.retryMs, 'retryMs', 500);
    this.#now = options.now;
    this.#channel = `${this.prefix}changes`;
    if (options.client !== undefined) {
      this.#client = options.client;
      this.#ownsClient = false;
    } else {
      const own: RedisOptions = {
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        retryStrategy: (times) => Math.min(50 * times, 1_000),
        ...options.redis,
      };
      this.#client = options.url === undefined ? new Redis(own) : new Redis(options.url, own);
      this.#ownsClient = true;
    }
    // The subscriber may queue its SUBSCRIBE until connected; ioredis re-subscribes after reconnecting.
    this.#sub = this.#client.duplicate({ enableOfflineQueue: true });
    // Healthy once Redis answers and the subscription stands (#recover), at start as after an outage.
    this.#healthy = false;
    this.#downSince = Date.now();
    this.#client.on('error', (error: unknown) => this.#fail('connect', error));
    this.#client.on('close', () => this.#fail('connect', new Error('connection to Redis closed')));
    this.#client.on('ready', () => void this.#recover());
    this.#sub.on('error', () => {
      // Reported through 'close'; ioredis reconnects and re-subscribes on its own.
    });
    // Changes published while the subscriber is away are missed: resync once it is back.
    this.#sub.on('close', () => this.#fail('subscribe', new Error('subscription connection to Redis closed')));
    this.#sub.on('message', (channel: string, message: string) => this.#message(channel, message));
    if (this.#client.status === 'ready') void this.#recover();
  }

  /** Whether Redis answered the last call (and nothing is waiting to be written back). */
  get healthy(): boolean {
    return this.#healthy;
  }

  /**
   * Resolves once Redis answers and the store is subscribed to changes; never
   * rejects (until then requests are served as when Redis is away). Useful at
   * start-up, above all with `failMode: 'closed'`.
   */
  async ready(): Promise<void> {
    if (this.#healthy || this.#closed) return;
    await new Promise<void>((resolve) => this.#readyWaiters.push(resolve));
  }

  open(listener: StoreListener): StoreSession {
    if (this.#closed) throw new Error('RedisStore: this store was closed; create a new one.');
    const session = new RedisSession(this, randomUUID(), listener);
    this.#sessions.set(session.id, session);
    return session;
  }

  /**
   * Closes the store's connections (the client it was given stays open).
   * Sessions still open are ended.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#probe) clearTimeout(this.#probe);
    this.#deferred.flush();
    this.#deferred.stop();
    this.#sessions.clear();
    for (const resolve of this.#readyWaiters.splice(0)) resolve();
    this.#sub.disconnect();
    if (this.#ownsClient) {
      try {
        await this.#client.quit();
      } catch {
        this.#client.disconnect();
      }
    }
  }

  // ------------------------------------------------------------ internals

  /** @internal */
  detach(session: RedisSession): void {
    this.#sessions.delete(session.id);
  }

  /** Runs a script on a key's window (ARGV: limits, clock, TTL, periods, then `extra`; see scripts.ts); EVAL when Redis does not have it yet. */
  async #run(script: Script, key: StoreKeyRef, limits: StoreLimits, ...extra: number[]): Promise<unknown> {
    const window = `${this.prefix}w:${keyField(key)}`;
    const clock = this.#now === undefined ? '' : String(this.#now());
    const args = [...windowArgs(limits, clock), ...extra];
    try {
      return await this.#client.evalsha(script.sha, 1, window, ...args);
    } catch (error) {
      if (!messageOf(error).startsWith('NOSCRIPT')) throw error;
      return this.#client.eval(script.lua, 1, window, ...args);
    }
  }

  /** @internal */
  async reserve(key: StoreKeyRef, limits: StoreLimits, tokens: number): Promise<StoreReservation> {
    if (!this.#healthy) return this.#unavailable('reserve', undefined);
    try {
      const held = this.#deferred.take(key);
      let reply: unknown;
      try {
        reply = await this.#within(this.#run(RESERVE_SCRIPT, key, limits, Math.max(0, tokens), held.requests, held.tokens), 'a reservation');
      } catch (error) {
        this.#deferred.restore(key, limits, held);
        throw error;
      }
      const [ok, waitMs, requests, tokensLeft] = reply as [number, number, string, string];
      if (ok === 1) return { ok: true, requests: level(requests), tokens: level(tokensLeft) };
      return { ok: false, waitMs: waitMs < 0 ? Infinity : waitMs, requests: level(requests), tokens: level(tokensLeft) };
    } catch (error) {
      this.#fail('reserve', error);
      return this.#unavailable('reserve', error);
    }
  }

  #unavailable(operation: StoreOperation, error: unknown): StoreReservation {
    if (this.failMode === 'open') return { ok: true, requests: undefined, tokens: undefined, degraded: true };
    const why = error === undefined ? 'it is unreachable' : messageOf(error);
    throw new StoreUnavailableError(`keyplex: the Redis state store cannot ${operation} (${why}); with failMode 'closed' requests that need a shared reservation are refused until it is back. Check Redis, or use failMode 'open' to serve on local state meanwhile.`);
  }

  /** @internal */
  adjust(key: StoreKeyRef, limits: StoreLimits, requests: number, tokens: number): void {
    if (!this.#healthy) return;
    this.#run(ADJUST_SCRIPT, key, limits, requests, tokens).catch((error: unknown) => this.#fail('adjust', error));
  }

  /** @internal Held until the key's next reservation (one round trip), else written by the flush. */
  defer(key: StoreKeyRef, limits: StoreLimits, requests: number, tokens: number): void {
    if (!this.#healthy) return;
    this.#deferred.add(key, limits, requests, tokens);
  }

  /** @internal */
  write(origin: string, hash: 'keys' | 'circuits', field: string, value: unknown, change: StoreChange): void {
    const entry = { hash: `${this.prefix}${hash}`, field, value: JSON.stringify(value), message: JSON.stringify({ o: origin, c: change }) };
    if (!this.#healthy) {
      this.#pendingStatus.set(`${entry.hash}\u0000${field}`, entry);
      return;
    }
    this.#client
      .multi()
      .hset(entry.hash, field, entry.value)
      .publish(this.#channel, entry.message)
      .exec()
      .catch((error: unknown) => {
        this.#pendingStatus.set(`${entry.hash}\u0000${field}`, entry);
        this.#fail('write', error);
      });
  }

  /** Records spend in its budgets' buckets and announces it. */
  #spendCommands(pipeline: ReturnType<Redis['multi']>, origin: string, spend: StoreSpend): void {
    for (const budget of spend.budgets) {
      const hash = `${this.prefix}spend:${encodeURIComponent(budget.id)}`;
      const start = Math.floor(spend.at / budget.bucketMs) * budget.bucketMs;
      pipeline.hincrby(hash, String(start), Math.round(spend.nanos));
      pipeline.pexpire(hash, Math.ceil(budget.windowMs + 2 * budget.bucketMs));
    }
    const change: StoreChange = { kind: 'spend', budgets: spend.budgets.map((b) => b.id), nanos: spend.nanos, at: spend.at };
    pipeline.publish(this.#channel, JSON.stringify({ o: origin, c: change }));
  }

  /** @internal */
  addSpend(origin: string, spend: StoreSpend): void {
    if (!this.#healthy) {
      this.#keepSpend(origin, spend);
      return;
    }
    const pipeline = this.#client.multi();
    this.#spendCommands(pipeline, origin, spend);
    pipeline.exec().catch((error: unknown) => {
      this.#keepSpend(origin, spend);
      this.#fail('write', error);
    });
  }

  #keepSpend(origin: string, spend: StoreSpend): void {
    // Beyond the cap the oldest goes: recent spend matters most to windows still open.
    if (this.#pendingSpend.length >= MAX_PENDING_SPEND) this.#pendingSpend.shift();
    this.#pendingSpend.push({ origin, spend });
  }

  /** @internal */
  async load(budgets: readonly StoreBudgetRef[]): Promise<StoreSnapshot> {
    // Not connected (yet, or any more): the store calls `recovered` to reload once it is.
    if (!this.#healthy) throw new Error('Redis is not connected');
    const pipeline = this.#client.pipeline();
    pipeline.hgetall(`${this.prefix}keys`);
    pipeline.hgetall(`${this.prefix}circuits`);
    for (const budget of budgets) pipeline.hgetall(`${this.prefix}spend:${encodeURIComponent(budget.id)}`);
    let results: [Error | null, unknown][] | null;
    try {
      results = await pipeline.exec();
    } catch (error) {
      this.#fail('load', error);
      throw error;
    }
    const failed = results?.find(([error]) => error !== null)?.[0];
    if (!results || failed) {
      const error = failed ?? new Error('no reply');
      this.#fail('load', error);
      throw error;
    }
    const hash = (i: number) => (results[i]?.[1] ?? {}) as Record<string, string>;
    const snapshot: StoreSnapshot = { keys: [], circuits: [], spend: [] };
    for (const [field, raw] of Object.entries(hash(0))) {
      const key = parseKeyField(field);
      const status = parseJson(raw) as StoreKeyStatus | undefined;
      if (key && status && typeof status === 'object') snapshot.keys.push({ key, status });
    }
    for (const [field, raw] of Object.entries(hash(1))) {
      const circuit = parseCircuitField(field);
      const value = parseJson(raw) as CircuitSnapshot | undefined;
      if (circuit && value && typeof value === 'object') snapshot.circuits.push({ circuit, snapshot: value });
    }
    budgets.forEach((budget, i) => {
      const buckets = Object.entries(hash(2 + i))
        .map(([at, nanos]) => [Number(at), Number(nanos)] as [number, number])
        .filter(([at, nanos]) => Number.isFinite(at) && Number.isFinite(nanos))
        .sort((a, b) => a[0] - b[0]);
      snapshot.spend.push({ budget: budget.id, buckets });
    });
    return snapshot;
  }

  #message(channel: string, message: string): void {
    if (channel !== this.#channel) return;
    const parsed = parseJson(message) as { o?: unknown; c?: StoreChange } | undefined;
    if (!parsed || typeof parsed.o !== 'string' || typeof parsed.c !== 'object' || parsed.c === null) return;
    for (const session of this.#sessions.values()) {
      if (session.id !== parsed.o) session.deliver(parsed.c);
    }
  }

  /** Redis failed: report once per outage, then check every `retryMs` until it answers. */
  #fail(operation: StoreOperation, error: unknown): void {
    if (this.#closed) return;
    if (this.#healthy) this.#downSince = Date.now();
    this.#healthy = false;
    if (!this.#reported) {
      this.#reported = true;
      const status = this.#client.status;
      const message = status === 'ready' ? messageOf(error) : `not connected to Redis (${status}): ${messageOf(error)}`;
      const failure: StoreFailure = { operation, message, failMode: this.failMode };
      for (const session of this.#sessions.values()) session.failed(failure);
    }
    this.#scheduleProbe();
  }

  #scheduleProbe(): void {
    if (this.#probe || this.#closed) return;
    this.#probe = setTimeout(() => {
      this.#probe = undefined;
      void this.#recover();
    }, this.#retryMs);
    this.#probe.unref?.();
  }

  /** `promise`, or a rejection after `timeoutMs`. */
  async #within<T>(promise: Promise<T>, what: string): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await Promise.race([
        promise,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`Redis did not answer ${what} within ${this.#timeoutMs} ms`)), this.#timeoutMs);
          timer.unref?.();
        }),
      ]);
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  /** Checks Redis; when it answers, writes what was kept and tells the sessions to resync. */
  async #recover(): Promise<void> {
    if (this.#healthy || this.#closed) return;
    try {
      if (this.#client.status !== 'ready') throw new Error(`Redis connection is ${this.#client.status}`);
      await this.#within(this.#client.ping(), 'PING');
      // Subscribed before the reload: whatever is written after it, this store hears of.
      await this.#within(this.#sub.subscribe(this.#channel), 'SUBSCRIBE');
      const statuses = [...this.#pendingStatus.values()];
      const spends = this.#pendingSpend;
      if (statuses.length > 0 || spends.length > 0) {
        // Written and announced: a replica that reloaded before this flush still hears of it.
        const pipeline = this.#client.multi();
        for (const entry of statuses) pipeline.hset(entry.hash, entry.field, entry.value).publish(this.#channel, entry.message);
        for (const { origin, spend } of spends) this.#spendCommands(pipeline, origin, spend);
        await pipeline.exec();
        this.#pendingStatus.clear();
        this.#pendingSpend = this.#pendingSpend.slice(spends.length);
      }
    } catch {
      this.#scheduleProbe();
      return;
    }
    if (this.#healthy || this.#closed) return;
    this.#healthy = true;
    this.#reported = false;
    const downMs = Date.now() - this.#downSince;
    for (const session of this.#sessions.values()) session.recovered(downMs);
    for (const resolve of this.#readyWaiters.splice(0)) resolve();
  }
}
