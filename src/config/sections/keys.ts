/** The `keys` of a provider: each a secret, or an object with a label, weight and limits. */
import { ConfigError } from '../../errors';
import { fingerprint } from '../../keys/fingerprint';
import { checkFields, describeType, isPlainObject, maybeNumber, own, prop, quote, RPM, safeName, secretIdProblem, TPM, WEIGHT } from '../check';
import { resolveRateLimits, RATE_LIMIT_FIELDS, NO_RATE_LIMITS } from '../../resilience/rate-limit/options';
import type { KeyInput, ResolvedKey } from '../options';

const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$/;
const KEY_FIELDS: readonly (keyof Exclude<KeyInput, string>)[] = ['key', 'id', 'weight', ...RATE_LIMIT_FIELDS];

/**
 * Validates one key of `provider` (as configured, or given to `addKey` at run
 * time) and fills in its id (default: {@link fingerprint} of the key) and
 * weight (default 1). Checks the key alone: duplicates are the caller's to find.
 *
 * @param field Path of the key used in errors, e.g. `providers.openai.keys[2]`.
 * @throws {ConfigError} when the key is malformed; the message never contains the key.
 */
export function resolveKey(provider: string, input: KeyInput, field: string): ResolvedKey {
  const raw: unknown = input;
  if (typeof raw === 'string') {
    const key = checkSecret(raw, field, provider);
    return { key, id: fingerprint(key), weight: 1, rpm: undefined, tpm: undefined, rate: NO_RATE_LIMITS };
  }
  if (!isPlainObject(raw)) {
    throw new ConfigError(field, `expected a key of provider ${safeName(provider)}: a string or an object { key, id?, weight? }; got ${describeType(raw)}${raw === undefined ? UNSET : ''}`);
  }
  checkFields(raw, KEY_FIELDS, field, 'key field');
  const key = checkSecret(own(raw, 'key'), prop(field, 'key'), provider);
  const id = resolveKeyId(own(raw, 'id'), key, prop(field, 'id'));
  const weight = maybeNumber(own(raw, 'weight'), prop(field, 'weight'), WEIGHT) ?? 1;
  const rpm = maybeNumber(own(raw, 'rpm'), prop(field, 'rpm'), RPM);
  const tpm = maybeNumber(own(raw, 'tpm'), prop(field, 'tpm'), TPM);
  return { key, id, weight, rpm, tpm, rate: resolveRateLimits(raw, field) };
}

function resolveKeyId(rawId: unknown, key: string, field: string): string {
  if (rawId === undefined) return fingerprint(key);
  if (typeof rawId !== 'string' || !KEY_ID.test(rawId)) {
    throw new ConfigError(
      field,
      `expected a label of 1 to 64 characters from A-Z, a-z, 0-9 and _ . : @ - that starts with a letter or digit; got ${describeBadId(rawId)}`,
    );
  }
  if (rawId === key) {
    throw new ConfigError(field, 'expected a label; got the key itself. Ids appear in events, stats and errors: leave `id` out to use a fingerprint');
  }
  const secret = secretIdProblem(rawId, 'a label');
  if (secret !== undefined) throw new ConfigError(field, `${secret}, or leave \`id\` out to use a fingerprint`);
  return rawId;
}

/** A malformed key id, which may be a key pasted in the wrong place: its length and first offending character only. */
function describeBadId(value: unknown): string {
  if (typeof value !== 'string') return describeType(value);
  if (value === '') return 'an empty string';
  if (value.length > 64) return `a string of ${value.length} characters`;
  const first = value[0] ?? '';
  const bad = /[A-Za-z0-9]/.test(first) ? [...value].find((c) => !/[A-Za-z0-9_.:@-]/.test(c)) : first;
  return `a string of ${value.length} characters ${bad === first ? 'starting with' : 'containing'} ${quote(bad ?? '')}`;
}

/** The likely cause of a missing key: `keys: [process.env.OPENAI_KEY!]`, or the same in a template literal. */
const UNSET = ' (an environment variable that is not set?)';

function checkSecret(raw: unknown, field: string, provider: string): string {
  const expected = `expected a key of provider ${safeName(provider)} as a non-empty string`;
  if (typeof raw !== 'string') throw new ConfigError(field, `${expected}; got ${describeType(raw)}${raw === undefined ? UNSET : ''}`);
  if (raw === '') throw new ConfigError(field, `${expected}; got a string of 0 characters${UNSET}`);
  if (raw === 'undefined' || raw === 'null') throw new ConfigError(field, `${expected}; got the string ${quote(raw)}${UNSET}`);
  if (/\s/.test(raw)) {
    throw new ConfigError(field, `${expected} without whitespace; got a string of ${raw.length} characters containing whitespace (a stray space or line break?)`);
  }
  if (/[^\x21-\x7e]/.test(raw)) {
    throw new ConfigError(
      field,
      `${expected} of printable ASCII characters; got a string of ${raw.length} characters containing another character (a smart quote or invisible character?)`,
    );
  }
  return raw;
}
