/**
 * Option checks shared by the breaker policies and the circuit. Internal: the
 * public surface is `breakerSpecIssue` / `breakerSpecProblem` and the errors
 * the constructors throw.
 */
import { describe, isPlainObject, suggest, type Problem } from '../../config/check';

/**
 * One bad option: the toolkit's {@link Problem} (where it is, `expected …;
 * got …`) and which error class it calls for, since breakers and circuits
 * built directly throw `TypeError` / `RangeError` rather than `ConfigError`.
 */
export interface OptionIssue extends Problem {
  /** Path of the option relative to the object checked; `''` for the object itself. */
  readonly field: string;
  /** `RangeError` for a number out of range, `TypeError` for anything else. */
  readonly error: 'TypeError' | 'RangeError';
}

/** What a numeric option accepts. */
export interface NumberRule {
  /** Whole numbers only. */
  readonly integer?: boolean;
  readonly min: number;
  /** `min` itself is refused. */
  readonly minExclusive?: boolean;
  readonly max?: number;
  /** The `expected …` half of the message, e.g. `a whole number from 1 up`. */
  readonly expected: string;
}

/** Rules by option name. */
export type OptionRules = Readonly<Record<string, NumberRule>>;

/** An issue for `field`, which may be the object itself (`''`). */
export function issue(field: string, problem: string, error: OptionIssue['error'] = 'TypeError'): OptionIssue {
  return { field, problem, error };
}

/** Checks one optional number against its rule; `undefined` passes (the default applies). */
export function numberIssue(field: string, value: unknown, rule: NumberRule): OptionIssue | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number') return issue(field, `expected ${rule.expected}; got ${describe(value)}`);
  const below = rule.minExclusive === true ? value <= rule.min : value < rule.min;
  const bad =
    !Number.isFinite(value) || below || (rule.max !== undefined && value > rule.max) || (rule.integer === true && !Number.isInteger(value));
  return bad ? issue(field, `expected ${rule.expected}; got ${describe(value)}`, 'RangeError') : undefined;
}

/**
 * Checks an options object: `undefined` (all defaults) or a plain object whose
 * keys are all in `rules` or `extraKeys` (a typo is reported, not ignored), each
 * value following its rule.
 */
export function optionsIssue(options: unknown, rules: OptionRules, extraKeys: readonly string[] = []): OptionIssue | undefined {
  if (options === undefined) return undefined;
  if (!isPlainObject(options)) return issue('', `expected an options object; got ${describe(options)}`);
  const known = [...extraKeys, ...Object.keys(rules)];
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const meant = suggest(key, known);
    return issue(key, `expected one of ${known.map((k) => `\`${k}\``).join(', ')}; got an unknown option${meant === undefined ? '' : ` (did you mean \`${meant}\`?)`}`);
  }
  for (const [key, rule] of Object.entries(rules)) {
    const found = numberIssue(key, options[key], rule);
    if (found) return found;
  }
  return undefined;
}

/** `base.field`, leaving out empty parts. */
export function joinField(base: string, field: string): string {
  if (base === '') return field;
  if (field === '') return base;
  return `${base}.${field}`;
}

/** The error an issue calls for, e.g. ``Invalid CountBreaker option `threshold`: expected …``. */
export function issueError(found: OptionIssue, what: string, base = ''): TypeError | RangeError {
  const field = joinField(base, found.field);
  const message = field === '' ? `Invalid ${what}: ${found.problem}` : `Invalid ${what} \`${field}\`: ${found.problem}`;
  return found.error === 'RangeError' ? new RangeError(message) : new TypeError(message);
}

/** Throws the error for `found`, if any. */
export function assertNoIssue(found: OptionIssue | undefined, what: string, base = ''): void {
  if (found) throw issueError(found, what, base);
}

export { describe, isPlainObject };

/** A whole number ≥ 0 (for restored counters). */
export function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
