/**
 * Counters kept per key, per provider and in total, and their snapshot
 * shape returned by `manager.stats()`.
 */
import type { FailureKind, KeyplexErrorCode } from '../errors';
import type { CircuitState } from '../resilience/breaker/index';
import type { LaneStats } from '../resilience/bulkhead';
import type { KeyLimits } from '../resilience/rate-limit/index';
import type { Usage } from './usage';

/** Counts of one scope (a key, a provider, or all requests). */
export interface Counters<F extends string = FailureKind> {
  /** Keys and providers: attempts sent. Totals: requests received. */
  requests: number;
  successes: number;
  /** Failures: attempts by {@link FailureKind} for keys and providers; requests by error code for totals. */
  failures: Partial<Record<F, number>>;
  /** Tokens of successful replies. */
  tokens: Usage;
  /** Spend in USD of successful replies whose price is known. */
  costUsd: number;
  /** Successful replies whose cost is unknown (no usage reported, or no price). */
  unpricedReplies: number;
}

/** Mutable counters; `snapshot()` copies them. */
export class CounterSet<F extends string = FailureKind> implements Counters<F> {
  requests = 0;
  successes = 0;
  failures: Partial<Record<F, number>> = {};
  tokens: Usage = { inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, reasoningTokens: 0, totalTokens: 0 };
  costUsd = 0;
  unpricedReplies = 0;

  fail(kind: F): void {
    this.failures[kind] = (this.failures[kind] ?? 0) + 1;
  }

  succeed(usage: Usage | null, costUsd: number | null): void {
    this.successes++;
    if (usage) {
      const t = this.tokens;
      t.inputTokens += usage.inputTokens;
      t.outputTokens += usage.outputTokens;
      t.cachedInputTokens += usage.cachedInputTokens;
      t.reasoningTokens += usage.reasoningTokens;
      t.totalTokens += usage.totalTokens;
    }
    if (costUsd === null) this.unpricedReplies++;
    else this.costUsd += costUsd;
  }

  snapshot(): Counters<F> {
    return {
      requests: this.requests,
      successes: this.successes,
      failures: { ...this.failures },
      tokens: { ...this.tokens },
      costUsd: this.costUsd,
      unpricedReplies: this.unpricedReplies,
    };
  }
}

/** One key in `manager.stats()`. */
export interface KeyStats extends Counters {
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
  /** Share of its rate-limit windows still free, 0..1. */
  headroom: number;
}

/** One deployment (provider × upstream model) in `manager.stats()`. */
export interface DeploymentStats {
  provider: string;
  upstreamModel: string;
  circuit: CircuitState;
}

/** One provider in `manager.stats()`: its attempts and its keys. */
export interface ProviderStats extends Counters {
  id: string;
  keys: KeyStats[];
}

/** What `manager.stats()` returns: a copy, safe to keep or serialise. */
export interface KeyplexStats {
  /** Requests received by keyplex, by final outcome. */
  totals: Counters<KeyplexErrorCode> & {
    /** Attempts that followed a failed one. */
    retries: number;
    /** Attempts that went to another provider than the one before. */
    failovers: number;
    /** Requests waiting for an answer now. */
    inFlight: number;
  };
  providers: Record<string, ProviderStats>;
  /** Deployments whose circuit has seen traffic. */
  deployments: DeploymentStats[];
  /** Bulkhead lanes: running and queued now, capacities, rejections. */
  lanes: Record<string, LaneStats>;
}
