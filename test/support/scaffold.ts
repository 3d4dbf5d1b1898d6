/**
 * The scaffolding SDK-level test files share: the KeyManagers a file makes,
 * each closed after the test that made it, and a file's own msw server.
 */
import OpenAI from 'openai';
import { setupServer, type SetupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { KeyManager, type KeyManagerOptions } from '../../src/index';

/**
 * A list to push each KeyManager a test makes on; all are closed after each
 * test. Call it once at the top level of the file, before the file's own
 * `afterEach`: after-hooks run last-registered first, so the file's hooks
 * (releasing held replies, say) run before the managers close.
 */
export function closeAfterEach(): KeyManager[] {
  const managers: KeyManager[] = [];
  afterEach(async () => {
    await Promise.all(managers.splice(0).map((m) => m.close()));
  });
  return managers;
}

/**
 * `manage(options)`: a KeyManager with no backoff between attempts
 * (`retry: { baseDelayMs: 0 }` unless `options.retry` is given) and the real
 * `openai` SDK wrapped on it; closed after each test (see {@link closeAfterEach}).
 */
export function useManagers(managers: KeyManager[] = closeAfterEach()) {
  return function manage(options: KeyManagerOptions) {
    const manager = new KeyManager({ retry: { baseDelayMs: 0 }, ...options });
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
