import type { DeploymentView, RouteContext, RoutingStrategy } from './view';

/** Public models whose rotation state is kept before it is all dropped (bounds memory under arbitrary model names). */
const MAX_GROUPS = 10_000;

/** A weight as the rotation counts it: zero, negative and non-finite weights count as 0. */
function weightOf(d: DeploymentView): number {
  const w = d.weight;
  return w > 0 && Number.isFinite(w) ? w : 0;
}

/**
 * Smooth weighted round-robin (as in nginx) over deployments. Over any run of
 * calls the FIRST element follows the weights exactly (weights 5:3:2 put each
 * deployment first 5, 3 and 2 times in every 10 calls) and heavy deployments
 * are interleaved rather than bunched. The rest follow in descending current
 * weight (who is due next), ties in configuration order, so a fail-over goes
 * to the deployment the rotation would have picked next.
 *
 * Deterministic: no randomness, so tests and replays see the same order.
 * Rotation state is kept per `ctx.model` and per deployment (provider ×
 * upstream model), so it survives deployment views being rebuilt per request;
 * a deployment left out of one call (open circuit) keeps its place for later.
 * Weight-0 deployments are never first unless every weight is 0 (then the
 * order is configuration order).
 */
export class WeightedStrategy implements RoutingStrategy {
  /** Current weight by public model, provider, upstream model. */
  readonly #groups = new Map<string, Map<string, Map<string, number>>>();
  /** Scratch, reused across calls: sort keys and positions. */
  readonly #scores: number[] = [];
  readonly #index: number[] = [];
  readonly #byScore = (a: number, b: number): number => this.#scores[b]! - this.#scores[a]! || a - b;

  order(deployments: readonly DeploymentView[], ctx: RouteContext): DeploymentView[] {
    const result = deployments.slice();
    const n = deployments.length;
    if (n < 2) return result;
    let group = this.#groups.get(ctx.model);
    if (group === undefined) {
      if (this.#groups.size >= MAX_GROUPS) this.#groups.clear();
      group = new Map();
      this.#groups.set(ctx.model, group);
    }
    const scores = this.#scores;
    const index = this.#index;
    scores.length = n;
    index.length = n;
    let total = 0;
    let best = 0;
    for (let i = 0; i < n; i++) {
      const d = deployments[i]!;
      const w = weightOf(d);
      let byUpstream = group.get(d.provider);
      if (byUpstream === undefined) {
        byUpstream = new Map();
        group.set(d.provider, byUpstream);
      }
      const current = (byUpstream.get(d.upstreamModel) ?? 0) + w;
      byUpstream.set(d.upstreamModel, current);
      scores[i] = current;
      index[i] = i;
      total += w;
      if (current > scores[best]!) best = i;
    }
    const chosen = deployments[best]!;
    group.get(chosen.provider)!.set(chosen.upstreamModel, scores[best]! - total);
    // The chosen one first; the rest by the current weight they now have.
    scores[best] = Infinity;
    index.sort(this.#byScore);
    for (let i = 0; i < n; i++) result[i] = deployments[index[i]!]!;
    return result;
  }
}
