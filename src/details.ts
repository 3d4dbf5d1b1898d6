/**
 * How keyplex's detail reaches the caller through the SDK: failures are
 * answered with a Response the SDK turns into its own error class, carrying
 * the detail in one header; errors keyplex throws are the SDK error's `cause`.
 */
import { KeyplexError, type KeyplexErrorCode, type KeyplexErrorDetail } from './errors';
import { BufferedReply } from './pipeline/buffered-reply';

/** Response header with keyplex's JSON detail of a failed request. */
export const DETAIL_HEADER = 'x-keyplex-detail';
/** Response header with keyplex's request id. */
export const REQUEST_ID_HEADER = 'x-keyplex-request-id';

/**
 * Set `false` on every failure keyplex answers: keyplex has retried already,
 * so an SDK whose retries a request option turned back on (`maxRetries`)
 * does not send the request through keyplex again (the `openai` SDK reads
 * this header before the status). An upstream's own value is replaced.
 */
const SHOULD_RETRY_HEADER = 'x-should-retry';

/** Characters of a non-JSON upstream error body quoted in keyplex's message. */
const QUOTED_BODY = 300;

/**
 * A copy of `response` (whose body was read into `body`) with the detail
 * header added. With `message`, the body says that instead (the SDK builds its
 * error's message from it): the upstream's own message is appended as
 * "Last upstream answer: …", and an OpenAI-style JSON body keeps its other fields.
 */
export function withDetail(response: Response, body: string, detail: KeyplexErrorDetail, message?: string): Response {
  const headers = new Headers(response.headers);
  headers.delete('content-length');
  headers.delete('content-encoding');
  headers.set(DETAIL_HEADER, encodeURIComponent(JSON.stringify(detail)));
  headers.set(SHOULD_RETRY_HEADER, 'false');
  if (detail.requestId) headers.set(REQUEST_ID_HEADER, detail.requestId);
  if (message !== undefined) {
    body = explainedBody(body, message);
    headers.set('content-type', 'application/json');
  }
  return new BufferedReply(body, response.status, response.statusText, headers);
}

/** An error body whose `error.message` is `message`, ending with the upstream's own message. */
function explainedBody(body: string, message: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    parsed = undefined;
  }
  const record = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  const error = record?.error;
  if (record !== undefined && typeof error === 'object' && error !== null && !Array.isArray(error)) {
    const upstream = (error as Record<string, unknown>).message;
    const said = typeof upstream === 'string' ? upstream : JSON.stringify(upstream ?? null);
    return JSON.stringify({ ...record, error: { ...error, message: `${message} Last upstream answer: ${said}` } });
  }
  const said = typeof error === 'string' ? error : body.length > QUOTED_BODY ? `${body.slice(0, QUOTED_BODY)}…` : body;
  return JSON.stringify({ error: { message: `${message} Last upstream answer: ${said.trim() === '' ? '(empty body)' : said}`, type: 'keyplex_error', code: null, param: null } });
}

/**
 * An OpenAI-style error answer for a failure keyplex decided itself (no
 * upstream answer to pass on). `detail`: what it carries when not the
 * error's own (an error made before its request was known, given its id).
 */
export function errorResponse(error: KeyplexError, status: number, detail: KeyplexErrorDetail = error.toDetail()): Response {
  const headers = new Headers({ 'content-type': 'application/json', [DETAIL_HEADER]: encodeURIComponent(JSON.stringify(detail)), [SHOULD_RETRY_HEADER]: 'false' });
  if (detail.requestId) headers.set(REQUEST_ID_HEADER, detail.requestId);
  if (error.retryAfterMs !== undefined) {
    headers.set('retry-after-ms', String(Math.ceil(error.retryAfterMs)));
    headers.set('retry-after', String(Math.ceil(error.retryAfterMs / 1000)));
  }
  const body = { error: { message: error.message, type: 'keyplex_error', code: error.code, param: null } };
  return new BufferedReply(JSON.stringify(body), status, '', headers);
}

function headerOf(headers: unknown, name: string): string | undefined {
  if (headers instanceof Headers) return headers.get(name) ?? undefined;
  if (typeof headers === 'object' && headers !== null) {
    const value = (headers as Record<string, unknown>)[name];
    return typeof value === 'string' ? value : undefined;
  }
  return undefined;
}

/**
 * keyplex's detail of a failed request, from any error the caller caught:
 * an SDK `APIError` (read from its response headers), an AI SDK `APICallError`
 * (its `responseHeaders`), an SDK connection error
 * whose `cause` is a keyplex error, or a keyplex error itself. `undefined` when
 * the error did not come through keyplex.
 *
 * ```ts
 * try { await client.chat.completions.create(...) }
 * catch (err) { const detail = getKeyplexDetails(err); if (detail?.code === 'no_key_available') ... }
 * ```
 */
export function getKeyplexDetails(error: unknown): KeyplexErrorDetail | undefined {
  for (let current = error, depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    if (KeyplexError.is(current)) return current.toDetail();
    const header =
      headerOf((current as { headers?: unknown }).headers, DETAIL_HEADER) ??
      headerOf((current as { responseHeaders?: unknown }).responseHeaders, DETAIL_HEADER);
    if (header !== undefined) {
      try {
        return JSON.parse(decodeURIComponent(header)) as KeyplexErrorDetail;
      } catch {
        return undefined;
      }
    }
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * True when keyplex caused `error`: one of its own errors, or an error the
 * SDK raised from keyplex's answer (an `APIError` carrying keyplex's detail,
 * or a connection error whose `cause` is a keyplex error). With `code`, only
 * when its code is that one. Use it where `instanceof` cannot work: the SDK
 * raises its own classes for what keyplex answers.
 *
 * ```ts
 * catch (err) { if (isKeyplexError(err, 'no_key_available')) alertOps(err.message); }
 * ```
 */
export function isKeyplexError(error: unknown, code?: KeyplexErrorCode): boolean {
  const detail = getKeyplexDetails(error);
  return detail !== undefined && (code === undefined || detail.code === code);
}
