/**
 * Counters kept per key, per provider and in total, and their snapshot
 * shape returned by `manager.stats()`.
 */
import type { CacheStats } from '../cache/types';
import type { FailureKind, KeyplexErrorCode } from '../errors';
import type { CircuitState } from '../resilience/breaker/index';
import type { LaneStats } from '../resilience/bulkhead';
import type { BudgetStats } from './budget';
import type { KeyLimits } from '../resilience/rate-limit/index';
import { LatencyHistogram, percentilesOf, type Percentiles } from './histogram';
import type { Usage } from './usage';

/** Counts of one scope (a key, a provider, or all requests). */
export interface Counters<F extends string = FailureKind> {
  /** Keys and providers: attempts sent. Totals: requests received. */
  requests: number;
  successes: number;
  /** Failures: attempts by {@link FailureKind} for keys and providers; requests by error code for totals. */
  failures: Partial<Record<F, number>>;
  /** Tokens of successful replies (`cachedInputTokens`: cache reads; `cacheWriteTokens`: cache writes). */
  tokens: Usage;
  /** Spend in USD of successful replies whose price is known. */
  costUsd: number;
  /** Successful replies whose cost is unknown (no usage reported, or no price). */
  unpricedReplies: number;
  /** Attempts that followed a failed one (totals and models: requests that needed more than one attempt). */
  retries: number;
  /** Attempts that went to another provider than the attempt before. */
  failovers: number;
}

/** Latency and time-to-first-token percentiles, in ms (see {@link Percentiles}). */
export interface Timings {
  /** Keys... totals and models: from keyplex receiving the request to the last byte; deployments: one attempt. */
  latencyMs: Percentiles;
  /** Streams: to the first body bytes. */
  ttftMs: Percentiles;
}

const NO_FAILURES: Readonly<Record<string, number>> = Object.freeze({});

/**
 * The counts most scopes never move (failures, cache and reasoning tokens,
 * retries, fail-overs): made at the first, so the thousands of keys that
 * only succeed hold none of it.
 */
class RareCounts {
  failures: Record<string, number> | undefined = undefined;
  cachedInputTokens = 0;
  cacheWriteTokens = 0;
  reasoningTokens = 0;
  retries = 0;
  failovers = 0;
}

/**
 * A sum of costs as reported: rounded to a millionth of a cent, which no price
 * reaches below (a token of the cheapest model costs about 2e-8 USD), so that
 * the float sum's noise (0.1 + 0.2 = 0.30000000000000004) does not show.
 */
function reportedUsd(usd: number): number {
  return Math.round(usd * 1e12) / 1e12;
}

/**
 * Mutable counters; `snapshot()` copies them. Kept small (8 fields, no
 * private methods: one per key): tokens as fields, the rare counts in
 * {@link RareCounts} made at the first.
 */
export class CounterSet<F extends string = FailureKind> implements Counters<F> {
  requests = 0;
  successes = 0;
  #inputTokens = 0;
  #outputTokens = 0;
  #totalTokens = 0;
  costUsd = 0;
  unpricedReplies = 0;
  #rare: RareCounts | undefined;

  /** Tokens of successful replies: a new object each read (change them with {@link spend}). */
  get tokens(): Usage {
    const rare = this.#rare;
    return {
      inputTokens: this.#inputTokens,
      outputTokens: this.#outputTokens,
      cachedInputTokens: rare?.cachedInputTokens ?? 0,
      cacheWriteTokens: rare?.cacheWriteTokens ?? 0,
      reasoningTokens: rare?.reasoningTokens ?? 0,
      totalTokens: this.#totalTokens,
    };
  }

  /** Attempts that followed a failed one. */
  get retries(): number {
    return this.#rare?.retries ?? 0;
  }
  set retries(n: number) {
    (this.#rare ??= new RareCounts()).retries = n;
  }

  /** Attempts that went to another provider than the attempt before. */
  get failovers(): number {
    return this.#rare?.failovers ?? 0;
  }
  set failovers(n: number) {
    (this.#rare ??= new RareCounts()).failovers = n;
  }

  /** Zeroes every counter (for interval reporting). */
  reset(): void {
    this.requests = 0;
    this.successes = 0;
    this.#inputTokens = this.#outputTokens = this.#totalTokens = 0;
    this.costUsd = 0;
    this.unpricedReplies = 0;
    this.#rare = undefined;
  }

  /** Adds `other`'s counts to these (a scope folded into another). */
  absorb(other: CounterSet<F>): void {
    this.requests += other.requests;
    this.successes += other.successes;
    for (const [kind, n] of Object.entries(other.failures) as [string, number][]) {
      const failures = ((this.#rare ??= new RareCounts()).failures ??= {});
      failures[kind] = (failures[kind] ?? 0) + n;
    }
    this.spend(other.tokens, other.costUsd);
    this.unpricedReplies += other.unpricedReplies;
    if (other.retries !== 0) this.retries += other.retries;
    if (other.failovers !== 0) this.failovers += other.failovers;
  }

  /** Failures by kind (read-only: {@link fail} and {@link absorb} count them). */
  get failures(): Readonly<Partial<Record<F, number>>> {
    return (this.#rare?.failures ?? NO_FAILURES) as Partial<Record<F, number>>;
  }

  fail(kind: F): void {
    const failures = ((this.#rare ??= new RareCounts()).failures ??= {});
    failures[kind] = (failures[kind] ?? 0) + 1;
  }

  succeed(usage: Usage | null, costUsd: number | null): void {
    this.successes++;
    if (costUsd === null) this.unpricedReplies++;
    this.spend(usage, costUsd);
  }

  /** Adds tokens and spend (a success's, or what a failed stream used before it broke). */
  spend(usage: Usage | null, costUsd: number | null): void {
    if (usage) {
      this.#inputTokens += usage.inputTokens;
      this.#outputTokens += usage.outputTokens;
      this.#totalTokens += usage.totalTokens;
      const cacheWrite = usage.cacheWriteTokens ?? 0;
      if (usage.cachedInputTokens !== 0 || cacheWrite !== 0 || usage.reasoningTokens !== 0) {
        const rare = (this.#rare ??= new RareCounts());
        rare.cachedInputTokens += usage.cachedInputTokens;
        rare.cacheWriteTokens += cacheWrite;
        rare.reasoningTokens += usage.reasoningTokens;
      }
    }
    if (costUsd !== null) this.costUsd += costUsd;
  }

  snapshot(): Counters<F> {
    return {
      requests: this.requests,
      successes: this.successes,
      failures: { ...this.failures },
      tokens: this.tokens,
      costUsd: reportedUsd(this.costUsd),
      unpricedReplies: this.unpricedReplies,
      retries: this.retries,
      failovers: this.failovers,
    };
  }
}

/** Counters with latency and time-to-first-token histograms. */
export class TimedCounterSet<F extends string = FailureKind> extends CounterSet<F> {
  /** Made at its first use; `null`: not yet, and compact (sparse) when made. */
  #latency: LatencyHistogram | null | undefined;
  #ttft: LatencyHistogram | null | undefined;

  /** @param compact sparse histograms, for scopes there may be thousands of (keys). Either is made at its first use. */
  constructor(compact = false) {
    super();
    // The flag rides in the unmade histograms' fields: one field less per key.
    this.#latency = this.#ttft = compact ? null : undefined;
  }

  /** Latency, from receiving the request (or sending the attempt) to the last byte. */
  get latency(): LatencyHistogram {
    return (this.#latency ??= new LatencyHistogram(this.#latency === null));
  }

  /** Time to the first body bytes (streams). */
  get ttft(): LatencyHistogram {
    return (this.#ttft ??= new LatencyHistogram(this.#ttft === null));
  }

  override reset(): void {
    super.reset();
    this.#latency?.reset();
    this.#ttft?.reset();
  }

  override absorb(other: TimedCounterSet<F>): void {
    super.absorb(other);
    if (other.#latency) this.latency.absorb(other.#latency);
    if (other.#ttft) this.ttft.absorb(other.#ttft);
  }

  timings(): Timings {
    return { latencyMs: percentilesOf(this.#latency ?? undefined), ttftMs: percentilesOf(this.#ttft ?? undefined) };
  }
}

/** One key in `manager.stats()`: its attempts, with attempt latency and TTFT percentiles. */
export interface KeyStats extends Counters, Timings {
  id: string;
  provider: string;
  weight: number;
  /** `cooling` while a 429 cooldown lasts. */
  status: 'active' | 'cooling' | 'disabled';
  disabledReason: string | undefined;
  /** Time left of the cooldown, 0 when none. */
  cooldownRemainingMs: number;
  inFlight: number;
  /** Its circuit's state; `undefined` when key circuits are off. */
  circuit: CircuitState | undefined;
  /** The rate limits in force and where they come from (configuration, headers, AIMD). */
  limits: KeyLimits;
  /** Share of its rate-limit windows still free, 0..1 (under `rateLimitScope: 'model'`, the lowest of its model windows). */
  headroom: number;
  /**
   * Under `rateLimitScope: 'model'`: its windows per upstream model used so
   * far (what each model's headers stated, its headroom). `limits` above are
   * then the key's configured ones. Absent under scope `'key'`.
   */
  models?: Record<string, { limits: KeyLimits; headroom: number }>;
  /**
   * Upstream models the key answered it cannot use (403/404
   * `model_not_found`: its project has no access, its provider does not
   * serve it), with the time left until it is tried first for them again;
   * absent when none. It stays in use for every other model.
   */
  refusedModels?: Record<string, { remainingMs: number }>;
}

/** One deployment (provider × model) in `manager.stats()`: its attempts. */
export interface DeploymentStats extends Counters, Timings {
  provider: string;
  /** The public model it serves. */
  model: string;
  upstreamModel: string;
  /** Its circuit's state; `undefined` when deployment circuits are off or it has not been used. */
  circuit: CircuitState | undefined;
  inFlight: number;
}

/** One public model (as asked for) in `manager.stats()`: its requests. */
export interface ModelStats extends Counters<KeyplexErrorCode>, Timings {
  model: string;
}

/** One provider in `manager.stats()`: its attempts (with attempt latency and TTFT percentiles) and its keys. */
export interface ProviderStats extends Counters, Timings {
  id: string;
  keys: KeyStats[];
}

/** What `manager.stats()` returns: a copy, safe to keep or serialise. */
export interface KeyplexStats {
  /** Requests received by keyplex, by final outcome. */
  totals: Counters<KeyplexErrorCode> &
    Timings & {
      /** Requests waiting for an answer now. */
      inFlight: number;
    };
  providers: Record<string, ProviderStats>;
  /** Deployments that have seen traffic. */
  deployments: DeploymentStats[];
  /** Public models as asked for (aliases and `auto` under their own names). */
  models: Record<string, ModelStats>;
  /** Bulkhead lanes: running and queued now, capacities, rejections. */
  lanes: Record<string, LaneStats>;
  /** Budgets: spent, held and remaining in the current window. */
  budgets: BudgetStats[];
  /** The response cache (`cache` option): hits, misses, saved cost; absent when it is off. */
  cache?: CacheStats;
}
