/**
 * Respond: what the SDK gets back — the upstream reply with keyplex's
 * headers, a streamed reply tapped for usage (accounted when it ends), or a
 * failure turned into the answer or error the caller should see.
 */
import { errorResponse, REQUEST_ID_HEADER, withDetail } from '../details';
import {
  DeadlineExceededError,
  KeyplexError,
  ManagerClosedError,
  ModelNotServedError,
  NoKeyAvailableError,
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
import { BufferedReply } from './buffered-reply';
import type { RequestContext } from './context';
import type { Core } from './core';
import { AttemptFailure, AttemptTimeout, type ReadResult } from './failure';
import type { Lease } from './lease';

/**
 * The Response handed to the SDK: the upstream answer plus keyplex's headers;
 * a body read as text travels as a {@link BufferedReply} (no stream made).
 */
export function reply(ctx: RequestContext, key: Key, pool: ProviderPool, upstream: Response, body: Body | null): Response {
  // Copied from the upstream's Headers in one go (much cheaper than from a list, which validates every name and value).
  const init: ResponseInit = { status: upstream.status, statusText: upstream.statusText, headers: upstream.headers };
  const response = typeof body === 'string' ? new BufferedReply(body, init) : new Response(body, init);
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
 * upstream answer with keyplex's detail, an HTTP-shaped keyplex refusal, or
 * a thrown error (abort, close, deadline, transport).
 */
export function finishFailure(core: Core, ctx: RequestContext, error: unknown, signal: AbortSignal): Response {
  const { requestId } = ctx;
  const attempts = ctx.history.outcomes;
  if (signal.aborted) throw abortedFailure(core, ctx, error, signal);
  // The last upstream answer is what the caller sees, with keyplex's detail.
  if (error instanceof AttemptFailure) {
    const answer = error.response;
    if (answer) {
      const detail: KeyplexErrorDetail = {
        code: 'upstream_error',
        message: `keyplex: the upstream answered ${answer.response.status} (${error.classification.kind}) on attempt ${attempts.length}.`,
        requestId,
        attempts,
        status: answer.response.status,
      };
      failed(core, ctx, detail);
      return withDetail(answer.response, answer.body, detail);
    }
    const kind = error.classification.kind;
    const upstream = new UpstreamError(
      kind === 'timeout'
        ? `keyplex: the upstream request timed out on attempt ${attempts.length} (attempt timeout ${core.options.attemptTimeoutMs} ms).`
        : `keyplex: the upstream connection failed on attempt ${attempts.length} (${kind}).`,
      { requestId, attempts, cause: error.cause },
    );
    failed(core, ctx, upstream.toDetail());
    throw upstream;
  }
  if (error instanceof NoKeyAvailableError) {
    // After upstream answers, the last one is the most useful thing to show.
    const previous = ctx.history.lastAnswer;
    if (previous) {
      const detail: KeyplexErrorDetail = { ...error.toDetail(), status: previous.response.status };
      failed(core, ctx, detail);
      return withDetail(previous.response, previous.body, detail);
    }
    failed(core, ctx, error.toDetail());
    return errorResponse(error, error.status ?? 503);
  }
  if (KeyplexError.is(error) && error.status !== undefined) {
    // Refused by keyplex itself (lane full, queue timeout, unknown lane): an HTTP-shaped answer.
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

/** The request's signal ended it: the caller's reason, `manager_closed`, or the deadline. Returns what to throw. */
function abortedFailure(core: Core, ctx: RequestContext, error: unknown, signal: AbortSignal): unknown {
  const { requestId } = ctx;
  const attempts = ctx.history.outcomes;
  const caller = ctx.request.signal;
  if (caller?.aborted) {
    failed(core, ctx, new KeyplexError('aborted', 'keyplex: the caller aborted the request.', { requestId, attempts }).toDetail());
    return caller.reason;
  }
  if (core.closedByAbort) {
    const closed = new ManagerClosedError();
    failed(core, ctx, { ...closed.toDetail(), requestId, attempts });
    return closed;
  }
  const reason: unknown = signal.reason;
  if (reason instanceof AttemptTimeout) {
    const timeout = new DeadlineExceededError(ctx.deadlineMs, { requestId, attempts, cause: error });
    failed(core, ctx, timeout.toDetail());
    return timeout;
  }
  return reason;
}

/** The answer when routing found no deployment: an unknown pinned provider, a request too long for every model, or a model nobody serves. */
export function unroutable(core: Core, ctx: RequestContext): KeyplexError {
  const { request, requestId } = ctx;
  if (request.options.provider !== undefined && !core.pools.some((p) => p.id === request.options.provider)) {
    return new KeyplexError('invalid_request_options', `keyplex: request option \`provider\` names '${request.options.provider}', which is not configured.`, { requestId, status: 400 });
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
