/**
 * Send: one attempt on a lease — origin and auth rewritten to the provider,
 * the body's model renamed when aliased, the attempt's timeout and the
 * caller's signal — then the answer classified (DESIGN.md's outcome table).
 * A success goes on to respond and account; anything else becomes an
 * {@link AttemptFailure} for the retry policy.
 */
import { describeType, isPlainObject } from '../config/check';
import { headerEntries } from '../header-list';
import { afterResponse, beforeAttempt } from '../hooks/run';
import { secretOf } from '../keys/key';
import { redactEnvelope, redactorOf, type KeyRedactor } from '../secrets/redact';
import { redactedBody } from '../secrets/stream';
import { asksAnswer, bodyFor, type Body, type InterceptedRequest } from '../request';
import { HookFailedError } from '../errors';
import { classifyStatus, keyRejection, type Classification } from '../resilience/classify';
import { bodyRetryAfterMs } from '../resilience/error-body';
import { retryAfterMs } from '../resilience/headers';
import { FirstRead, type StreamReader } from '../usage/sse';
import { usageFromBody } from '../usage/usage';
import { account } from './account';
import { backgroundJson } from './background';
import { createdId, createdObject, homeWritten, rememberObject } from './affinity';
import type { BufferedAnswer, RequestContext } from './context';
import type { Core } from './core';
import { AttemptFailure, embeddedStatus, FetchOptionError } from './failure';
import type { RequestAbort } from './abort';
import type { Lease } from './lease';
import { parseJsonSummary } from './json-body';
import { holdsPrelude, readPrelude } from './prelude';
import { callerAbortable } from './pass-through';
import { decodeText, readBytes } from './read-body';
import { reply, streamReply } from './respond';
import { addContextFallback } from './route';

/** One attempt. Resolves with the reply for the SDK; rejects with an AttemptFailure, or the request's abort reason. */
export async function send(core: Core, ctx: RequestContext, lease: Lease, attempt: number, abort: RequestAbort): Promise<Response> {
  const { request } = ctx;
  const { deployment, key } = lease;
  const injectUsage = core.options.streamUsage && request.stream && request.streamUsagePath && !request.callerAskedUsage && !deployment.streamOptionsRefused;
  let body = bodyFor(request, deployment.upstreamModel, injectUsage);
  let callerHeaders = request.headers;
  const hooks = core.options.hooks;
  if (hooks?.beforeAttempt !== undefined) ({ headers: callerHeaders, body } = await beforeAttempt(hooks, ctx, lease, attempt, body, abort.signal));
  const sentAt = Date.now();
  // A request that ended (or reached its deadline) while it waited for its slot, its key or its store is not sent.
  if (abort.overdue(sentAt)) {
    lease.settle('undone');
    throw abort.signal.reason;
  }
  const firstTryOfKey = lease.start(abort, sentAt);
  if (core.hub.wants('attempt')) emitAttempt(core, ctx, lease, attempt);

  let response: Response;
  try {
    response = await dispatch(core, lease, abort, request, body, callerHeaders);
  } catch (error) {
    throw transportFailure(ctx, lease, attempt, abort, firstTryOfKey, error, false);
  }
  if (!answered(response)) throw new FetchOptionError(`keyplex: the \`fetch\` option answered ${describeType(response)}, not a Response; give KeyManager a fetch that resolves to one, or leave the option out for the global fetch.`);
  // A key its status alone rejects (401, 402) is out at once, and the store told, before anything is awaited (body, hooks).
  const rejected = response.ok ? undefined : keyRejection(response.status);
  if (rejected !== undefined) key.disable(rejected);
  // The headers read once, for the rate limits and the key search alike.
  const entries = headerEntries(response.headers);
  // The reply's remaining applies as of when the upstream counted this request, not as of now.
  lease.observe(response, entries);
  // The upstream may echo the key it got: nothing it sent is passed on with a piece of it (hooks included).
  const redactor = redactorOf(key);
  response = redactEnvelope(response, redactor, entries);
  // A 403 refuses the key, or only its use of one model: its body says which. Judged before the hooks, so that one that throws leaves the verdict standing.
  if (response.status === 403 && hooks?.afterResponse !== undefined) response = await judgeForbidden(core, ctx, lease, attempt, abort, firstTryOfKey, response);
  if (hooks?.afterResponse !== undefined) {
    // As a stream's reads under `redactReplies: false`: a 2xx body is scanned when it holds `error` (a 200's embedded error may quote the key).
    const redact = !response.ok || core.options.redactReplies ? (text: string) => redactor.text(text) : (text: string) => (text.includes('error') ? redactor.text(text) : text);
    // The hooks' time is not the upstream's: the attempt's timeout stands still while they run.
    const left = abort.pauseAttempt(Date.now());
    try {
      response = await afterResponse(hooks, ctx, lease, attempt, response, abort.signal, redact);
    } catch (error) {
      // The upstream's verdict on the key stands whatever a hook made of its answer: a 429 still rests the key.
      if (error instanceof HookFailedError && classifyStatus(response.status, response.headers, undefined).cooldown) lease.rest(response.headers, undefined, Date.now());
      throw error;
    }
    abort.resumeAttempt(Date.now(), left);
  }
  if (!response.ok) {
    const text = redactor.text(await readText(core, ctx, lease, attempt, abort, firstTryOfKey, response));
    throw upstreamFailure(core, ctx, lease, attempt, firstTryOfKey, response, text, injectUsage);
  }

  const contentType = response.headers.get('content-type') ?? '';
  // An event stream where the caller asked for JSON is no answer the SDK can parse (it would hand the app a string): broken, below.
  if (contentType.includes('text/event-stream') && response.body && (request.stream || !answersJson(ctx))) {
    return await streamFirst(core, ctx, lease, attempt, abort, firstTryOfKey, response, redactor, injectUsage);
  }
  if (isJsonType(contentType) && !asksBytes(request) && !(request.stream && answersJson(ctx))) {
    // Read here rather than in an async function of its own: that one's frame and await cost ~0.6 KiB per reply.
    let bytes: Uint8Array;
    try {
      bytes = await abort.bounded(readBytes(response));
    } catch (error) {
      throw transportFailure(ctx, lease, attempt, abort, firstTryOfKey, error);
    }
    return jsonReply(core, ctx, lease, attempt, abort, firstTryOfKey, response, redactor, bytes);
  }
  if (answersJson(ctx)) {
    // A JSON (or, asked for, SSE) endpoint answered 200 with another body: a broken answer, as a malformed one.
    await response.body?.cancel().catch(() => undefined);
    throw fail(ctx, lease, attempt, firstTryOfKey, response.status, INVALID, Date.now(), { response, body: '' });
  }
  return passOn(core, ctx, lease, attempt, response, contentType, redactor);
}

/** Binary bodies (audio, images, file contents) pass through untouched, text and JSON lines are redacted; the attempt is complete at its headers. */
function passOn(core: Core, ctx: RequestContext, lease: Lease, attempt: number, response: Response, contentType: string, redactor: KeyRedactor): Response {
  const now = Date.now();
  lease.record(attempt, response.status, 'success', now);
  account(core, ctx, lease, now, null, undefined, false, undefined);
  const upstreamBody = response.body;
  if (upstreamBody === null) return reply(core, ctx, lease, response, null);
  const passed = contentType.startsWith('text/') || contentType.includes('json') ? redactedBody(upstreamBody, redactor, core.options.redactReplies) : upstreamBody;
  return reply(core, ctx, lease, response, callerAbortable(passed, ctx.request.signal));
}

/**
 * Calls the upstream: the headers (the caller's, the provider's, the key's)
 * and the fetch options are made here, so that the attempt, suspended until
 * the reply, holds neither (nor the key's text) while it waits.
 */
function dispatch(core: Core, lease: Lease, abort: RequestAbort, request: InterceptedRequest, body: Body | null | undefined, callerHeaders: Record<string, string>): Promise<Response> {
  const pool = lease.deployment.pool;
  const headers: Record<string, string> = { ...callerHeaders, ...pool.headers, authorization: `Bearer ${secretOf(lease.key)}` };
  const fetchImpl = core.options.fetch ?? globalThis.fetch;
  // Redirects are not followed: a redirect to another origin would carry the
  // body and the provider's headers there.
  const init: RequestInit & { duplex?: 'half' } = { method: request.method, headers, body, signal: lease.signal, redirect: 'manual' };
  if (body instanceof ReadableStream) init.duplex = 'half';
  return bounded(core, abort, fetchImpl(pool.baseURL + request.path, init));
}

/**
 * `pending` (the upstream's answer), ended by the attempt's signal when the
 * `fetch` option is the application's: the global fetch ends itself when
 * the signal aborts, but a wrapper that drops `init.signal` would hold the
 * attempt past its timeout, the deadline and close() for as long as the
 * upstream takes (for ever, if it never answers). A read of a body is
 * always bounded ({@link RequestAbort.bounded}): the global fetch's too,
 * which holds a read pending for ever, abort or not, once a gzip body
 * breaks (test/pipeline/corrupt-encoding.test.ts).
 */
function bounded<T>(core: Core, abort: RequestAbort, pending: Promise<T>): Promise<T> {
  return core.options.fetch === undefined ? pending : abort.bounded(pending);
}

/** Whether a fetch answered something Response-like (a fetch option may give another realm's or a polyfill's Response). */
function answered(response: unknown): response is Response {
  return typeof response === 'object' && response !== null && typeof (response as Response).status === 'number' && typeof (response as Response).headers?.get === 'function';
}

/** JSON lines (`application/jsonl`, `application/x-ndjson`, `application/json-seq`): many values, no one JSON value to prove. */
const JSON_LINES = /jsonl|ndjson|json-seq/i;

/** Whether a content type says the body is one JSON value (to be read whole and proved before the SDK gets it). */
function isJsonType(contentType: string): boolean {
  return contentType.includes('json') && !JSON_LINES.test(contentType);
}

/**
 * Whether the caller asked for a file's contents as bytes (the SDK's
 * downloads, `files.content` and the like, say `accept: application/binary`):
 * they are what the file holds (batch output is JSON lines, however
 * labelled), passed on as they come.
 */
function asksBytes(request: InterceptedRequest): boolean {
  return request.headers.accept === 'application/binary';
}

/** A 200 whose body is broken (malformed JSON or SSE, empty stream, wrong content type): transient, another key may answer. */
const INVALID: Classification = { kind: 'invalid_response', action: 'retry' };

/** Whether the endpoint always answers JSON (or SSE when streamed): any other 200 body is broken. */
function answersJson(ctx: RequestContext): boolean {
  return asksAnswer(ctx.request);
}

/**
 * A streamed answer: read until its first complete event (a failure until
 * then may still fail over; an empty stream or a malformed first event is a
 * broken answer) — for a Responses stream, until its first event that is not
 * its prelude (prelude.ts) — then handed to the caller, tapped. `injectedUsage`: keyplex
 * asked this attempt for the usage chunk, so it is removed from what the
 * caller sees (one the upstream sends unasked is the upstream's, passed on).
 */
async function streamFirst(
  core: Core,
  ctx: RequestContext,
  lease: Lease,
  attempt: number,
  abort: RequestAbort,
  firstTryOfKey: boolean,
  response: Response,
  redactor: KeyRedactor,
  injectedUsage: boolean,
): Promise<Response> {
  const reader = response.body!.getReader();
  // Its first complete events judged once, here (redacted first: a key the upstream echoes never passes): the tap goes on from them.
  const first = new FirstRead(injectedUsage, redactor, core.options.redactReplies, holdsPrelude(ctx));
  // A created object exists from its first event (`response.created`, a stored chat completion's first chunk): later requests naming it go to this key.
  const created = createdObject(core, ctx);
  first.scanner.wantsId = created !== undefined || ctx.request.background;
  // What the tap reads on with: the body's reader, unless a held prelude was released with a read in flight.
  let rest: StreamReader = reader;
  try {
    // Each read bounded whatever the fetch: a body whose encoding broke is not ended by the attempt's signal (see bounded).
    while (!first.take(await abort.bounded(reader.read())));
    // A Responses stream's events before its first output are held: a failure until then fails over (prelude.ts).
    if (first.holding && !first.broken) rest = await readPrelude(core, ctx, abort, reader, first);
  } catch (error) {
    reader.cancel(error).catch(() => undefined);
    throw transportFailure(ctx, lease, attempt, abort, firstTryOfKey, error);
  }
  if (first.broken) {
    reader.cancel().catch(() => undefined);
    throw fail(ctx, lease, attempt, firstTryOfKey, response.status, INVALID, Date.now(), { response, body: '' });
  }
  const opening = first.scanner.openingError;
  if (opening !== undefined) {
    // The stream opened with an error (nothing reached the caller): as a 200's embedded one.
    reader.cancel().catch(() => undefined);
    throw embeddedFailure(core, ctx, lease, attempt, firstTryOfKey, response, opening, JSON.stringify({ error: opening }));
  }
  const now = Date.now();
  lease.record(attempt, response.status, 'success', now);
  lease.settle('first-byte', now);
  const homing = created === undefined ? undefined : rememberObject(core, lease, created, first.scanner.tally.responseId, now);
  // The first events name the object: handed on once its home is written (a replica asked next then finds it).
  if (homing !== undefined) await homeWritten(homing, abort.signal);
  return streamReply(core, ctx, lease, response, rest, first, now - ctx.startedAt, abort);
}

function emitAttempt(core: Core, ctx: RequestContext, lease: Lease, attempt: number): void {
  const { deployment, key } = lease;
  const rank = ctx.route.ranks.get(deployment);
  core.hub.emit('attempt', {
    requestId: ctx.requestId,
    tags: ctx.tags,
    metadata: ctx.metadata,
    attempt,
    provider: deployment.pool.id,
    keyId: key.id,
    model: ctx.request.model,
    deploymentModel: deployment.model === '' ? undefined : deployment.model,
    upstreamModel: deployment.upstreamModel,
    strategy: rank?.strategy ?? 'ordered',
    rank: rank?.rank ?? 1,
  });
}

/**
 * A JSON success, its body read whole (send): the one place it is checked
 * and measured. The whole body is checked (json-body.ts: proved to be JSON
 * without building it): a 200 broken anywhere in it (not only at its ends)
 * fails the attempt as `invalid_response` and is retried, so the SDK never
 * meets a body it cannot parse. The SDK gets the bytes, decoded when it
 * reads them; once the home of an object created is written, when there is one.
 */
function jsonReply(core: Core, ctx: RequestContext, lease: Lease, attempt: number, abort: RequestAbort, firstTryOfKey: boolean, response: Response, redactor: KeyRedactor, bytes: Uint8Array): Response | Promise<Response> {
  // Searched as bytes (a key is ASCII: its pieces are the same bytes in UTF-8), then decoded once.
  const upstreamBytes = bytes;
  if (core.options.redactReplies) bytes = redactor.bytes(bytes);
  // Proved JSON without building it; only the members read below are parsed (the `id` of an object created).
  const created = createdObject(core, ctx);
  let parsed: unknown;
  try {
    parsed = parseJsonSummary(bytes, (created !== undefined && !created.inFile) || ctx.request.background);
  } catch {
    if (bytes !== upstreamBytes) warnIfRedactionBroke(upstreamBytes, lease.key.id);
    throw fail(ctx, lease, attempt, firstTryOfKey, response.status, INVALID, Date.now(), { response, body: decodeText(bytes) });
  }
  const embedded = embeddedError(ctx, parsed);
  // An error body is always scanned, whether `redactReplies` scanned this 2xx or not.
  if (embedded !== undefined) throw embeddedFailure(core, ctx, lease, attempt, firstTryOfKey, response, embedded, redactor.text(decodeText(bytes)));
  const replyModel = (parsed as { model?: unknown } | null)?.model;
  const now = Date.now();
  lease.record(attempt, response.status, 'success', now);
  const homing = created === undefined ? undefined : rememberObject(core, lease, created, createdId(created, parsed, bytes), now);
  const usage = usageFromBody(parsed) ?? null;
  const costUsd = account(core, ctx, lease, now, usage, undefined, false, typeof replyModel === 'string' ? replyModel : undefined);
  // A background response's create, or a read of one remembered: its cost comes with its terminal status.
  if (ctx.request.background || core.background.size !== 0) backgroundJson(core, ctx, lease, parsed, usage, bytes, now);
  // An object created: answered once its home is written to the store (a replica asked next then finds it).
  if (homing !== undefined) return homeWritten(homing, abort.signal).then(() => answerJson(core, ctx, lease, response, bytes, costUsd));
  return answerJson(core, ctx, lease, response, bytes, costUsd);
}

/** The reply of a JSON success, kept by the response cache when it is to be. */
function answerJson(core: Core, ctx: RequestContext, lease: Lease, response: Response, bytes: Uint8Array, costUsd: number | null): Response {
  // The SDK gets the bytes, decoded when it reads them: a large text is not made long before it is parsed.
  if (ctx.cacheKey === undefined || core.cache === undefined) return reply(core, ctx, lease, response, bytes);
  const text = decodeText(bytes);
  core.cache.store(ctx, response, text, lease.deployment.pool.id, costUsd);
  return reply(core, ctx, lease, response, text);
}

/** Keys (by id) whose reply redaction broke, warned of once each. */
const warnedBrokenByRedaction = new Set<string>();

/**
 * A JSON reply that parsed as the upstream sent it and not once a piece of
 * the key was replaced in it: the piece sat outside a string (digits a key
 * made from a timestamp shares with a number of the reply, such as a chat
 * completion's `created`). Such a reply is still judged broken (passing it
 * would pass the piece); this says why, once per key, naming it by id.
 */
function warnIfRedactionBroke(upstreamBytes: Uint8Array, keyId: string): void {
  if (warnedBrokenByRedaction.has(keyId)) return;
  try {
    parseJsonSummary(upstreamBytes, false);
  } catch {
    return; // Broken as the upstream sent it.
  }
  warnedBrokenByRedaction.add(keyId);
  process.emitWarning(
    `keyplex: a reply to key '${keyId}' held 8 or more characters of that key outside a JSON string (such as digits a key made from a timestamp shares with the reply's 'created'); replacing them broke the reply, so it was judged broken and retried. Use keys that share no run of 8 characters with replies (real keys do not), or set \`redactReplies: false\`.`,
    { code: 'KEYPLEX_KEY_PIECE_BROKE_REPLY' },
  );
}

/**
 * The error a 200's JSON body carries instead of an answer (`error`, an
 * object), on an endpoint that answers a prompt: OpenRouter answers 200 so
 * for an error after the model started, and a created Responses object has
 * one exactly when its status is "failed" (else `error: null`); undefined
 * for an answer. A response fetched by id is no answer of this request:
 * that it had failed is data.
 */
function embeddedError(ctx: RequestContext, parsed: unknown): Record<string, unknown> | undefined {
  const error = (parsed as { error?: unknown } | null)?.error;
  if (error === undefined || error === null || !isPlainObject(error)) return undefined;
  return answersJson(ctx) ? error : undefined;
}

/**
 * An error a 200 carried (in its JSON body, or as its stream's first event):
 * classified, and passed on as the last answer, as a non-2xx JSON answer
 * (`body`) of the status it stands for.
 */
function embeddedFailure(core: Core, ctx: RequestContext, lease: Lease, attempt: number, firstTryOfKey: boolean, response: Response, error: Record<string, unknown>, body: string): AttemptFailure {
  const headers = new Headers(response.headers);
  headers.set('content-type', 'application/json');
  return upstreamFailure(core, ctx, lease, attempt, firstTryOfKey, new Response(null, { status: embeddedStatus(error), headers }), body, false);
}

/** The whole body as text; a body that fails mid-way is a transport failure. */
async function readText(core: Core, ctx: RequestContext, lease: Lease, attempt: number, abort: RequestAbort, firstTryOfKey: boolean, response: Response): Promise<string> {
  try {
    return await abort.bounded(response.text());
  } catch (error) {
    throw transportFailure(ctx, lease, attempt, abort, firstTryOfKey, error);
  }
}

/** An error answer's body parsed, or undefined when it is not JSON. */
function errorBody(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Reads a 403's body and disables the key unless the body says only the model is refused; the same answer, its body read, for what follows. */
async function judgeForbidden(core: Core, ctx: RequestContext, lease: Lease, attempt: number, abort: RequestAbort, firstTryOfKey: boolean, response: Response): Promise<Response> {
  const text = await readText(core, ctx, lease, attempt, abort, firstTryOfKey, response);
  const refused = classifyStatus(response.status, response.headers, errorBody(text)).disable;
  if (refused !== undefined) lease.key.disable(refused);
  return new Response(text, { status: response.status, statusText: response.statusText, headers: response.headers });
}

/**
 * A non-2xx answer: classified; the key disabled or cooled down when the
 * answer says so. `injectedUsage`: keyplex added `stream_options` to the body.
 */
function upstreamFailure(core: Core, ctx: RequestContext, lease: Lease, attempt: number, firstTryOfKey: boolean, response: Response, text: string, injectedUsage: boolean): AttemptFailure {
  const { key, deployment } = lease;
  const parsed = errorBody(text);
  const now = Date.now();
  let classification = classifyStatus(response.status, response.headers, parsed);
  // Too long for this model: move, at no cost, to its larger-context fallback when one is configured.
  if (classification.kind === 'context_length' && addContextFallback(core, ctx, deployment)) {
    classification = { kind: 'context_length', action: 'rotate' };
  }
  // The deployment refused the `stream_options` keyplex added, not the caller's request: asked again at once without them.
  if (injectedUsage && classification.kind === 'bad_request' && STREAM_OPTIONS_NAMED.test(text)) {
    deployment.streamOptionsRefused = true;
    classification = { kind: 'bad_request', action: 'rotate' };
  }
  let wait = retryAfterMs(response.headers, now);
  // A transient failure's wait stated in the body only (Gemini's 503 RetryInfo) holds its provider as a header's would.
  if (wait === undefined && classification.action === 'retry') wait = bodyRetryAfterMs(parsed, text, now);
  if (classification.disable) key.disable(classification.disable);
  // The key cannot use this model (the others it can): tried last for it a while, another key or provider first.
  if (classification.modelUnavailable && deployment.upstreamModel !== undefined) key.refuseModel(deployment.upstreamModel, now);
  // A wait the body asks for (Gemini's RetryInfo, Azure's message) counts where the headers state none.
  if (classification.cooldown) wait = lease.rest(response.headers, bodyRetryAfterMs(parsed, text, now), now);
  return fail(ctx, lease, attempt, firstTryOfKey, response.status, classification, now, { response, body: text }, wait);
}

/** An error message about the `stream_options` member keyplex adds (`include_usage` in it). */
const STREAM_OPTIONS_NAMED = /stream_options|include_usage/i;

/**
 * A transport failure: the request ending (its abort reason is returned), our
 * attempt timeout, or the connection. `answered`: the upstream's status and
 * headers had arrived (the body broke): it counted the request, so its
 * tokens stay counted.
 */
function transportFailure(ctx: RequestContext, lease: Lease, attempt: number, abort: RequestAbort, firstTryOfKey: boolean, cause: unknown, answered = true): unknown {
  const now = Date.now();
  if (abort.ended) {
    lease.settle('aborted');
    lease.record(attempt, undefined, 'aborted', now);
    return abort.signal.reason as unknown;
  }
  const timedOut = lease.timedOut;
  // A connection that failed before an answer was most likely not counted by the provider; a timed-out one may have been.
  const classification: Classification = { kind: timedOut ? 'timeout' : 'connection', action: 'retry' };
  return fail(ctx, lease, attempt, firstTryOfKey, undefined, classification, now, undefined, undefined, cause, !timedOut && !answered);
}

/** Settles a failed attempt and records it in the request's history. */
function fail(
  ctx: RequestContext,
  lease: Lease,
  attempt: number,
  firstTryOfKey: boolean,
  status: number | undefined,
  classification: Classification,
  now: number,
  answer?: BufferedAnswer,
  wait?: number,
  cause?: unknown,
  refund = false,
): AttemptFailure {
  const { key, deployment } = lease;
  const history = ctx.history;
  lease.settle('failed', now, classification, refund);
  const providerFailures = classification.action === 'retry' ? history.transientOn(deployment.pool) : (history.transient?.get(deployment.pool) ?? 0);
  history.last = { pool: deployment.pool, key, kind: classification.kind };
  if (answer) history.lastAnswer = answer;
  lease.record(attempt, status, classification.kind, now);
  const outcome = history.outcomes[history.outcomes.length - 1]!;
  return new AttemptFailure(outcome, classification, answer, wait, firstTryOfKey, providerFailures, cause);
}
