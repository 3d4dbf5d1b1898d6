/** A custom StateStore for tests: shared, answering reservations with `reserve`, recording adjustments in `adjusted`, doing nothing else. */
import type { StateStore, StoreSession } from '../../src/index';

export function reservingStore(reserve: StoreSession['reserve'], adjusted?: { requests: number; tokens: number }[]): StateStore {
  return {
    open: () => ({
      shared: true,
      reserve,
      adjust: (_key, _limits, requests, tokens) => void adjusted?.push({ requests, tokens }),
      setKey: () => {},
      setCircuit: () => {},
      addSpend: () => {},
      load: () => ({ keys: [], circuits: [], spend: [] }),
      close: async () => {},
    }),
  };
}
