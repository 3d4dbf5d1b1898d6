import { afterAll, afterEach, beforeAll } from 'vitest';
import { calls, server } from './upstream';

beforeAll(() => server.listen({ onUnhandledFrame: 'error' }));
afterEach(() => {
  server.resetHandlers();
  calls.length = 0;
});
afterAll(() => server.close());
