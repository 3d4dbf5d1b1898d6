/** `budgets`: spend caps, whose provider and key scopes must name configured ones. */
import { ConfigError } from '../../errors';
import { budgetsProblem, type BudgetOptions } from '../../usage/budget/index';
import { assertNoProblem, safeName } from '../check';
import type { ResolvedProvider } from '../options';

/**
 * Validates `budgets` and copies them. A budget scoped to a provider, or to a
 * key, that is not configured would never apply: it is refused, naming the
 * field and listing what is configured.
 */
export function resolveBudgets(raw: unknown, providers: readonly ResolvedProvider[]): BudgetOptions[] {
  assertNoProblem(budgetsProblem(raw));
  if (raw === undefined) return [];
  const budgets = (raw as BudgetOptions[]).map((budget) => ({ ...budget }));
  budgets.forEach((budget, index) => {
    const scope = budget.scope;
    if (!('provider' in scope)) return;
    const provider = providers.find((p) => p.id === scope.provider);
    if (provider === undefined) {
      throw new ConfigError(
        `budgets[${index}].scope.provider`,
        `expected a configured provider (${providers.map((p) => safeName(p.id)).join(', ')}); got ${safeName(scope.provider)}, which would never apply`,
      );
    }
    if ('keyId' in scope && !provider.keys.some((key) => key.id === scope.keyId)) {
      throw new ConfigError(
        `budgets[${index}].scope.keyId`,
        `expected the id of a key of provider ${safeName(provider.id)} (${provider.keys.map((key) => safeName(key.id)).join(', ')}); got ${safeName(scope.keyId)}, which would never apply`,
      );
    }
  });
  return budgets;
}
