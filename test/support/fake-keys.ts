import { randomBytes } from 'node:crypto';

/** A key-shaped random string that no provider would accept; a new one per call. */
export function fakeKey(label = 'test'): string {
  return `fake-${label}-${randomBytes(12).toString('hex')}`;
}
