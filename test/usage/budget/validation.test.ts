import { describe, expect, test } from 'vitest';
import { ConfigError } from '../../../src/errors';
import { Budgets, budgetsProblem } from '../../../src/usage/budget';
import type { BudgetOptions } from '../../../src/usage/budget';

const ok = { scope: { overall: true }, limitUsd: 10, window: 'day' };
const one = (patch: Record<string, unknown>): unknown[] => [{ ...ok, ...patch }];
const without = (field: string): unknown[] => {
  const copy: Record<string, unknown> = { ...ok };
  delete copy[field];
  return [copy];
};

describe('budgetsProblem', () => {
  test.each<[string, unknown]>([
    ['no budgets option', undefined],
    ['an empty list', []],
    [
      'every scope, window, mode and onExceeded',
      [
        { scope: { overall: true }, limitUsd: 10, window: 'minute' },
        { scope: { provider: 'openai' }, limitUsd: 10, window: 'hour', mode: 'rolling' },
        { scope: { provider: 'openai', keyId: 'k1' }, limitUsd: 0.5, window: 'day', mode: 'calendar', onExceeded: 'cheaper' },
        { scope: { model: 'gpt-4.1' }, limitUsd: 1_000_000, window: 'month', onExceeded: 'reject' },
        { id: 'nightly', scope: { tag: 'batch' }, limitUsd: 0.000000001, window: 'month' },
        { scope: { overall: true }, limitUsd: 10, window: 'minute', mode: 'rolling' },
      ],
    ],
  ])('accepts %s', (_, raw) => {
    expect(budgetsProblem(raw)).toBeUndefined();
  });

  test.each<[string, unknown, string, RegExp]>([
    ['a non-array', { overall: 10 }, 'budgets', /expected an array of budgets.*got an object/],
    ['a non-object entry', [null], 'budgets[0]', /expected a budget object.*got null/],
    ['an unknown field', one({ limit: 5 }), 'budgets[0].limit', /known budget field \(did you mean `limitUsd`\?\)/],
    ['a missing scope', without('scope'), 'budgets[0].scope', /got undefined/],
    ['a string scope', one({ scope: 'overall' }), 'budgets[0].scope', /got the string "overall"/],
    ['an empty scope', one({ scope: {} }), 'budgets[0].scope', /got an empty object/],
    ['an unknown scope field', one({ scope: { region: 'eu' } }), 'budgets[0].scope.region', /unknown scope field/],
    ['overall not true', one({ scope: { overall: false } }), 'budgets[0].scope.overall', /expected true; got false/],
    ['overall with another field', one({ scope: { overall: true, tag: 'x' } }), 'budgets[0].scope', /with other fields/],
    ['two scope kinds', one({ scope: { model: 'gpt-4.1', tag: 'x' } }), 'budgets[0].scope', /`model` and `tag` together/],
    ['a provider with a model', one({ scope: { provider: 'openai', model: 'gpt-4.1' } }), 'budgets[0].scope', /together/],
    ['a keyId without provider', one({ scope: { keyId: 'k1' } }), 'budgets[0].scope.provider', /provider of `keyId`/],
    ['an empty provider', one({ scope: { provider: '' } }), 'budgets[0].scope.provider', /got an empty string/],
    ['a numeric keyId', one({ scope: { provider: 'openai', keyId: 3 } }), 'budgets[0].scope.keyId', /never the key itself.*got 3/],
    ['a non-string model', one({ scope: { model: null } }), 'budgets[0].scope.model', /got null/],
    ['a tag with a control character', one({ scope: { tag: 'a\nb' } }), 'budgets[0].scope.tag', /control characters/],
    ['an overlong tag', one({ scope: { tag: 'x'.repeat(201) } }), 'budgets[0].scope.tag', /a string of 201 characters/],
    ['a missing limitUsd', without('limitUsd'), 'budgets[0].limitUsd', /got undefined/],
    ['a zero limitUsd', one({ limitUsd: 0 }), 'budgets[0].limitUsd', /above 0.*got 0/],
    ['a negative limitUsd', one({ limitUsd: -5 }), 'budgets[0].limitUsd', /got -5/],
    ['a NaN limitUsd', one({ limitUsd: Number.NaN }), 'budgets[0].limitUsd', /got NaN/],
    ['an infinite limitUsd', one({ limitUsd: Number.POSITIVE_INFINITY }), 'budgets[0].limitUsd', /got Infinity/],
    ['a string limitUsd', one({ limitUsd: '10' }), 'budgets[0].limitUsd', /got the string "10"/],
    ['a limitUsd below a nano-dollar', one({ limitUsd: 1e-12 }), 'budgets[0].limitUsd', /at least 0.000000001/],
    ['a limitUsd above a million', one({ limitUsd: 2_000_000 }), 'budgets[0].limitUsd', /at most 1000000/],
    ['a missing window', without('window'), 'budgets[0].window', /'minute', 'hour', 'day', 'month'; got undefined/],
    ['an unknown window', one({ window: 'week' }), 'budgets[0].window', /got the string "week"/],
    ['an unknown mode', one({ mode: 'sliding' }), 'budgets[0].mode', /'calendar', 'rolling'/],
    ['an unknown onExceeded', one({ onExceeded: 'warn' }), 'budgets[0].onExceeded', /'reject', 'cheaper'/],
    ['an empty id', one({ id: '' }), 'budgets[0].id', /got an empty string/],
    ['a numeric id', one({ id: 7 }), 'budgets[0].id', /got 7/],
    ['a repeated id', [{ ...ok, id: 'cap' }, { ...ok, window: 'hour', id: 'cap' }], 'budgets[1].id', /unique id; got 'cap', the id of budgets\[0\]/],
    ['a repeated derived id', [ok, { ...ok, limitUsd: 20 }], 'budgets[1].id', /'overall\/day' \(derived from scope and window\)/],
    ['the first problem of a later entry', [ok, { ...ok, limitUsd: -1 }], 'budgets[1].limitUsd', /got -1/],
  ])('reports %s', (_, raw, field, problem) => {
    const found = budgetsProblem(raw);
    expect(found?.field).toBe(field);
    expect(found?.problem).toMatch(problem);
  });

  test('the same scope and window in calendar and rolling mode get different derived ids', () => {
    expect(budgetsProblem([ok, { ...ok, mode: 'rolling' }])).toBeUndefined();
  });

  test('the Budgets constructor throws a ConfigError naming the field', () => {
    const bad = [ok, { ...ok, window: 'week' }] as unknown as BudgetOptions[];
    expect(() => new Budgets(bad, () => {})).toThrow(ConfigError);
    expect(() => new Budgets(bad, () => {})).toThrow(expect.objectContaining({ field: 'budgets[1].window', code: 'invalid_config' }));
  });
});
