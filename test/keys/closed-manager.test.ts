/**
 * A closed manager: the calls that would change or use it (`addKey`,
 * `removeKey`, `disableKey`, `enableKey`, `wrap`) throw `ManagerClosedError`
 * at once instead of succeeding silently; `close()` again, `stats()`,
 * `toJSON()` and `on`/`off` stay harmless.
 */
import OpenAI from 'openai';
import { describe, expect, test } from 'vitest';
import { KeyManager, ManagerClosedError } from '../../src/index';
import { fakeKey } from '../support/fake-keys';

async function closedManager(): Promise<KeyManager> {
  const manager = new KeyManager({ providers: { one: { baseURL: 'http://127.0.0.1:9/v1', keys: [{ key: fakeKey('a'), id: 'a' }] } } });
  await manager.close();
  return manager;
}

/** What `run` throws, or `undefined`. */
function thrown(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('a closed KeyManager', () => {
  test.each([
    ['addKey', (m: KeyManager) => m.addKey('one', { key: fakeKey('b'), id: 'b' })],
    ['removeKey', (m: KeyManager) => m.removeKey('one', 'a')],
    ['disableKey', (m: KeyManager) => m.disableKey('one', 'a')],
    ['enableKey', (m: KeyManager) => m.enableKey('one', 'a')],
    ['wrap', (m: KeyManager) => m.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }))],
  ])('%s throws ManagerClosedError (code manager_closed) naming the call', async (name, call) => {
    const manager = await closedManager();
    const error = thrown(() => call(manager));
    expect(error).toBeInstanceOf(ManagerClosedError);
    expect((error as ManagerClosedError).code).toBe('manager_closed');
    expect((error as Error).message).toContain(`${name}()`);
  });

  test('addKey after close leaves the keys as they were', async () => {
    const manager = await closedManager();
    thrown(() => manager.addKey('one', { key: fakeKey('b'), id: 'b' }));
    expect(manager.toJSON().providers[0]!.keys).toEqual(['a']);
  });

  test('close() again, stats(), toJSON() and on/off stay harmless', async () => {
    const manager = await closedManager();
    await expect(manager.close()).resolves.toBeUndefined();
    await expect(manager.close({ drain: true })).resolves.toBeUndefined();
    expect(manager.stats().providers.one!.keys.map((k) => k.id)).toEqual(['a']);
    expect(manager.toJSON().closed).toBe(true);
    const listener = () => {};
    expect(manager.on('success', listener).off('success', listener)).toBe(manager);
  });
});
