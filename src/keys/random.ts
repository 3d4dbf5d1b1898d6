import type { KeySelector, KeyView } from './selector';

/** Picks a usable key uniformly at random. */
export class RandomSelector implements KeySelector {
  readonly #random: () => number;

  /** @param random a source of numbers in [0, 1); default `Math.random` (inject one for tests). */
  constructor(random: () => number = Math.random) {
    this.#random = random;
  }

  select(keys: readonly KeyView[]): KeyView | undefined {
    return keys[Math.floor(this.#random() * keys.length)];
  }
}
