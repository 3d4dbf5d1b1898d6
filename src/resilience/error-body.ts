/**
 * The wait a 429's body asks for, from providers that say it there rather
 * than in a header:
 *
 * - Google (Gemini's OpenAI-compatible endpoint, Vertex): `google.rpc.RetryInfo`
 *   in `error.details` (`"retryDelay": "53s"`, a protobuf Duration, whole
 *   seconds in practice) and `Please retry in 53.016342224s.` in the message;
 *   the body may come wrapped in a list (`[{ "error": … }]`), or as the text
 *   of a gateway's `error.message`.
 * - Azure OpenAI: `Please retry after 33 seconds.` in the message (with
 *   `retry-after` beside it, unless a proxy dropped the headers).
 * - OpenAI, Groq: `Please try again in 1m30.5s.` (their headers say it too).
 * - OpenRouter: the upstream's rate-limit headers copied into
 *   `error.metadata.headers` (`X-RateLimit-Reset` in epoch ms).
 *
 * Read only for a 429 that cools a key; its headers come first (see
 * `restAfterRateLimit`). The longest wait found is taken (RetryInfo is
 * rounded down to the second, the message is not).
 */
import { isPlainObject } from '../config/check';
import { parseDuration } from './header-values';
import { rateLimitResetMs } from './headers';

/**
 * `retry in 45.5s`, `retry after 33 seconds`, `try again in 1m30.5s`, `reset
 * after 20s`: the amount and an optional unit word. Each unit's letters are
 * followed by digits or end the amount, so a run of letters splits one way
 * only: the message is the upstream's to write, and a pattern that could
 * split it many ways took ~8 s for 30 letters, twice as long per letter more.
 */
const MESSAGE_WAIT = /\b(?:retry|try again|reset)\s+(?:in|after)\s+(\d+(?:\.\d+)?(?:[a-zµμ]+\d+(?:\.\d+)?)*[a-zµμ]*)(?:\s+(seconds?|secs?|minutes?|mins?|milliseconds?))?\b/i;
/** A RetryInfo's `retryDelay` inside text (a gateway quoting Google's body in its message): `\"retryDelay\": \"53s\"`. */
const QUOTED_DELAY = /retryDelay\\*"\s*:\s*\\*"(\d+(?:\.\d+)?)s/;
/** The most of a body's text searched when it is not JSON. */
const MAX_TEXT = 4_096;

/** The value when it is a plain object (parsed JSON's are), else undefined. */
const asObject = (value: unknown): Record<string, unknown> | undefined => (isPlainObject(value) ? value : undefined);

/** An error body's top object: the first of a list (Gemini sends errors so), else the body itself; undefined when it is no object. */
export function errorTop(body: unknown): Record<string, unknown> | undefined {
  return asObject(Array.isArray(body) ? (body[0] as unknown) : body);
}

/** The `error` object of an error body (OpenAI's shape; in the first of a list too), undefined when it has none. */
export function errorObject(body: unknown): Record<string, unknown> | undefined {
  return asObject(errorTop(body)?.error);
}

/** A wait written in a message, in ms; undefined when none is. */
function messageWaitMs(message: string): number | undefined {
  const match = MESSAGE_WAIT.exec(message);
  let wait: number | undefined;
  if (match) {
    const [, amount = '', word] = match;
    const unit = word === undefined ? undefined : /^mil/i.test(word) ? 1 : /^min/i.test(word) ? 60_000 : 1_000;
    wait = unit === undefined ? parseDuration(amount) : /^\d+(\.\d+)?$/.test(amount) ? Number(amount) * unit : undefined;
  }
  const quoted = QUOTED_DELAY.exec(message);
  return quoted ? Math.max(wait ?? 0, Number(quoted[1]) * 1000) : wait;
}

/** A `google.rpc.RetryInfo`'s delay among `details`, in ms. */
function retryInfoMs(details: unknown): number | undefined {
  if (!Array.isArray(details)) return undefined;
  for (const detail of details) {
    const info = asObject(detail);
    const type = info?.['@type'];
    if (typeof type !== 'string' || !type.endsWith('google.rpc.RetryInfo')) continue;
    const delay = info!.retryDelay;
    if (typeof delay === 'string') return /^\d+(\.\d+)?s$/.test(delay.trim()) ? parseDuration(delay) : undefined;
    const parts = asObject(delay);
    if (parts) return Number(parts.seconds ?? 0) * 1000 + Number(parts.nanos ?? 0) / 1e6 || undefined;
  }
  return undefined;
}

/** The wait the rate-limit headers an error body quotes ask for (OpenRouter's `metadata.headers`), in ms. */
function quotedHeadersMs(metadata: unknown, now: number): number | undefined {
  const quoted = asObject(asObject(metadata)?.headers);
  if (quoted === undefined) return undefined;
  try {
    return rateLimitResetMs(new Headers(Object.entries(quoted).filter((entry): entry is [string, string] => typeof entry[1] === 'string')), now);
  } catch {
    return undefined; // a name Headers refuses
  }
}

/**
 * The wait a 429's body asks for, in whole ms, uncapped (the caller bounds
 * it); `undefined` when it asks for none.
 * @param body The body parsed as JSON (`undefined` when it was not JSON).
 * @param text The body as text (searched when it was not JSON).
 * @param now The clock, in epoch ms, that quoted reset times are measured from.
 */
export function bodyRetryAfterMs(body: unknown, text: string, now: number): number | undefined {
  const error = errorObject(body);
  const message = error?.message ?? errorTop(body)?.message;
  const waits = [
    retryInfoMs(error?.details),
    typeof message === 'string' ? messageWaitMs(message) : body === undefined ? messageWaitMs(text.slice(0, MAX_TEXT)) : undefined,
    quotedHeadersMs(error?.metadata, now),
  ].filter((wait): wait is number => wait !== undefined && Number.isFinite(wait) && wait >= 0);
  return waits.length === 0 ? undefined : Math.ceil(Math.max(...waits));
}
