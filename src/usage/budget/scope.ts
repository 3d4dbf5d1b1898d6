/** A budget's scope at run time: what it counts, its default id, and whether a request falls under it. */
import type { StoreBudgetRef } from '../../store/types';
import type { BudgetScope, RequestBudgetInfo } from './types';
import { ROLLING_BUCKETS, ROLLING_WINDOW_MS, type BudgetMode, type BudgetWindow, type SpendWindow } from './window';

export enum Kind {
  Overall,
  Provider,
  Key,
  Model,
  Tag,
}

/** One configured budget and its running state. */
export interface Budget {
  readonly id: string;
  readonly scope: BudgetScope;
  readonly kind: Kind;
  /** Provider, model or tag. */
  readonly a: string;
  /** Key id. */
  readonly b: string;
  readonly limitUsd: number;
  readonly limit: number;
  readonly window: BudgetWindow;
  readonly mode: BudgetMode;
  readonly onExceeded: 'reject' | 'cheaper';
  spend: SpendWindow;
  /** How a shared store keeps its spend. */
  readonly shared: StoreBudgetRef;
  /** Nano-dollars held by requests in flight. */
  held: number;
  /** Whether the next crossing fires an event. */
  armed: boolean;
}

/** A budget as a shared store keeps it: buckets of a 60th of its window, kept a window long (31 days for a calendar month). */
export function sharedRef(id: string, window: BudgetWindow, mode: BudgetMode): StoreBudgetRef {
  const length = ROLLING_WINDOW_MS[window];
  return { id, bucketMs: length / ROLLING_BUCKETS, windowMs: mode === 'calendar' && window === 'month' ? 31 * 86_400_000 : length };
}

export function kindOf(scope: BudgetScope): { kind: Kind; a: string; b: string } {
  if ('overall' in scope) return { kind: Kind.Overall, a: '', b: '' };
  if ('keyId' in scope) return { kind: Kind.Key, a: scope.provider, b: scope.keyId };
  if ('provider' in scope) return { kind: Kind.Provider, a: scope.provider, b: '' };
  if ('model' in scope) return { kind: Kind.Model, a: scope.model, b: '' };
  return { kind: Kind.Tag, a: scope.tag, b: '' };
}

export function copyScope(scope: BudgetScope): BudgetScope {
  if ('overall' in scope) return { overall: true };
  if ('keyId' in scope) return { provider: scope.provider, keyId: scope.keyId };
  if ('provider' in scope) return { provider: scope.provider };
  if ('model' in scope) return { model: scope.model };
  return { tag: scope.tag };
}

/** The id of a budget that gives none, e.g. `provider:openai/hour`, `model:gpt-4.1/rolling-day`. */
export function defaultId(scope: BudgetScope, window: BudgetWindow, mode: BudgetMode): string {
  const period = mode === 'rolling' ? `rolling-${window}` : window;
  if ('overall' in scope) return `overall/${period}`;
  if ('keyId' in scope) return `key:${scope.provider}/${scope.keyId}/${period}`;
  if ('provider' in scope) return `provider:${scope.provider}/${period}`;
  if ('model' in scope) return `model:${scope.model}/${period}`;
  return `tag:${scope.tag}/${period}`;
}

/** Whether the budget counts a request with this info. */
export function applies(budget: Budget, info: RequestBudgetInfo): boolean {
  switch (budget.kind) {
    case Kind.Overall:
      return true;
    case Kind.Provider:
      return info.provider === budget.a;
    case Kind.Key:
      return info.provider === budget.a && info.keyId === budget.b;
    case Kind.Model:
      return info.model === budget.a;
    case Kind.Tag:
      return info.tags?.includes(budget.a) === true;
  }
}

