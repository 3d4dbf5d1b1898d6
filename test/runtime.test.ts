/**
 * What keyplex says on a Node.js older than its floor (22.12): one process
 * warning with a stable code, once per process; nothing on a supported Node.
 */
import { afterEach, expect, test, vi } from 'vitest';
import { NODE_VERSION_WARNING, isOlderThanFloor, resetNodeWarningForTests, warnIfOldNode } from '../src/runtime';

afterEach(() => resetNodeWarningForTests());

test('versions below 22.12 are older than the floor; 22.12 and later are not', () => {
  for (const old of ['18.20.4', '20.20.2', 'v20.19.0', '22.11.0', '21.7.3']) expect(isOlderThanFloor(old), old).toBe(true);
  for (const ok of ['22.12.0', '22.23.3', 'v23.0.0', '24.1.0']) expect(isOlderThanFloor(ok), ok).toBe(false);
});

test('on an old Node: one warning with code KEYPLEX_NODE_VERSION that names both versions and what to do, however often it is called', () => {
  const emit = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
  expect(warnIfOldNode('20.20.2')).toBe(true);
  expect(warnIfOldNode('20.20.2')).toBe(false);
  expect(warnIfOldNode('18.0.0')).toBe(false);
  expect(emit).toHaveBeenCalledTimes(1);
  const [message, options] = emit.mock.calls[0]! as [string, { code: string; type: string }];
  expect(options).toEqual({ code: NODE_VERSION_WARNING, type: 'KeyplexWarning' });
  expect(message).toContain('>= 22.12');
  expect(message).toContain('Node.js 20.20.2');
  expect(message).toContain('Upgrade Node.js');
  expect(message).toContain('--disable-warning=KEYPLEX_NODE_VERSION');
});

test('on a supported Node: no warning', () => {
  const emit = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
  expect(warnIfOldNode('22.12.0')).toBe(false);
  expect(warnIfOldNode()).toBe(false); // the Node running this suite (22)
  expect(emit).not.toHaveBeenCalled();
});
