/**
 * How a `RedisStore` writes spend (with each bucket's new total, so every
 * replica knows the totals), and what it writes back when Redis answers again
 * after an outage or a restart (see known.ts).
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { keyField } from '../fields';
import { RAISE, windowArgs } from '../scripts';
import type { StoreSpend } from '../types';
import { announceRefused, bucketOf, MERGE_SPEND, MERGE_WINDOW_MS, RESTORE_STATUSES, SPEND, spendTtlMs, type KnownState } from './known';
import { EPOCH, epochKey, lostMessageHead } from './epoch';

/** A Lua script and its SHA-1, for EVALSHA. */
export interface Script {
  readonly lua: string;
  readonly sha: string;
}

export function script(lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

export const SPEND_SCRIPT = script(SPEND);
const MERGE_SCRIPT = script(MERGE_SPEND);
const RESTORE_SCRIPT = script(RESTORE_STATUSES);
const EPOCH_SCRIPT = script(EPOCH);
const RAISE_SCRIPT = script(RAISE);

/** How a store names its Redis keys and channel, and itself on the channel. */
export interface Names {
  readonly prefix: string;
  readonly channel: string;
  /** The store's own origin, for what it writes back. */
  readonly id: string;
}

/** A status or circuit kept while Redis was away: written with HSET and announced. */
export interface PendingStatus {
  readonly hash: string;
  readonly field: string;
  readonly value: string;
  readonly message: string;
}

/** The hash of a budget's spend buckets. */
export function spendHash(names: Names, id: string): string {
  return `${names.prefix}spend:${encodeURIComponent(id)}`;
}

/**
 * The spend script's keys and arguments: each budget's bucket, announced with
 * the buckets' new totals; written only while the epoch marker holds `epoch`
 * ('' = whatever it holds).
 */
export function spendCall(names: Names, origin: string, spend: StoreSpend, epoch: string): { keys: string[]; args: (string | number)[] } {
  const starts = spend.budgets.map((budget) => bucketOf(budget, spend.at));
  const nanos = Math.round(spend.nanos);
  const change = { kind: 'spend', budgets: spend.budgets.map((b) => b.id), nanos, at: spend.at, starts };
  const head = `${JSON.stringify({ o: origin, c: change }).slice(0, -2)},"totals":`;
  const args: (string | number)[] = [names.channel, head, nanos, epoch];
  spend.budgets.forEach((budget, i) => args.push(starts[i]!, spendTtlMs(budget)));
  return { keys: [...spend.budgets.map((budget) => spendHash(names, budget.id)), epochKey(names.prefix)], args };
}

/** The totals known of a spend's buckets when it is sent: Redis holds at least these. */
export function seenTotals(known: KnownState, spend: StoreSpend): number[] {
  return spend.budgets.map((budget) => known.seen(budget.id, bucketOf(budget, spend.at)));
}

/**
 * Keeps the totals a spend script returned. Given the totals known when it
 * was sent (`before`), returns false when a bucket came back lower than that
 * plus the spend: Redis lost what it held (an eviction).
 */
export function noteTotals(known: KnownState, spend: StoreSpend, totals: unknown, before?: readonly number[]): boolean {
  if (!Array.isArray(totals)) return true;
  const now = Date.now();
  let kept = true;
  spend.budgets.forEach((budget, i) => {
    const total = Number(totals[i]);
    const least = before === undefined ? 0 : (before[i] ?? 0) + Math.round(spend.nanos);
    if (total < least) kept = false;
    // What the bucket should hold, for the write-back that follows a loss.
    known.total(budget.id, bucketOf(budget, spend.at), Math.max(total, least), now);
  });
  return kept;
}

/** A spend kept to write back, with the session it came from. */
export interface KeptEntry {
  readonly origin: string;
  readonly spend: StoreSpend;
}

/** What a write-back wrote: which of the spends given, and the epoch the marker holds; `failed`: what Redis refused (spend written all the same is in `written`). */
export interface WrittenBack {
  readonly written: readonly KeptEntry[];
  readonly epoch: string;
  readonly failed?: Error;
}

/** What a write-back adds to what was kept: the merge of what is known, and an epoch to renew (epoch.ts). */
export interface WriteBackOptions {
  /** Default true; off for the rounds that only write spend kept meanwhile. */
  readonly merge?: boolean;
  /** The epoch to replace with a new one when the marker still holds it ('' default: none). */
  readonly renew?: string;
  /** The windows' clock (the store's `now`), '' (default) for Redis's own. */
  readonly clock?: string;
  /** The epoch the store knew ('' default: none): while the marker holds it, Redis lost nothing the store knew (see MERGE_SPEND). */
  readonly epoch?: string;
}

/**
 * Writes back, in one transaction: the epoch marker (set when missing or
 * renewed, which announces the new epoch: epoch.ts), statuses and spend kept
 * while Redis was away (newer than anything there), then — with `merge` —
 * what the store knew before, merged: statuses and circuits not closed that
 * Redis has none of, each spend bucket raised to the largest total known,
 * and the object homes this store wrote that still live, for a Redis that
 * restarted empty or lost its data (or was away when they were made).
 * Clears `pending` and resolves with the `spends` written, and the
 * marker's epoch; when Redis refused part of it, with what it refused too.
 */
export async function writeBack(
  client: Redis,
  names: Names,
  scripts: readonly Script[],
  known: KnownState,
  pending: Map<string, PendingStatus>,
  spends: readonly KeptEntry[],
  { merge = true, renew = '', clock = '', epoch = '' }: WriteBackOptions = {},
): Promise<WrittenBack> {
  const now = Date.now();
  const statuses = [...pending.values()];
  const tx = client.multi();
  for (const { lua } of [...scripts, SPEND_SCRIPT, MERGE_SCRIPT, RESTORE_SCRIPT, EPOCH_SCRIPT, RAISE_SCRIPT]) tx.script('LOAD', lua);
  const marker = scripts.length + 5;
  tx.evalsha(EPOCH_SCRIPT.sha, 1, epochKey(names.prefix), randomUUID(), names.channel, lostMessageHead(names.id), renew);
  for (const entry of statuses) tx.hset(entry.hash, entry.field, entry.value).publish(names.channel, entry.message);
  let first = marker + 1 + 2 * statuses.length;
  const restore: string[] = [];
  for (const { field, value, message } of merge ? known.statuses(now) : []) restore.push(field, value, message);
  if (restore.length > 0) {
    tx.evalsha(RESTORE_SCRIPT.sha, 1, `${names.prefix}keys`, names.channel, ...restore);
    first++;
  }
  // Circuits not closed, restored the same way (one closed is what Redis holding none means).
  const circuits: string[] = [];
  for (const { field, value, message } of merge ? known.circuits() : []) circuits.push(field, value, message);
  if (circuits.length > 0) {
    tx.evalsha(RESTORE_SCRIPT.sha, 1, `${names.prefix}circuits`, names.channel, ...circuits);
    first++;
  }
  for (const w of merge ? known.windows(clock === '' ? now : Number(clock)) : []) {
    tx.evalsha(RAISE_SCRIPT.sha, 1, `${names.prefix}w:${keyField(w.key)}`, ...windowArgs(w.limits, clock), w.at, w.requests, w.tokens);
    first++;
  }
  for (const { ref, buckets } of merge ? known.spend(now) : []) {
    const head = `${JSON.stringify({ o: names.id, c: { kind: 'spend', budgets: [ref.id] } }).slice(0, -2)},"nanos":`;
    const hash = spendHash(names, ref.id);
    tx.evalsha(MERGE_SCRIPT.sha, 3, hash, `${hash}:bases`, epochKey(names.prefix), names.channel, head, spendTtlMs(ref), MERGE_WINDOW_MS, epoch, ...buckets.flat());
    first++;
  }
  // Object homes: set only where Redis has none (a home never changes), for what is left of their time.
  for (const { name, value, until } of merge ? known.objects(now) : []) {
    tx.set(name, value, 'PX', Math.max(1, Math.ceil(until - now)), 'NX');
    first++;
  }
  for (const { origin, spend } of spends) {
    const { keys, args } = spendCall(names, origin, spend, '');
    tx.evalsha(SPEND_SCRIPT.sha, keys.length, ...keys, ...args);
  }
  // A store that may not announce is not back (an ACL without PUBLISH: refused as queued, nothing is run). Stores ignore it.
  tx.publish(names.channel, JSON.stringify({ o: names.id }));
  // Nor one whose hashes another program overwrote (WRONGTYPE): back, it would fail again at once, and again.
  tx.hlen(`${names.prefix}keys`).hlen(`${names.prefix}circuits`);
  const results = await tx.exec();
  if (!results) throw new Error('the write-back transaction was discarded');
  // A transaction does not roll back: spend it wrote is written, whatever else in it failed, and never sent again.
  const written: KeptEntry[] = [];
  let refused: string | undefined;
  spends.forEach((entry, i) => {
    const [error, totals] = results[first + i] ?? [new Error('no reply'), undefined];
    if (error !== null) return;
    noteTotals(known, entry.spend, totals);
    written.push(entry);
    refused ??= announceRefused(totals, entry.spend.budgets.length);
  });
  const failed = results.find(([error]) => error !== null)?.[0] ?? (refused === undefined ? undefined : new Error(refused));
  if (failed) return { written, epoch: '', failed };
  for (const entry of statuses) if (pending.get(`${entry.hash}\u0000${entry.field}`) === entry) pending.delete(`${entry.hash}\u0000${entry.field}`);
  return { written, epoch: String(results[marker]?.[1]) };
}

/** Entries kept at most (beyond it the oldest goes). Spend of one session to the same buckets adds up in one entry, so this bounds buckets × sessions, not requests. */
const MAX_KEPT_SPEND = 10_000;

/** Write-back rounds at most for spend kept while one was on its way. */
const MAX_WRITE_ROUNDS = 4;

/** Which entry a spend adds to: its session, budgets and their buckets. */
function keptName(origin: string, spend: StoreSpend): string {
  return `${origin}\u0000${spend.budgets.map((b) => `${b.id}\u0001${bucketOf(b, spend.at)}`).join('\u0000')}`;
}

/**
 * Spend kept while Redis was away or had lost the shared state, the oldest
 * first, to write back. A session's spend to the same buckets adds up in one
 * entry (before, one per request, and past 10,000 the oldest were dropped: a
 * long outage's spend lost), unless that entry is on its way in a write-back
 * (handed out by {@link all}): it is written once as it was.
 */
export class KeptSpend {
  #spends: KeptEntry[] = [];
  /** Entries not handed out since they were made, by {@link keptName}: what a spend may add to. */
  #open = new Map<string, KeptEntry>();

  get size(): number {
    return this.#spends.length;
  }

  keep(origin: string, spend: StoreSpend): void {
    const name = keptName(origin, spend);
    const open = this.#open.get(name);
    const at = open === undefined ? -1 : this.#spends.lastIndexOf(open);
    if (open !== undefined && at >= 0) {
      const merged = { origin, spend: { budgets: spend.budgets, nanos: open.spend.nanos + spend.nanos, at: Math.max(open.spend.at, spend.at) } };
      this.#spends[at] = merged;
      this.#open.set(name, merged);
      return;
    }
    if (this.#spends.length >= MAX_KEPT_SPEND) this.#spends.shift();
    const entry = { origin, spend };
    this.#spends.push(entry);
    this.#open.set(name, entry);
  }

  /** What is kept now (the write-back's copy): written as they are, nothing more is added to them. */
  all(): KeptEntry[] {
    this.#open.clear();
    return [...this.#spends];
  }

  /** These (from {@link all}) were written. */
  written(entries: readonly KeptEntry[]): void {
    if (entries.length === 0) return;
    const gone = new Set(entries);
    this.#spends = this.#spends.filter((entry) => !gone.has(entry));
  }
}

/**
 * {@link writeBack} of what is kept and (with `merge`) known, then of the
 * spend kept while it was on its way, in further rounds (without the merge:
 * it would count again what the first round wrote). Resolves with the epoch.
 */
export async function writeBackKept(
  client: Redis,
  names: Names,
  scripts: readonly Script[],
  known: KnownState,
  pending: Map<string, PendingStatus>,
  kept: KeptSpend,
  { merge = true, renew = '', clock = '', epoch: knew = '' }: WriteBackOptions,
): Promise<string> {
  let epoch = '';
  for (let round = 0; round === 0 || (kept.size > 0 && round < MAX_WRITE_ROUNDS); round++) {
    const first = round === 0;
    const back = await writeBack(client, names, scripts, known, pending, kept.all(), { merge: merge && first, renew: first ? renew : '', clock, epoch: knew });
    kept.written(back.written);
    if (back.failed) throw back.failed;
    epoch = back.epoch;
  }
  return epoch;
}
