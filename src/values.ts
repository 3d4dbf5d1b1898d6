/**
 * Small checks and descriptions of untrusted values, for validation messages.
 */

/** A plain object (not an array, not a class instance such as a Date). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** A short, safe description of a bad value for an error message: no more than 40 characters of a string. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'number':
    case 'boolean':
      return String(value);
    case 'string':
      if (value === '') return 'an empty string';
      return value.length <= 40 ? `the string ${JSON.stringify(value)}` : `a string of ${value.length} characters`;
    case 'object':
      return isPlainObject(value) ? 'an object' : 'an object that is not a plain object';
    default:
      return `a ${typeof value}`;
  }
}
