/**
 * `npm run bench -- --html`: the demo's self-contained HTML report, for the
 * bench's own record, in bench/out/report.html (ignored by git). It is the
 * built `keyplex-demo` (dist/demo.js) run with `--html`, with the Anthropic
 * outage on so that circuits open: latency distributions of one key, the
 * same keys through the plain SDK and keyplex; each key's load with its
 * cooldowns, disables and circuit openings; spend per model.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Writes the report to `path` (a file URL or path); `quick`: a shorter run. Returns whether it worked. */
export function writeHtmlReport(path: URL, quick: boolean): boolean {
  const demo = fileURLToPath(new URL('../dist/demo.js', import.meta.url));
  const args = [demo, '--html', fileURLToPath(path), '--outage', '--requests', quick ? '200' : '600', '--seed', '42'];
  // The demo's tables go to stderr with the bench's log; stdout stays the bench's.
  const run = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  return run.status === 0;
}
