/**
 * The scaffolding SDK-level test files share: the KeyManagers a file makes,
 * each closed after the test that made it, and a file's own msw server.
 */
import OpenAI from 'openai';
import { setupServer, type SetupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, vi } from 'vitest';
import { KeyManager, type KeyManagerOptions } from '../../src/index';

/**
 * A list to push each KeyManager a test makes on; all are closed after each
 * test, and real timers restored. Call it once at the top level of the file,
 * before the file's own `afterEach`: after-hooks run last-registered first,
 * so the file's hooks (releasing held replies, say) run before the managers
 * close.
 */
export function closeAfterEach(): KeyManager[] {
  const managers: KeyManager[] = [];
  afterEach(async () => {
    await Promise.all(managers.splice(0).map((m) => m.close()));
    vi.useRealTimers();
  });
  return managers;
}

/** No backoff between attempts: the default of {@link useManagers} (fake timers never advance on their own). */
export const NO_BACKOFF: Partial<KeyManagerOptions> = { retry: { baseDelayMs: 0 } };

/**
 * The one test scaffold: `manage(options)` makes a KeyManager from
 * `defaults` overlaid with `options` (top-level fields replace the
 * defaults'), wraps the real `openai` SDK on it, and closes it after the
 * test (see {@link closeAfterEach}). `defaults` is {@link NO_BACKOFF} unless
 * given; pass `{}` for keyplex's own defaults.
 */
export function useManagers(defaults: Partial<KeyManagerOptions> = NO_BACKOFF, managers: KeyManager[] = closeAfterEach()) {
  return function manage(options: Partial<KeyManagerOptions> = {}) {
    const manager = new KeyManager({ ...defaults, ...options } as KeyManagerOptions);
    managers.push(manager);
    return { manager, client: manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' })) };
  };
}

/**
 * A file's own msw server, listening for the whole file and failing on any
 * request no handler answers. Reset its handlers in the file's `afterEach`.
 */
export function useMsw(): SetupServer {
  const server = setupServer();
  beforeAll(() => server.listen({ onUnhandledFrame: 'error' }));
  afterAll(() => server.close());
  return server;
}
