/**
 * How a `RedisStore` writes spend (with each bucket's new total, so every
 * replica knows the totals), and what it writes back when Redis answers again
 * after an outage or a restart (see known.ts).
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { StoreSpend } from '../types';
import { bucketOf, MERGE_SPEND, MERGE_WINDOW_MS, RESTORE_STATUSES, SPEND, spendTtlMs, type KnownState } from './known';

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

/** The spend script's keys and arguments: each budget's bucket, announced with the buckets' new totals. */
export function spendCall(names: Names, origin: string, spend: StoreSpend): { keys: string[]; args: (string | number)[] } {
  const starts = spend.budgets.map((budget) => bucketOf(budget, spend.at));
  const nanos = Math.round(spend.nanos);
  const change = { kind: 'spend', budgets: spend.budgets.map((b) => b.id), nanos, at: spend.at, starts };
  const head = `${JSON.stringify({ o: origin, c: change }).slice(0, -2)},"totals":`;
  const args: (string | number)[] = [names.channel, head, nanos];
  spend.budgets.forEach((budget, i) => args.push(starts[i]!, spendTtlMs(budget)));
  return { keys: spend.budgets.map((budget) => spendHash(names, budget.id)), args };
}

/** Keeps the totals a spend script returned. */
export function noteTotals(known: KnownState, spend: StoreSpend, totals: unknown): void {
  if (!Array.isArray(totals)) return;
  const now = Date.now();
  spend.budgets.forEach((budget, i) => known.total(budget.id, bucketOf(budget, spend.at), Number(totals[i]), now));
}

/**
 * Writes back, in one transaction: statuses and spend kept while Redis was
 * away (newer than anything there), then what the store knew before, merged —
 * statuses Redis has none of, and each spend bucket raised to the largest
 * total known — for a Redis that restarted empty. Clears `pending` and
 * resolves with how many of `spends` (the oldest first) were written.
 */
export async function writeBack(
  client: Redis,
  names: Names,
  scripts: readonly Script[],
  known: KnownState,
  pending: Map<string, PendingStatus>,
  spends: readonly { origin: string; spend: StoreSpend }[],
): Promise<number> {
  const now = Date.now();
  const statuses = [...pending.values()];
  const tx = client.multi();
  for (const { lua } of [...scripts, SPEND_SCRIPT, MERGE_SCRIPT, RESTORE_SCRIPT]) tx.script('LOAD', lua);
  for (const entry of statuses) tx.hset(entry.hash, entry.field, entry.value).publish(names.channel, entry.message);
  let first = scripts.length + 3 + 2 * statuses.length;
  const restore: string[] = [];
  for (const { field, value, message } of known.statuses(now)) restore.push(field, value, message);
  if (restore.length > 0) {
    tx.evalsha(RESTORE_SCRIPT.sha, 1, `${names.prefix}keys`, names.channel, ...restore);
    first++;
  }
  for (const { ref, buckets } of known.spend(now)) {
    const head = `${JSON.stringify({ o: names.id, c: { kind: 'spend', budgets: [ref.id] } }).slice(0, -2)},"nanos":`;
    const hash = spendHash(names, ref.id);
    tx.evalsha(MERGE_SCRIPT.sha, 2, hash, `${hash}:bases`, names.channel, head, spendTtlMs(ref), MERGE_WINDOW_MS, ...buckets.flat());
    first++;
  }
  for (const { origin, spend } of spends) {
    const { keys, args } = spendCall(names, origin, spend);
    tx.evalsha(SPEND_SCRIPT.sha, keys.length, ...keys, ...args);
  }
  const results = await tx.exec();
  const failed = results?.find(([error]) => error !== null)?.[0];
  if (!results || failed) throw failed ?? new Error('the write-back transaction was discarded');
  spends.forEach(({ spend }, i) => noteTotals(known, spend, results[first + i]?.[1]));
  for (const entry of statuses) if (pending.get(`${entry.hash}\u0000${entry.field}`) === entry) pending.delete(`${entry.hash}\u0000${entry.field}`);
  return spends.length;
}
