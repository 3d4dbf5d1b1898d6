/** Managers wrapped around the real `openai` SDK, closed (and real timers back) after each test. */
import OpenAI from 'openai';
import { afterEach, vi } from 'vitest';
import { KeyManager, type KeyManagerOptions } from '../../src/index';

/** Registers the after-each cleanup in the calling test file; returns `manage(options)`. */
export function managedClients(): (options: KeyManagerOptions) => { manager: KeyManager; client: OpenAI } {
  const managers: KeyManager[] = [];
  afterEach(async () => {
    await Promise.all(managers.splice(0).map((m) => m.close()));
    vi.useRealTimers();
  });
  return (options) => {
    const manager = new KeyManager(options);
    managers.push(manager);
    return { manager, client: manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' })) };
  };
}
