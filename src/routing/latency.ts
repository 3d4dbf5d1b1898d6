import { describe } from '../config/check';
import { DEFAULT_EWMA_HALF_LIFE_MS } from './ewma';
import type { DeploymentView, RouteContext, RoutingStrategy } from './view';

/**
 * The latency the `latency` strategy ranks `d` by for `ctx`: for streams the
 * time to first token when measured, else the full latency; `undefined` when
 * neither applies yet.
 */
export function rankingLatency(d: DeploymentView, ctx: Pick<RouteContext, 'stream'>): number | undefined {
  return ctx.stream && d.ttftMs !== undefined ? d.ttftMs : d.latencyMs;
}

/** When to measure again a deployment that others outrank (see {@link LatencyStrategy}). */
export interface RemeasureOptions {
  /** Time in ms it has not been first for. Default 60 000 (the latency average's half-life). */
  afterMs?: number;
  /** Requests that went elsewhere first meanwhile. Default 20. */
  afterRequests?: number;
}

/** Deployments (per ranking: full latency, time to first token) whose idleness is kept before it is all dropped (bounds memory under arbitrary model names). */
const MAX_TRACKED = 10_000;

/** Since when a deployment has not been first, and how many requests went elsewhere first meanwhile. */
interface Idle {
  since: number;
  passed: number;
}

/**
 * Fastest first, by the EWMA latency ({@link rankingLatency}). Deployments not
 * measured yet go FIRST, so each one is tried and measured once instead of
 * never being explored; ties (and unmeasured ones among themselves) keep
 * configuration order.
 *
 * An average moves only when its deployment is tried, so one that turned
 * slow and then recovered would never be tried again while another is
 * faster than its old figure. A measured deployment that has not been first
 * for `remeasure.afterMs` (default a minute) while at least
 * `remeasure.afterRequests` (default 20) requests went elsewhere first goes
 * first once, to be measured again (the longest waiting one, when several
 * may): one request a minute under heavy traffic, at most one in 21 under
 * light, and its traffic comes back once it is fast again.
 *
 * Note for wiring: a deployment stays "unmeasured" until a sample is
 * recorded, so feed failures and timeouts as samples too (their elapsed time)
 * or a deployment that only ever fails keeps being explored first (its
 * circuit breaker still bounds that).
 */
export class LatencyStrategy implements RoutingStrategy {
  readonly #afterMs: number;
  readonly #afterRequests: number;
  /** By ranking, provider and upstream model. */
  readonly #idle = new Map<string, Idle>();

  /** @throws {RangeError} for a negative or non-numeric `afterMs` or `afterRequests`. */
  constructor(remeasure: RemeasureOptions = {}) {
    const { afterMs = DEFAULT_EWMA_HALF_LIFE_MS, afterRequests = 20 } = remeasure;
    if (!(afterMs >= 0)) throw new RangeError(`keyplex: LatencyStrategy remeasure.afterMs must be a number of ms >= 0; got ${describe(afterMs)}`);
    if (!(afterRequests >= 0)) throw new RangeError(`keyplex: LatencyStrategy remeasure.afterRequests must be a number >= 0; got ${describe(afterRequests)}`);
    this.#afterMs = afterMs;
    this.#afterRequests = afterRequests;
  }

  order(deployments: readonly DeploymentView[], ctx: RouteContext): DeploymentView[] {
    const result = deployments.slice().sort((a, b) => {
      const la = rankingLatency(a, ctx);
      const lb = rankingLatency(b, ctx);
      if (la === undefined) return lb === undefined ? 0 : -1;
      if (lb === undefined) return 1;
      return la - lb || 0;
    });
    if (result.length > 1) this.#remeasure(result, ctx);
    return result;
  }

  /** Moves to the front the measured deployment that has waited longest past its turn to be measured again, if any. */
  #remeasure(result: DeploymentView[], ctx: RouteContext): void {
    const now = Date.now();
    let chosen = -1;
    let chosenIdle: Idle | undefined;
    for (let i = 0; i < result.length; i++) {
      const d = result[i]!;
      // Unmeasured ones are first already, and measured when tried.
      if (rankingLatency(d, ctx) === undefined) continue;
      const idle = this.#idleOf(d, ctx, now);
      if (i === 0) {
        idle.since = now;
        idle.passed = 0;
      } else {
        if (idle.passed >= this.#afterRequests && now - idle.since >= this.#afterMs && (chosenIdle === undefined || idle.since < chosenIdle.since)) {
          chosen = i;
          chosenIdle = idle;
        }
        idle.passed++;
      }
    }
    if (chosenIdle === undefined) return;
    chosenIdle.since = now;
    chosenIdle.passed = 0;
    result.unshift(result.splice(chosen, 1)[0]!);
  }

  #idleOf(d: DeploymentView, ctx: RouteContext, now: number): Idle {
    const key = `${ctx.stream && d.ttftMs !== undefined ? 't' : 'l'}\u0000${d.provider}\u0000${d.upstreamModel}`;
    let idle = this.#idle.get(key);
    if (idle === undefined) {
      if (this.#idle.size >= MAX_TRACKED) this.#idle.clear();
      idle = { since: now, passed: 0 };
      this.#idle.set(key, idle);
    }
    return idle;
  }
}
