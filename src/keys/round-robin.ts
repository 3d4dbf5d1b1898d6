import type { KeySelector, KeyView, SelectContext } from './selector';

/** Takes the usable keys of each provider in turn. */
export class RoundRobinSelector implements KeySelector {
  readonly #cursor = new Map<string, number>();

  select(keys: readonly KeyView[], ctx: SelectContext): KeyView | undefined {
    const next = this.#cursor.get(ctx.provider) ?? 0;
    this.#cursor.set(ctx.provider, next + 1 >= Number.MAX_SAFE_INTEGER ? 0 : next + 1);
    return keys[next % keys.length];
  }
}
