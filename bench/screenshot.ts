/**
 * `node bench/screenshot.ts <report.html> <out.png> [width]`: a PNG of a demo
 * report (`npm run demo -- --html report.html`), taken in Debian's headless
 * Chromium by the same Playwright code as the report's test
 * (test/support/browser.ts). docs/report.png is made this way:
 *
 *   npm run demo -- --outage --html /tmp/report.html
 *   node bench/screenshot.ts /tmp/report.html docs/report.png
 */
import { writeFileSync } from 'node:fs';
import { browserAvailable, launchBrowser, screenshotReport } from '../test/support/browser.ts';

const [file, out, width] = process.argv.slice(2);
if (!file || !out) {
  console.error('usage: node bench/screenshot.ts <report.html> <out.png> [width, default 1000]');
  process.exit(2);
}
if (!browserAvailable('bench/screenshot.ts')) process.exit(1);
const browser = await launchBrowser();
try {
  const png = await screenshotReport(browser, file, width ? Number(width) : undefined);
  writeFileSync(out, png);
  console.error(`wrote ${out} (${(png.length / 1024).toFixed(0)} kB)`);
} finally {
  await browser.close();
}
