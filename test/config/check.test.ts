/**
 * The one validation toolkit (src/config/check.ts): plain objects of any
 * realm, descriptions that never quote what could be a key, and names.
 */
import vm from 'node:vm';
import { describe as group, expect, test } from 'vitest';
import { describe, isPlainObject, looksSecret, MAX_TIMER_MS, prop, safeName } from '../../src/config/check';
import { KeyManager, keyplex } from '../../src/index';
import { fakeKey } from '../support/fake-keys';

group('isPlainObject', () => {
  test.each<[string, unknown, boolean]>([
    ['an object literal', {}, true],
    ['Object.create(null)', Object.create(null), true],
    ['an object from another realm', vm.runInNewContext('({ a: 1 })'), true],
    ['an array', [], false],
    ['an array from another realm', vm.runInNewContext('[]'), false],
    ['a Date', new Date(), false],
    ['a class instance', new (class Thing {})(), false],
    ['null', null, false],
    ['a function', () => {}, false],
  ])('%s → %s', (_name, value, expected) => {
    expect(isPlainObject(value)).toBe(expected);
  });
});

group('looksSecret / describe / safeName', () => {
  test.each([
    'gpt-4.1-mini',
    'claude-3-5-sonnet-20241022',
    'gemini-2.5-flash-preview-05-20',
    'meta-llama/Llama-3.3-70B-Instruct-Turbo',
    'contextFallbacks',
    'critical',
    'openai',
    'azure-eastus2',
    'x-request-id',
  ])('%s may be quoted', (name) => {
    expect(looksSecret(name)).toBe(false);
    expect(safeName(name)).toBe(JSON.stringify(name));
    expect(describe(name)).toBe(`the string ${JSON.stringify(name)}`);
  });

  test.each([
    ['an OpenAI key', `sk-proj-${'Ab1'.repeat(16)}`],
    ['a hex key', 'deadbeefcafe0123'],
    ['a fake key', fakeKey()],
    ['a Google key', `AIza${'x'.repeat(10)}`],
    ['letters only, long', 'abcdefghijklmnopqrstuvwxyz'],
    ['random mixed case', 'qWeRTyuIOPasD'],
    ['over 40 characters', 'a-'.repeat(21)],
    ['a non-ASCII name', 'café'],
  ])('%s is never quoted', (_name, text) => {
    expect(looksSecret(text)).toBe(true);
    expect(safeName(text)).toBe(`a name of ${text.length} characters`);
    expect(describe(text)).toBe(`a string of ${text.length} characters`);
    expect(prop('providers', text)).toBe(`providers[a name of ${text.length} characters]`);
  });

  test('describe gives numbers, booleans and kinds', () => {
    expect([describe(3), describe(Number.NaN), describe(true), describe(null), describe(undefined), describe([]), describe({}), describe(new Date())]).toEqual([
      '3',
      'NaN',
      'true',
      'null',
      'undefined',
      'an array',
      'an object',
      'an object that is not a plain object',
    ]);
  });

  test('MAX_TIMER_MS is the longest setTimeout delay', () => {
    expect(MAX_TIMER_MS).toBe(2 ** 31 - 1);
  });
});

group('options built in another realm are accepted like local ones', () => {
  test('providers, lanes, budgets, routing and circuit options from a vm context', async () => {
    const key = fakeKey();
    const options = vm.runInNewContext(`({
      providers: { openai: { baseURL: 'https://api.realm.test/v1', keys: [{ key: ${JSON.stringify(key)}, id: 'k1' }], models: ['gpt-4.1'] } },
      lanes: { tiny: { concurrency: 1, maxQueue: 0 } },
      budgets: [{ scope: { provider: 'openai' }, limitUsd: 1, window: 'day' }],
      routing: { aliases: { fast: ['gpt-4.1'] } },
      circuitBreaker: { key: { openMs: 1000 } },
    })`);
    const manager = new KeyManager(options);
    await manager.close();
  });

  test('request options from a vm context', () => {
    expect(() => keyplex.options(vm.runInNewContext(`({ lane: 'batch', metadata: { a: 1 } })`))).not.toThrow();
  });
});

group('one set of defaults', () => {
  test('the circuit, the auto strategy, the lanes and the breaker read theirs from config/defaults', async () => {
    const { DEFAULTS, DEFAULT_LANES } = await import('../../src/config/defaults');
    const { Circuit, ConsecutiveBreaker } = await import('../../src/resilience/breaker/index');
    const { ComplexityAutoStrategy } = await import('../../src/routing/catalogue/index');
    const lanes = await import('../../src/resilience/bulkhead');
    const circuit = new Circuit(undefined, () => {});
    expect(circuit.openMs).toBe(DEFAULTS.circuit.openMs);
    expect(circuit.halfOpenProbes).toBe(DEFAULTS.circuit.halfOpenProbes);
    circuit.dispose();
    expect(new ConsecutiveBreaker().threshold).toBe(DEFAULTS.circuit.policy.threshold);
    expect({ ...new ComplexityAutoStrategy() }).toEqual(DEFAULTS.autoThresholds);
    expect(lanes.DEFAULT_LANES).toBe(DEFAULT_LANES);
  });
});
