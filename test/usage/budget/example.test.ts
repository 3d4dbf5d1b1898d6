/**
 * examples/budgets.ts run as a user runs it (against the built package): what
 * it prints of each run of requests and of the spend must be the money spent.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, test } from 'vitest';

describe('examples/budgets.ts', () => {
  const built = existsSync(fileURLToPath(new URL('../../../dist/index.js', import.meta.url)));
  if (!built) console.warn('examples/budgets.ts imports the built package: run `npm run build` first (CI does); its test is skipped.');

  test.runIf(built)('prints each run of requests with what it cost, adding up to the spend in all', async () => {
    const example = fileURLToPath(new URL('../../../examples/budgets.ts', import.meta.url));
    const { stdout } = await promisify(execFile)(process.execPath, [example], { encoding: 'utf8' });

    const runs = [...stdout.matchAll(/^requests (\d+)-(\d+): (.+), \$([\d.]+) \(spent today: \$([\d.]+)\)$/gm)];
    const total = /\$([\d.]+) spent in all$/m.exec(stdout);
    expect(runs.map((run) => run[3])).toEqual(['gpt-4.1 on openai', 'deepseek-v3.2 on deepseek', 'deepseek-v3.2 on deepseek']);
    for (const run of runs) expect(Number(run[4]), run[0]).toBeGreaterThan(0);
    const sum = runs.reduce((spent, run) => spent + Number(run[4]), 0);
    expect(Number(runs.at(-1)![5])).toBeCloseTo(sum, 5);
    expect(Number(total![1])).toBeCloseTo(sum, 5);
  }, 30_000);
});
