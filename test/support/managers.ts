/**
 * A manager per test over the given providers, wrapped around the real SDK,
 * with its `success` and `failure` events recorded; every one is closed
 * after its test.
 */
import OpenAI from 'openai';
import { afterEach, vi } from 'vitest';
import { KeyManager, type KeyManagerOptions } from '../../src/index';
import { record } from './events';

/** Call at the top of a test file; returns the per-test factory. Restores real timers after each test. */
export function managedClients(providers: KeyManagerOptions['providers']) {
  const managers: KeyManager[] = [];
  afterEach(async () => {
    vi.useRealTimers();
    await Promise.all(managers.splice(0).map((m) => m.close()));
  });
  return (options: Partial<KeyManagerOptions> = {}) => {
    const manager = new KeyManager({ providers, retry: { baseDelayMs: 0 }, ...options });
    managers.push(manager);
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
    return { manager, client, success: record(manager, 'success'), failure: record(manager, 'failure') };
  };
}
