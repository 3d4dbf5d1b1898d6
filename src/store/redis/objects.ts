/**
 * Plain values under the store's prefix, one `GET` or `SET … PX` each (no
 * script, nothing published): the response cache's answers, and where each
 * object kept per project was created (object affinity across replicas):
 * `{prefix}obj:{id}` → `{kind}:{provider}:{keyId}` (fields.ts: the key named
 * by provider and key id as in the statuses hash, never the key).
 */
import type { Redis } from 'ioredis';
import type { Patience } from './timing';

/** The name of object `id`'s home. */
export function objectName(prefix: string, id: string): string {
  return `${prefix}obj:${encodeURIComponent(id)}`;
}

/** The value under `name`: `undefined` when absent, and when Redis fails or is slower than the store's `timeoutMs` (never rejects). */
export async function readValue(client: Redis, patience: Patience, name: string, what: string): Promise<string | undefined> {
  try {
    return (await patience.answer(client.get(name), what)) ?? undefined;
  } catch {
    return undefined;
  }
}

/** Sets `name` to `value` for `ttlMs` (at least 1 ms). */
export function writeValue(client: Redis, name: string, value: string, ttlMs: number): Promise<unknown> {
  return client.set(name, value, 'PX', Math.max(1, Math.ceil(ttlMs)));
}
