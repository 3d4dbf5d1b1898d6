/**
 * The registry of built-in key selectors: the one place a name maps to its
 * factory. Adding a built-in means a class file and one line here; its name,
 * the list of names and the configuration check follow from this map.
 */
import { safeName } from '../config/check';
import { HeadroomSelector } from './headroom';
import { LeastUsedSelector } from './least-used';
import { RandomSelector } from './random';
import { RoundRobinSelector } from './round-robin';
import type { KeySelector } from './selector';
import { WeightedSelector } from './weighted';

/** Built-in selectors by name, in documentation order (`headroom`, the default, first). */
const BUILT_IN_SELECTORS = {
  headroom: () => new HeadroomSelector(),
  'round-robin': () => new RoundRobinSelector(),
  'least-used': () => new LeastUsedSelector(),
  weighted: () => new WeightedSelector(),
  random: () => new RandomSelector(),
} as const satisfies Record<string, () => KeySelector>;

/** Names of the built-in selectors. */
export type KeySelectorName = keyof typeof BUILT_IN_SELECTORS;

/** The built-in selector names, in documentation order. */
export const KEY_SELECTOR_NAMES: readonly KeySelectorName[] = Object.freeze(Object.keys(BUILT_IN_SELECTORS) as KeySelectorName[]);

/** A fresh built-in selector by name, or the given custom one. */
export function createSelector(choice: KeySelectorName | KeySelector): KeySelector {
  if (typeof choice !== 'string') return choice;
  const make = Object.hasOwn(BUILT_IN_SELECTORS, choice) ? BUILT_IN_SELECTORS[choice] : undefined;
  if (make === undefined) throw new TypeError(`keyplex: unknown key selector ${safeName(String(choice))}; expected one of ${KEY_SELECTOR_NAMES.join(', ')}`);
  return make();
}
