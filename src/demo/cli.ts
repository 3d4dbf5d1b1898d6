/**
 * `keyplex-demo` (`npm run demo`): one workload, run twice through a real
 * `openai` client — once with a single key on one provider, once through
 * keyplex with every key and provider — against simulated providers on
 * loopback, offline, with no API key. Prints the side-by-side table.
 *
 * With `--real`, the keyplex run targets real providers whose keys are given
 * in the environment (see docs/demo.md); nothing in the test suite does that.
 */
import OpenAI from 'openai';
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { KeyManager } from '../index';
import { COST_ALIAS, FIXED_MODEL } from './cost';
import { renderReport } from './html';
import { breakdownTable, comparisonTable, costTable, summarize } from './report';
import { runDemo, type DemoResult } from './run';
import { OUTAGE_TEXT } from './setup';
import { makeWorkload, runWorkload } from './workload';

const HELP = `keyplex-demo: the same workload through one key and through keyplex, offline;
then the same prompts through keyplex for a fixed gpt-4.1 and with cost routing.

  --requests N      requests per run (default 600)
  --concurrency N   requests in flight (default 24)
  --faults P        injected failure rate per request, 0..1 (default 0.042)
  --rpm N           requests per minute per simulated key (default 240)
  --seed N          seed of the workload and the simulator (default 42)
  --outage          Anthropic answers 503 to 150 of its requests (a provider outage)
  --skip-cost       leave out the cost-routing comparison
  --json            print the results as JSON
  --html FILE       also write a self-contained HTML report (charts) to FILE
  --real            run against real providers from the environment (see docs/demo.md)
  --help            this text`;

function positive(name: string, value: string | undefined, fallback: number, max = Infinity): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n > max) throw new Error(`--${name} expects a number from 0 to ${max}, got '${value}'`);
  return n;
}

function progress(label: string, total: number): (done: number, errors: number) => void {
  const tty = process.stderr.isTTY;
  let last = 0;
  return (done, errors) => {
    const now = performance.now();
    if (done !== total && now - last < (tty ? 100 : 5000)) return;
    last = now;
    const line = `${label}: ${done}/${total} requests, ${errors} errors`;
    process.stderr.write(tty ? `\r${line}${done === total ? '\n' : ''}` : `${line}\n`);
  };
}

/** Real providers from the environment: comma-separated keys per provider. */
function realProviders(): { providers: ConstructorParameters<typeof KeyManager>[0]['providers']; model: string } {
  const spec: { id: string; env: string; baseURL: string; models: Record<string, string> }[] = [
    { id: 'openai', env: 'OPENAI_API_KEYS', baseURL: 'https://api.openai.com/v1', models: { 'gpt-4.1': 'gpt-4.1' } },
    { id: 'anthropic', env: 'ANTHROPIC_API_KEYS', baseURL: 'https://api.anthropic.com/v1', models: { 'claude-sonnet-4.5': 'claude-sonnet-4-5' } },
    { id: 'google', env: 'GEMINI_API_KEYS', baseURL: 'https://generativelanguage.googleapis.com/v1beta/openai', models: { 'gemini-2.5-flash': 'gemini-2.5-flash' } },
    { id: 'deepseek', env: 'DEEPSEEK_API_KEYS', baseURL: 'https://api.deepseek.com/v1', models: { 'deepseek-v3.2': 'deepseek-chat' } },
  ];
  const providers: Record<string, { baseURL: string; keys: string[]; models: Record<string, string> }> = {};
  for (const p of spec) {
    const keys = (process.env[p.env] ?? '').split(',').map((k) => k.trim()).filter(Boolean);
    if (keys.length > 0) providers[p.id] = { baseURL: p.baseURL, keys, models: p.models };
  }
  const first = Object.values(providers)[0];
  if (!first) throw new Error('--real needs keys in OPENAI_API_KEYS, ANTHROPIC_API_KEYS, GEMINI_API_KEYS or DEEPSEEK_API_KEYS (comma-separated)');
  return { providers, model: Object.keys(first.models)[0]! };
}

/** The HTML report of a recorded run, written to `path`. */
function writeReport(path: string, result: DemoResult): void {
  const page = renderReport(result);
  writeFileSync(path, page);
  console.error(`wrote ${resolve(path)} (${(Buffer.byteLength(page) / 1024).toFixed(0)} kB, self-contained: open it in a browser, offline)`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      requests: { type: 'string' },
      concurrency: { type: 'string' },
      faults: { type: 'string' },
      rpm: { type: 'string' },
      seed: { type: 'string' },
      'skip-cost': { type: 'boolean', default: false },
      outage: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      html: { type: 'string' },
      real: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return;
  }
  const requests = Math.round(positive('requests', values.requests, 600, 1_000_000)) || 1;
  const concurrency = Math.round(positive('concurrency', values.concurrency, 24, 4096)) || 1;
  const faults = positive('faults', values.faults, 0.042, 1);
  const rpm = positive('rpm', values.rpm, 240);
  const seed = Math.round(positive('seed', values.seed, 42));

  const html = values.html;
  if (html !== undefined && html.trim() === '') throw new Error('--html expects the path of the file to write, e.g. --html report.html');
  if (html !== undefined && values.real) throw new Error('--html draws the simulated demo (its three runs); it does not apply to --real');
  if (values.real) {
    const { providers, model } = realProviders();
    const items = makeWorkload(requests, [model], seed);
    const manager = new KeyManager({ providers });
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
    const run = await runWorkload(client, items, concurrency, progress('keyplex (real providers)', requests));
    const stats = manager.stats();
    const summary = summarize('keyplex', run, { tokens: stats.totals.tokens.totalTokens, costUsd: stats.totals.costUsd }, stats);
    await manager.close();
    console.log(values.json ? JSON.stringify({ summary, stats }, null, 2) : `${comparisonTable([summary])}\n\n${breakdownTable(stats)}`);
    return;
  }

  const result = await runDemo({ requests, concurrency, faults, rpm, seed, cost: !values['skip-cost'], outage: values.outage, record: html !== undefined, onProgress: progress });
  if (html !== undefined) writeReport(html, result);
  if (values.json) {
    delete result.recording;
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  const providers = Object.values(result.keyplexStats.providers);
  const keys = providers.reduce((n, p) => n + p.keys.length, 0);
  console.log(`\nkeyplex demo — ${requests} requests, concurrency ${concurrency}, ${(faults * 100).toFixed(1)}% injected faults, ${rpm} rpm per key, seed ${seed}`);
  console.log(`Simulated providers on loopback: ${providers.map((p) => `${p.id} (${p.keys.length} keys)`).join(', ')}: ${keys} keys, one of them revoked.${values.outage ? ` ${OUTAGE_TEXT}` : ''}\n`);
  console.log(comparisonTable(result.runs));
  console.log(`
How to read it: 'single key' against 'keyplex' is mostly capacity — one key's rate limit against ${keys} keys on
${providers.length} providers. The like-for-like comparison is the middle column: the same ${keys} keys through the plain SDK
(each request dealt to the next key serving its model, the SDK's own retries on that key). What keyplex adds
over it: the revoked key retired at its first 401, rate limits waited for or steered around, faults retried
on another key or provider. Compare cost per request and per 1M tokens: the total grows with what was served.`);
  console.log('\nWhere keyplex sent the requests:\n');
  console.log(breakdownTable(result.keyplexStats));
  if (result.cost) {
    const { alias, runs, savings } = result.cost;
    const [fixed, routed] = runs;
    console.log(`\nCost routing — the same ${fixed!.requests} prompts through keyplex, every request for ${FIXED_MODEL}, then for the alias`);
    console.log(`'${COST_ALIAS}' (${alias.models.join(', ')}) with routing strategy 'cost'. Spend from measured usage:\n`);
    console.log(costTable(result.cost));
    if (Number.isFinite(savings)) {
      console.log(`\ncost routing spent ${(savings * 100).toFixed(1)}% less than ${FIXED_MODEL} (${usdText(routed!.costUsd)} vs ${usdText(fixed!.costUsd)}).`);
    }
    console.log(`cost routing sends each request to the cheapest deployment with rate-limit room; lower --rpm to see it spill to the next cheapest.`);
    for (const run of runs) {
      if (!run.billMatches) console.log(`note: ${run.label}: keyplex measured ${usdText(run.costUsd)} over ${run.tokens} tokens; the simulator billed ${usdText(run.billed.costUsd)} over ${run.billed.tokens}.`);
    }
  }
}

function usdText(v: number): string {
  return `$${v.toFixed(v < 1 ? 4 : 2)}`;
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
