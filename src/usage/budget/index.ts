/**
 * Spend caps: {@link Budgets} (`budgets.ts`) checks, holds and records spend;
 * `types.ts` holds the public types, `validate.ts` the option checks,
 * `scope.ts` what a budget counts, `window.ts` its calendar or rolling window.
 */
export { Budgets, budgetExceededError } from './budgets';
export { budgetsProblem } from './validate';
export type * from './types';
