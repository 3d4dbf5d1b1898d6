/**
 * A real headless browser for the report test: Debian's Chromium
 * (`apt-get install chromium`, /usr/bin/chromium) driven by playwright-core,
 * which never downloads a browser of its own.
 *
 * Where no Chromium exists the test skips, and says so loudly; with
 * `KEYPLEX_REQUIRE_BROWSER=1` (set by `.ci/run`) a missing browser fails it.
 */
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';

const REQUIRED = process.env.KEYPLEX_REQUIRE_BROWSER === '1';

/** The Chromium binary: `$CHROMIUM` when set (and present), else Debian's /usr/bin/chromium when present. */
export const CHROMIUM = ((path) => (existsSync(path) ? path : undefined))(process.env.CHROMIUM || '/usr/bin/chromium');

/**
 * The flags this machine needs (see the machine notes): headless, no sandbox
 * (root), no GPU, and none of Chromium's background connections, which a
 * closed network refuses.
 */
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Whether the browser tests can run here. Logs a banner when they cannot; throws when they must. */
export function browserAvailable(suite: string): boolean {
  if (CHROMIUM !== undefined) return true;
  if (REQUIRED) throw new Error(`${suite}: KEYPLEX_REQUIRE_BROWSER=1 but no Chromium was found at /usr/bin/chromium (install Debian's chromium, or set CHROMIUM).`);
  console.warn(
    `\n${'!'.repeat(78)}\n!! ${suite}: SKIPPED — no Chromium found (/usr/bin/chromium, $CHROMIUM).\n` +
      `!! Install it (apt-get install chromium) to run the browser tests; CI always runs them.\n${'!'.repeat(78)}\n`,
  );
  return false;
}

/** What a page did while it loaded: console errors, page errors, every request and the failed ones. */
export interface PageLog {
  consoleErrors: string[];
  pageErrors: string[];
  requests: string[];
  failedRequests: string[];
}

/** A headless browser with a fresh profile; `close()` ends it. */
export interface HeadlessBrowser {
  /** Opens a local file in a new page of `width`×`height`, waits until it loaded, and reports what happened. */
  open(file: string, viewport?: { width: number; height: number }): Promise<{ page: Page; log: PageLog }>;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<HeadlessBrowser> {
  if (CHROMIUM === undefined) throw new Error('no Chromium (check browserAvailable first)');
  // playwright-core starts it with a new empty profile of its own (a temporary --user-data-dir).
  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 });
  return {
    async open(file, viewport = { width: 1100, height: 900 }) {
      const page = await browser.newPage({ viewport, deviceScaleFactor: 1 });
      const log: PageLog = { consoleErrors: [], pageErrors: [], requests: [], failedRequests: [] };
      page.on('console', (message) => {
        if (message.type() === 'error' || message.type() === 'warning') log.consoleErrors.push(`${message.type()}: ${message.text()}`);
      });
      page.on('pageerror', (error) => log.pageErrors.push(error.message));
      page.on('request', (request) => log.requests.push(request.url()));
      page.on('requestfailed', (request) => log.failedRequests.push(`${request.url()}: ${request.failure()?.errorText ?? '?'}`));
      await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
      return { page, log };
    },
    async close() {
      await browser.close();
    },
  };
}

/** What the README's picture leaves out of the report: the tables and the folded details. */
const SCREENSHOT_HIDES = '#comparison, table, details, footer, #cost h3, #cost h3 ~ * { display: none !important; }';

/**
 * A PNG of the report for the README: `width` pixels wide, the charts
 * without the tables (hidden by a style added to the page), the whole height.
 */
export async function screenshotReport(browser: HeadlessBrowser, file: string, width = 1000): Promise<Buffer> {
  const { page } = await browser.open(file, { width, height: 800 });
  await page.addStyleTag({ content: SCREENSHOT_HIDES });
  const png = await page.screenshot({ type: 'png', fullPage: true });
  await page.close();
  return png;
}
