import type { KeySelector, KeyView } from './selector';

/**
 * Smooth weighted round-robin (as in nginx): over any run of picks each key's
 * share follows its weight, and heavy keys are spread out rather than bunched.
 * Deterministic, so tests and replays see the same order.
 */
export class WeightedSelector implements KeySelector {
  readonly #current = new WeakMap<KeyView, number>();

  select(keys: readonly KeyView[]): KeyView | undefined {
    let total = 0;
    let best: KeyView | undefined;
    let bestScore = -Infinity;
    for (const key of keys) {
      const score = (this.#current.get(key) ?? 0) + key.weight;
      this.#current.set(key, score);
      total += key.weight;
      if (score > bestScore) {
        bestScore = score;
        best = key;
      }
    }
    if (best) this.#current.set(best, bestScore - total);
    return best;
  }
}
