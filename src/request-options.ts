/**
 * Per-request keyplex options. They travel to `manager.fetch` inside one
 * request header, typed on the way in by `keyplex.options()`, and are removed
 * before anything leaves the process.
 */
import { describe, isPlainObject, MS_NON_NEGATIVE, MS_POSITIVE, numberProblem, prop, secretIdProblem, unknownFieldProblem } from './config/check';
import { RequestOptionsError } from './errors';

/** Options for one request. */
export interface KeyplexRequestOptions {
  /** Labels copied into this request's events (e.g. a feature or tenant name): each 1 to 128 printable ASCII characters. */
  tags?: string[];
  /** Key/value pairs copied into this request's events; values are strings, finite numbers or booleans. */
  metadata?: Record<string, string | number | boolean>;
  /**
   * Total deadline of this request in ms, overriding the manager's
   * `deadlineMs`: above 0 and at most 2^31 − 1 (about 24.8 days, the longest
   * timer Node.js supports); anything else is refused at the call.
   */
  deadlineMs?: number;
  /**
   * This stream's idle timeout in ms, overriding the manager's
   * `streamIdleTimeoutMs`: 0 (none) to 2^31 − 1. Ignored for replies that are not streams.
   */
  streamIdleTimeoutMs?: number;
  /** Send this request only to this provider id (e.g. for files it holds). */
  provider?: string;
  /** The bulkhead lane to run in (`critical`, `standard`, `batch`, or one you configured). Default: the manager's `defaultLane`. */
  lane?: string;
}

/** The header that carries the options from the SDK to `manager.fetch`. */
export const OPTIONS_HEADER = 'x-keyplex-options';

const TAG = /^[\x20-\x7e]{1,128}$/;
const KNOWN = ['tags', 'metadata', 'deadlineMs', 'streamIdleTimeoutMs', 'provider', 'lane'];

/** Checks request options; messages never echo a value that could be a key (see `describe`). */
function validate(options: KeyplexRequestOptions): void {
  if (!isPlainObject(options)) throw new RequestOptionsError('options', `expected an object; got ${describe(options)}`);
  const unknown = unknownFieldProblem(options, KNOWN, '', 'keyplex request option');
  if (unknown !== undefined) throw new RequestOptionsError(unknown.field, unknown.problem);
  const { tags, metadata, deadlineMs, provider, lane } = options;
  checkName(lane, 'lane', 'a lane name');
  checkName(provider, 'provider', 'a provider id');
  if (tags !== undefined) {
    if (!Array.isArray(tags)) throw new RequestOptionsError('tags', `expected an array of strings; got ${describe(tags)}`);
    tags.forEach((tag, i) => {
      if (typeof tag !== 'string' || !TAG.test(tag)) throw new RequestOptionsError(`tags[${i}]`, 'expected 1 to 128 printable ASCII characters');
    });
  }
  if (metadata !== undefined) {
    if (!isPlainObject(metadata)) throw new RequestOptionsError('metadata', `expected a plain object of string, number or boolean values; got ${describe(metadata)}`);
    for (const [name, value] of Object.entries(metadata)) {
      if (!['string', 'number', 'boolean'].includes(typeof value)) {
        throw new RequestOptionsError(prop('metadata', name), `expected a string, number or boolean; got ${describe(value)}`);
      }
    }
  }
  if (deadlineMs !== undefined) {
    const problem = numberProblem(deadlineMs, MS_POSITIVE);
    if (problem !== undefined) throw new RequestOptionsError('deadlineMs', problem);
  }
  if (options.streamIdleTimeoutMs !== undefined) {
    const problem = numberProblem(options.streamIdleTimeoutMs, MS_NON_NEGATIVE);
    if (problem !== undefined) throw new RequestOptionsError('streamIdleTimeoutMs', problem);
  }
}

/** A lane or provider name: a non-empty string that does not look like a key (the names configuration accepts). */
function checkName(value: unknown, field: string, what: string): void {
  if (value === undefined) return;
  if (typeof value !== 'string' || value === '') throw new RequestOptionsError(field, `expected ${what}; got ${describe(value)}`);
  const secret = secretIdProblem(value, what);
  if (secret !== undefined) throw new RequestOptionsError(field, secret);
}

type HeadersInput = Headers | Record<string, string | null | undefined> | readonly (readonly [string, string])[];

/**
 * SDK request options that carry keyplex's per-request options. Spread them
 * into the SDK call's options; pass your own request options as `base` to keep
 * their headers:
 *
 * ```ts
 * await client.chat.completions.create(body, keyplex.options({ tags: ['search'], deadlineMs: 20_000 }));
 * await client.chat.completions.create(body, keyplex.options({ tags: ['search'] }, { timeout: 30_000, signal }));
 * ```
 * @throws RequestOptionsError when an option is malformed.
 */
function options<B extends object = object>(
  keyplexOptions: KeyplexRequestOptions,
  base?: B,
): Omit<B, 'headers'> & { headers: Record<string, string> } {
  validate(keyplexOptions);
  const headers: Record<string, string> = {};
  const given = (base as { headers?: HeadersInput | undefined } | undefined)?.headers;
  if (given instanceof Headers || Array.isArray(given)) {
    new Headers(given as ConstructorParameters<typeof Headers>[0]).forEach((value, name) => (headers[name] = value));
  } else if (given) {
    for (const [name, value] of Object.entries(given)) if (typeof value === 'string') headers[name] = value;
  }
  headers[OPTIONS_HEADER] = encodeURIComponent(JSON.stringify(keyplexOptions));
  return { ...(base as B), headers };
}

/** keyplex's per-request helpers. */
export const keyplex = { options } as const;

/** Reads the options header; `{}` when absent. */
/** The options of a request that sets none: one frozen object for all of them. */
const NO_OPTIONS: KeyplexRequestOptions = Object.freeze({});

export function decodeRequestOptions(value: string | null): KeyplexRequestOptions {
  if (value === null) return NO_OPTIONS;
  let parsed: unknown;
  try {
    parsed = JSON.parse(decodeURIComponent(value));
  } catch {
    throw new RequestOptionsError(OPTIONS_HEADER, 'is not valid; set it only through keyplex.options()');
  }
  validate(parsed as KeyplexRequestOptions);
  return parsed as KeyplexRequestOptions;
}
