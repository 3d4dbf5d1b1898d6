/**
 * How keyplex's detail reaches the caller through the SDK: failures are
 * answered with a Response the SDK turns into its own error class, carrying
 * the detail in one header; errors keyplex throws are the SDK error's `cause`.
 */
import { KeyplexError, type KeyplexErrorDetail } from './errors';

/** Response header with keyplex's JSON detail of a failed request. */
export const DETAIL_HEADER = 'x-keyplex-detail';
/** Response header with keyplex's request id. */
export const REQUEST_ID_HEADER = 'x-keyplex-request-id';

/** A copy of `response` (whose body was read into `body`) with the detail header added. */
export function withDetail(response: Response, body: string, detail: KeyplexErrorDetail): Response {
  const headers = new Headers(response.headers);
  headers.delete('content-length');
  headers.delete('content-encoding');
  headers.set(DETAIL_HEADER, encodeURIComponent(JSON.stringify(detail)));
  if (detail.requestId) headers.set(REQUEST_ID_HEADER, detail.requestId);
  return new Response(body, { status: response.status, statusText: response.statusText, headers });
}

/** An OpenAI-style error answer for a failure keyplex decided itself (no upstream answer to pass on). */
export function errorResponse(error: KeyplexError, status: number): Response {
  const detail = error.toDetail();
  const headers = new Headers({ 'content-type': 'application/json', [DETAIL_HEADER]: encodeURIComponent(JSON.stringify(detail)) });
  if (detail.requestId) headers.set(REQUEST_ID_HEADER, detail.requestId);
  if (error.retryAfterMs !== undefined) {
    headers.set('retry-after-ms', String(Math.ceil(error.retryAfterMs)));
    headers.set('retry-after', String(Math.ceil(error.retryAfterMs / 1000)));
  }
  const body = { error: { message: error.message, type: 'keyplex_error', code: error.code, param: null } };
  return new Response(JSON.stringify(body), { status, headers });
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
