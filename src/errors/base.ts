/**
 * keyplex's own errors: the base class and what every error carries (the
 * classes by family are in this folder's other modules, all exported by its
 * index). Every error has a stable `code` that is safe to switch on; messages say what was wrong and what to do, and never contain a key.
 *
 * The contract, from the app's side (README "Errors"):
 * - a request's failure reaches the app as the SDK's own class for its status
 *   (keyplex answers the SDK over HTTP: 429 → `RateLimitError`, 503/504 →
 *   `InternalServerError`, ...), with a message that starts `keyplex:` and says
 *   what the attempts met and what to do; only the caller's own abort
 *   (`APIUserAbortError`) and a stream broken after its first bytes (thrown
 *   while iterating) take other shapes;
 * - the app tests `getKeyplexDetails(err)?.code` or `isKeyplexError(err, code)`,
 *   which work on the SDK's errors; `instanceof` works only for the classes
 *   keyplex throws itself: {@link ConfigError} (manager options, key calls),
 *   {@link RequestOptionsError} (`keyplex.options()`) and
 *   {@link MissingPeerError} (an entry whose optional peer is not installed),
 *   which the package exports with the errors that end a stream's loop. The
 *   other classes here carry the detail inside keyplex.
 */

const MARKER = Symbol.for('keyplex.error');

/** Every `code` a {@link KeyplexError} can carry. */
export type KeyplexErrorCode =
  | 'invalid_config'
  | 'invalid_request_options'
  | 'model_not_served'
  | 'context_length_exceeded'
  | 'no_key_available'
  | 'response_key_unavailable'
  | 'objects_on_different_keys'
  | 'deadline_exceeded'
  | 'upstream_error'
  | 'stream_interrupted'
  | 'stream_idle_timeout'
  | 'malformed_response'
  | 'aborted'
  | 'manager_closed'
  | 'lane_full'
  | 'queue_timeout'
  | 'unknown_lane'
  | 'unknown_base_url'
  | 'budget_exceeded'
  | 'store_unavailable'
  | 'hook_failed'
  | 'missing_peer';

/** How one attempt of a request ended; part of an error's detail and of events. */
export interface AttemptOutcome {
  /** 1-based attempt number within the request. */
  attempt: number;
  provider: string;
  keyId: string;
  /** The upstream model name sent on this attempt. */
  upstreamModel: string | undefined;
  /** HTTP status of the upstream answer, or `undefined` when none arrived. */
  status: number | undefined;
  /** The outcome's class, see {@link FailureKind}; `'success'` for a 2xx. */
  kind: FailureKind | 'success';
  latencyMs: number;
}

/**
 * The class of a failed attempt, as in DESIGN.md's outcome table.
 * Stats count failures by these names.
 */
export type FailureKind =
  | 'rate_limit'
  | 'quota'
  | 'unauthorized'
  | 'forbidden'
  | 'bad_request'
  | 'context_length'
  | 'not_found'
  | 'redirect'
  | 'timeout'
  | 'conflict'
  | 'server_error'
  | 'connection'
  | 'invalid_response'
  | 'stream_interrupted'
  | 'aborted';

/** keyplex's detail on a failed request, reachable from any error it caused. */
export interface KeyplexErrorDetail {
  code: KeyplexErrorCode;
  message: string;
  requestId?: string | undefined;
  /** Every attempt made, in order. */
  attempts: AttemptOutcome[];
  /** When no key was usable: how long until one is expected to be. */
  retryAfterMs?: number | undefined;
  /** HTTP status of the final upstream answer, when there was one. */
  status?: number | undefined;
}

/** Base class of every keyplex error. */
export class KeyplexError extends Error {
  /** Stable, machine-readable code. */
  readonly code: KeyplexErrorCode;
  readonly requestId: string | undefined;
  readonly attempts: AttemptOutcome[];
  readonly retryAfterMs: number | undefined;
  readonly status: number | undefined;

  constructor(
    code: KeyplexErrorCode,
    message: string,
    options: {
      cause?: unknown;
      requestId?: string | undefined;
      attempts?: AttemptOutcome[];
      retryAfterMs?: number | undefined;
      status?: number | undefined;
    } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KeyplexError';
    this.code = code;
    this.requestId = options.requestId;
    this.attempts = options.attempts ?? [];
    this.retryAfterMs = options.retryAfterMs;
    this.status = options.status;
    Object.defineProperty(this, MARKER, { value: true });
  }

  /**
   * `instanceof KeyplexError` holds for a keyplex error of any copy of the
   * package (each entry point bundles its own: `keyplex/redis`'s
   * `ConfigError` is not the main entry's class); a subclass answers by its
   * own prototype unless it says otherwise (`ConfigError`, `MissingPeerError`
   * answer by their code).
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return this === KeyplexError ? KeyplexError.is(value) : Function.prototype[Symbol.hasInstance].call(this, value);
  }

  /**
   * True for a keyplex error object, also one from another copy of the
   * package. The SDK raises its own classes for what keyplex answers: to test
   * those, use `isKeyplexError(err, code?)` or `getKeyplexDetails(err)`.
   */
  static is(value: unknown): value is KeyplexError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[MARKER] === true;
  }

  /** The plain detail object (what {@link getKeyplexDetails} returns). */
  toDetail(): KeyplexErrorDetail {
    return {
      code: this.code,
      message: this.message,
      requestId: this.requestId,
      attempts: this.attempts,
      retryAfterMs: this.retryAfterMs,
      status: this.status,
    };
  }
}
