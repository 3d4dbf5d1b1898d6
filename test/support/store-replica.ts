/**
 * Managers on their own RedisStore each (as in their own processes), wrapped
 * around the real SDK and closed after their test; and what a request's
 * outcome is, as a word.
 */
import OpenAI from 'openai';
import { getKeyplexDetails, KeyManager, type KeyManagerOptions } from '../../src/index';
import { RedisStore } from '../../src/store/redis';

/** `'ok'`, or the keyplex error code (else the error as a string) the request failed with. */
export const outcome = (promise: Promise<unknown>): Promise<string> =>
  promise.then(
    () => 'ok',
    (error: unknown) => getKeyplexDetails(error)?.code ?? String(error),
  );

/** A manager on its own store (`retryMs` 50, as tests want outages short), closed by `cleanups`. */
export async function storeReplica(url: string, prefix: string, options: Omit<KeyManagerOptions, 'store'>, cleanups: (() => Promise<void>)[], timeoutMs = 500) {
  const store = new RedisStore({ url, prefix, retryMs: 50, timeoutMs });
  await store.ready();
  const manager = new KeyManager({ ...options, store });
  cleanups.unshift(async () => {
    await manager.close();
    await store.close();
  });
  return { manager, store, client: manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 })) };
}
