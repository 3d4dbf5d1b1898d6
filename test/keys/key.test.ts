/**
 * A key owns its lifecycle: cool down, disable, enable, remove are methods
 * that report each change; its state cannot be written from outside, and
 * selectors see a read-only view.
 */
import { afterEach, beforeEach, expect, test, vi } from 'vitest';
import { Key, keyOfView, type KeyChange } from '../../src/keys/key';
import { KeyLimiter } from '../../src/resilience/rate-limit/index';
import { fakeKey } from '../support/fake-keys';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

function key(): { key: Key; changes: KeyChange[] } {
  const changes: KeyChange[] = [];
  const made = new Key('one', { id: 'a', key: fakeKey('one'), weight: 1 } as never, new KeyLimiter({ adaptive: false }), undefined, (_key, change) => {
    changes.push(change);
  });
  return { key: made, changes };
}

test('cool reports the cooldown, and its end once the timer fires', () => {
  const { key: k, changes } = key();
  k.cool(1000, Date.now());
  expect(k.usable(Date.now())).toBe(false);
  expect(changes).toEqual([{ kind: 'cooldown', ms: 1000, until: Date.now() + 1000, remote: false, capped: false }]);
  vi.advanceTimersByTime(1000);
  expect(k.usable(Date.now())).toBe(true);
  expect(changes.at(-1)).toEqual({ kind: 'cooldown-ended' });
});

test('disable reports once; enable reports whether the key was out; a disabled key cools no more', () => {
  const { key: k, changes } = key();
  k.cool(1000, Date.now());
  k.disable('quota');
  k.disable('unauthorized', true);
  vi.advanceTimersByTime(5000);
  expect(k.disabled).toBe('quota');
  k.enable(Date.now());
  k.enable(Date.now(), true);
  expect(changes.map((c) => c.kind)).toEqual(['cooldown', 'disabled', 'enabled', 'enabled']);
  expect(changes.slice(2)).toEqual([
    { kind: 'enabled', remote: false, wasOut: true },
    { kind: 'enabled', remote: true, wasOut: false },
  ]);
});

test('remove reports it and releases the cooldown timer', () => {
  const { key: k, changes } = key();
  k.cool(1000, Date.now());
  k.remove();
  expect(k.removed).toBe(true);
  expect(k.usable(Date.now() + 2000)).toBe(false);
  vi.advanceTimersByTime(2000);
  expect(changes.map((c) => c.kind)).toEqual(['cooldown', 'removed']);
});

test('state is read-only from outside: writing it throws', () => {
  const { key: k } = key();
  for (const field of ['disabled', 'cooldownUntil', 'removed', 'inFlight'] as const) {
    expect(() => ((k as unknown as Record<string, unknown>)[field] = 1)).toThrow(TypeError);
  }
  k.attemptStarted();
  expect(k.inFlight).toBe(1);
  k.attemptEnded();
  expect(k.inFlight).toBe(0);
});

test('a selector sees a view: live figures, no secret, no way to change the key', () => {
  const { key: k } = key();
  const view = k.view;
  k.attemptStarted();
  expect(view).toMatchObject({ id: 'a', provider: 'one', weight: 1, inFlight: 1, headroom: 1 });
  expect(() => ((view as unknown as Record<string, unknown>).inFlight = 0)).toThrow(TypeError);
  expect('disable' in view).toBe(false);
  expect(JSON.stringify(view)).toBe('{"id":"a","provider":"one"}');
  expect(keyOfView(view)).toBe(k);
  expect(keyOfView({ ...view })).toBeUndefined();
});
