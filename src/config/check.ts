/**
 * The one validation toolkit: how every option, request option and restored
 * state is checked and how a bad value is described in a message.
 *
 * Input is untrusted (JavaScript callers can pass anything), so it is handled
 * as `unknown`. Messages read `expected …; got …` and name the field, but
 * never echo a value that could be a secret: a key pasted into the wrong
 * option (a weight, a lane name, a model name, a header name, an object key)
 * is described by its kind and length only (see {@link describe}).
 */
import { ConfigError } from '../errors';

/** The longest delay `setTimeout` honours (2^31 − 1 ms, about 24.8 days); a longer one fires at once. */
export const MAX_TIMER_MS = 2_147_483_647;

/** A field and what is wrong with it: `problem` reads `expected …; got …`. */
export interface Problem {
  readonly field: string;
  readonly problem: string;
}

type Obj = Record<string, unknown>;

/**
 * A non-array object whose prototype is `Object.prototype` — of any realm
 * (vm contexts, iframes) — or `null` (`Object.create(null)`). Class
 * instances (a Date, a Map) are not plain.
 */
export function isPlainObject(value: unknown): value is Obj {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === null || Object.getPrototypeOf(proto) === null;
}

/** Longest string a message may quote. */
const MAX_ECHO = 40;
/** Prefixes API keys and tokens are known to start with. */
const SECRET_PREFIX = /^(?:(?:sk|rk|pk|gsk|xai|hf|ghp|gho|glpat)[-_]|github_pat_|AIza|Bearer )/;
/** A run of letters and digits (what random tokens are made of). */
const ALNUM_RUN = /[A-Za-z0-9]+/g;

/**
 * Whether `text` could be a secret, or a piece of one, and so must never be
 * quoted in a message: longer than 40 characters, not printable ASCII,
 * starting like a key (`sk-`, `gsk_`, `AIza`, …), or holding a run of 10 or
 * more letters and digits that mixes letters with digits, a run of 24 or
 * more letters, or a run of 12 or more letters with two upper-case pairs
 * (random mixed case, unlike camelCase). Model names (`gpt-4.1-mini`, `claude-3-5-sonnet-20241022`),
 * option names (`contextFallbacks`), lane and provider ids pass.
 */
export function looksSecret(text: string): boolean {
  if (text.length > MAX_ECHO || !/^[\x20-\x7e]*$/.test(text) || SECRET_PREFIX.test(text)) return true;
  for (const [run] of text.matchAll(ALNUM_RUN)) {
    if (run.length >= 24) return true;
    if (run.length >= 10 && /[0-9]/.test(run) && /[A-Za-z]/.test(run)) return true;
    if (run.length >= 12 && /[a-z]/.test(run) && (run.match(/[A-Z](?=[A-Z])/g)?.length ?? 0) >= 2) return true;
  }
  return false;
}

/**
 * A name given by the caller (an object key, a provider id, a model or lane
 * name) for a message: quoted when it cannot be a secret, else only its
 * length (`a name of 51 characters`).
 */
export function safeName(text: string): string {
  if (text === '') return 'an empty name';
  return looksSecret(text) ? `a name of ${text.length} characters` : JSON.stringify(text);
}

/**
 * A short, safe description of a bad value for a message: numbers and
 * booleans as they are, a string quoted only when it cannot be a secret
 * (else `a string of 51 characters`), anything else by its kind.
 */
export function describe(value: unknown): string {
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : String(value);
  if (typeof value === 'boolean') return String(value);
  if (typeof value === 'string') {
    if (value === '') return 'an empty string';
    return looksSecret(value) ? `a string of ${value.length} characters` : `the string ${JSON.stringify(value)}`;
  }
  return describeType(value);
}

/** The value's kind, without any of its content: for values that are secrets (keys, header values, URLs). */
export function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'string':
      return `a string of ${value.length} characters`;
    case 'object':
      return isPlainObject(value) ? 'an object' : 'an object that is not a plain object';
    default:
      return `a ${typeof value}`;
  }
}

/** What user code threw, as text; a value that cannot be made one (a null-prototype object, a throwing `toString`) by its kind. */
export function describeThrown(error: unknown): string {
  try {
    return error instanceof Error ? String(error.message) : String(error);
  } catch {
    return `(it threw ${describeType(error)})`;
  }
}

/** An own property only, never an inherited one such as `toString`. */
export function own(obj: unknown, name: string): unknown {
  return typeof obj === 'object' && obj !== null && Object.hasOwn(obj, name) ? (obj as Obj)[name] : undefined;
}

/** Sets a property even when `name` is `__proto__`. */
export function setOwn<T>(obj: Record<string, T>, name: string, value: T): void {
  Object.defineProperty(obj, name, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * Path of `name` under `base`: `a.b` for identifiers, `a["b-c"]` otherwise,
 * and `a[a name of 51 characters]` for a name that could be a secret.
 */
export function prop(base: string, name: string): string {
  if (/^[A-Za-z_$][\w$]*$/.test(name) && !looksSecret(name)) return base === '' ? name : `${base}.${name}`;
  return `${base}[${looksSecret(name) ? `a name of ${name.length} characters` : JSON.stringify(name)}]`;
}

/** A known, non-secret text (an option name, a built-in's name) in double quotes. */
export function quote(text: string): string {
  return JSON.stringify(text);
}

/**
 * Names users bring from the openai SDK and other clients (lower case), with
 * what keyplex calls them, most likely first: not typos by edit distance.
 */
const BROUGHT_NAMES: Readonly<Record<string, readonly string[]>> = {
  apikey: ['keys', 'key'],
  apikeys: ['keys'],
  maxretries: ['maxAttempts', 'retry'],
  retries: ['maxAttempts', 'retry'],
  timeout: ['deadlineMs', 'attemptTimeoutMs'],
};

/** Units a known name ends in, which a name without them (`ttl` for `ttlMs`) means. */
const UNITS = ['ms', 'usd'];

/**
 * A known name the unknown one is probably meant as: same letters ignoring
 * case, a name from the SDK or other clients ({@link BROUGHT_NAMES}), the
 * name without its unit, or a couple of edits apart.
 */
export function suggest(name: string, known: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  const brought = Object.hasOwn(BROUGHT_NAMES, lower) ? BROUGHT_NAMES[lower]!.find((meant) => known.includes(meant)) : undefined;
  if (brought !== undefined) return brought;
  const withUnit = known.find((candidate) => UNITS.some((unit) => candidate.toLowerCase() === lower + unit));
  if (withUnit !== undefined) return withUnit;
  let best: string | undefined;
  let bestDistance = Math.min(2, Math.floor(name.length / 3));
  for (const candidate of known) {
    const c = candidate.toLowerCase();
    if (c === lower) return candidate;
    const distance = editDistance(lower, c);
    if (distance <= bestDistance) {
      best = candidate;
      bestDistance = distance - 1;
    }
  }
  return best;
}

/** Edits from `a` to `b`: insertions, deletions, substitutions and swaps of two neighbours (`modle` is one from `model`). */
function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return Math.abs(a.length - b.length);
  let before: number[] = [];
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      let distance = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) distance = Math.min(distance, (before[j - 2] ?? 0) + 1);
      current.push(distance);
    }
    before = previous;
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/**
 * The first own field of `obj` not in `allowed`, as a problem naming it (and
 * a likely intended one), or `undefined`. `what` names the kind of field,
 * e.g. `lane option`.
 */
export function unknownFieldProblem(obj: Obj, allowed: readonly string[], base: string, what: string): Problem | undefined {
  for (const name of Object.keys(obj)) {
    if (allowed.includes(name)) continue;
    const guess = suggest(name, allowed);
    return {
      field: prop(base, name),
      problem: `expected a known ${what}${guess === undefined ? '' : ` (did you mean \`${guess}\`?)`}: one of ${allowed.join(', ')}; got ${safeName(name)}`,
    };
  }
  return undefined;
}

/** Throws a {@link ConfigError} for `found`, if any. */
export function assertNoProblem(found: Problem | undefined): void {
  if (found !== undefined) throw new ConfigError(found.field, found.problem);
}

/** Refuses a field not in `allowed` with a {@link ConfigError}. */
export function checkFields(obj: Obj, allowed: Record<string, true> | readonly string[], base: string, what: string): void {
  assertNoProblem(unknownFieldProblem(obj, Array.isArray(allowed) ? allowed : Object.keys(allowed), base, what));
}

/** What a numeric option accepts. */
export interface NumberRule {
  readonly min: number;
  /** `min` itself is refused. */
  readonly exclusiveMin?: boolean;
  readonly max: number;
  /** Whole numbers only. */
  readonly integer?: boolean;
  /** Shown after the kind, e.g. `ms`. */
  readonly unit?: string;
}

/** Durations in ms that a timer waits: above 0 and at most {@link MAX_TIMER_MS}. */
export const MS_POSITIVE: NumberRule = { min: 0, exclusiveMin: true, max: MAX_TIMER_MS, unit: 'ms' };
/** Durations in ms that may be 0: at most {@link MAX_TIMER_MS}. */
export const MS_NON_NEGATIVE: NumberRule = { min: 0, max: MAX_TIMER_MS, unit: 'ms' };
/** Prices in USD per million tokens. */
export const USD_PER_MILLION: NumberRule = { min: 0, max: 1_000_000, unit: 'USD per million tokens' };
/** Relative shares (`weight`): above 0, at most a million. */
export const WEIGHT: NumberRule = { min: 0, exclusiveMin: true, max: 1_000_000, unit: 'a relative share' };
/** Requests per minute: from 0.01 (one request per 100 minutes) to a billion. */
export const RPM: NumberRule = { min: 0.01, max: 1e9, unit: 'requests per minute' };
/** Tokens per minute: from 1 to a trillion. */
export const TPM: NumberRule = { min: 1, max: 1e12, unit: 'tokens per minute' };

/** Why `raw` breaks `rule` (`expected …; got …`), or `undefined` when it follows it. */
export function numberProblem(raw: unknown, rule: NumberRule): string | undefined {
  if (
    typeof raw === 'number' &&
    Number.isFinite(raw) &&
    (!rule.integer || Number.isInteger(raw)) &&
    (rule.exclusiveMin ? raw > rule.min : raw >= rule.min) &&
    raw <= rule.max
  ) {
    return undefined;
  }
  const kind = rule.integer ? 'an integer' : 'a finite number';
  const bounds = [`${rule.exclusiveMin ? '>' : '>='} ${rule.min}`];
  if (rule.max !== Number.MAX_VALUE) {
    bounds.push(`<= ${rule.max}${rule.max === MAX_TIMER_MS ? ' (about 24.8 days, the longest timer Node.js supports)' : ''}`);
  }
  const unit = rule.unit === undefined ? '' : ` (${rule.unit})`;
  return `expected ${kind}${unit} ${bounds.join(' and ')}; got ${describe(raw)}`;
}

/** `raw` when it follows `rule`, else a {@link ConfigError} naming `field`. */
export function checkNumber(raw: unknown, field: string, rule: NumberRule): number {
  const problem = numberProblem(raw, rule);
  if (problem !== undefined) throw new ConfigError(field, problem);
  return raw as number;
}

/** {@link checkNumber}, with `fallback` when `raw` is `undefined`. */
export function optionalNumber(raw: unknown, field: string, fallback: number, rule: NumberRule): number {
  return raw === undefined ? fallback : checkNumber(raw, field, rule);
}

/** {@link checkNumber}, or `undefined` when `raw` is `undefined`. */
export function maybeNumber(raw: unknown, field: string, rule: NumberRule): number | undefined {
  return raw === undefined ? undefined : checkNumber(raw, field, rule);
}

/** A boolean option, with `fallback` when `raw` is `undefined`. */
export function checkBoolean(raw: unknown, field: string, fallback: boolean): boolean {
  if (raw === undefined) return fallback;
  if (typeof raw !== 'boolean') throw new ConfigError(field, `expected true or false; got ${describe(raw)}`);
  return raw;
}

/** Why `name` cannot be an id shown in events, stats and errors (it looks like a key), or `undefined`. */
export function secretIdProblem(name: string, what: string): string | undefined {
  return looksSecret(name)
    ? `expected ${what} that does not look like an API key (ids appear in events, stats and errors); got ${safeName(name)}. Never use a key as a name`
    : undefined;
}
