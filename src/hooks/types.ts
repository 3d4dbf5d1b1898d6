/**
 * Request/response hooks (`hooks` option of `new KeyManager()`): typed,
 * opt-in functions that see each attempt before it is sent and each upstream
 * answer when it arrives — for guardrails, redaction or body logging without
 * forking keyplex. Each receives one state object (ky-style); a hook may be
 * async. Bodies are given only to hooks that ask for them (`body: 'json'`),
 * so hooks that do not need one cost no parse and no copy.
 */

/** Fields every hook state carries. Keys appear by id, never as secrets. */
export interface HookStateBase {
  /** keyplex's id of the request (the `x-keyplex-request-id` header). */
  readonly requestId: string;
  readonly tags: readonly string[];
  readonly metadata: Readonly<Record<string, string | number | boolean>>;
  /** 1-based attempt number within the request: hooks run once per attempt. */
  readonly attempt: number;
  /** The provider this attempt goes to. */
  readonly provider: string;
  /** The key's id (label or fingerprint), never the key. */
  readonly keyId: string;
  /** The public model asked for. */
  readonly model: string | undefined;
  /** The model name sent upstream on this attempt. */
  readonly upstreamModel: string | undefined;
  readonly method: string;
  /** Path relative to the API base, e.g. `/chat/completions`. */
  readonly path: string;
  /** Aborted when the request ends (caller, deadline, `close()`): a slow async hook should stop. */
  readonly signal: AbortSignal;
}

/** What a `beforeAttempt` hook sees. */
export interface BeforeAttemptState extends HookStateBase {
  /**
   * The request's headers for this attempt, mutable. The caller's (SDK's)
   * headers only: `Authorization` is not there and may not be set (keyplex
   * sets it last), and the provider's configured `headers` are applied over
   * these after the hooks.
   */
  readonly headers: Headers;
  /**
   * The attempt's JSON body (its `model` already renamed to the upstream
   * name), a copy the hook may change in place or replace by returning a new
   * one. Set only for hooks registered with `body: 'json'`, and only when the
   * request's body is a JSON object; `undefined` otherwise.
   */
  readonly body: Record<string, unknown> | undefined;
}

/** What an `afterResponse` hook sees: one upstream answer (any status). */
export interface AfterResponseState extends HookStateBase {
  readonly status: number;
  /** The upstream's response headers (read-only). */
  readonly headers: Headers;
  /** From sending the attempt to its response headers, ms. */
  readonly latencyMs: number;
  /** True for a streamed (`text/event-stream`) answer: its body is never given to hooks. */
  readonly stream: boolean;
  /**
   * For hooks registered with `body: 'json'`: the answer's body parsed as JSON
   * (success or error), `undefined` for streams, non-JSON bodies and hooks
   * that did not ask. With `body: 'text'`: the body as text (not for streams).
   */
  readonly body: unknown;
}

/**
 * Runs before each attempt is sent. Return a new object to replace the JSON
 * body (hooks registered with `body: 'json'`), or nothing. Throwing (or
 * rejecting) fails the request with code `hook_failed`; it is not retried.
 */
export type BeforeAttemptHook = (state: BeforeAttemptState) => void | Record<string, unknown> | Promise<void | Record<string, unknown>>;

/**
 * Runs when an upstream answer arrives, before keyplex acts on it. Its
 * return value is ignored. Throwing (or rejecting) fails the request with
 * code `hook_failed` (the answer is dropped; it is not retried).
 */
export type AfterResponseHook = (state: AfterResponseState) => void | Promise<void>;

/** A hook with what it asks for: `body: 'json'` gives it the body (a parse and a copy per attempt). */
export interface HookEntry<H, B extends string> {
  body?: B;
  run: H;
}

/** `hooks` of `new KeyManager()`. Each: one function, one `{ body, run }`, or an array of them, run in order. */
export interface HooksOptions {
  beforeAttempt?: BeforeAttemptHook | HookEntry<BeforeAttemptHook, 'json'> | (BeforeAttemptHook | HookEntry<BeforeAttemptHook, 'json'>)[];
  afterResponse?: AfterResponseHook | HookEntry<AfterResponseHook, 'json' | 'text'> | (AfterResponseHook | HookEntry<AfterResponseHook, 'json' | 'text'>)[];
}

/** A hook after validation. */
export interface ResolvedHook<H> {
  readonly run: H;
  readonly body: 'json' | 'text' | undefined;
  /** `beforeAttempt[0]`, for messages. */
  readonly name: string;
}

/** `hooks` after validation; `undefined` in the resolved options when none is installed. */
export interface ResolvedHooks {
  /** Undefined when none. */
  readonly beforeAttempt: readonly ResolvedHook<BeforeAttemptHook>[] | undefined;
  readonly afterResponse: readonly ResolvedHook<AfterResponseHook>[] | undefined;
  /** Whether some hook asks for the body. */
  readonly beforeBody: boolean;
  readonly afterBody: boolean;
}
