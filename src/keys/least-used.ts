import type { KeySelector, KeyView } from './selector';

/** Picks the key with the fewest requests in flight; ties go to the one used least overall. */
export class LeastUsedSelector implements KeySelector {
  select(keys: readonly KeyView[]): KeyView | undefined {
    let best = keys[0];
    for (let i = 1; i < keys.length; i++) {
      const key = keys[i]!;
      if (key.inFlight < best!.inFlight || (key.inFlight === best!.inFlight && key.requests < best!.requests)) {
        best = key;
      }
    }
    return best;
  }
}
