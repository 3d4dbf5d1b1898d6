/**
 * `keyplex/prometheus`: a KeyManager's figures as Prometheus metrics through
 * `prom-client` (an optional peer dependency, loaded by the first
 * `registerKeyplexMetrics()`: without it that call throws a `MissingPeerError`
 * saying `npm install prom-client`). Counters and histograms follow the
 * events; gauges read `stats()` once per scrape.
 *
 * ```ts
 * import { Registry } from 'prom-client';
 * import { registerKeyplexMetrics, knownModels } from 'keyplex/prometheus';
 * const registry = new Registry();
 * registerKeyplexMetrics(manager, { registry, models: knownModels(options) });
 * // serve `await registry.metrics()` as `registry.contentType` on /metrics
 * ```
 *
 * Label cardinality is bounded: `provider` and `lane` come from the
 * configuration, `outcome` and `reason` from fixed lists, and `model` is a
 * configured name, one of the first `maxModels` other names asked for, or
 * `other`. Keys appear in no label (not even their ids: a pool may hold
 * thousands); per-key figures are in `stats()`.
 */
import type { Gauge as GaugeMetric, Registry } from 'prom-client';
import { ConfigError } from '../errors';
import type { Usage } from '../usage/usage';
import { loadPeer } from '../peer';
import { ModelLabels, secondsOf } from '../telemetry/labels';
import { checkAdapterArgs, listen, summarise, type ObservedManager, type StateSummary } from '../telemetry/state';

export { knownModels, type ModelSource } from '../telemetry/labels';
export type { ObservedManager } from '../telemetry/state';

/** Options of {@link registerKeyplexMetrics}. Every one has a default. */
export interface KeyplexMetricsOptions {
  /** The registry to register in. Default: prom-client's global `register`. */
  registry?: Registry;
  /** Prefix of every metric name. Default `keyplex_`. */
  prefix?: string;
  /** Model names that are always their own `model` label, e.g. `knownModels(options)` of the manager's options. */
  models?: Iterable<string>;
  /** How many other model names (asked for by callers) become `model` labels before the rest read `other`. Default 50. */
  maxModels?: number;
  /** Buckets of the `_seconds` histograms. Default: the OpenTelemetry GenAI conventions' 0.01 s … 81.92 s (doubling). */
  buckets?: number[];
}

/** What {@link registerKeyplexMetrics} returns. */
export interface KeyplexMetrics {
  /** The registry the metrics are in. */
  registry: Registry;
  /** Stops listening and removes the metrics from the registry. Idempotent. */
  close(): void;
}

/** The parts of `prom-client` keyplex uses. */
type PromClient = Pick<typeof import('prom-client'), 'Counter' | 'Gauge' | 'Histogram' | 'register'>;

const SECONDS_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

function checked(manager: unknown, options: KeyplexMetricsOptions): { prefix: string; maxModels: number; buckets: number[] } {
  if (typeof (options as Partial<Registry> | null)?.registerMetric === 'function') {
    throw new ConfigError('options', 'registerKeyplexMetrics() takes an object of options; got a prom-client Registry: pass it as { registry }');
  }
  checkAdapterArgs(manager, options, ['registry', 'prefix', 'models', 'maxModels', 'buckets'], 'registerKeyplexMetrics()');
  const prefix = options.prefix ?? 'keyplex_';
  if (typeof prefix !== 'string' || (prefix !== '' && !METRIC_NAME.test(prefix))) {
    throw new ConfigError('prefix', `expected letters, digits, '_' or ':' not starting with a digit (e.g. 'keyplex_'); got ${JSON.stringify(prefix)}`);
  }
  const maxModels = options.maxModels ?? 50;
  if (!Number.isInteger(maxModels) || maxModels < 0) {
    throw new ConfigError('maxModels', `expected a whole number ≥ 0 of model names kept as labels; got ${String(maxModels)}`);
  }
  const buckets = options.buckets ?? SECONDS_BUCKETS;
  if (!Array.isArray(buckets) || buckets.length === 0 || buckets.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= buckets[i - 1]!))) {
    throw new ConfigError('buckets', 'expected a non-empty array of increasing finite numbers of seconds');
  }
  return { prefix, maxModels, buckets };
}

/**
 * Names the metrics one registration makes. A name the registry holds already
 * (another manager's metrics, this module registered again after a reload, an
 * app metric of that name) removes the ones named so far and throws, so a
 * refused registration leaves nothing behind.
 */
function metricNames(registry: Registry, prefix: string): { named: string[]; name(suffix: string): string } {
  const named: string[] = [];
  return {
    named,
    name(suffix) {
      const name = prefix + suffix;
      if (registry.getSingleMetric(name) !== undefined) {
        for (const done of named) registry.removeSingleMetric(done);
        throw new ConfigError(
          'registry',
          `expected a registry without a metric named '${name}'; it has one: another manager's keyplex metrics, these registered before (a module loaded again), or one of the app's. Call close() on the earlier registration first, or give each manager its own \`registry\` or \`prefix\``,
        );
      }
      named.push(name);
      return name;
    },
  };
}

/**
 * Registers keyplex's metrics for `manager` in a prom-client registry.
 * @throws ConfigError for a malformed option, and (field `registry`, registering nothing) when the registry has a metric of one of the names already.
 * @throws {MissingPeerError} (code `missing_peer`) when `prom-client` is not installed.
 */
export function registerKeyplexMetrics(manager: ObservedManager, options: KeyplexMetricsOptions = {}): KeyplexMetrics {
  const { prefix, maxModels, buckets } = checked(manager, options);
  const prom = loadPeer<PromClient>('prom-client', { entry: 'keyplex/prometheus', needs: 'registerKeyplexMetrics()' });
  const { Counter, Histogram } = prom;
  const registry = options.registry ?? prom.register;
  const models = new ModelLabels(options.models ?? [], maxModels, 'other');
  const names = metricNames(registry, prefix);
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Counter<L>({ name: names.name(name), help, labelNames, registers: [registry] });
  const histogram = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Histogram<L>({ name: names.name(name), help, labelNames, buckets, registers: [registry] });

  const requests = counter('requests_total', 'Requests through keyplex by final outcome (success or an error code).', ['provider', 'model', 'outcome']);
  const duration = histogram('request_duration_seconds', 'From keyplex receiving a request to its last byte, all attempts included.', ['provider', 'model', 'outcome']);
  const firstChunk = histogram('time_to_first_chunk_seconds', 'Streams: from keyplex receiving the request to the first body bytes.', ['provider', 'model']);
  const tokens = counter('tokens_total', 'Tokens of successful replies by type (input includes cache_read and cache_write; output includes reasoning).', ['provider', 'model', 'type']);
  const cost = counter('cost_usd_total', 'Spend of successful replies whose price is known, USD.', ['provider', 'model']);
  const unpriced = counter('unpriced_replies_total', 'Successful replies whose cost is unknown (no usage reported, or no price).', ['provider', 'model']);
  const retries = counter('retries_total', 'Attempts that failed and were retried, by failure kind.', ['provider', 'reason']);
  const failovers = counter('failovers_total', 'Attempts that moved to another provider.', ['from_provider', 'to_provider', 'reason']);
  const cooldowns = counter('key_cooldowns_total', 'Keys cooled down after a 429.', ['provider']);
  const disabled = counter('key_disabled_total', 'Keys taken out of use.', ['provider', 'reason']);
  const transitions = counter('circuit_transitions_total', 'Circuits changing state.', ['scope', 'provider', 'state']);
  const rejections = counter('lane_rejections_total', 'Requests refused at a full or closed lane.', ['lane', 'reason']);
  stateGauges(prom.Gauge, manager, registry, names.name);

  const spent = (labels: { provider: string; model: string }, u: Usage, usd: number | null): void => {
    tokens.inc({ ...labels, type: 'input' }, u.inputTokens);
    tokens.inc({ ...labels, type: 'output' }, u.outputTokens);
    tokens.inc({ ...labels, type: 'cache_read' }, u.cachedInputTokens);
    tokens.inc({ ...labels, type: 'cache_write' }, u.cacheWriteTokens);
    tokens.inc({ ...labels, type: 'reasoning' }, u.reasoningTokens);
    if (usd !== null) cost.inc(labels, usd);
  };
  const stop = listen(manager, {
    success: (e) => {
      const labels = { provider: e.provider, model: models.label(e.model) ?? '' };
      requests.inc({ ...labels, outcome: 'success' });
      duration.observe({ ...labels, outcome: 'success' }, secondsOf(e.latencyMs));
      if (e.ttftMs !== undefined) firstChunk.observe(labels, secondsOf(e.ttftMs));
      // A cost is known only with a usage.
      if (e.usage) spent(labels, e.usage, e.costUsd);
      if (e.costUsd === null) unpriced.inc(labels);
    },
    // A background response's usage, known once it ended (its create's success reported none): no request of its own.
    'background:settled': (e) => spent({ provider: e.provider, model: models.label(e.model) ?? '' }, e.usage, e.costUsd),
    failure: (e) => {
      const labels = { provider: e.error.attempts.at(-1)?.provider ?? '', model: models.label(e.model) ?? '', outcome: e.error.code };
      requests.inc(labels);
      duration.observe(labels, secondsOf(e.latencyMs));
    },
    retry: (e) => retries.inc({ provider: e.provider, reason: e.reason }),
    failover: (e) => failovers.inc({ from_provider: e.from.provider, to_provider: e.to.provider, reason: e.reason }),
    'key:cooldown': (e) => cooldowns.inc({ provider: e.provider }),
    'key:disabled': (e) => disabled.inc({ provider: e.provider, reason: e.reason }),
    'circuit:open': (e) => transitions.inc({ scope: e.scope, provider: e.provider, state: e.to }),
    'circuit:half-open': (e) => transitions.inc({ scope: e.scope, provider: e.provider, state: e.to }),
    'circuit:close': (e) => transitions.inc({ scope: e.scope, provider: e.provider, state: e.to }),
    'lane:rejected': (e) => rejections.inc({ lane: e.lane, reason: e.reason }),
  });

  let closed = false;
  return {
    registry,
    close() {
      if (closed) return;
      closed = true;
      stop();
      for (const name of names.named) registry.removeSingleMetric(name);
    },
  };
}

/** Gauges of keyplex's state, read from `stats()` at most once per scrape. */
function stateGauges(Gauge: PromClient['Gauge'], manager: ObservedManager, registry: Registry, name: (suffix: string) => string): void {
  let cached: StateSummary | undefined;
  const state = (): StateSummary => {
    if (cached === undefined) {
      cached = summarise(manager.stats());
      // A scrape collects every metric in one turn of the event loop; the next one reads afresh.
      setImmediate(() => (cached = undefined));
    }
    return cached;
  };
  const gauge = <L extends string>(suffix: string, help: string, labelNames: readonly L[], fill: (g: GaugeMetric<L>, s: StateSummary) => void) =>
    new Gauge<L>({
      name: name(suffix),
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        fill(this, state());
      },
    });
  gauge('keys', 'Keys by provider and status (active, cooling, disabled).', ['provider', 'status'], (g, s) => {
    for (const { labels, value } of s.keys) g.set(labels, value);
  });
  gauge('circuits', 'Circuits by scope (key, deployment), provider and state (closed, open, half-open).', ['scope', 'provider', 'state'], (g, s) => {
    for (const { labels, value } of s.circuits) g.set(labels, value);
  });
  gauge('lane_running', 'Requests holding a lane slot.', ['lane'], (g, s) => s.lanes.forEach((l) => g.set({ lane: l.lane }, l.running)));
  gauge('lane_queued', 'Requests waiting for a lane slot.', ['lane'], (g, s) => s.lanes.forEach((l) => g.set({ lane: l.lane }, l.queued)));
  gauge('lane_concurrency', "The lane's concurrency.", ['lane'], (g, s) => s.lanes.forEach((l) => g.set({ lane: l.lane }, l.concurrency)));
  gauge('lane_max_queue', "The lane's maximum queue.", ['lane'], (g, s) => s.lanes.forEach((l) => g.set({ lane: l.lane }, l.maxQueue)));
  gauge('budget_spent_usd', "Spend in the budget's current window, USD.", ['budget'], (g, s) => s.budgets.forEach((b) => g.set({ budget: b.budget }, b.spentUsd)));
  gauge('budget_held_usd', 'Estimates of requests in flight held against the budget, USD.', ['budget'], (g, s) => s.budgets.forEach((b) => g.set({ budget: b.budget }, b.heldUsd)));
  gauge('budget_limit_usd', "The budget's cap, USD.", ['budget'], (g, s) => s.budgets.forEach((b) => g.set({ budget: b.budget }, b.limitUsd)));
  gauge('requests_in_flight', 'Requests waiting for an answer.', [], (g, s) => g.set(s.inFlight));
}
