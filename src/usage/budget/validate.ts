/** Validation of the `budgets` option, with the shared toolkit. */
import { describe, isPlainObject, looksSecret, prop, safeName, suggest, unknownFieldProblem, type Problem } from '../../config/check';
import { defaultId } from './scope';
import type { BudgetScope } from './types';
import { toNanos, type BudgetMode, type BudgetWindow } from './window';

const WINDOWS: readonly BudgetWindow[] = ['minute', 'hour', 'day', 'month'];
const MODES: readonly BudgetMode[] = ['calendar', 'rolling'];
const ON_EXCEEDED: readonly ('reject' | 'cheaper')[] = ['reject', 'cheaper'];
const BUDGET_FIELDS = ['id', 'scope', 'limitUsd', 'window', 'mode', 'onExceeded'];
const MAX_LIMIT_USD = 1_000_000;
const MAX_LABEL = 200;
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * Why a `budgets` option is malformed, or undefined when it is fine
 * (`undefined` itself is fine: no budgets). Reports the first problem:
 * `field` is its path, e.g. `budgets[2].limitUsd` or `budgets[0].scope.keyId`;
 * `problem` reads `expected …; got …`. Ids (given or derived) must be unique.
 */
export function budgetsProblem(raw: unknown): Problem | undefined {
  if (raw === undefined) return undefined;
  if (!Array.isArray(raw)) {
    return { field: 'budgets', problem: `expected an array of budgets such as [{ scope: { overall: true }, limitUsd: 10, window: 'day' }]; got ${describe(raw)}` };
  }
  const ids = new Map<string, number>();
  for (let index = 0; index < raw.length; index++) {
    const at = `budgets[${index}]`;
    const entry: unknown = raw[index];
    if (!isPlainObject(entry)) {
      return { field: at, problem: `expected a budget object such as { scope: { overall: true }, limitUsd: 10, window: 'day' }; got ${describe(entry)}` };
    }
    const unknown = unknownFieldProblem(entry, BUDGET_FIELDS, at, 'budget field');
    if (unknown) return unknown;
    const scopeFound = scopeProblem(entry.scope);
    if (scopeFound) return { field: scopeFound.field === '' ? `${at}.scope` : `${at}.scope${scopeFound.field.startsWith('[') ? '' : '.'}${scopeFound.field}`, problem: scopeFound.problem };
    const limit = entry.limitUsd;
    if (typeof limit !== 'number' || !Number.isFinite(limit) || toNanos(limit) < 1 || limit > MAX_LIMIT_USD) {
      return { field: `${at}.limitUsd`, problem: `expected a number of USD above 0 (at least 0.000000001) and at most ${MAX_LIMIT_USD}; got ${describe(limit)}` };
    }
    if (!WINDOWS.includes(entry.window as BudgetWindow)) {
      return { field: `${at}.window`, problem: `expected one of ${WINDOWS.map(quote).join(', ')}; got ${describe(entry.window)}` };
    }
    if (entry.mode !== undefined && !MODES.includes(entry.mode as BudgetMode)) {
      return { field: `${at}.mode`, problem: `expected one of ${MODES.map(quote).join(', ')} (default 'calendar'); got ${describe(entry.mode)}` };
    }
    if (entry.onExceeded !== undefined && !ON_EXCEEDED.includes(entry.onExceeded as 'reject')) {
      return { field: `${at}.onExceeded`, problem: `expected one of ${ON_EXCEEDED.map(quote).join(', ')} (default 'reject'); got ${describe(entry.onExceeded)}` };
    }
    let id: string;
    if (entry.id !== undefined) {
      const found = labelProblem(entry.id, 'a label for events, errors and stats');
      if (found) return { field: `${at}.id`, problem: found };
      id = entry.id as string;
    } else {
      id = defaultId(entry.scope as BudgetScope, entry.window as BudgetWindow, (entry.mode as BudgetMode | undefined) ?? 'calendar');
    }
    const first = ids.get(id);
    if (first !== undefined) {
      return {
        field: `${at}.id`,
        problem: `expected a unique id; got ${quote(id)}${entry.id === undefined ? ' (derived from scope and window)' : ''}, the id of budgets[${first}]. Give one of them an \`id\``,
      };
    }
    ids.set(id, index);
  }
  return undefined;
}

/** Why a scope is malformed; `field` is relative to the scope (`''` for the scope itself). */
function scopeProblem(scope: unknown): Problem | undefined {
  const shapes = '{ overall: true }, { provider }, { provider, keyId }, { model } or { tag }';
  if (!isPlainObject(scope)) return { field: '', problem: `expected one of ${shapes}; got ${describe(scope)}` };
  const keys = Object.keys(scope);
  const fields = ['overall', 'provider', 'keyId', 'model', 'tag'];
  const unknown = keys.find((key) => !fields.includes(key));
  if (unknown !== undefined) {
    const meant = suggest(unknown, fields);
    return { field: prop('', unknown), problem: `expected one of ${shapes}; got an unknown scope field${meant === undefined ? '' : ` (did you mean \`${meant}\`?)`}` };
  }
  if (keys.length === 0) return { field: '', problem: `expected one of ${shapes}; got an empty object` };
  if ('overall' in scope) {
    if (scope.overall !== true) return { field: 'overall', problem: `expected true; got ${describe(scope.overall)}` };
    if (keys.length > 1) return { field: '', problem: `expected one of ${shapes}; got \`overall\` with other fields` };
    return undefined;
  }
  if ('keyId' in scope && !('provider' in scope)) return { field: 'provider', problem: 'expected the provider of `keyId` (key ids are per provider); got none' };
  const named = ['provider', 'model', 'tag'].filter((key) => key in scope);
  if (named.length > 1) return { field: '', problem: `expected one of ${shapes}; got ${named.map((key) => `\`${key}\``).join(' and ')} together` };
  for (const key of keys) {
    const found = labelProblem(scope[key], key === 'keyId' ? 'a key id (never the key itself)' : `a ${key} name`);
    if (found) return { field: key, problem: found };
  }
  return undefined;
}

function labelProblem(value: unknown, expected: string): string | undefined {
  if (typeof value !== 'string' || value === '' || value.length > MAX_LABEL || CONTROL.test(value)) {
    return `expected ${expected}: a non-empty string of at most ${MAX_LABEL} characters without control characters; got ${describe(value)}`;
  }
  return undefined;
}

/** A budget word or id in single quotes, or its length when it could be a secret. */
function quote(value: string): string {
  return looksSecret(value) ? safeName(value) : `'${value}'`;
}
