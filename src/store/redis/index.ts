/**
 * `keyplex/redis`: the Redis state store, for many processes sharing keys
 * (DESIGN.md §5). Loaded only by those who import it, so `ioredis` is an
 * optional peer dependency.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { CircuitSnapshot } from '../../resilience/breaker/index';
import { StoreUnavailableError } from '../../errors';
import type { StoreLossCause } from '../../events';
import { ownClient } from './load';
import { checkOptions, messageOf, type RedisStoreOptions } from './options';
import { parseJson, RedisSession } from './session';
import { homeValue, keyField, parseHome } from '../fields';
import { ADJUST, adjustmentArgs, DeferredAdjustments, RESERVE, windowArgs, type Adjustment } from '../scripts';
import { announceRefused, bucketOf, KnownState } from './known';
import { KeptSpend, noteTotals, seenTotals, SPEND_SCRIPT, script, spendCall, spendHash, writeBackKept, type Names, type PendingStatus, type Script, type WriteBackOptions } from './writeback';
import { LoadWatch, newerThan, parseSnapshot } from './snapshot';
import { answerWithin, LATE, Patience } from './timing';
import { ReadyWaiters, type ReadyOptions } from './ready';
import { epochKey } from './epoch';
import { LOST, lostReply, reservationOf } from './reply';
import { objectName, readValue, writeValue } from './objects';
import type { StateStore, StoreBudgetRef, StoreChange, StoreCircuitRef, StoreFailure, StoreKeyRef, StoreKeyStatus, StoreLimits, StoreListener, StoreObjectHome, StoreOperation, StoreReservation, StoreSession, StoreSnapshot, StoreSpend } from '../types';

export type * from '../types';
export type { RedisStoreOptions, ReadyOptions } from './options';

const RESERVE_SCRIPT = script(RESERVE);
const ADJUST_SCRIPT = script(ADJUST);

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
 * - When Redis fails (the connection drops, or a command and then a PING go
 *   unanswered for `timeoutMs` while this process's event loop was free: a
 *   blocked loop is not an outage), each session reports `store:error` once
 *   and the store serves on local state (`failMode: 'open'`) or refuses
 *   (`'closed'`), checks every `retryMs`, and when Redis is back writes what
 *   it kept (statuses, circuits, spend) and what it knew — merged: spend
 *   buckets raised to the largest total known, key statuses, circuits not
 *   closed and the object homes it wrote (the newest 10,000 still alive)
 *   restored where Redis has none (it restarted empty) — then every manager
 *   reloads the shared state (`store:recovered`).
 * - When Redis loses the shared state with the connection open (`FLUSHALL`,
 *   a failover to an empty replica, an eviction), the reservation and spend
 *   scripts find the epoch marker gone (epoch.ts): the store writes back
 *   what it knows the same way, and its managers reload.
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
  readonly #deferred = new DeferredAdjustments((key, limits, adjustments) => this.#adjustAll(key, limits, adjustments));
  #healthy: boolean;
  /** What was reported to the sessions of this outage (or failed start); a session opened meanwhile is told too. */
  #reported: StoreFailure | undefined;
  #downSince = 0;
  #probe: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** Writes kept while Redis is away, by field (latest wins), with the message that announces each. */
  readonly #pendingStatus = new Map<string, PendingStatus>();
  readonly #kept = new KeptSpend();
  readonly #readyWaiters = new ReadyWaiters();
  /** This store's own name on the channel (for what it writes back, not any one session). */
  readonly #id = randomUUID();
  readonly #names: Names;
  /** What this store last saw in Redis, written back after Redis lost it. */
  readonly #known = new KnownState();
  #recovering = false;
  #writing: Promise<void> | undefined;
  /** The loads on their way, with what was written or heard since each was sent. */
  readonly #loading = new Set<LoadWatch>();
  readonly #patience: Patience;
  /** The epoch of the shared state this store last wrote back to (epoch.ts); '' before its first write-back. */
  #epoch = '';
  /** The write-back after Redis lost the shared state while connected. */
  #restoring: Promise<void> | undefined;

  /** @throws {MissingPeerError} without `client` when `ioredis` is not installed (an installed but broken ioredis throws its own error); ConfigError (code `invalid_config`, `field` the option) for a malformed option, a `url` among them, whose text it never shows. */
  constructor(options: RedisStoreOptions = {}) {
    const checked = checkOptions(options);
    this.prefix = checked.prefix;
    this.failMode = checked.failMode;
    this.#timeoutMs = checked.timeoutMs;
    this.#retryMs = checked.retryMs;
    this.#now = checked.now;
    this.#channel = `${this.prefix}changes`;
    this.#names = { prefix: this.prefix, channel: this.#channel, id: this.#id };
    this.#ownsClient = options.client === undefined;
    this.#client = options.client ?? ownClient(options);
    // The subscriber may queue its SUBSCRIBE until connected. Re-subscribed here on each reconnection, not by
    // ioredis (autoResubscribe), which leaves its command without a handler: a store closed before Redis
    // answered it rejected unhandled ("Connection is closed."), which ends a Node.js process by default.
    this.#sub = this.#client.duplicate({ enableOfflineQueue: true, autoResubscribe: false });
    this.#sub.on('ready', () => void (this.#closed || this.#sub.subscribe(this.#channel).catch(() => undefined)));
    this.#patience = new Patience(this.#client, this.#timeoutMs);
    // Healthy once Redis answers and the subscription stands (#recover), at start as after an outage.
    this.#healthy = false;
    this.#downSince = Date.now();
    this.#client.on('error', (error: unknown) => this.#fail('connect', error));
    this.#client.on('close', () => this.#fail('connect', new Error('connection to Redis closed')));
    this.#client.on('ready', () => void this.#recover());
    this.#sub.on('error', () => {
      // Reported through 'close'; ioredis reconnects (and 'ready' re-subscribes).
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
   * Resolves once Redis answers and the store is subscribed to changes (or the store is closed); until then requests
   * are served as when Redis is away. For start-up, above all with `failMode: 'closed'`.
   * @throws {StoreUnavailableError} (rejects; code `store_unavailable`) when not ready within `timeoutMs` (default 10,000; time the event loop was blocked does not count, timing.ts; `Infinity` waits for ever) or when `signal` aborts, with Redis's reason (e.g. `NOPERM…`); the store keeps trying. ConfigError for a malformed `timeoutMs`. */
  async ready(options: ReadyOptions = {}): Promise<void> {
    if (this.#healthy || this.#closed) return;
    await this.#readyWaiters.wait(options, () => this.#reported?.message);
  }

  open(listener: StoreListener): StoreSession {
    if (this.#closed) throw new Error('RedisStore: this store was closed; create a new one.');
    const session = new RedisSession(this, randomUUID(), listener);
    this.#sessions.set(session.id, session);
    // Reported before it opened: told too, once its manager listens (a manager made after `ready()` gave up waiting).
    const failure = this.#reported;
    if (failure) queueMicrotask(() => void (this.#reported === failure && this.#sessions.has(session.id) && session.failed(failure)));
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
    this.#readyWaiters.settle();
    this.#sub.disconnect();
    if (this.#ownsClient) {
      // A hung Redis (connection open, no answers) never answers QUIT: wait for it at most timeoutMs.
      try {
        if ((await answerWithin(this.#client.quit(), this.#timeoutMs)) === LATE) this.#client.disconnect();
      } catch {
        this.#client.disconnect();
      }
    }
  }

  /** A cached answer of the response cache (`cache: { store: 'store' }`): `undefined` when absent or expired, and while Redis is away or slower than `timeoutMs` (a miss; the cache never fails a request). */
  cacheGet(key: string): Promise<string | undefined> | undefined {
    return this.#healthy ? readValue(this.#client, this.#patience, `${this.prefix}${key}`, 'a cache read') : undefined;
  }

  /** Stores a cached answer for `ttlMs` (`SET … PX`); dropped while Redis is away. */
  cacheSet(key: string, value: string, ttlMs: number): void {
    if (this.#healthy) writeValue(this.#client, `${this.prefix}${key}`, value, ttlMs).catch(() => {});
  }

  /** @internal Where object `id` was created (one `GET`): `undefined` at once while Redis is away, and when it holds none or is slower than `timeoutMs`. */
  objectHome(id: string): Promise<StoreObjectHome | undefined> | undefined {
    return this.#healthy ? readValue(this.#client, this.#patience, objectName(this.prefix, id), 'an object lookup').then(parseHome) : undefined;
  }

  /** @internal Records where object `id` was created, for `ttlMs` (`SET … PX`); resolves once written, or after `timeoutMs` (the write goes on): the answer that created the object waits for it (pipeline/affinity.ts). Kept to write back after an outage (written then when Redis is away now); a failure is reported as a write's. Never rejects. */
  async rememberObject(id: string, home: StoreObjectHome, ttlMs: number): Promise<void> {
    const entry = { name: objectName(this.prefix, id), value: homeValue(home), until: Date.now() + ttlMs };
    this.#known.object(entry);
    if (this.#healthy) await answerWithin(writeValue(this.#client, entry.name, entry.value, ttlMs).catch((error: unknown) => this.#fail('write', error)), this.#timeoutMs);
  }

  // ------------------------------------------------------------ internals

  /** @internal */
  detach(session: RedisSession): void {
    this.#sessions.delete(session.id);
  }

  /**
   * Runs a script on a key's window (ARGV: limits, clock, TTL, periods, then
   * `need` ('' = adjust only), the owner's field ('' = none), the epoch and
   * the adjustments; KEYS: the window, the statuses hash, the epoch marker;
   * see scripts.ts).
   */
  #run(script: Script, key: StoreKeyRef, limits: StoreLimits, need: number | '', adjustments: readonly (number | string)[], owner?: StoreKeyRef): Promise<unknown> {
    const clock = this.#now === undefined ? '' : String(this.#now());
    const args = [...windowArgs(limits, clock), need, owner === undefined ? '' : `${this.#known.anyDisabled ? ' ' : ''}${keyField(owner)}`, this.#epoch, ...adjustments];
    return this.#eval(script, [`${this.prefix}w:${keyField(key)}`, `${this.prefix}keys`, epochKey(this.prefix)], args);
  }

  /** Runs a script by its SHA-1, sending its text when Redis does not have it (a new or restarted Redis). */
  async #eval(script: Script, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await this.#client.evalsha(script.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!messageOf(error).startsWith('NOSCRIPT')) throw error;
      return this.#client.eval(script.lua, keys.length, ...keys, ...args);
    }
  }

  /** @internal */
  reserve(key: StoreKeyRef, limits: StoreLimits, tokens: number, owner?: StoreKeyRef): Promise<StoreReservation> {
    return this.#reserve(key, limits, tokens, owner, false);
  }

  async #reserve(key: StoreKeyRef, limits: StoreLimits, tokens: number, owner: StoreKeyRef | undefined, again: boolean): Promise<StoreReservation> {
    if (!this.#healthy) return this.#unavailable('reserve', undefined);
    let answer: StoreReservation | typeof LOST;
    try {
      const held = this.#deferred.take(key);
      let reply: unknown;
      try {
        const call = this.#run(RESERVE_SCRIPT, key, limits, Math.max(0, tokens), adjustmentArgs(held), owner);
        reply = await answerWithin(call, this.#timeoutMs);
        if (reply === LATE) reply = await this.#patience.late(call, 'a reservation');
      } catch (error) {
        this.#deferred.restore(key, limits, held);
        throw error;
      }
      answer = reservationOf(reply);
      // Refused for the key's status or a lost state, windows untouched: what was held rides with a later reservation.
      if (answer === LOST || (!answer.ok && answer.disabled !== undefined)) this.#deferred.restore(key, limits, held);
    } catch (error) {
      this.#fail('reserve', error);
      return this.#unavailable('reserve', error);
    }
    if (answer !== LOST) {
      this.#known.window(key, limits, answer);
      return answer;
    }
    // Redis lost the shared state: asked again (once) after the write-back.
    await this.#lost();
    return again || !this.#healthy ? this.#unavailable('reserve', undefined) : this.#reserve(key, limits, tokens, owner, true);
  }

  #unavailable(operation: StoreOperation, error: unknown): StoreReservation {
    if (this.failMode === 'open') return { ok: true, requests: undefined, tokens: undefined, degraded: true };
    const why = error !== undefined ? messageOf(error) : (this.#reported?.message ?? 'it is unreachable');
    throw new StoreUnavailableError(`keyplex: the Redis state store cannot ${operation} (${why}); with failMode 'closed' requests that need a shared reservation are refused until it is back. Check Redis, or use failMode 'open' to serve on local state meanwhile.`);
  }

  /** @internal */
  adjust(key: StoreKeyRef, limits: StoreLimits, requests: number, tokens: number, at?: number): void {
    this.#adjustAll(key, limits, [{ at, requests, tokens }]);
  }

  #adjustAll(key: StoreKeyRef, limits: StoreLimits, adjustments: readonly Adjustment[]): void {
    if (!this.#healthy) return;
    this.#run(ADJUST_SCRIPT, key, limits, '', adjustmentArgs(adjustments)).then(
      (reply) => lostReply(reply) && void this.#lost(),
      (error: unknown) => this.#fail('adjust', error),
    );
  }

  /** @internal Held until the key's next reservation (one round trip), else written by the flush. */
  defer(key: StoreKeyRef, limits: StoreLimits, requests: number, tokens: number, at?: number): void {
    if (!this.#healthy) return;
    this.#deferred.add(key, limits, requests, tokens, at);
  }

  /**
   * @internal Writes a status or circuit and announces it; resolves once
   * Redis has published it (or kept it for later when Redis is away). Never rejects.
   */
  write(origin: string, hash: 'keys' | 'circuits', field: string, value: unknown, change: StoreChange): Promise<void> {
    const entry = { hash: `${this.prefix}${hash}`, field, value: JSON.stringify(value), message: JSON.stringify({ o: origin, c: change }) };
    this.#sinceLoad(change);
    if (change.kind === 'key') this.#known.status({ field, status: change.status, value: entry.value, message: entry.message });
    else if (change.kind === 'circuit') this.#known.circuit({ field, state: change.snapshot.state, value: entry.value, message: entry.message });
    if (!this.#healthy) {
      this.#pendingStatus.set(`${entry.hash}\u0000${field}`, entry);
      return Promise.resolve();
    }
    return this.#client
      .multi()
      .hset(entry.hash, field, entry.value)
      .publish(this.#channel, entry.message)
      .exec()
      .then(
        () => undefined,
        (error: unknown) => {
          this.#pendingStatus.set(`${entry.hash}\u0000${field}`, entry);
          this.#fail('write', error);
        },
      );
  }

  /** @internal Records spend and announces it; resolves once written (or kept for later). Never rejects. */
  addSpend(origin: string, spend: StoreSpend): Promise<void> {
    for (const budget of spend.budgets) this.#known.budget(budget);
    if (!this.#healthy || this.#restoring) {
      this.#kept.keep(origin, spend);
      return Promise.resolve();
    }
    const before = seenTotals(this.#known, spend);
    const { keys, args } = spendCall(this.#names, origin, spend, this.#epoch);
    const written = this.#eval(SPEND_SCRIPT, keys, args).then(
      (totals) => {
        // Not written (the marker is gone), or a bucket came back lower than known (evicted): Redis lost the shared state.
        if (totals === 'lost') this.#kept.keep(origin, spend);
        if (totals === 'lost') void this.#lost();
        else if (!noteTotals(this.#known, spend, totals, before)) void this.#lost('evicted');
        // Written but not announced (an ACL without PUBLISH): never written again; the others reload it once the store is back.
        const refused = announceRefused(totals, spend.budgets.length);
        if (refused !== undefined) this.#fail('write', new Error(refused));
      },
      (error: unknown) => {
        this.#kept.keep(origin, spend);
        this.#fail('write', error);
      },
    );
    for (const watch of this.#loading) watch.wrote(written);
    return written;
  }

  /** @internal */
  load(budgets: readonly StoreBudgetRef[]): Promise<StoreSnapshot> {
    return this.#load(budgets, false);
  }

  async #load(budgets: readonly StoreBudgetRef[], again: boolean): Promise<StoreSnapshot> {
    // Not connected (yet, or any more): the store calls `recovered` to reload once it is.
    if (!this.#healthy) throw new Error('Redis is not connected');
    for (const budget of budgets) this.#known.budget(budget);
    const pipeline = this.#client.pipeline();
    pipeline.hgetall(`${this.prefix}keys`);
    pipeline.hgetall(`${this.prefix}circuits`);
    for (const budget of budgets) pipeline.hgetall(spendHash(this.#names, budget.id));
    pipeline.get(epochKey(this.prefix));
    const watch = new LoadWatch();
    this.#loading.add(watch);
    let results: [Error | null, unknown][] | null;
    try {
      results = await pipeline.exec();
      const failed = results === null ? new Error('no reply') : results.find(([error]) => error !== null)?.[0];
      if (failed) throw failed;
      await watch.spendsAnswered();
    } catch (error) {
      this.#fail('load', error);
      throw error;
    } finally {
      this.#loading.delete(watch);
    }
    if (!again && results?.[2 + budgets.length]?.[1] !== this.#epoch) {
      // Read from a Redis that lost the shared state: asked again (once) after the write-back.
      await this.#lost();
      if (this.#healthy) return this.#load(budgets, true);
    }
    const hash = (i: number) => (results?.[i]?.[1] ?? {}) as Record<string, string>;
    const snapshot = parseSnapshot(hash(0), hash(1), budgets.map((_, i) => hash(2 + i)), budgets);
    newerThan(snapshot, watch.since);
    this.#known.loaded(snapshot, this.#id, Date.now());
    return snapshot;
  }

  /** A status or circuit written or heard: newer than what a load on its way will answer. */
  #sinceLoad(change: StoreChange): void {
    for (const watch of this.#loading) watch.heard(change);
  }

  #message(channel: string, message: string): void {
    if (channel !== this.#channel) return;
    const parsed = parseJson(message) as { o?: unknown; c?: StoreChange | { kind: 'lost'; epoch?: unknown } } | undefined;
    if (!parsed || typeof parsed.o !== 'string' || typeof parsed.c !== 'object' || parsed.c === null) return;
    // Another store found the shared state gone and set a new epoch (epoch.ts): this one writes back what it knows too.
    if (parsed.c.kind === 'lost') return void (parsed.c.epoch !== this.#epoch && this.#lost('notice'));
    // Until its write-back, the totals known stay those from before the outage or loss (one heard now holds spend since).
    if ((this.#healthy && !this.#restoring) || parsed.c.kind !== 'spend') this.#known.learn(parsed.c, message);
    this.#sinceLoad(parsed.c);
    // What this store wrote back its own sessions knew already.
    if (parsed.o === this.#id) return;
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
      const status = this.#client.status;
      const message = status === 'ready' ? messageOf(error) : `not connected to Redis (${status}): ${messageOf(error)}`;
      const failure: StoreFailure = (this.#reported = { operation, message, failMode: this.failMode });
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

  /** Writes back what was kept and (with `merge`) known, and learns the epoch (see writeback.ts); one write-back at a time, one that outlived its timeout is waited for, not repeated. */
  #writeBack(options: WriteBackOptions = {}): Promise<void> {
    const clock = this.#now === undefined ? '' : String(this.#now());
    this.#writing ??= writeBackKept(this.#client, this.#names, [RESERVE_SCRIPT, ADJUST_SCRIPT], this.#known, this.#pendingStatus, this.#kept, { clock, epoch: this.#epoch, ...options })
      .then((epoch) => void (this.#epoch = epoch))
      .finally(() => (this.#writing = undefined));
    return this.#writing;
  }

  /**
   * Redis lost the shared state with the connection open (epoch.ts): writes
   * back what this store knows, then its managers hear of it and reload.
   * `evicted`: found by a spend total lower than known, the marker still
   * there (renewed, so that the other stores write back too).
   */
  #lost(cause: StoreLossCause = 'missing'): Promise<void> {
    // Away: the recovery writes back anyway.
    if (!this.#healthy || this.#closed) return Promise.resolve();
    this.#restoring ??= this.#restore(cause === 'evicted' ? this.#epoch : '', cause).finally(() => {
      this.#restoring = undefined;
      this.#drain();
    });
    return this.#restoring;
  }

  async #restore(renew: string, cause: StoreLossCause): Promise<void> {
    try {
      // A drain on its way writes no merge: this one follows it.
      await this.#writing?.catch(() => undefined);
      await this.#patience.answer(this.#writeBack({ renew }), 'the write-back');
    } catch (error) {
      this.#fail('write', error);
      return;
    }
    for (const session of this.#sessions.values()) session.lost(cause);
  }

  /** Spend kept while a write-back finished is written now. */
  #drain(): void {
    if (this.#healthy && this.#kept.size > 0) this.#writeBack({ merge: false }).catch((error: unknown) => this.#fail('write', error));
  }

  /** Checks Redis; when it answers, writes back what it kept and knew, and tells the sessions to resync. A Redis that answers but refuses (an ACL, a read-only replica, OOM) is reported too, at start as later, once. */
  async #recover(): Promise<void> {
    if (this.#healthy || this.#closed || this.#recovering) return;
    this.#recovering = true;
    let step: StoreOperation = 'connect';
    try {
      if (this.#client.status !== 'ready') throw new Error(`Redis connection is ${this.#client.status}`);
      await this.#patience.answer(this.#client.ping(), 'PING');
      // Subscribed before the reload: whatever is written after it, this store hears of.
      step = 'subscribe';
      await this.#patience.answer(this.#sub.subscribe(this.#channel), 'SUBSCRIBE');
      step = 'write';
      await this.#patience.answer(this.#writeBack(), 'the write-back');
    } catch (error) {
      this.#fail(step, error);
      return;
    } finally {
      this.#recovering = false;
    }
    if (this.#healthy || this.#closed) return;
    this.#healthy = true;
    this.#reported = undefined;
    const downMs = Date.now() - this.#downSince;
    for (const session of this.#sessions.values()) session.recovered(downMs);
    this.#readyWaiters.settle();
    this.#drain();
  }
}
