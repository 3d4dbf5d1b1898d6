/**
 * The errors a request meets on its way: no provider or key for it, the
 * objects it names out of reach, its deadline, the upstream's failure, a
 * stream broken after its first bytes, the manager closed under it.
 */

import { KeyplexError, type AttemptOutcome } from './base';

/** No configured provider serves the requested model (or none the request is pinned to: `message` says so). */
export class ModelNotServedError extends KeyplexError {
  readonly model: string;
  constructor(model: string, requestId?: string, message?: string) {
    message ??= `keyplex: no provider serves model '${model}'. Add it to a provider's \`models\`, or set \`serveAnyModel: true\` on a provider that serves any model (e.g. a gateway).`;
    super('model_not_served', message, { requestId, status: 404 });
    this.name = 'ModelNotServedError';
    this.model = model;
  }
}

/** Every key that could serve the request is cooling down or disabled. */
export class NoKeyAvailableError extends KeyplexError {
  constructor(message: string, options: { requestId?: string; attempts?: AttemptOutcome[]; retryAfterMs?: number | undefined }) {
    super('no_key_available', message, { ...options, status: options.retryAfterMs === undefined ? 503 : 429 });
    this.name = 'NoKeyAvailableError';
  }
}

/** A request names an object kept per project (a response, file, batch, conversation, upload, vector store, fine-tuning job or stored chat completion: `previous_response_id`, `input_file_id`, `/files/{id}`…) created with a key now removed or disabled: only that key's project knows it, so nothing is sent. Status 404. The code keeps its first name (responses only); the message names the object. */
export class ResponseKeyUnavailableError extends KeyplexError {
  constructor(message: string, options: { requestId?: string; attempts?: AttemptOutcome[] }) {
    super('response_key_unavailable', message, { ...options, status: 404 });
    this.name = 'ResponseKeyUnavailableError';
  }
}

/**
 * A request names objects (files, vector stores, a response…) that keyplex
 * remembers as created with different keys: each is known only to the
 * project of its own key, and no one key knows them all, so nothing is sent.
 * Status 400 (the SDK raises `BadRequestError`); the message names each
 * object, its kind and the key id that created it.
 */
export class ObjectsOnDifferentKeysError extends KeyplexError {
  constructor(message: string, options: { requestId?: string }) {
    super('objects_on_different_keys', message, { ...options, status: 400 });
    this.name = 'ObjectsOnDifferentKeysError';
  }
}

/**
 * The request's total deadline passed before an answer arrived. Answered with
 * status 504 (the SDK raises `InternalServerError`); `summary` says what the
 * attempts met, e.g. `tried 1 key of 'one' in 2 attempts (2 × 503 server_error)`.
 */
export class DeadlineExceededError extends KeyplexError {
  constructor(deadlineMs: number, options: { requestId?: string; attempts?: AttemptOutcome[]; cause?: unknown; summary?: string }) {
    const { summary, ...rest } = options;
    const met = summary ? `; ${summary}` : ` after ${options.attempts?.length ?? 0} attempt(s)`;
    super(
      'deadline_exceeded',
      `keyplex: the request's deadline of ${deadlineMs} ms passed before an answer arrived${met}. Raise \`deadlineMs\` (manager or request option) if the work needs longer.`,
      { ...rest, status: 504 },
    );
    this.name = 'DeadlineExceededError';
  }
}

/**
 * The final attempt failed without an HTTP answer: answered with status 502
 * (connection failed or reset) or 504 (attempt timeout), so the SDK raises
 * `InternalServerError` with this message.
 */
export class UpstreamError extends KeyplexError {
  constructor(message: string, options: { requestId?: string; attempts?: AttemptOutcome[]; cause?: unknown; status?: number }) {
    super('upstream_error', message, options);
    this.name = 'UpstreamError';
  }
}

/** A stream failed after its first bytes had reached the caller; nothing is replayed. */
export class StreamInterruptedError extends KeyplexError {
  constructor(
    options: { requestId?: string; attempts?: AttemptOutcome[]; cause?: unknown },
    code: 'stream_interrupted' | 'stream_idle_timeout' | 'malformed_response' = 'stream_interrupted',
    message = 'keyplex: the upstream stream failed after data had reached the caller; it is not replayed. Retry the request if a partial answer is not enough.',
  ) {
    super(code, message, options);
    this.name = 'StreamInterruptedError';
  }
}

/**
 * A stream sent no data for `streamIdleTimeoutMs` after its first bytes had
 * reached the caller (SSE comments such as `: ping` do not count as data):
 * keyplex ended it. A {@link StreamInterruptedError} with code `stream_idle_timeout`.
 */
export class StreamStalledError extends StreamInterruptedError {
  /** The idle timeout that ran out, ms. */
  readonly idleTimeoutMs: number;
  constructor(idleTimeoutMs: number, options: { requestId?: string; attempts?: AttemptOutcome[] }) {
    super(
      options,
      'stream_idle_timeout',
      `keyplex: the upstream stream sent no data for ${idleTimeoutMs} ms after data had reached the caller, so keyplex ended it; it is not replayed. Retry the request, or raise \`streamIdleTimeoutMs\` if this model pauses longer between chunks.`,
    );
    this.name = 'StreamStalledError';
    this.idleTimeoutMs = idleTimeoutMs;
  }
}

/** The manager was closed; it takes no new requests. Answered with status 503 (the SDK raises `InternalServerError`). */
export class ManagerClosedError extends KeyplexError {
  /**
   * @param options.call - the manager method called after `close()` (`addKey`, `wrap`…): thrown by it at once.
   * @param options.inFlight - the request was under way (queued, being sent, or a stream being read) when `close()`
   *   ended it, rather than made after: the message then says so, and how to let such requests finish.
   */
  constructor(options: { requestId?: string; attempts?: AttemptOutcome[]; inFlight?: boolean; call?: string } = {}) {
    const { inFlight, call, ...rest } = options;
    const message = inFlight
      ? 'keyplex: close() ended this request while it was under way (queued, being sent or streaming); close({ drain: true }) lets requests under way finish first.'
      : call !== undefined
        ? `keyplex: ${call}() was called on a KeyManager that was closed, and did nothing; create a new one (stats(), on/off and close() stay usable on a closed one).`
        : 'keyplex: this KeyManager was closed; create a new one to send more requests.';
    super('manager_closed', message, { ...rest, status: 503 });
    this.name = 'ManagerClosedError';
  }
}
