/** A test file's msw server (for the simulator) and cleanups, run after each test in order. */
import { setupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll } from 'vitest';

export function mswSuite() {
  const server = setupServer();
  const cleanups: (() => Promise<void>)[] = [];
  beforeAll(() => server.listen({ onUnhandledFrame: 'error' }));
  afterAll(() => server.close());
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
    server.resetHandlers();
  });
  return { server, cleanups };
}
