/**
 * The demo's main job, apart from its command line: the same workload through
 * a single key, through the same keys as keyplex's used by the plain SDK
 * (like for like), and through keyplex, against simulated providers on
 * loopback; then the same prompts through keyplex for a fixed `gpt-4.1` and
 * with `cost` routing over an alias of the four models.
 */
import OpenAI from 'openai';
import { KeyManager, type KeyplexStats } from '../index';
import { ProviderSimulator } from '../testing/index';
import { runCostComparison, type CostComparison } from './cost';
import { summarize, type RunSummary } from './report';
import { DEMO_MODELS, demoWorld, type DemoWorld } from './setup';
import { recordTimeline, type Timeline } from './timeline';
import { makeWorkload, runWorkload, type WorkItem } from './workload';

export interface DemoOptions {
  requests: number;
  concurrency: number;
  /** Injected failure rate per request, 0..1. */
  faults: number;
  /** Requests per minute per simulated key. */
  rpm: number;
  seed: number;
  /** Multiplies the simulated latencies (0 for none). Default 1. */
  latencyScale?: number;
  /** The simulated rate window: `rpm` is allowed per this many ms. Default 60000. */
  rateWindowMs?: number;
  /** Run the cost comparison (fixed `gpt-4.1` vs `cost` routing) too. Default true. */
  cost?: boolean;
  /** Requests of each cost-comparison run (its first prompts of the workload). Default `requests`. */
  costRequests?: number;
  /** Anthropic goes down for a while (see `OUTAGE`): circuits open, its model fails over. Default false. */
  outage?: boolean;
  /** Keep what the HTML report draws (`DemoResult.recording`). Default false. */
  record?: boolean;
  onProgress?: (label: string, total: number) => (done: number, errors: number) => void;
}

/** What the HTML report draws, kept with `record: true`. */
export interface DemoRecording {
  /** Each run's latencies of its successful requests (ms), in the order of `runs`. */
  latenciesMs: number[][];
  /** The keyplex run, from its events. */
  timeline: Timeline;
}

export interface DemoResult {
  settings: Omit<DemoOptions, 'onProgress'>;
  /** `single key`, then the same keys as keyplex's through the plain SDK, then `keyplex`. */
  runs: RunSummary[];
  keyplexStats: KeyplexStats;
  /** Fixed `gpt-4.1` vs `cost` routing over the alias `chat`; null with `cost: false`. */
  cost: CostComparison | null;
  /** With `record: true`: what the HTML report draws. */
  recording?: DemoRecording;
}

/** A `fetch` that renames the body's model (public name → the provider's), as an app does by hand without keyplex. */
function renaming(names: Record<string, string>): typeof fetch {
  return (url, init) => {
    if (typeof init?.body !== 'string') return fetch(url, init);
    const parsed = JSON.parse(init.body) as { model: string };
    return fetch(url, { ...init, body: JSON.stringify({ ...parsed, model: names[parsed.model] ?? parsed.model }) });
  };
}

/**
 * Like for like: every key keyplex gets, each in its own plain `openai` client
 * (default retries, on that same key). Requests for a model are dealt to the
 * keys serving it in turn, statically: nothing notices a revoked, rate-limited
 * or failing key, and nothing fails over.
 */
function plainClients(world: DemoWorld, baseURL: (id: string) => string): (item: WorkItem) => OpenAI {
  const byModel = new Map<string, OpenAI[]>();
  for (const provider of Object.values(world.keyplex(baseURL))) {
    const names = provider.models as Record<string, string>;
    for (const key of provider.keys) {
      const client = new OpenAI({ apiKey: typeof key === 'string' ? key : key.key, baseURL: provider.baseURL, fetch: renaming(names) });
      for (const model of Object.keys(names)) byModel.set(model, [...(byModel.get(model) ?? []), client]);
    }
  }
  const dealt = new Map<string, number>();
  return (item) => {
    const clients = byModel.get(item.model)!;
    const n = dealt.get(item.model) ?? 0;
    dealt.set(item.model, n + 1);
    return clients[n % clients.length]!;
  };
}

export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const { requests, concurrency, faults, rpm, seed } = options;
  const progress = options.onProgress ?? (() => () => {});
  const world = demoWorld(rpm, faults, options.latencyScale ?? 1, options.outage ?? false);
  const simulator = new ProviderSimulator({ providers: world.simulator, seed, rateWindowMs: options.rateWindowMs ?? 60_000 });
  const server = await simulator.listen();
  const items = makeWorkload(requests, DEMO_MODELS, seed);
  const billed = () => {
    let tokens = 0;
    let costUsd = 0;
    for (const tally of Object.values(simulator.tallies())) {
      costUsd += tally.costUsd;
      for (const key of Object.values(tally.keys)) tokens += key.tokens;
    }
    return { tokens, costUsd };
  };
  try {
    // 1. One key on one provider: a plain openai client with its default retries.
    //    The gateway names models by vendor, as gateways do.
    const single = new OpenAI({ apiKey: world.single.key, baseURL: server.baseURL(world.single.provider), fetch: renaming(world.gatewayModels) });
    const singleRun = await runWorkload(single, items, concurrency, progress('single key', requests));
    const singleSummary = summarize('single key', singleRun, billed());

    // 2. Like for like: keyplex's keys and providers, through the plain SDK, without keyplex.
    simulator.reset();
    const plainRun = await runWorkload(plainClients(world, server.baseURL), items, concurrency, progress('same keys, plain SDK', requests));
    const plainSummary = summarize('same keys, plain SDK', plainRun, billed());

    // 3. keyplex with every key and provider.
    simulator.reset();
    const manager = new KeyManager({ providers: world.keyplex(server.baseURL), retry: { maxAttempts: 5 } });
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
    const recorder = options.record ? recordTimeline(manager) : undefined;
    const keyplexRun = await runWorkload(client, items, concurrency, progress('keyplex', requests));
    const timeline = recorder?.finish();
    const keyplexStats = manager.stats();
    const keyplexSummary = summarize('keyplex', keyplexRun, billed(), keyplexStats);
    await manager.close();

    // 4. The same prompts through keyplex: a fixed gpt-4.1, then cost routing over an alias.
    const cost =
      options.cost === false
        ? null
        : await runCostComparison(
            { providers: () => world.keyplex(server.baseURL), reset: () => simulator.reset(), billed, concurrency, progress },
            items.slice(0, Math.max(1, Math.min(requests, options.costRequests ?? requests))),
          );
    const { onProgress: _, ...settings } = options;
    const runs = [singleSummary, plainSummary, keyplexSummary];
    const recording = timeline && { latenciesMs: [singleRun, plainRun, keyplexRun].map((r) => r.latenciesMs.map((v) => Math.round(v * 10) / 10)), timeline };
    return { settings, runs, keyplexStats, cost, ...(recording && { recording }) };
  } finally {
    await server.close();
  }
}
