import { createHash } from 'node:crypto';

/**
 * A short, stable label for a key: `fp_` + the first 10 hex digits of the
 * key's SHA-256. It contains no part of the key and cannot be turned back into
 * it, so it is safe in events, stats, logs and errors; it is the default key id.
 */
export function fingerprint(secret: string): string {
  const hex = createHash('sha256').update(secret, 'utf8').digest('hex').slice(0, 10);
  // Decoded from bytes, the id is one flat string (32 bytes); `'fp_' + hex` would be a rope of two (64), held per key.
  return Buffer.from(`fp_${hex}`, 'latin1').toString('latin1');
}
