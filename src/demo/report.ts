/**
 * The demo's side-by-side table.
 */
import type { KeyplexStats } from '../index';
import type { CostComparison, CostRunSummary } from './cost';
import { percentile, type RunResult } from './workload';

/** The figures of one run, as printed and as `--json` gives them. */
export interface RunSummary {
  label: string;
  requests: number;
  errors: number;
  errorRate: number;
  errorsByKind: Record<string, number>;
  p50Ms: number;
  p99Ms: number;
  throughputRps: number;
  /** Tokens and cost billed upstream (the simulator's own tallies). */
  tokens: number;
  costUsd: number;
  /** `costUsd` ÷ successful requests: what one answered request cost. */
  costPerRequestUsd: number;
  costPerMillionTokensUsd: number;
  failovers: number;
  retries: number;
}

export function summarize(label: string, run: RunResult, billed: { tokens: number; costUsd: number }, stats?: KeyplexStats): RunSummary {
  return {
    label,
    requests: run.requests,
    errors: run.errors,
    errorRate: run.errors / run.requests,
    errorsByKind: run.errorsByKind,
    p50Ms: percentile(run.latenciesMs, 50),
    p99Ms: percentile(run.latenciesMs, 99),
    throughputRps: (run.requests - run.errors) / (run.durationMs / 1000),
    tokens: billed.tokens,
    costUsd: billed.costUsd,
    costPerRequestUsd: run.requests > run.errors ? billed.costUsd / (run.requests - run.errors) : Number.NaN,
    costPerMillionTokensUsd: billed.tokens > 0 ? (billed.costUsd / billed.tokens) * 1e6 : Number.NaN,
    failovers: stats?.totals.failovers ?? 0,
    retries: stats?.totals.retries ?? 0,
  };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('   ')).join('\n');
}

const ms = (v: number) => (Number.isNaN(v) ? '—' : `${v.toFixed(0)} ms`);
const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
const usd = (v: number) => (Number.isNaN(v) ? '—' : `$${v.toFixed(v < 0.01 ? 6 : v < 1 ? 4 : 2)}`);

/** The comparison table. */
export function comparisonTable(runs: RunSummary[]): string {
  return table(comparisonRows(runs));
}

/** The comparison's cells: a header row, then one row per figure. */
export function comparisonRows(runs: RunSummary[]): string[][] {
  const row = (name: string, f: (r: RunSummary) => string) => [name, ...runs.map(f)];
  return [
    ['', ...runs.map((r) => r.label)],
    row('requests', (r) => String(r.requests)),
    row('errors seen by the application', (r) => `${pct(r.errorRate)} (${r.errors})`),
    row('latency p50', (r) => ms(r.p50Ms)),
    row('latency p99', (r) => ms(r.p99Ms)),
    row('throughput (successful req/s)', (r) => r.throughputRps.toFixed(1)),
    row('tokens billed', (r) => String(r.tokens)),
    row('cost per successful request', (r) => usd(r.costPerRequestUsd)),
    row('cost per 1M tokens', (r) => usd(r.costPerMillionTokensUsd)),
    row('total spend (grows with what was served)', (r) => usd(r.costUsd)),
    row('keyplex retries', (r) => String(r.retries)),
    row('keyplex fail-overs', (r) => String(r.failovers)),
  ];
}

/** Per provider and key: what keyplex sent where. */
export function breakdownTable(stats: KeyplexStats): string {
  return table(breakdownRows(stats));
}

/** The breakdown's cells: a header row, then one row per key. */
export function breakdownRows(stats: KeyplexStats): string[][] {
  const rows = [['provider', 'key', 'status', 'attempts', 'ok', 'failed', 'tokens', 'cost']];
  for (const provider of Object.values(stats.providers)) {
    for (const key of provider.keys) {
      const failed = Object.entries(key.failures)
        .map(([kind, n]) => `${n} ${kind}`)
        .join(', ');
      rows.push([provider.id, key.id, key.status, String(key.requests), String(key.successes), failed || '0', String(key.tokens.totalTokens), usd(key.costUsd)]);
    }
  }
  return rows;
}

/** The cost comparison: fixed `gpt-4.1` vs `cost` routing, spend from measured usage, share per model. */
export function costTable(comparison: CostComparison): string {
  return table(costRows(comparison));
}

/** The cost comparison's cells: a header row, then one row per figure. */
export function costRows(comparison: CostComparison): string[][] {
  const runs = comparison.runs;
  const row = (name: string, f: (r: CostRunSummary) => string) => [name, ...runs.map(f)];
  const models = comparison.alias.models;
  return [
    ['', ...runs.map((r) => r.label)],
    row('model asked for', (r) => (r.asked === comparison.alias.name ? `${r.asked} (alias)` : r.asked)),
    row('routing strategy', (r) => r.strategy),
    row('requests', (r) => String(r.requests)),
    row('errors seen by the application', (r) => `${pct(r.errorRate)} (${r.errors})`),
    row('latency p50', (r) => ms(r.p50Ms)),
    row('latency p99', (r) => ms(r.p99Ms)),
    row('tokens (measured usage)', (r) => String(r.tokens)),
    row('spend (sum of success costUsd)', (r) => usd(r.costUsd)),
    row("spend (simulator's bill)", (r) => `${usd(r.billed.costUsd)}${r.billMatches ? '' : ' (differs)'}`),
    row('cost per million tokens', (r) => usd(r.costPerMillionTokensUsd)),
    ...models.map((model) =>
      row(`answered by ${model}`, (r) => {
        const share = r.models.find((m) => m.model === model);
        return share ? `${pct(share.share)} (${share.requests})` : '0.0% (0)';
      }),
    ),
  ];
}
