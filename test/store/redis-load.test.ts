/** `keyplex/redis` without `ioredis` installed: a clear message, not Node's bare "Cannot find package". */
import { expect, test } from 'vitest';
import { loadIoredis, MISSING_IOREDIS } from '../../src/store/redis/load';

test('without ioredis, making a store says what to install, or to pass a client', () => {
  const missing = (id: string): never => {
    throw Object.assign(new Error(`Cannot find module '${id}'`), { code: 'MODULE_NOT_FOUND' });
  };
  expect(() => loadIoredis(missing)).toThrow(MISSING_IOREDIS);
  expect(MISSING_IOREDIS).toMatch(/npm install ioredis/);
  expect(MISSING_IOREDIS).toMatch(/client/);
});

test('with ioredis installed, its Redis class is loaded', () => {
  expect(typeof loadIoredis()).toBe('function');
});

test('keyplex/redis imports without loading ioredis', async () => {
  const source = await import('node:fs/promises').then((fs) => fs.readFile(new URL('../../src/store/redis/index.ts', import.meta.url), 'utf8'));
  expect(source).not.toMatch(/^import \{[^}]*\} from 'ioredis'/m);
  expect(source).toMatch(/^import type \{[^}]*\} from 'ioredis'/m);
});
