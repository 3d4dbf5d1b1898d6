/**
 * The demo's cost-routing run: the same prompts through keyplex twice — every
 * request asking for `gpt-4.1`, then every request asking for an alias of the
 * four models with the `cost` routing strategy — with the spend of each taken
 * from measured usage (the `success` events' `costUsd`) and cross-checked
 * against the simulator's own bill.
 */
import OpenAI from 'openai';
import { KeyManager, type KeyManagerOptions, type RoutingOptions } from '../index';
import { DEMO_MODELS } from './setup';
import { percentile, runWorkload, type WorkItem } from './workload';

/** The alias the cost-routed workload asks for. */
export const COST_ALIAS = 'chat';
/** The model every request of the fixed run asks for. */
export const FIXED_MODEL = 'gpt-4.1';

/** The routing of the cost-routed run: `cost` over an alias of the four demo models. */
export const COST_ROUTING: RoutingOptions = {
  strategy: 'cost',
  aliases: { [COST_ALIAS]: [...DEMO_MODELS] },
};

/** What one public model served in a run (from the `attempt` event's `deploymentModel`). */
export interface ModelShare {
  model: string;
  /** Successful requests this model answered. */
  requests: number;
  /** `requests` ÷ the run's successful requests. */
  share: number;
  /** Tokens of those replies (measured usage). */
  tokens: number;
  /** Their cost, USD (sum of the `success` events' `costUsd`). */
  costUsd: number;
}

/** The figures of one run of the cost comparison, as printed and as `--json` gives them. */
export interface CostRunSummary {
  label: string;
  /** The model name the workload asked for. */
  asked: string;
  /** The routing strategy of the run. */
  strategy: string;
  requests: number;
  errors: number;
  errorRate: number;
  p50Ms: number;
  p99Ms: number;
  throughputRps: number;
  /** Tokens of the successful replies, from the `success` events' usage. */
  tokens: number;
  /** Spend from measured usage: the sum of the `success` events' `costUsd`. */
  costUsd: number;
  /** Successful replies keyplex could not price (`costUsd: null`); 0 in the demo. */
  unpricedReplies: number;
  costPerMillionTokensUsd: number;
  /** The simulator's own bill for the run (its tallies), to cross-check `tokens` and `costUsd`. */
  billed: { tokens: number; costUsd: number };
  /** Whether `costUsd` and the simulator's bill agree (to a millionth of their size). */
  billMatches: boolean;
  /** Per public model of the alias (every one listed, in alias order), what it answered. */
  models: ModelShare[];
}

/** The cost comparison: fixed `gpt-4.1`, then `cost` routing over the alias. */
export interface CostComparison {
  alias: { name: string; models: string[] };
  /** `fixed gpt-4.1`, then `cost routing`. */
  runs: CostRunSummary[];
  /** 1 − cost-routed spend ÷ fixed spend. */
  savings: number;
}

export interface CostRunContext {
  /** keyplex's providers for the simulated world. */
  providers: () => KeyManagerOptions['providers'];
  /** Resets the simulator's state and tallies. */
  reset: () => void;
  /** The simulator's bill since the last reset. */
  billed: () => { tokens: number; costUsd: number };
  concurrency: number;
  progress: (label: string, total: number) => (done: number, errors: number) => void;
}

/** The same prompts (`items`, whatever models they name) asking for `model`. */
function asking(items: readonly WorkItem[], model: string): WorkItem[] {
  return items.map((item) => ({ ...item, model }));
}

async function costRun(
  context: CostRunContext,
  label: string,
  items: readonly WorkItem[],
  routing: KeyManagerOptions['routing'],
): Promise<CostRunSummary> {
  context.reset();
  const manager = new KeyManager({ providers: context.providers(), retry: { maxAttempts: 5 }, ...(routing ? { routing } : {}) });
  // The model that served a request is the deployment of its last attempt.
  const deploymentOf = new Map<string, string>();
  const byModel = new Map<string, ModelShare>(DEMO_MODELS.map((model) => [model, { model, requests: 0, share: 0, tokens: 0, costUsd: 0 }]));
  let tokens = 0;
  let costUsd = 0;
  let unpricedReplies = 0;
  let successes = 0;
  manager.on('attempt', (e) => deploymentOf.set(e.requestId, e.deploymentModel ?? e.model ?? '?'));
  manager.on('failure', (e) => deploymentOf.delete(e.requestId));
  manager.on('success', (e) => {
    const model = deploymentOf.get(e.requestId) ?? e.model ?? '?';
    deploymentOf.delete(e.requestId);
    const used = e.usage?.totalTokens ?? 0;
    successes++;
    tokens += used;
    if (e.costUsd === null) unpricedReplies++;
    else costUsd += e.costUsd;
    let share = byModel.get(model);
    if (!share) byModel.set(model, (share = { model, requests: 0, share: 0, tokens: 0, costUsd: 0 }));
    share.requests++;
    share.tokens += used;
    share.costUsd += e.costUsd ?? 0;
  });
  const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
  let run;
  try {
    run = await runWorkload(client, items, context.concurrency, context.progress(label, items.length));
  } finally {
    await manager.close();
  }
  const billed = context.billed();
  for (const share of byModel.values()) share.share = successes > 0 ? share.requests / successes : 0;
  return {
    label,
    asked: items[0]?.model ?? '',
    strategy: typeof routing?.strategy === 'string' ? routing.strategy : 'ordered',
    requests: run.requests,
    errors: run.errors,
    errorRate: run.errors / run.requests,
    p50Ms: percentile(run.latenciesMs, 50),
    p99Ms: percentile(run.latenciesMs, 99),
    throughputRps: (run.requests - run.errors) / (run.durationMs / 1000),
    tokens,
    costUsd,
    unpricedReplies,
    costPerMillionTokensUsd: tokens > 0 ? (costUsd / tokens) * 1e6 : Number.NaN,
    billed,
    billMatches: unpricedReplies === 0 && billed.tokens === tokens && Math.abs(billed.costUsd - costUsd) <= 1e-6 * Math.max(billed.costUsd, costUsd, 1e-9),
    models: [...byModel.values()],
  };
}

/**
 * Runs the prompts of `items` through keyplex twice: each asking for
 * `gpt-4.1` (default routing), then each asking for the alias `chat` with the
 * `cost` strategy. Each run gets a fresh manager and a reset simulator.
 */
export async function runCostComparison(context: CostRunContext, items: readonly WorkItem[]): Promise<CostComparison> {
  const fixed = await costRun(context, `fixed ${FIXED_MODEL}`, asking(items, FIXED_MODEL), undefined);
  const routed = await costRun(context, 'cost routing', asking(items, COST_ALIAS), COST_ROUTING);
  return {
    alias: { name: COST_ALIAS, models: [...DEMO_MODELS] },
    runs: [fixed, routed],
    savings: fixed.costUsd > 0 ? 1 - routed.costUsd / fixed.costUsd : Number.NaN,
  };
}
