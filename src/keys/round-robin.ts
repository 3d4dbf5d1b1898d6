import type { KeySelector, KeyView, SelectContext } from './selector';

/**
 * Takes the usable keys of each provider in turn: the key after the one it
 * chose last time, or the first offered when that one is not among them
 * (disabled, cooling, or outside the batch a large pool offered).
 */
export class RoundRobinSelector implements KeySelector {
  readonly #last = new Map<string, KeyView>();

  select(keys: readonly KeyView[], ctx: SelectContext): KeyView | undefined {
    const last = this.#last.get(ctx.provider);
    const index = last === undefined ? -1 : keys.indexOf(last);
    const chosen = keys[(index + 1) % keys.length];
    if (chosen !== undefined) this.#last.set(ctx.provider, chosen);
    return chosen;
  }
}
