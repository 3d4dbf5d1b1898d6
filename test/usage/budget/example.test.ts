/**
 * examples/budgets.ts run as a user runs it: what it prints of each run of
 * requests and of the spend must be the money spent. Its `keyplex` imports
 * are pointed at the sources, so that it checks this checkout's code with or
 * without a build (`.ci/run` also runs every example against `dist/`).
 */
import { afterEach, expect, test, vi } from 'vitest';

vi.mock('keyplex', () => import('../../../src/index'));
vi.mock('keyplex/testing', () => import('../../../src/testing/index'));

afterEach(() => {
  vi.resetModules();
});

test('examples/budgets.ts prints each run of requests with what it cost, adding up to the spend in all', async () => {
  const lines: string[] = [];
  vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => void lines.push(args.join(' ')));
  await import('../../../examples/budgets');
  const stdout = lines.join('\n');

  const runs = [...stdout.matchAll(/^requests (\d+)-(\d+): (.+), \$([\d.]+) \(spent today: \$([\d.]+)\)$/gm)];
  const total = /\$([\d.]+) spent in all$/m.exec(stdout);
  expect(runs.map((run) => run[3])).toEqual(['gpt-4.1 on openai', 'deepseek-v3.2 on deepseek', 'deepseek-v3.2 on deepseek']);
  for (const run of runs) expect(Number(run[4]), run[0]).toBeGreaterThan(0);
  const sum = runs.reduce((spent, run) => spent + Number(run[4]), 0);
  expect(Number(runs.at(-1)![5])).toBeCloseTo(sum, 5);
  expect(Number(total![1])).toBeCloseTo(sum, 5);
});
