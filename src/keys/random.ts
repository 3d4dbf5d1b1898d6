import type { KeySelector, KeyView } from './selector';

/** Picks a usable key uniformly at random. */
export class RandomSelector implements KeySelector {
  readonly #random: (() => number) | undefined;

  /** @param random a source of numbers in [0, 1); default `Math.random`, looked up at each pick (inject one for tests). */
  constructor(random?: () => number) {
    this.#random = random;
  }

  select(keys: readonly KeyView[]): KeyView | undefined {
    return keys[Math.floor((this.#random ?? Math.random)() * keys.length)];
  }
}
