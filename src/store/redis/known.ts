/**
 * What one `RedisStore` knows of the shared state — every budget's spend per
 * bucket and every key's status, as it last saw them in Redis (its own writes,
 * other replicas' messages, its loads) — and the Lua scripts that write it.
 *
 * A Redis that restarts (or fails over to a replica that lost writes) comes
 * back empty. Each replica then writes back what it knows, merging: a bucket
 * is raised to the largest total any replica saw and never lowered, a status
 * is restored only where Redis has none. Spend is therefore never forgotten
 * by a restart, and a key revoked before it stays revoked for processes
 * started after it.
 */
import { circuitField, keyField } from '../fields';
import { periodOf } from '../shared-window';
import type { StoreBudgetRef, StoreChange, StoreKeyRef, StoreKeyStatus, StoreLimits, StoreReservation, StoreSnapshot } from '../types';

/**
 * Adds spend to budgets' buckets, keeps them for their window, and publishes
 * the change with each bucket's new total (so that every replica's picture is
 * a maximum, never a sum that could count a change twice).
 *
 * All or nothing: a script does not roll back what it wrote before an error,
 * and spend whose write fails is sent again, so whatever can refuse it comes
 * before the first write — a hash of another type fails the script (WRONGTYPE),
 * and Redis refuses a script's first write only (OOM, a read-only replica) —
 * and a refused announcement (an ACL user without PUBLISH) after the writes
 * does not fail it: the totals come back with the refusal's message after them.
 *
 * KEYS: the spend hashes, then the epoch marker (epoch.ts). ARGV: [1] channel,
 * [2] the message up to its totals, [3] nano-dollars, [4] the epoch the
 * writer knows ('' = no check), then per hash its bucket start and time to
 * live in ms. Returns the new totals (and, the announcement refused, its
 * message: {@link announceRefused}), or 'lost' (nothing written) when the
 * marker holds another epoch or none: Redis lost the shared state since.
 */
export const SPEND = `
if ARGV[4] ~= '' and redis.call('GET', KEYS[#KEYS]) ~= ARGV[4] then return 'lost' end
for i = 1, #KEYS - 1 do
  local kind = redis.call('TYPE', KEYS[i])['ok']
  if kind ~= 'hash' and kind ~= 'none' then return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. kind .. ', not a hash of spend') end
end
local totals = {}
for i = 1, #KEYS - 1 do
  local v = redis.call('HINCRBY', KEYS[i], ARGV[3 + 2 * i], ARGV[3])
  redis.pcall('PEXPIRE', KEYS[i], ARGV[4 + 2 * i])
  totals[i] = string.format('%d', v)
end
local sent = redis.pcall('PUBLISH', ARGV[1], ARGV[2] .. '[' .. table.concat(totals, ',') .. ']}}')
if type(sent) == 'table' and sent['err'] then table.insert(totals, sent['err']) end
return totals
`;

/** The message of a spend script's refused announcement ({@link SPEND}: after the totals of its `budgets`), else `undefined`. */
export function announceRefused(reply: unknown, budgets: number): string | undefined {
  return Array.isArray(reply) && reply.length > budgets ? String(reply[budgets]) : undefined;
}

/**
 * Raises buckets of one spend hash by what a replica knew before the outage
 * and Redis does not hold, and announces each raise as spend (the
 * difference) to the replicas that did not know it.
 *
 * What Redis holds of the time before the outage is the bucket's total when
 * the first write-back of a recovery reaches it (0 after a restart; all of it
 * when Redis only hung): kept as the bucket's base in a second hash for
 * `MERGE_WINDOW_MS`, and raised to the largest total a replica knew. A
 * bucket grows by each rise of its base — never compared with its total,
 * which holds the outage spend written back already: a replica that knew
 * more before the outage, writing back after one that knew less and spent
 * during it, still adds what only it knew.
 *
 * The bases belong to the epoch (epoch.ts) the marker holds: a new epoch (a
 * loss) starts from what Redis holds then. A store whose epoch the marker
 * still holds knows of no loss (Redis only hung, or dropped the connection):
 * its totals, learnt from Redis since the bases were taken, hold spend those
 * bases do not, so its buckets are only raised to what it knew, never by a
 * base's rise (before, a second outage within `MERGE_WINDOW_MS` of a loss or
 * of another outage added again everything spent between the two).
 *
 * KEYS[1]: the hash, KEYS[2]: its bases, KEYS[3]: the epoch marker. ARGV: [1]
 * channel, [2] the message head up to its amount, [3] time to live in ms, [4]
 * the bases' time to live in ms, [5] the epoch the store knew ('' = none),
 * then pairs of bucket start and total.
 */
export const MERGE_SPEND = `
local epoch = redis.call('GET', KEYS[3]) or ''
local kept = epoch ~= '' and epoch == ARGV[5]
if not kept and redis.call('HGET', KEYS[2], 'epoch') ~= epoch then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], 'epoch', epoch)
end
for i = 6, #ARGV, 2 do
  local base
  if kept then
    base = redis.call('HGET', KEYS[1], ARGV[i]) or '0'
  else
    base = redis.call('HGET', KEYS[2], ARGV[i])
    if not base then
      base = redis.call('HGET', KEYS[1], ARGV[i]) or '0'
      redis.call('HSET', KEYS[2], ARGV[i], base)
    end
  end
  base = tonumber(base)
  local want = tonumber(ARGV[i + 1])
  if want > base then
    local total = redis.call('HINCRBY', KEYS[1], ARGV[i], want - base)
    if not kept then redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
    redis.call('PUBLISH', ARGV[1], ARGV[2] .. string.format('%d', want - base) .. ',"at":' .. ARGV[i] .. ',"starts":[' .. ARGV[i] .. '],"totals":[' .. string.format('%d', total) .. ']}}')
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if not kept then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
return 1
`;

/**
 * How long the bases of one recovery's write-backs are kept (see
 * {@link MERGE_SPEND}): the replicas write back within seconds of Redis
 * answering again; a later outage starts from what Redis holds then.
 */
export const MERGE_WINDOW_MS = 60_000;

/**
 * Restores statuses Redis has none of (it restarted), announcing each one
 * restored; a status written since (a newer one) is left as it is.
 *
 * KEYS[1]: the statuses hash. ARGV: [1] channel, then triples of field, value, message.
 */
export const RESTORE_STATUSES = `
local restored = 0
for i = 2, #ARGV, 3 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('PUBLISH', ARGV[1], ARGV[i + 2])
    restored = restored + 1
  end
end
return restored
`;

/** How long a budget's spend hash is kept after its last write. */
export function spendTtlMs(ref: StoreBudgetRef): number {
  return Math.ceil(ref.windowMs + 2 * ref.bucketMs);
}

/** The bucket of a budget holding epoch ms `at`. */
export function bucketOf(ref: StoreBudgetRef, at: number): number {
  return Math.floor(at / ref.bucketMs) * ref.bucketMs;
}

interface KnownBudget {
  ref: StoreBudgetRef;
  /** Bucket start → the largest total seen in Redis. */
  buckets: Map<number, number>;
}

/** A key's status as last seen, with the message that announces it. */
export interface KnownStatus {
  readonly field: string;
  readonly status: StoreKeyStatus;
  readonly value: string;
  readonly message: string;
}

/** A circuit's state as last written or seen (one open is restored after Redis lost it), with the message that announces it. */
export interface KnownCircuit {
  readonly field: string;
  readonly state: string;
  readonly value: string;
  readonly message: string;
}

/** Buckets kept per budget before old ones are dropped. */
const PRUNE_AT = 64;

/** Windows kept before those a period past their last reservation are dropped. */
const WINDOWS_PRUNE_AT = 4_096;

/**
 * Object homes kept at most (beyond it the oldest goes). With OpenAI's
 * Responses API every answer is an object (stored by default), so a busy
 * replica names thousands: ~150 B each, ~1.5 MB at the cap.
 */
export const MAX_KNOWN_OBJECTS = 10_000;

/** An object home this store wrote (or would have, Redis away): its Redis name and value, and when it expires (epoch ms, wall clock as Redis's PX). */
export interface KnownObject {
  readonly name: string;
  readonly value: string;
  readonly until: number;
}

/** What a key's shared window held after this store's last reservation on it. */
export interface KnownWindow {
  readonly key: StoreKeyRef;
  readonly limits: StoreLimits;
  /** The reservation's moment (the windows' clock, epoch ms). */
  readonly at: number;
  readonly requests: number;
  readonly tokens: number;
}

/** What a store knows of the shared state, to write back after Redis lost it. */
export class KnownState {
  readonly #spend = new Map<string, KnownBudget>();
  readonly #statuses = new Map<string, KnownStatus>();
  /** The fields of the keys known disabled. */
  readonly #disabled = new Set<string>();
  /** By circuits-hash field (a key's or a deployment's: as many as configured). */
  readonly #circuits = new Map<string, KnownCircuit>();
  readonly #windows = new Map<string, KnownWindow>();
  #windowsPruneAt = WINDOWS_PRUNE_AT;
  /** By Redis name, the oldest first. */
  readonly #objects = new Map<string, KnownObject>();

  /** Where an object was created, to write back while it lives (a Redis that restarted lost it; one away at the create never had it). */
  object(entry: KnownObject): void {
    this.#objects.delete(entry.name);
    this.#objects.set(entry.name, entry);
    if (this.#objects.size > MAX_KNOWN_OBJECTS) this.#objects.delete(this.#objects.keys().next().value!);
  }

  /** The object homes still alive at `now` (wall clock; expired ones are dropped). */
  objects(now: number): KnownObject[] {
    const out: KnownObject[] = [];
    for (const [name, entry] of this.#objects) {
      if (entry.until <= now) this.#objects.delete(name);
      else out.push(entry);
    }
    return out;
  }

  /** A reservation taken on a key's window: what the window held then (its limit less the level left). */
  window(key: StoreKeyRef, limits: StoreLimits, answer: StoreReservation): void {
    if (!answer.ok || answer.at === undefined || !Number.isFinite(answer.at)) return;
    const taken = (cap: number | undefined, left: number | undefined) => (cap === undefined || left === undefined ? 0 : Math.max(0, cap - left));
    this.#windows.set(keyField(key), { key, limits, at: answer.at, requests: taken(limits.rpm, answer.requests), tokens: taken(limits.tpm, answer.tokens) });
    if (this.#windows.size > this.#windowsPruneAt) {
      this.windows(answer.at);
      this.#windowsPruneAt = Math.max(WINDOWS_PRUNE_AT, 2 * this.#windows.size);
    }
  }

  /** The windows whose last reservation is less than a period old at `now` (older ones are dropped). */
  windows(now: number): KnownWindow[] {
    for (const [field, w] of this.#windows) {
      if (w.at + Math.max(periodOf(w.limits.requestsPeriodMs), periodOf(w.limits.tokensPeriodMs)) <= now) this.#windows.delete(field);
    }
    return [...this.#windows.values()];
  }

  /** A budget this store's managers use (its shape is needed to write it back). */
  budget(ref: StoreBudgetRef): void {
    const known = this.#spend.get(ref.id);
    if (known === undefined) this.#spend.set(ref.id, { ref, buckets: new Map() });
    else known.ref = ref;
  }

  /** A bucket's total as seen in Redis (kept when larger than what was known). */
  total(id: string, start: number, total: number, now: number): void {
    const known = this.#spend.get(id);
    if (known === undefined || !Number.isFinite(start) || !Number.isFinite(total)) return;
    if (total > (known.buckets.get(start) ?? 0)) known.buckets.set(start, total);
    if (known.buckets.size > PRUNE_AT) this.#prune(known, now);
  }

  /** The largest total seen of a bucket (0 when none). */
  seen(id: string, start: number): number {
    return this.#spend.get(id)?.buckets.get(start) ?? 0;
  }

  /** A key's status as written or seen. */
  status(entry: KnownStatus): void {
    this.#statuses.set(entry.field, entry);
    if (entry.status.disabled) this.#disabled.add(entry.field);
    else this.#disabled.delete(entry.field);
  }

  /** Whether a key is known disabled (Redis held, or was written, its status: a statuses hash gone is a loss). */
  get anyDisabled(): boolean {
    return this.#disabled.size > 0;
  }

  /** A circuit's state as written or seen. */
  circuit(entry: KnownCircuit): void {
    this.#circuits.set(entry.field, entry);
  }

  /** Circuits not closed (open, or half-open: their probes decide, where the state is loaded). */
  circuits(): KnownCircuit[] {
    return [...this.#circuits.values()].filter((c) => c.state !== 'closed');
  }

  /** What a change heard on the channel (its `message`) says of Redis's state. */
  learn(change: StoreChange, message: string): void {
    if (change.kind === 'key' && change.key && typeof change.key === 'object' && change.status && typeof change.status === 'object') {
      this.status({ field: keyField(change.key), status: change.status, value: JSON.stringify(change.status), message });
    } else if (change.kind === 'circuit' && change.circuit && typeof change.circuit === 'object' && change.snapshot && typeof change.snapshot === 'object') {
      this.circuit({ field: circuitField(change.circuit), state: String(change.snapshot.state), value: JSON.stringify(change.snapshot), message });
    } else if (change.kind === 'spend') {
      const { starts, totals } = change as { starts?: unknown; totals?: unknown };
      if (!Array.isArray(starts) || !Array.isArray(totals) || !Array.isArray(change.budgets)) return;
      const now = Date.now();
      change.budgets.forEach((id, i) => this.total(String(id), Number(starts[i]), Number(totals[i]), now));
    }
  }

  /**
   * Takes on what a load answered (`origin`: the store, for the messages that
   * would restore its statuses). A bucket's total only grows, and spend heard
   * since Redis answered may have been applied before the answer was read: the
   * snapshot's buckets become the largest totals known, so that the reload
   * that replaces a manager's spend never sets it back.
   */
  loaded(snapshot: StoreSnapshot, origin: string, now: number): void {
    for (const entry of snapshot.spend) {
      for (const [start, total] of entry.buckets) this.total(entry.budget, start, total, now);
      const known = this.#spend.get(entry.budget);
      if (known !== undefined) entry.buckets = [...known.buckets].sort((a, b) => a[0] - b[0]);
    }
    for (const { key, status } of snapshot.keys) {
      const message = JSON.stringify({ o: origin, c: { kind: 'key', key, status } });
      this.status({ field: keyField(key), status, value: JSON.stringify(status), message });
    }
    for (const { circuit, snapshot: state } of snapshot.circuits) {
      const message = JSON.stringify({ o: origin, c: { kind: 'circuit', circuit, snapshot: state } });
      this.circuit({ field: circuitField(circuit), state: String(state.state), value: JSON.stringify(state), message });
    }
  }

  /** Per budget, the buckets still in their window, to merge into Redis. */
  spend(now: number): { ref: StoreBudgetRef; buckets: [number, number][] }[] {
    const out: { ref: StoreBudgetRef; buckets: [number, number][] }[] = [];
    for (const known of this.#spend.values()) {
      this.#prune(known, now);
      if (known.buckets.size > 0) out.push({ ref: known.ref, buckets: [...known.buckets] });
    }
    return out;
  }

  /** Statuses that still keep a key out (disabled, or cooling down past `now`). */
  statuses(now: number): KnownStatus[] {
    return [...this.#statuses.values()].filter(({ status }) => status.disabled !== null || status.cooldownUntil > now);
  }

  #prune(known: KnownBudget, now: number): void {
    const oldest = now - spendTtlMs(known.ref);
    for (const start of known.buckets.keys()) if (start < oldest) known.buckets.delete(start);
  }
}
