/** Managers with keyplex's own defaults (backoff included) around the real `openai` SDK, closed (and real timers back) after each test. */
import type OpenAI from 'openai';
import type { KeyManager, KeyManagerOptions } from '../../src/index';
import { useManagers } from './scaffold';

/** Registers the after-each cleanup in the calling test file; returns `manage(options)`. */
export function managedClients(): (options: KeyManagerOptions) => { manager: KeyManager; client: OpenAI } {
  return useManagers({});
}
