/** `keyplex/redis` without `ioredis` installed: a clear message, not Node's bare "Cannot find package". */
import { expect, test } from 'vitest';
import { MissingPeerError } from '../../src/errors';
import { loadIoredis } from '../../src/store/redis/load';

test('without ioredis, making a store says what to install, or to pass a client', () => {
  const missing = (id: string): never => {
    throw Object.assign(new Error(`Cannot find module '${id}'`), { code: 'MODULE_NOT_FOUND' });
  };
  expect(() => loadIoredis(missing)).toThrow(expect.objectContaining({ name: 'MissingPeerError', code: 'missing_peer', packageName: 'ioredis', entry: 'keyplex/redis' }));
  expect(() => loadIoredis(missing)).toThrow(MissingPeerError);
  expect(() => loadIoredis(missing)).toThrow(/npm install ioredis/);
  expect(() => loadIoredis(missing)).toThrow(/new RedisStore\(\{ client \}\)/);
});

test('with ioredis installed, its Redis class is loaded', () => {
  expect(typeof loadIoredis()).toBe('function');
});

test('keyplex/redis imports without loading ioredis', async () => {
  const source = await import('node:fs/promises').then((fs) => fs.readFile(new URL('../../src/store/redis/index.ts', import.meta.url), 'utf8'));
  expect(source).not.toMatch(/^import \{[^}]*\} from 'ioredis'/m);
  expect(source).toMatch(/^import type \{[^}]*\} from 'ioredis'/m);
});
