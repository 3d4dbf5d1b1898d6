import type { DeploymentView, RouteContext, RoutingStrategy } from './view';

/**
 * The latency the `latency` strategy ranks `d` by for `ctx`: for streams the
 * time to first token when measured, else the full latency; `undefined` when
 * neither applies yet.
 */
export function rankingLatency(d: DeploymentView, ctx: Pick<RouteContext, 'stream'>): number | undefined {
  return ctx.stream && d.ttftMs !== undefined ? d.ttftMs : d.latencyMs;
}

/**
 * Fastest first, by the EWMA latency ({@link rankingLatency}). Deployments not
 * measured yet go FIRST, so each one is tried and measured once instead of
 * never being explored; ties (and unmeasured ones among themselves) keep
 * configuration order.
 *
 * Note for wiring: a deployment stays "unmeasured" until a sample is
 * recorded, so feed failures and timeouts as samples too (their elapsed time)
 * or a deployment that only ever fails keeps being explored first (its
 * circuit breaker still bounds that).
 */
export class LatencyStrategy implements RoutingStrategy {
  order(deployments: readonly DeploymentView[], ctx: RouteContext): DeploymentView[] {
    const result = deployments.slice();
    return result.sort((a, b) => {
      const la = rankingLatency(a, ctx);
      const lb = rankingLatency(b, ctx);
      if (la === undefined) return lb === undefined ? 0 : -1;
      if (lb === undefined) return 1;
      return la - lb || 0;
    });
  }
}
