/**
 * DESIGN.md's outcome table as code: what an upstream answer means for the
 * request, the key, and the next attempt.
 */
import type { FailureKind } from '../errors';
import type { KeyDisabledReason } from '../events';
import { errorObject, errorTop } from './error-body';

/**
 * What to do after an attempt:
 * - `surface`: hand the answer to the caller now, no retry, no penalty;
 * - `rotate`: the key is at fault; retry at once on another key;
 * - `retry`: transient; back off and retry, preferring another key or deployment.
 */
export type Action = 'surface' | 'rotate' | 'retry';

export interface Classification {
  kind: FailureKind;
  action: Action;
  /** Set when the key must be taken out of use for good. */
  disable?: KeyDisabledReason;
  /** Set when the key must cool down (429 rate limit). */
  cooldown?: true;
  /** Set when the key cannot use the request's model (its project has no access, or its provider does not serve it): another key or provider may. */
  modelUnavailable?: true;
}

/** A field of the `error` object of an OpenAI-style error body (or of the first of a list of them, as Gemini sends), when there is one. */
function errorField(body: unknown, field: 'code' | 'type' | 'details'): unknown {
  return errorObject(body)?.[field];
}

/**
 * The message of an error body in any provider's shape: OpenAI's
 * `error.message` (or the first of a list, as Gemini sends), xAI's `error`
 * string, Mistral's top-level `message`.
 */
function errorMessage(body: unknown): string | undefined {
  const top = errorTop(body);
  if (top === undefined) return undefined;
  const { error, message } = top;
  const said = typeof error === 'string' ? error : typeof error === 'object' && error !== null ? (error as { message?: unknown }).message : message;
  return typeof said === 'string' ? said : undefined;
}

function hasErrorCode(body: unknown, code: string): boolean {
  return errorField(body, 'code') === code || errorField(body, 'type') === code;
}

/** Error codes that say the account is out of money or quota, by provider. */
const QUOTA_CODES = ['insufficient_quota', 'insufficient_balance', 'billing_hard_limit_reached', 'insufficient_credits'];
/** Messages that say the same where the code does not (DeepSeek: "Insufficient Balance"; OpenRouter: "Insufficient credits"; Anthropic, in a 400: "Your credit balance is too low"). */
const QUOTA_MESSAGE = /\binsufficient[ _](?:balance|credits?|funds|quota)\b|\bcredit balance is too low\b/i;
/** OpenAI's 429 for a request larger than the key's whole tokens-per-minute limit. */
const TOO_LARGE_MESSAGE = /^Request too large\b/i;

/**
 * Error codes that say the key cannot use the request's model, though it is
 * fine for others: OpenAI's (and Groq's) `model_not_found` — a 403 ("Project
 * `proj_…` does not have access to model `gpt-4.1`") for a project not
 * allowed the model, a 404 for a model the organisation does not have —,
 * Azure's 404 `DeploymentNotFound` and Together's 404 `model_not_available`.
 */
const MODEL_UNAVAILABLE_CODES = ['model_not_found', 'DeploymentNotFound', 'model_not_available'];
/**
 * The same said in words: DeepSeek's 400 "Model Not Exist", OpenRouter's 400
 * "… is not a valid model ID", Gemini's 404 "models/… is not found for API
 * version …", Anthropic's 404 `not_found_error` "model: …".
 */
const MODEL_UNAVAILABLE_MESSAGE = /^Model Not Exist$|\bis not a valid model ID\b|^models\/\S+ is not found\b|^model: \S+$/i;

/** Whether an error body says the key cannot use the request's model. */
export function isModelUnavailable(body: unknown): boolean {
  if (MODEL_UNAVAILABLE_CODES.some((code) => hasErrorCode(body, code))) return true;
  const message = errorMessage(body);
  return message !== undefined && MODEL_UNAVAILABLE_MESSAGE.test(message.trim());
}

/**
 * Google's reasons for a key it does not accept, in an `ErrorInfo` of
 * `error.details`: its OpenAI-compatible endpoint answers them 400
 * `INVALID_ARGUMENT`, not 401. And their messages, as a gateway quoting
 * Google's answer in its own message has them.
 */
const INVALID_KEY_REASONS = new Set(['API_KEY_INVALID', 'API_KEY_EXPIRED']);
const INVALID_KEY_MESSAGE = /\bAPI key (?:not valid|not found|expired)\b/i;

/** Whether a 400's body says the key is not accepted (Gemini: `API_KEY_INVALID`, `API_KEY_EXPIRED`). */
export function isKeyInvalid(body: unknown): boolean {
  const details = errorField(body, 'details');
  if (Array.isArray(details) && details.some((d) => INVALID_KEY_REASONS.has((d as { reason?: unknown } | null)?.reason as string))) return true;
  const message = errorMessage(body);
  return message !== undefined && INVALID_KEY_MESSAGE.test(message);
}

/**
 * What providers say of a prompt too long for the model where the code is not
 * `context_length_exceeded`: OpenAI's older and DeepSeek's "maximum context
 * length is …", Mistral's "… maximum context length", Gemini's "The input
 * token count (…) exceeds the maximum number of tokens allowed", Anthropic's
 * "prompt is too long", xAI's "maximum prompt length is …".
 */
const CONTEXT_MESSAGE = /maximum context length|exceeds the maximum number of tokens allowed|\bprompt is too long\b|maximum prompt length/i;

/** Whether a 400's body says the prompt is too long for the model. */
export function isContextTooLong(body: unknown): boolean {
  if (hasErrorCode(body, 'context_length_exceeded')) return true;
  const message = errorMessage(body);
  return message !== undefined && CONTEXT_MESSAGE.test(message);
}

/** Whether an error body says the key's account is out of money or quota. */
export function isQuotaExhausted(body: unknown): boolean {
  if (QUOTA_CODES.some((code) => hasErrorCode(body, code))) return true;
  const message = errorMessage(body);
  return message !== undefined && QUOTA_MESSAGE.test(message);
}

/**
 * Why a status alone takes the key out of use (401, 402: as
 * {@link classifyStatus} would say with any body and headers), else
 * undefined. Read before the body, so the key is out at once; the answer is
 * classified in full once its body is read. Not 403: its body says whether
 * the key is refused, or only its use of one model (`model_not_found`).
 */
export function keyRejection(status: number): KeyDisabledReason | undefined {
  return status === 401 ? 'unauthorized' : status === 402 ? 'quota' : undefined;
}

/**
 * Classifies a non-2xx upstream answer. `body` is the parsed error body, when
 * it was JSON. A 400, 403 or 404 saying the key cannot use the model
 * ({@link isModelUnavailable}) moves the request to another key, the key
 * kept in use for other models. A 400 saying the key is not accepted
 * ({@link isKeyInvalid}: Gemini's) disables it as a 401 does. 402, and a
 * 400 or 429 whose body says the account is out of quota or money
 * (`insufficient_quota`, `insufficient_balance`, "Insufficient Balance",
 * "Insufficient credits", Anthropic's "credit balance is too low"), disable
 * the key with reason `quota`. `x-should-retry` decides for transient and
 * caller errors; it does not stop a rotation away from a key the provider
 * rejected.
 */
export function classifyStatus(status: number, headers: Headers, body: unknown): Classification {
  let result: Classification;
  // 402 Payment Required (DeepSeek's "Insufficient Balance", OpenRouter's credits): the key's account is empty.
  if (status === 402) result = { kind: 'quota', action: 'rotate', disable: 'quota' };
  else if ((status === 400 || status === 403 || status === 404) && isModelUnavailable(body)) result = { kind: 'not_found', action: 'rotate', modelUnavailable: true };
  else if (status === 401) result = { kind: 'unauthorized', action: 'rotate', disable: 'unauthorized' };
  else if (status === 403) result = { kind: 'forbidden', action: 'rotate', disable: 'forbidden' };
  else if (status === 429) {
    result = isQuotaExhausted(body)
      ? { kind: 'quota', action: 'rotate', disable: 'quota' }
      : // A request over the key's whole limit ("Request too large … Limit 30000, Requested 30601"): waiting cannot help it, and the key is fine for others.
        TOO_LARGE_MESSAGE.test(errorMessage(body) ?? '')
        ? { kind: 'rate_limit', action: 'rotate' }
        : { kind: 'rate_limit', action: 'rotate', cooldown: true };
  } else if (status === 408) result = { kind: 'timeout', action: 'retry' };
  else if (status === 409) result = { kind: 'conflict', action: 'retry' };
  else if (status >= 500) result = { kind: 'server_error', action: 'retry' };
  else if (status === 404) result = { kind: 'not_found', action: 'surface' };
  // Redirects are not followed (they would take the key and the body elsewhere): a misconfigured baseURL, for the caller to fix.
  else if (status >= 300 && status < 400) result = { kind: 'redirect', action: 'surface' };
  // Gemini's answer to a key it does not accept is a 400: the key is out, as at a 401.
  else if (status === 400 && isKeyInvalid(body)) result = { kind: 'unauthorized', action: 'rotate', disable: 'unauthorized' };
  // Anthropic's answer to an account out of credit is a 400: as at a 402.
  else if (status === 400 && isQuotaExhausted(body)) result = { kind: 'quota', action: 'rotate', disable: 'quota' };
  else if (status === 400 && isContextTooLong(body)) {
    result = { kind: 'context_length', action: 'surface' };
  } else result = { kind: 'bad_request', action: 'surface' };

  if (result.action !== 'rotate') {
    const should = headers.get('x-should-retry');
    if (should === 'false') result = { kind: result.kind, action: 'surface' };
    else if (should === 'true' && result.action === 'surface') result = { kind: result.kind, action: 'retry' };
  }
  return result;
}

/** What an attempt's end says about the health of its key and deployment (their circuits). */
export type HealthVerdict = 'success' | 'failure' | 'release';

/** Kinds of a transient failure: the provider failed (5xx, 408, 409, a reset, a timeout, a broken 200 or stream). */
const TRANSIENT_KINDS: ReadonlySet<FailureKind> = new Set<FailureKind>(['timeout', 'conflict', 'server_error', 'connection', 'invalid_response', 'stream_interrupted']);
/** Kinds that say nothing about the provider's health: a key it rejected or rate-limited (disabled or cooled down instead), the request's end. */
const SILENT_KINDS: ReadonlySet<FailureKind> = new Set<FailureKind>(['rate_limit', 'quota', 'unauthorized', 'forbidden', 'aborted']);

/**
 * The circuits' verdict on a failed attempt, by its kind: a transient failure
 * counts against them; a caller error (400, 404, 422, a redirect) means the
 * provider answered; a rejected or rate-limited key says nothing. Read from
 * the kind, not the action: `x-should-retry` changes whether the request is
 * retried, not what the answer says about the provider.
 */
export function healthVerdict(kind: FailureKind): HealthVerdict {
  return TRANSIENT_KINDS.has(kind) ? 'failure' : SILENT_KINDS.has(kind) ? 'release' : 'success';
}
