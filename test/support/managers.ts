/**
 * A manager per test over the given providers, wrapped around the real SDK,
 * with its `success` and `failure` events recorded; every one is closed
 * after its test (the scaffold of test/support/scaffold.ts).
 */
import type { KeyManagerOptions } from '../../src/index';
import type { KeySelector } from '../../src/keys/selector';
import { record } from './events';
import { fakeKey } from './fake-keys';
import { NO_BACKOFF, useManagers } from './scaffold';
import { keyRing } from './upstream';

/** Call at the top of a test file; returns the per-test factory. Restores real timers after each test. */
export function managedClients(providers?: KeyManagerOptions['providers']) {
  const manage = useManagers(providers ? { ...NO_BACKOFF, providers } : NO_BACKOFF);
  return (options: Partial<KeyManagerOptions> = {}) => {
    const made = manage(options);
    return { ...made, success: record(made.manager, 'success'), failure: record(made.manager, 'failure') };
  };
}

/**
 * Options that send every request's first attempt to key `first` and its
 * later ones to `then` (circuits off, so that only the attempts decide):
 * for tests of what a failed first attempt leaves to the second.
 */
export function firstAttemptOn(first: string, then: string): Pick<KeyManagerOptions, 'keySelection' | 'circuitBreaker'> {
  const keySelection: KeySelector = { select: (keys, ctx) => keys.find((k) => k.id === (ctx.attempt === 1 ? first : then)) ?? keys[0] };
  return { keySelection, circuitBreaker: false };
}

/**
 * Call at the top of a test file: one provider `one` at `baseURL` of keys
 * `a` and `b` (`ring`), a manager per test over it (`manage`), and
 * `OPTIONS` sending every request's first attempt to `a`, later ones to
 * `b`: for tests of what a failed first attempt leaves to the next key.
 */
export function failoverPair(baseURL: string) {
  const ring = keyRing('a', 'b');
  return { ring, manage: managedClients({ one: { baseURL, keys: ring.keys } }), OPTIONS: firstAttemptOn('a', 'b') };
}

/**
 * Call at the top of a test file: a manager per test over one provider at
 * `baseURL` (one key, `openai`) with a 100 USD overall daily budget, and
 * `spent()`: the totals' cost and output tokens and the first budget's spend.
 */
export function spendingManagers(baseURL: string) {
  const manage = useManagers({
    ...NO_BACKOFF,
    providers: { openai: { baseURL, keys: [fakeKey('openai')] } },
    budgets: [{ scope: { overall: true }, limitUsd: 100, window: 'day' }],
  });
  return (options: Partial<KeyManagerOptions> = {}) => {
    const made = manage(options);
    const spent = () => {
      const stats = made.manager.stats();
      return { costUsd: stats.totals.costUsd, budgetUsd: stats.budgets[0]!.spentUsd, outputTokens: stats.totals.tokens.outputTokens };
    };
    return { ...made, spent };
  };
}
