/**
 * Respond: what the SDK gets back — the upstream reply with keyplex's
 * headers, a streamed reply tapped for usage (accounted when it ends), or a
 * failure turned into the answer or error the caller should see.
 */
import { safeName, suggest } from '../config/check';
import { errorResponse, withDetail } from '../details';
import {
  DeadlineExceededError,
  KeyplexError,
  ManagerClosedError,
  ModelNotServedError,
  NoKeyAvailableError,
  RequestOptionsError,
  StreamInterruptedError,
  StreamStalledError,
  UpstreamError,
  type FailureKind,
  type KeyplexErrorDetail,
} from '../errors';
import { withoutQuery, type Body } from '../request';
import { classifyStatus } from '../resilience/classify';
import { bodyRetryAfterMs } from '../resilience/error-body';
import { MalformedStreamEvent, StreamIdleTimeout, StreamReaderIdle, StreamTruncated, tapEventStream, tokensOfText, type FirstEvents, type StreamReader, type StreamEnding, type StreamTally, type StreamTapHooks } from '../usage/sse';
import type { Usage } from '../usage/usage';
import { account, costOf, failed } from './account';
import { backgroundStream } from './background';
import { createdObject, pinNotServing, rememberObject } from './affinity';
import { BufferedReply, StreamedReply } from './buffered-reply';
import type { RequestContext } from './context';
import type { Core } from './core';
import { AttemptFailure, AttemptTimeout, embeddedStatus, FetchOptionError } from './failure';
import { attemptsSummary } from './explain';
import type { Lease } from './lease';
import { ReplyHeaders } from './reply-headers';

/**
 * The Response handed to the SDK: the upstream answer, with keyplex's headers
 * when the `replyHeaders` option asks for them; a body read whole (text, or
 * bytes) travels as a {@link BufferedReply} (no stream made).
 */
export function reply(core: Core, ctx: RequestContext, lease: Lease, upstream: Response, body: Body | null): Response {
  const buffered = typeof body === 'string' || body instanceof Uint8Array;
  // The body is no longer the bytes content-length and content-encoding described (fetch decoded it; keyplex may have re-framed it).
  const dropFraming = buffered || body instanceof ReadableStream;
  const read = upstream.headers;
  const own = core.options.replyHeaders ? ([String(ctx.history.outcomes.length), lease.key.id, lease.deployment.pool.id, ctx.requestId] as const) : undefined;
  const headers = new ReplyHeaders(read, lease.entriesOf(read), own, dropFraming);
  if (buffered) return new BufferedReply(body, upstream.status, upstream.statusText, headers);
  return new StreamedReply(body as ReadableStream<Uint8Array> | null, upstream.status, upstream.statusText, headers);
}

/**
 * A streamed reply: tapped for usage and bounded (idle timeout, and the
 * request's signal: caller, close(), the deadline when it bounds the whole
 * stream); success or failure is reported when it ends. Until then the
 * request holds its lane slot and stays abortable.
 *
 * Which event fires: the stream ended at its end marker → `success`; the
 * caller left before it → `success` with partial usage; the upstream broke,
 * stalled, sent a malformed or an error event or ended a Responses answer
 * with `response.failed`, or the deadline or close() ended it → `failure`,
 * with partial usage once data had reached the caller.
 */
export function streamReply(
  core: Core,
  ctx: RequestContext,
  lease: Lease,
  upstream: Response,
  reader: StreamReader,
  first: FirstEvents,
  ttftMs: number,
  end: StreamEnding,
): Response {
  ctx.streaming = true;
  const tapped = tapEventStream(first, reader, new StreamEnd(core, ctx, lease, ttftMs, end, first.scanner.tally.responseId));
  return reply(core, ctx, lease, upstream, tapped);
}

/** How a streamed reply ends, as the tap reports it (one object per stream, its methods the tap's hooks). */
class StreamEnd implements StreamTapHooks {
  readonly idleTimeoutMs: number;
  readonly requireEnd: boolean;

  constructor(
    private readonly core: Core,
    private readonly ctx: RequestContext,
    private readonly lease: Lease,
    private readonly ttftMs: number,
    readonly end: StreamEnding,
    /** The created object's id the stream's first events gave: send remembered it then. */
    private readonly firstId: string | undefined,
  ) {
    const request = ctx.request;
    this.idleTimeoutMs = request.options.streamIdleTimeoutMs ?? core.options.streamIdleTimeoutMs;
    this.requireEnd = endMarked(request.path);
  }

  onEnd(usage: Usage | undefined, tally: StreamTally): void {
    if (tally.errorEvent) this.#reported(usage, tally);
    else this.#succeed(usage, tally, true);
  }

  /** The caller left (broke out of its loop, aborted): not a failure, unless it left on an error the upstream reported. */
  onCancel(usage: Usage | undefined, tally: StreamTally): void {
    if (tally.errorEvent) this.#reported(usage, tally);
    else this.#succeed(usage, tally, tally.sawEnd);
  }

  /**
   * The upstream reported an error in the stream (an error event, a failed
   * response): the request failed. Against the provider's health unless the
   * error names the request itself (a failed response's `invalid_prompt`) or
   * the key (a rate limit, an empty quota: the key rests or is taken out, as
   * at a 429 reply of that code).
   */
  #reported(usage: Usage | undefined, tally: StreamTally): void {
    const verdict = this.#judgeReported(tally);
    this.#fail(streamError(this.ctx, tally.failedResponse ? 'response-failed' : 'error-event'), usage, tally, verdict.fault, verdict.kind);
  }

  /**
   * What the error the upstream reported says: whether it counts against the
   * provider's health (see {@link #reported}), and what the stats count the
   * attempt as (a rate limit, a quota, the request itself; else the stream's
   * interruption).
   */
  #judgeReported(tally: StreamTally): { fault: boolean; kind: FailureKind } {
    const error = tally.error;
    const status = error === undefined ? 502 : embeddedStatus(error);
    if (status === 429) return { fault: false, kind: keyRejected(this.lease, error!, Date.now()) };
    return status === 400 ? { fault: false, kind: 'bad_request' } : { fault: true, kind: 'stream_interrupted' };
  }

  /** After an error the upstream reported (the body then ends before its end marker, or breaks), that error is the verdict. */
  onError(error: unknown, usage: Usage | undefined, tally: StreamTally): unknown {
    if (this.ctx.request.signal?.aborted && !tally.errorEvent) {
      this.#succeed(usage, tally, tally.sawEnd);
      return error;
    }
    const verdict = tally.errorEvent ? this.#judgeReported(tally) : undefined;
    const upstreamFault = (verdict?.fault ?? true) && !endedByCaller(error);
    return this.#fail(streamError(this.ctx, error), usage, tally, upstreamFault, verdict?.kind);
  }

  #succeed(usage: Usage | undefined, tally: StreamTally, ended: boolean): void {
    const ctx = this.ctx;
    endStreamingRequest(ctx);
    // A response whose id came after the stream's first event (send remembers one that opened it).
    const created = tally.responseId === undefined || tally.responseId === this.firstId ? undefined : createdObject(this.core, ctx);
    if (created !== undefined) rememberObject(this.core, this.lease, created, tally.responseId, Date.now());
    const spent = spentSoFar(ctx, usage, tally, ended);
    const costUsd = account(this.core, ctx, this.lease, Date.now(), spent, this.ttftMs, true, undefined, spent?.partial === true);
    if (ctx.request.background || this.core.background.size !== 0) backgroundStream(this.core, ctx, this.lease, tally, usage, spent, costUsd);
  }

  /** `upstreamFault` false: ended on the caller's side (see {@link endedByCaller}), no verdict on the provider. */
  #fail(error: KeyplexError, usage: Usage | undefined, tally: StreamTally, upstreamFault = true, kind?: FailureKind): KeyplexError {
    const { core, ctx, lease } = this;
    const now = Date.now();
    const spent = spentSoFar(ctx, usage, tally, false);
    const costUsd = spent ? costOf(core, lease, ctx.request.model, spent, ctx.inputTokens) : null;
    lease.settle('stream-failed', now, spent, costUsd, upstreamFault, kind);
    endStreamingRequest(ctx);
    const partial = spent ? { usage: spent, costUsd, provider: lease.deployment.pool.id, keyId: lease.key.id } : undefined;
    failed(core, ctx, error.toDetail(), partial);
    if (ctx.request.background || core.background.size !== 0) backgroundStream(core, ctx, lease, tally, usage, spent, costUsd);
    return error;
  }
}

/** A stream's own headers say nothing of a rate limit its later error reports (they came with its start). */
const NO_HEADERS = new Headers();

/**
 * A rate limit or an empty quota reported inside a stream: the key is taken
 * out (`insufficient_quota` and the like) or rests for the wait the message
 * asks, else `cooldownMs` — what a 429 reply of that error does. Returns its
 * kind (`rate_limit`, `quota`).
 */
function keyRejected(lease: Lease, error: Record<string, unknown>, now: number): FailureKind {
  const body = { error };
  const classification = classifyStatus(429, NO_HEADERS, body);
  if (classification.disable) lease.key.disable(classification.disable);
  if (classification.cooldown) lease.rest(NO_HEADERS, bodyRetryAfterMs(body, '', now), now);
  return classification.kind;
}

/** Streams whose end is marked (`[DONE]`, a finish reason, a terminal Responses event): a body that ends before it was cut. */
const END_MARKED_PATHS = new Set(['/chat/completions', '/completions', '/responses']);

function endMarked(path: string): boolean {
  return END_MARKED_PATHS.has(withoutQuery(path));
}

/**
 * What a stream used: the provider's usage when it reported it; else, for a
 * stream that did not end normally (`ended` false: the caller left, or it
 * failed), an estimate flagged `partial` — the prompt as estimated at
 * intercept, the output from the text streamed so far; null for a stream
 * that ended normally without usage (the provider reports none).
 */
function spentSoFar(ctx: RequestContext, usage: Usage | undefined, tally: StreamTally, ended: boolean): Usage | null {
  // A stream replayed (a response retrieved streamed) was billed when it was made.
  if (!ctx.request.bills) return null;
  if (usage) return usage;
  if (ended) return null;
  const outputTokens = tokensOfText(tally.textChars);
  const inputTokens = ctx.inputTokens;
  return { inputTokens, outputTokens, cachedInputTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, totalTokens: inputTokens + outputTokens, partial: true };
}

/**
 * Whether a stream was ended on the caller's side, not by its upstream: not
 * read for the idle timeout, at the request's deadline, or by `close()`.
 * Like an abort, that says nothing about the provider's health.
 */
function endedByCaller(cause: unknown): boolean {
  return cause instanceof StreamReaderIdle || cause instanceof AttemptTimeout || (KeyplexError.is(cause) && cause.code === 'manager_closed');
}

/** The error a stream ended with, as the caller's loop gets it. */
function streamError(ctx: RequestContext, cause: unknown): KeyplexError {
  const options = { requestId: ctx.requestId, attempts: ctx.history.outcomes };
  if (cause instanceof StreamIdleTimeout) return new StreamStalledError(cause.idleTimeoutMs, options);
  if (cause instanceof StreamReaderIdle) {
    const message = `keyplex: the stream was not read for ${cause.idleTimeoutMs} ms (\`streamIdleTimeoutMs\`), so its lane slot and upstream were let go. Read streams to their end, or cancel the ones you give up on.`;
    return new StreamInterruptedError(options, 'stream_interrupted', message);
  }
  if (cause instanceof AttemptTimeout) return new DeadlineExceededError(ctx.deadlineMs, options);
  // close() ends every request with one error: each stream gets its own, naming its request and attempts.
  if (KeyplexError.is(cause) && cause.code === 'manager_closed') return new ManagerClosedError({ ...options, inFlight: true });
  if (cause instanceof MalformedStreamEvent) {
    const what = cause.tooLarge ? 'an event larger than 16 MiB (its end never came)' : 'an event whose data is not JSON';
    return new StreamInterruptedError(options, 'malformed_response', `keyplex: the upstream stream sent ${what} after data had reached the caller; it is not replayed. Retry the request.`);
  }
  if (cause === 'response-failed') {
    return new StreamInterruptedError(options, 'stream_interrupted', 'keyplex: the upstream ended the response with `response.failed` after data had reached the caller; it is not replayed. The app got the event (its `response.error` says why): retry the request if the error is transient.');
  }
  if (cause === 'error-event') {
    return new StreamInterruptedError(options, 'stream_interrupted', 'keyplex: the upstream reported an error inside the stream after data had reached the caller; it is not replayed.');
  }
  if (cause instanceof StreamTruncated) {
    return new StreamInterruptedError(options, 'stream_interrupted', 'keyplex: the upstream stream ended before its end marker after data had reached the caller; it is not replayed. Retry the request if a partial answer is not enough.');
  }
  return new StreamInterruptedError({ ...options, cause });
}

/** A stream that outlived the pipeline call ended: its lane slot is freed, the request detached. */
function endStreamingRequest(ctx: RequestContext): void {
  if (!ctx.streaming) return;
  // Cleared first: a stream that ends before the pipeline call returned is then finished by it.
  ctx.streaming = false;
  ctx.releaseLane?.();
  ctx.finish?.();
}

/**
 * Turns whatever ended the attempts into what the SDK should see: the last
 * upstream answer with keyplex's detail (its message saying what the attempts
 * met), an HTTP-shaped keyplex refusal (no key, lane, budget, deadline,
 * closed), or a thrown error (the caller's abort, a transport failure).
 */
export function finishFailure(core: Core, ctx: RequestContext, error: unknown, signal: AbortSignal): Response {
  const { requestId } = ctx;
  const attempts = ctx.history.outcomes;
  if (signal.aborted) {
    const ended = abortedFailure(core, ctx, error, signal);
    if (ended instanceof Response) return ended;
    throw ended;
  }
  // The last upstream answer is what the caller sees, with keyplex's detail.
  if (error instanceof AttemptFailure) {
    const answer = error.response;
    if (answer && answer.response.ok) {
      // A 200 whose body is broken: the SDK would parse it as an answer, so it gets a 502 with keyplex's detail.
      const broken = new KeyplexError(
        'malformed_response',
        `keyplex: the upstream answered ${answer.response.status} with a broken body (malformed JSON or server-sent events, an empty stream, or a content type the endpoint does not answer with) on attempt ${attempts.length}; no other attempt was left. Retry later, or check the provider.`,
        { requestId, attempts, status: 502 },
      );
      failed(core, ctx, broken.toDetail());
      return errorResponse(broken, 502);
    }
    if (answer) {
      const status = answer.response.status;
      const message = callerError(error, attempts.length) ? undefined : `keyplex: ${attemptsSummary(attempts)}.${redirectAdvice(error, answer.response)}`;
      const said = message ?? `keyplex: the upstream answered ${status} (${error.classification.kind}) on attempt ${attempts.length}.`;
      const detail: KeyplexErrorDetail = { code: 'upstream_error', message: said, requestId, attempts, status };
      failed(core, ctx, detail);
      return withDetail(answer.response, answer.body, detail, message);
    }
    // No answer to pass on: a gateway's answer, 504 for a timeout, else 502.
    const timedOut = error.classification.kind === 'timeout';
    const upstream = new UpstreamError(
      timedOut
        ? `keyplex: no upstream answer within the attempt timeout (${core.options.attemptTimeoutMs} ms) on the last attempt; ${attemptsSummary(attempts)}. Raise \`attemptTimeoutMs\` if the work needs longer.`
        : `keyplex: the upstream connection failed on the last attempt; ${attemptsSummary(attempts)}. Check the network and the providers' \`baseURL\`.`,
      { requestId, attempts, cause: error.cause, status: timedOut ? 504 : 502 },
    );
    failed(core, ctx, upstream.toDetail());
    return errorResponse(upstream, upstream.status!);
  }
  if (error instanceof NoKeyAvailableError) {
    // After upstream answers, the last one is passed on, its message saying what the attempts met and why no key is left.
    const previous = ctx.history.lastAnswer;
    if (previous) {
      const message = `keyplex: ${attemptsSummary(attempts)}; then ${error.message.replace(/^keyplex: /, '')}`;
      if (previous.response.ok) {
        // A broken 200 is no answer to pass on (the SDK would take its error body for a completion, or read an empty stream).
        const none = new NoKeyAvailableError(message, { requestId, attempts, retryAfterMs: error.retryAfterMs });
        failed(core, ctx, none.toDetail());
        return errorResponse(none, none.status!);
      }
      const detail: KeyplexErrorDetail = { ...error.toDetail(), message, status: previous.response.status };
      failed(core, ctx, detail);
      return withDetail(previous.response, previous.body, detail, message);
    }
    failed(core, ctx, error.toDetail());
    return errorResponse(error, error.status ?? 503);
  }
  if (KeyplexError.is(error) && error.status !== undefined) {
    // Refused by keyplex itself (lane full, queue timeout, unknown lane, closed), made not knowing the request: named here.
    const detail = { ...error.toDetail(), requestId, attempts };
    failed(core, ctx, detail);
    return errorResponse(error, error.status, detail);
  }
  if (KeyplexError.is(error)) {
    failed(core, ctx, error.toDetail());
    throw error;
  }
  if (error instanceof FetchOptionError) {
    const broken = new UpstreamError(error.message, { requestId, attempts, status: 502 });
    failed(core, ctx, broken.toDetail());
    return errorResponse(broken, 502);
  }
  failed(core, ctx, new KeyplexError('upstream_error', 'keyplex: internal error while sending the request.', { requestId, attempts, cause: error }).toDetail());
  throw error;
}

/** For a redirect: where it points (without its query, which may hold a token) and what to change. */
function redirectAdvice(failure: AttemptFailure, response: Response): string {
  if (failure.classification.kind !== 'redirect') return '';
  const location = response.headers.get('location');
  let target = 'another address';
  try {
    if (location !== null) target = new URL(location.split('?', 1)[0]!.split('#', 1)[0]!, response.url || undefined).href;
  } catch {
    // A Location that is no URL: named as another address.
  }
  return ` Provider '${failure.outcome.provider}' redirected the request (${response.status}) to ${target}; keyplex does not follow redirects (they would take the key and the body to another address). If that is the provider's API, set its \`baseURL\` to it.`;
}

/** An answer about the caller's own request on its first attempt (400, 404, 422): passed on as the upstream said it. */
function callerError(failure: AttemptFailure, attempts: number): boolean {
  const kind = failure.classification.kind;
  return attempts === 1 && (kind === 'bad_request' || kind === 'not_found' || kind === 'context_length');
}

/**
 * The request's signal ended it: the caller's reason (to throw), or an
 * answer for `manager_closed` (503) and the deadline (504).
 */
function abortedFailure(core: Core, ctx: RequestContext, error: unknown, signal: AbortSignal): unknown {
  const { requestId } = ctx;
  const attempts = ctx.history.outcomes;
  const caller = ctx.request.signal;
  if (caller?.aborted) {
    failed(core, ctx, new KeyplexError('aborted', 'keyplex: the caller aborted the request.', { requestId, attempts }).toDetail());
    return caller.reason;
  }
  if (core.closedByAbort) {
    const closed = new ManagerClosedError({ requestId, attempts, inFlight: true });
    failed(core, ctx, closed.toDetail());
    return errorResponse(closed, 503);
  }
  const reason: unknown = signal.reason;
  if (reason instanceof AttemptTimeout) {
    const summary = attempts.length > 0 ? attemptsSummary(attempts) : undefined;
    const timeout = new DeadlineExceededError(ctx.deadlineMs, { requestId, attempts, cause: error, summary });
    failed(core, ctx, timeout.toDetail());
    return errorResponse(timeout, 504);
  }
  return reason;
}

/** The answer when routing found no deployment: an unknown pinned provider, a request too long for every model, or a model nobody serves. */
export function unroutable(core: Core, ctx: RequestContext): KeyplexError {
  const { request, requestId } = ctx;
  const pinned = request.options.provider;
  if (pinned !== undefined && !core.pools.some((p) => p.id === pinned)) {
    const known = core.pools.map((p) => p.id);
    const typo = suggest(pinned, known);
    return new RequestOptionsError(
      'provider',
      `expected one of the configured providers ${known.map((id) => `'${id}'`).join(', ')}; got ${safeName(pinned)}${typo === undefined ? '' : ` (did you mean '${typo}'?)`}. Nothing was sent.`,
      { requestId, status: 400 },
    );
  }
  if (ctx.route.contextTooLong) {
    return new KeyplexError(
      'context_length_exceeded',
      `keyplex: the request (about ${ctx.tokens} tokens with its output) fits no deployment of '${request.model}'; use a model with a larger context window or shorten it (\`routing.contextFallbacks\` names a larger model to move such requests to).`,
      { requestId, status: 400 },
    );
  }
  const model = request.model ?? '';
  const pin = ctx.route.affinity;
  if (pin !== undefined) return new ModelNotServedError(model, requestId, pinNotServing(pin, model));
  return new ModelNotServedError(model, requestId, pinned === undefined ? undefined : pinnedNotServing(core, pinned, model));
}

/**
 * Why a request pinned to a configured provider found no deployment: that
 * provider does not serve the model (others may; saying nobody does would send
 * the reader to the wrong fix).
 */
function pinnedNotServing(core: Core, pinned: string, model: string): string {
  const serving = core.pools.filter((p) => p.id !== pinned && (p.models?.has(model) === true || p.anyModel === 'always')).map((p) => `'${p.id}'`);
  const elsewhere = serving.length === 0 ? '' : ` It is served by ${serving.join(', ')}.`;
  return (
    `keyplex: provider '${pinned}', to which the \`provider\` request option pins this request, does not serve model '${model}'.${elsewhere} ` +
    `Pin a provider that serves it, leave the pin out, or add the model to the \`models\` of '${pinned}' (or set \`serveAnyModel: true\` on it). Nothing was sent.`
  );
}
