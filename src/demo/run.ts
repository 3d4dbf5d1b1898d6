/**
 * The demo's main job, apart from its command line: the same workload through
 * a single key and through keyplex, against simulated providers on loopback;
 * then the same prompts through keyplex for a fixed `gpt-4.1` and with `cost`
 * routing over an alias of the four models.
 */
import OpenAI from 'openai';
import { KeyManager, type KeyplexStats } from '../index';
import { ProviderSimulator } from '../testing/index';
import { runCostComparison, type CostComparison } from './cost';
import { summarize, type RunSummary } from './report';
import { DEMO_MODELS, demoWorld } from './setup';
import { makeWorkload, runWorkload } from './workload';

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
  onProgress?: (label: string, total: number) => (done: number, errors: number) => void;
}

export interface DemoResult {
  settings: Omit<DemoOptions, 'onProgress'>;
  /** `single key`, then `keyplex`. */
  runs: RunSummary[];
  keyplexStats: KeyplexStats;
  /** Fixed `gpt-4.1` vs `cost` routing over the alias `chat`; null with `cost: false`. */
  cost: CostComparison | null;
}

export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const { requests, concurrency, faults, rpm, seed } = options;
  const progress = options.onProgress ?? (() => () => {});
  const world = demoWorld(rpm, faults, options.latencyScale ?? 1);
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
    const gatewayNames = world.gatewayModels;
    const single = new OpenAI({
      apiKey: world.single.key,
      baseURL: server.baseURL(world.single.provider),
      fetch: (url, init) => {
        if (typeof init?.body !== 'string') return fetch(url, init);
        const parsed = JSON.parse(init.body) as { model: string };
        return fetch(url, { ...init, body: JSON.stringify({ ...parsed, model: gatewayNames[parsed.model] ?? parsed.model }) });
      },
    });
    const singleRun = await runWorkload(single, items, concurrency, progress('single key', requests));
    const singleSummary = summarize('single key', singleRun, billed());

    // 2. keyplex with every key and provider.
    simulator.reset();
    const manager = new KeyManager({ providers: world.keyplex(server.baseURL), retry: { maxAttempts: 5 } });
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
    const keyplexRun = await runWorkload(client, items, concurrency, progress('keyplex', requests));
    const keyplexStats = manager.stats();
    const keyplexSummary = summarize('keyplex', keyplexRun, billed(), keyplexStats);
    await manager.close();

    // 3. The same prompts through keyplex: a fixed gpt-4.1, then cost routing over an alias.
    const cost =
      options.cost === false
        ? null
        : await runCostComparison(
            { providers: () => world.keyplex(server.baseURL), reset: () => simulator.reset(), billed, concurrency, progress },
            items.slice(0, Math.max(1, Math.min(requests, options.costRequests ?? requests))),
          );
    const { onProgress: _, ...settings } = options;
    return { settings, runs: [singleSummary, keyplexSummary], keyplexStats, cost };
  } finally {
    await server.close();
  }
}
