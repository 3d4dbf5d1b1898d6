import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

/**
 * `KEYPLEX_OPENAI_SDK=6 npm test` runs the suites against openai@6 (installed
 * as the `openai-v6` alias) instead of the default openai@7, so both peer
 * majors are checked.
 */
const sdk6 = process.env.KEYPLEX_OPENAI_SDK === '6';

export default defineConfig({
  resolve: sdk6 ? { alias: [{ find: /^openai(\/.*)?$/, replacement: 'openai-v6$1' }] } : {},
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    // Generous: on a loaded machine (2 cores, load 5–12) a test that takes 2 s idle can take 15. No
    // assertion depends on speed; the limit only bounds how long a hung test holds its worker.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Vitest's default on 2 cores is one worker, which runs the files one after another (54 s);
    // two take 37 s there.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    restoreMocks: true,
  },
});
