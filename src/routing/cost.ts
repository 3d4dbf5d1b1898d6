import type { DeploymentView, RouteContext, RoutingStrategy } from './view';

/**
 * The estimated USD cost of `ctx` on `d`: input tokens × input price + output
 * tokens × output price (prices per million tokens). `Infinity` when the
 * price is unknown or not a finite number. Prompt-cache discounts are not
 * counted: whether a prompt hits the cache is not known before sending.
 */
export function estimatedCost(d: DeploymentView, ctx: Pick<RouteContext, 'inputTokens' | 'outputTokens'>): number {
  const price = d.price;
  if (price === undefined) return Infinity;
  const cost = (ctx.inputTokens * price.input + ctx.outputTokens * price.output) / 1_000_000;
  return Number.isFinite(cost) ? cost : Infinity;
}

/**
 * Cheapest first, by {@link estimatedCost} of this request (so a model cheap
 * on input but dear on output wins short-answer requests and loses long ones).
 * Deployments of unknown price go last; ties keep configuration order.
 */
export class CostStrategy implements RoutingStrategy {
  order(deployments: readonly DeploymentView[], ctx: RouteContext): DeploymentView[] {
    const result = deployments.slice();
    // Array#sort is stable; Infinity - Infinity is NaN, which counts as a tie.
    return result.sort((a, b) => estimatedCost(a, ctx) - estimatedCost(b, ctx) || 0);
  }
}
