/** A custom StateStore for tests: shared, answering reservations with `reserve`, doing nothing else. */
import type { StateStore, StoreSession } from '../../src/index';

export function reservingStore(reserve: StoreSession['reserve']): StateStore {
  return {
    open: () => ({
      shared: true,
      reserve,
      adjust: () => {},
      setKey: () => {},
      setCircuit: () => {},
      addSpend: () => {},
      load: () => ({ keys: [], circuits: [], spend: [] }),
      close: async () => {},
    }),
  };
}
