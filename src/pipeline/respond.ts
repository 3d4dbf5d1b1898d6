/**
 * Respond: what the SDK gets back — the upstream reply with keyplex's
 * headers, a streamed reply tapped for usage (accounted when it ends), or a
 * failure turned into the answer or error the caller should see.
 */
import { safeName, suggest } from '../config/check';
import { errorResponse, REQUEST_ID_HEADER, withDetail } from '../details';
import {
  DeadlineExceededError,
  KeyplexError,
  ManagerClosedError,
  ModelNotServedError,
  NoKeyAvailableError,
  RequestOptionsError,
  StreamInterruptedError,
  UpstreamError,
  type KeyplexErrorDetail,
} from '../errors';
import type { Key } from '../keys/key';
import type { ProviderPool } from '../keys/pool';
import type { Body } from '../request';
import { tapEventStream } from '../usage/sse';
import type { Usage } from '../usage/usage';
import { account, failed } from './account';
import type { RequestContext } from './context';
import type { Core } from './core';
import { AttemptFailure, AttemptTimeout, type ReadResult } from './failure';
import { attemptsSummary } from './explain';
import type { Lease } from './lease';

/** The Response handed to the SDK: the upstream answer plus keyplex's headers. */
export function reply(ctx: RequestContext, key: Key, pool: ProviderPool, upstream: Response, body: Body | null): Response {
  const response = new Response(body, { status: upstream.status, statusText: upstream.statusText, headers: upstream.headers });
  const headers = response.headers;
  if (typeof body === 'string' || body instanceof ReadableStream) {
    // The body is no longer the bytes these described (fetch decoded it; keyplex may have re-framed it).
    headers.delete('content-length');
    headers.delete('content-encoding');
  }
  headers.set(REQUEST_ID_HEADER, ctx.requestId);
  headers.set('x-keyplex-provider', pool.id);
  headers.set('x-keyplex-key-id', key.id);
  headers.set('x-keyplex-attempts', String(ctx.history.outcomes.length));
  return response;
}

/**
 * A streamed reply: tapped for usage; success or failure is reported when it
 * ends. Until then the request holds its lane slot and stays abortable.
 */
export function streamReply(
  core: Core,
  ctx: RequestContext,
  lease: Lease,
  upstream: Response,
  reader: ReadableStreamDefaultReader<Uint8Array>,
  first: ReadResult,
  ttftMs: number,
): Response {
  const { request } = ctx;
  const strip = request.streamUsagePath && !request.callerAskedUsage;
  let done = false;
  ctx.streaming = !first.done;
  const end = (usage: Usage | undefined) => {
    if (done) return;
    done = true;
    endStreamingRequest(ctx);
    account(core, ctx, lease, Date.now(), usage ?? null, ttftMs, true, undefined);
  };
  const tapped = first.done
    ? (end(undefined), new ReadableStream<Uint8Array>({ start: (c) => c.close() }))
    : tapEventStream(first.value, reader, {
        stripUsageChunk: strip,
        onEnd: end,
        onCancel: end,
        onError: (error, usage) => {
          // The caller went away (left the loop, aborted): that ends the stream, it is not a failure.
          if (request.signal?.aborted) {
            end(usage);
            return error;
          }
          if (!done) {
            done = true;
            lease.settle('stream-failed');
            endStreamingRequest(ctx);
            failed(core, ctx, new StreamInterruptedError({ requestId: ctx.requestId, attempts: ctx.history.outcomes, cause: error }).toDetail());
          }
          return new StreamInterruptedError({ requestId: ctx.requestId, attempts: ctx.history.outcomes, cause: error });
        },
      });
  return reply(ctx, lease.key, lease.deployment.pool, upstream, tapped);
}

/** A stream that outlived the pipeline call ended: its lane slot is freed, the request detached. */
function endStreamingRequest(ctx: RequestContext): void {
  if (!ctx.streaming) return;
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
    if (answer) {
      const status = answer.response.status;
      const message = callerError(error, attempts.length) ? undefined : `keyplex: ${attemptsSummary(attempts)}.`;
      const detail: KeyplexErrorDetail = {
        code: 'upstream_error',
        message: message ?? `keyplex: the upstream answered ${status} (${error.classification.kind}) on attempt ${attempts.length}.`,
        requestId,
        attempts,
        status,
      };
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
      const detail: KeyplexErrorDetail = { ...error.toDetail(), message, status: previous.response.status };
      failed(core, ctx, detail);
      return withDetail(previous.response, previous.body, detail, message);
    }
    failed(core, ctx, error.toDetail());
    return errorResponse(error, error.status ?? 503);
  }
  if (KeyplexError.is(error) && error.status !== undefined) {
    // Refused by keyplex itself (lane full, queue timeout, unknown lane, closed): an HTTP-shaped answer.
    failed(core, ctx, { ...error.toDetail(), requestId, attempts });
    return errorResponse(error, error.status);
  }
  if (KeyplexError.is(error)) {
    failed(core, ctx, error.toDetail());
    throw error;
  }
  failed(core, ctx, new KeyplexError('upstream_error', 'keyplex: internal error while sending the request.', { requestId, attempts, cause: error }).toDetail());
  throw error;
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
    const closed = new ManagerClosedError({ requestId, attempts });
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
      `keyplex: the request (about ${ctx.tokens} tokens with its output) fits no deployment of '${request.model}'; use a model with a larger context window or shorten it.`,
      { requestId, status: 400 },
    );
  }
  return new ModelNotServedError(request.model ?? '', requestId);
}
