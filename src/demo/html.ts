/**
 * The demo's HTML report (`keyplex-demo --html report.html`): one
 * self-contained page — inline CSS and SVG, no script, no request to
 * anywhere (its Content-Security-Policy forbids them) — with the latency
 * distribution of each run, each key's load over the keyplex run with its
 * cooldowns, disables and circuit openings, and the spend per model.
 */
import { costRoutingChart, keyLoadChart, latencyChart, modelCostChart, type LatencySeries } from './charts';
import { breakdownRows, comparisonRows, costRows } from './report';
import type { DemoResult } from './run';
import { DEMO_MODELS, OUTAGE_TEXT } from './setup';
import { esc } from './svg';
import { percentile } from './workload';

/** The colour of each run, by label; others get grey. */
const RUN_COLORS: Record<string, string> = { 'single key': '#e07a5f', 'same keys, plain SDK': '#8d99ae', keyplex: '#1d6fa5' };

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1f2933;background:#fff;margin:0 auto;padding:20px 28px;max-width:1040px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:26px 0 6px;border-bottom:1px solid #e4e7eb;padding-bottom:4px}
p.lead,p.note{color:#52606d;margin:4px 0 10px}
svg{display:block;width:100%;height:auto;max-width:1000px}
svg text{font-size:12px;fill:#1f2933}svg .tick{fill:#52606d;font-size:11px}svg .axis-label{fill:#52606d;font-size:12px}
svg .grid{stroke:#e4e7eb}svg .axis{stroke:#9aa5b1}svg .ok{fill:#4c8bbf}svg .failed{fill:#d1495b}svg .swatch{stroke:#0002}
table{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}
th,td{padding:3px 10px;border-bottom:1px solid #e4e7eb;text-align:right}th:first-child,td:first-child{text-align:left}
thead th{border-bottom:2px solid #9aa5b1}
details summary{cursor:pointer;color:#52606d;margin:6px 0}
footer{margin-top:28px;color:#7b8794;font-size:12px}
`;

/** An HTML table from cells: the first row is the header. */
function htmlTable(rows: string[][], className?: string): string {
  const [head, ...body] = rows;
  const cells = (row: string[], tag: 'td' | 'th') => row.map((c) => `<${tag}>${esc(c)}</${tag}>`).join('');
  return `<table${className ? ` class="${className}"` : ''}><thead><tr>${cells(head ?? [], 'th')}</tr></thead><tbody>${body.map((r) => `<tr>${cells(r, 'td')}</tr>`).join('')}</tbody></table>`;
}

function latencySection(result: DemoResult, latencies: number[][]): string {
  const series: LatencySeries[] = result.runs.map((run, i) => ({ label: run.label, color: RUN_COLORS[run.label] ?? '#7b8794', latenciesMs: latencies[i] ?? [], requests: run.requests }));
  const ms = (v: number) => (Number.isNaN(v) ? '—' : `${v.toFixed(0)} ms`);
  const rows = [
    ['', 'answered', 'p50', 'p90', 'p99', 'slowest'],
    ...series.map((s) => [s.label, `${s.latenciesMs.length} of ${s.requests}`, ...[50, 90, 99, 100].map((p) => ms(percentile(s.latenciesMs, p)))]),
  ];
  return `<section id="latency"><h2>Latency distribution: single key, same keys through the plain SDK, keyplex</h2>
<p class="note">Each curve is the share of <em>all</em> the run's requests answered within the time on the x axis (log scale). A run whose requests fail never reaches 100%: its curve levels off at the share it answered.</p>
${latencyChart(series)}
${htmlTable(rows, 'percentiles')}</section>`;
}

function keysSection(result: DemoResult): string {
  const timeline = result.recording!.timeline;
  const count = (kind: string, one: string, many: string) => {
    const n = timeline.marks.filter((m) => m.kind === kind).length;
    return `${n} ${n === 1 ? one : many}`;
  };
  return `<section id="keys"><h2>Each key's load over the keyplex run</h2>
<p class="note">One row per key, grouped by provider. Bars: attempts that ended in each slice of time, answered (blue) or failed (red). Shaded: a key cooling down after a rate limit (${count('cooldown', 'cooldown', 'cooldowns')}), a circuit open (${count('circuit-open', 'opening', 'openings')}; a provider's deployment circuit is drawn on each of its keys); hatched from a red line: a key disabled for good (${count('disabled', 'key', 'keys')}). Hover a mark for its details.</p>
${keyLoadChart(timeline)}
<details><summary>Where keyplex sent the requests, per key</summary>${htmlTable(breakdownRows(result.keyplexStats))}</details></section>`;
}

function costSection(result: DemoResult): string {
  const costs = [...result.recording!.timeline.costs].sort((a, b) => rank(a.model) - rank(b.model));
  const routing = result.cost
    ? `<h3>The same prompts for a fixed model, then cost routing over an alias</h3>
<p class="note">Spend of each run from measured usage, split by the model that answered.${Number.isFinite(result.cost.savings) ? ` Cost routing spent ${(result.cost.savings * 100).toFixed(1)}% less.` : ''}</p>
${costRoutingChart(result.cost)}
<details><summary>The cost comparison's figures</summary>${htmlTable(costRows(result.cost))}</details>`
    : '';
  return `<section id="cost"><h2>Cost per model</h2>
<p class="note">What each model's answers cost in the keyplex run (the sum of the <code>success</code> events' <code>costUsd</code>), with the requests it answered and its cost per 1M tokens.</p>
${modelCostChart(costs)}
${routing}</section>`;
}

function rank(model: string): number {
  const i = (DEMO_MODELS as readonly string[]).indexOf(model);
  return i < 0 ? DEMO_MODELS.length : i;
}

/** The report page of a demo run made with `record: true`. */
export function renderReport(result: DemoResult, generatedAt = new Date()): string {
  if (!result.recording) throw new Error('renderReport needs a demo run made with record: true (the --html option sets it)');
  const { requests, concurrency, faults, rpm, seed } = result.settings;
  const providers = Object.values(result.keyplexStats.providers);
  const keys = providers.reduce((sum, p) => sum + p.keys.length, 0);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>keyplex demo report</title><style>${CSS}</style></head>
<body>
<h1>keyplex demo report</h1>
<p class="lead">${requests} requests, concurrency ${concurrency}, ${(faults * 100).toFixed(1)}% injected faults, ${rpm} requests per minute per key, seed ${seed}. Simulated providers on loopback: ${esc(providers.map((p) => `${p.id} (${p.keys.length} keys)`).join(', '))}: ${keys} keys, one of them revoked.${result.settings.outage ? ` ${OUTAGE_TEXT}` : ''}</p>
${latencySection(result, result.recording.latenciesMs)}
<section id="comparison"><h2>Side by side</h2>${htmlTable(comparisonRows(result.runs), 'comparison')}</section>
${keysSection(result)}
${costSection(result)}
<footer>Written by keyplex-demo at ${esc(generatedAt.toISOString())}. One file: inline CSS and SVG, no script, nothing loaded from the network.</footer>
</body></html>
`;
}
