/**
 * The GenAI client metrics (`gen_ai.client.token.usage`,
 * `gen_ai.client.operation.duration`, `gen_ai.client.operation.time_to_first_chunk`,
 * with the conventions' bucket boundaries) and keyplex's own: cost, retries,
 * fail-overs, lane rejections, and observable gauges of keys by status,
 * circuits by state, lanes and budgets read from `stats()` at each collection.
 */
import type { Attributes, BatchObservableResult, Meter, Observable } from '@opentelemetry/api';
import type { BackgroundSettledEvent, FailoverEvent, FailureEvent, KeyCooldownEvent, KeyDisabledEvent, LaneRejectedEvent, RetryEvent, SuccessEvent } from '../events';
import { operationName, secondsOf, type ModelLabels, type ProviderInfo } from '../telemetry/labels';
import { summarise, type ObservedManager } from '../telemetry/state';
import { ATTR } from './attributes';
import type { OtelApi } from './api';

const TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];
const SECONDS_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];

export class Metrics {
  readonly #providers: ReadonlyMap<string, ProviderInfo>;
  readonly #models: ModelLabels;
  readonly #tokens;
  readonly #duration;
  readonly #firstChunk;
  readonly #cost;
  readonly #retries;
  readonly #failovers;
  readonly #rejections;
  readonly #cooldowns;
  readonly #disabled;
  readonly #gauges: Observable[];
  readonly #observe: (result: BatchObservableResult) => void;
  readonly #meter: Meter;

  constructor({ ValueType }: OtelApi, meter: Meter, manager: ObservedManager, providers: ReadonlyMap<string, ProviderInfo>, models: ModelLabels) {
    this.#meter = meter;
    this.#providers = providers;
    this.#models = models;
    this.#tokens = meter.createHistogram('gen_ai.client.token.usage', {
      description: 'Number of input and output tokens used.',
      unit: '{token}',
      valueType: ValueType.INT,
      advice: { explicitBucketBoundaries: TOKEN_BUCKETS },
    });
    this.#duration = meter.createHistogram('gen_ai.client.operation.duration', {
      description: 'GenAI operation duration (a request through keyplex, all attempts included).',
      unit: 's',
      advice: { explicitBucketBoundaries: SECONDS_BUCKETS },
    });
    this.#firstChunk = meter.createHistogram('gen_ai.client.operation.time_to_first_chunk', {
      description: 'Time to receive the first chunk of a streamed reply, from the request reaching keyplex.',
      unit: 's',
      advice: { explicitBucketBoundaries: SECONDS_BUCKETS },
    });
    this.#cost = meter.createCounter('keyplex.client.cost', { description: 'Spend of successful replies whose price is known, USD.', unit: 'USD' });
    this.#retries = meter.createCounter('keyplex.client.retries', { description: 'Attempts that failed and were retried.', unit: '{attempt}' });
    this.#failovers = meter.createCounter('keyplex.client.failovers', { description: 'Attempts that moved to another provider.', unit: '{attempt}' });
    this.#rejections = meter.createCounter('keyplex.lane.rejections', { description: 'Requests refused at a full or closed lane.', unit: '{request}' });
    this.#cooldowns = meter.createCounter('keyplex.key.cooldowns', { description: 'Keys cooled down after a 429.', unit: '{key}' });
    this.#disabled = meter.createCounter('keyplex.key.disabled', { description: 'Keys taken out of use, by reason.', unit: '{key}' });
    const keys = meter.createObservableGauge('keyplex.keys', { description: 'Keys by provider and status (active, cooling, disabled).', unit: '{key}', valueType: ValueType.INT });
    const circuits = meter.createObservableGauge('keyplex.circuits', { description: 'Circuits by scope, provider and state.', unit: '{circuit}', valueType: ValueType.INT });
    const running = meter.createObservableGauge('keyplex.lane.running', { description: 'Requests holding a lane slot.', unit: '{request}', valueType: ValueType.INT });
    const queued = meter.createObservableGauge('keyplex.lane.queued', { description: 'Requests waiting for a lane slot.', unit: '{request}', valueType: ValueType.INT });
    const capacity = meter.createObservableGauge('keyplex.lane.concurrency', { description: "The lane's concurrency.", unit: '{request}', valueType: ValueType.INT });
    const spent = meter.createObservableGauge('keyplex.budget.spent', { description: "Spend in the budget's current window.", unit: 'USD' });
    const limit = meter.createObservableGauge('keyplex.budget.limit', { description: "The budget's cap.", unit: 'USD' });
    const inFlight = meter.createObservableGauge('keyplex.requests.in_flight', { description: 'Requests waiting for an answer.', unit: '{request}', valueType: ValueType.INT });
    this.#gauges = [keys, circuits, running, queued, capacity, spent, limit, inFlight];
    this.#observe = (result) => {
      const state = summarise(manager.stats());
      for (const { labels, value } of state.keys) result.observe(keys, value, { [ATTR.keyplexProvider]: labels.provider, [ATTR.keyStatus]: labels.status });
      for (const { labels, value } of state.circuits) {
        result.observe(circuits, value, { [ATTR.circuitScope]: labels.scope, [ATTR.keyplexProvider]: labels.provider, [ATTR.circuitState]: labels.state });
      }
      for (const lane of state.lanes) {
        const attributes = { [ATTR.lane]: lane.lane };
        result.observe(running, lane.running, attributes);
        result.observe(queued, lane.queued, attributes);
        result.observe(capacity, lane.concurrency, attributes);
      }
      for (const budget of state.budgets) {
        result.observe(spent, budget.spentUsd, { [ATTR.budget]: budget.budget });
        result.observe(limit, budget.limitUsd, { [ATTR.budget]: budget.budget });
      }
      result.observe(inFlight, state.inFlight);
    };
    meter.addBatchObservableCallback(this.#observe, this.#gauges);
  }

  /** Attributes every GenAI metric carries; models bounded by {@link ModelLabels}. */
  #common(operation: string, provider: string | undefined, model: string | undefined, responseModel: string | undefined): Attributes {
    const attributes: Attributes = { [ATTR.operation]: operation };
    if (provider !== undefined) {
      const info = this.#providers.get(provider);
      attributes[ATTR.provider] = info?.name ?? provider;
      if (info?.address !== undefined) attributes[ATTR.serverAddress] = info.address;
      if (info?.port !== undefined) attributes[ATTR.serverPort] = info.port;
    }
    const requested = this.#models.label(model);
    if (requested !== undefined) attributes[ATTR.requestModel] = requested;
    const responded = this.#models.label(responseModel);
    if (responded !== undefined) attributes[ATTR.responseModel] = responded;
    return attributes;
  }

  success(operation: string, e: SuccessEvent): void {
    const attributes = this.#common(operation, e.provider, e.model, e.upstreamModel);
    if (e.usage) {
      this.#tokens.record(e.usage.inputTokens, { ...attributes, [ATTR.tokenType]: 'input' });
      this.#tokens.record(e.usage.outputTokens, { ...attributes, [ATTR.tokenType]: 'output' });
    }
    this.#duration.record(secondsOf(e.latencyMs), attributes);
    if (e.ttftMs !== undefined) this.#firstChunk.record(secondsOf(e.ttftMs), attributes);
    if (e.costUsd !== null) this.#cost.add(e.costUsd, attributes);
  }

  /** A background response's usage and cost, known once it ended (its create's success reported none). */
  background(e: BackgroundSettledEvent): void {
    const attributes = this.#common(operationName('/responses'), e.provider, e.model, e.upstreamModel);
    this.#tokens.record(e.usage.inputTokens, { ...attributes, [ATTR.tokenType]: 'input' });
    this.#tokens.record(e.usage.outputTokens, { ...attributes, [ATTR.tokenType]: 'output' });
    if (e.costUsd !== null) this.#cost.add(e.costUsd, attributes);
  }

  failure(operation: string, e: FailureEvent): void {
    const attributes = this.#common(operation, e.error.attempts.at(-1)?.provider, e.model, undefined);
    attributes[ATTR.errorType] = e.error.code;
    this.#duration.record(secondsOf(e.latencyMs), attributes);
  }

  retry(e: RetryEvent): void {
    this.#retries.add(1, { [ATTR.keyplexProvider]: e.provider, [ATTR.errorType]: e.reason });
  }

  failover(e: FailoverEvent): void {
    this.#failovers.add(1, { 'keyplex.failover.from_provider': e.from.provider, 'keyplex.failover.to_provider': e.to.provider, [ATTR.failoverReason]: e.reason });
  }

  rejected(e: LaneRejectedEvent): void {
    this.#rejections.add(1, { [ATTR.lane]: e.lane, 'keyplex.lane.rejection_reason': e.reason });
  }

  cooldown(e: KeyCooldownEvent): void {
    this.#cooldowns.add(1, { [ATTR.keyplexProvider]: e.provider });
  }

  disabled(e: KeyDisabledEvent): void {
    this.#disabled.add(1, { [ATTR.keyplexProvider]: e.provider, 'keyplex.key.disabled_reason': e.reason });
  }

  close(): void {
    this.#meter.removeBatchObservableCallback(this.#observe, this.#gauges);
  }
}
