import { HeadroomSelector } from './headroom';
import { LeastUsedSelector } from './least-used';
import { RandomSelector } from './random';
import { RoundRobinSelector } from './round-robin';
import type { KeySelector, KeySelectorName } from './selector';
import { WeightedSelector } from './weighted';

/** A fresh built-in selector by name, or the given custom one. */
export function createSelector(choice: KeySelectorName | KeySelector): KeySelector {
  if (typeof choice !== 'string') return choice;
  switch (choice) {
    case 'headroom':
      return new HeadroomSelector();
    case 'round-robin':
      return new RoundRobinSelector();
    case 'least-used':
      return new LeastUsedSelector();
    case 'weighted':
      return new WeightedSelector();
    case 'random':
      return new RandomSelector();
  }
}
