import type { KeySelector, KeyView, SelectContext } from './selector';

/**
 * Picks the key with the most rate-limit headroom left (share of its request
 * and token windows still free); ties go to the fewest requests in flight,
 * then take turns, so keys with equal room share the load. The default: it
 * spreads load before any key hits its limit, instead of after.
 */
export class HeadroomSelector implements KeySelector {
  readonly #turn = new Map<string, number>();

  select(keys: readonly KeyView[], ctx: SelectContext): KeyView | undefined {
    const n = keys.length;
    if (n === 0) return undefined;
    const turn = this.#turn.get(ctx.provider) ?? 0;
    this.#turn.set(ctx.provider, turn + 1 >= Number.MAX_SAFE_INTEGER ? 0 : turn + 1);
    // Each key's headroom is read once (it reads the key's windows and the clock).
    let best: KeyView | undefined;
    let bestHeadroom = 0;
    for (let i = 0; i < n; i++) {
      const key = keys[(turn + i) % n]!;
      const headroom = key.headroom;
      if (best === undefined || headroom > bestHeadroom || (headroom === bestHeadroom && key.inFlight < best.inFlight)) {
        best = key;
        bestHeadroom = headroom;
      }
    }
    return best;
  }
}
