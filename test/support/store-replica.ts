/**
 * Managers on their own RedisStore each (as in their own processes), wrapped
 * around the real SDK and closed after their test; and what a request's
 * outcome is, as a word.
 */
import { randomUUID } from 'node:crypto';
import type { SetupServer } from 'msw/node';
import OpenAI from 'openai';
import { getKeyplexDetails, KeyManager, type KeyManagerOptions } from '../../src/index';
import { RedisStore } from '../../src/store/redis';
import { ProviderSimulator } from '../../src/testing';
import { simulatorHandlers } from '../../src/testing/msw';
import { fakeKey } from './fake-keys';

/** A model priced $1,000 per million tokens: a request of ~20 tokens costs about 2 cents. */
export const PRICED = { model: 'priced', price: { input: 1_000, output: 1_000 } } as const;

/** A chat request to {@link PRICED}'s model. */
export const pricedBody = () => ({ model: PRICED.model, messages: [{ role: 'user' as const, content: 'hello' }], max_tokens: 8 });

/**
 * One key on a simulator (served by `server`) selling {@link PRICED}'s model,
 * managers' options with one overall daily budget of `limitUsd`, and a fresh
 * store prefix named after `name`.
 */
export function pricedSetup(server: SetupServer, name: string, limitUsd: number) {
  const key = fakeKey(name);
  const sim = new ProviderSimulator({ providers: [{ id: 'sim', keys: [{ key }], models: { [PRICED.model]: { price: PRICED.price } } }] });
  server.use(...simulatorHandlers(sim));
  const options = {
    providers: { sim: { baseURL: sim.baseURL('sim'), keys: [key], models: [PRICED.model] } },
    prices: { [PRICED.model]: PRICED.price },
    budgets: [{ scope: { overall: true as const }, limitUsd, window: 'day' as const }],
    deadlineMs: 10_000,
  };
  return { sim, prefix: `${name}:${randomUUID()}:`, options };
}

/** `'ok'`, or the keyplex error code (else the error as a string) the request failed with. */
export const outcome = (promise: Promise<unknown>): Promise<string> =>
  promise.then(
    () => 'ok',
    (error: unknown) => getKeyplexDetails(error)?.code ?? String(error),
  );

/** A manager on its own store (`retryMs` 50, as tests want outages short; `now`: the windows' clock; `failMode` the store's), closed by `cleanups`. */
export async function storeReplica(url: string, prefix: string, options: Omit<KeyManagerOptions, 'store'>, cleanups: (() => Promise<void>)[], timeoutMs = 500, now?: () => number, failMode?: 'open' | 'closed') {
  const store = new RedisStore({ url, prefix, retryMs: 50, timeoutMs, now, failMode });
  await store.ready();
  const manager = new KeyManager({ ...options, store });
  cleanups.unshift(async () => {
    await manager.close();
    await store.close();
  });
  return { manager, store, client: manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 })) };
}
