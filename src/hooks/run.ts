/**
 * Runs the installed hooks at the two points of an attempt (send.ts calls
 * these only when some hook is installed: no hooks, no cost). A hook that
 * throws or rejects settles the attempt and fails the request with a
 * {@link HookFailedError}; nothing else is retried.
 */
import { describeThrown, describeType, isPlainObject } from '../config/check';
import { HookFailedError } from '../errors';
import { forwarded, type Body } from '../request';
import { classifyStatus } from '../resilience/classify';
import { untilAborted } from '../pipeline/abort';
import type { RequestContext } from '../pipeline/context';
import { elapsedMs } from '../wall-clock';
import type { Lease } from '../pipeline/lease';
import type { AfterResponseState, BeforeAttemptState, HookStateBase, ResolvedHook, ResolvedHooks } from './types';

/** What a hook's wait is rejected with when the request ends meanwhile (caller, deadline, close()). */
const ENDED = Symbol('request ended');

/** Longest part of a hook's own message quoted in keyplex's. */
const QUOTED = 300;
/** Statuses whose Response may carry no body. */
const NULL_BODY = new Set([101, 204, 205, 304]);

function stateBase(ctx: RequestContext, lease: Lease, attempt: number, signal: AbortSignal): HookStateBase {
  return {
    requestId: ctx.requestId,
    tags: ctx.tags,
    metadata: ctx.metadata,
    attempt,
    provider: lease.deployment.pool.id,
    keyId: lease.key.id,
    model: ctx.request.model,
    upstreamModel: lease.deployment.upstreamModel,
    method: ctx.request.method,
    path: ctx.request.path,
    signal,
  };
}

/** The request's failure for a hook that threw `error`. */
function hookFailed(ctx: RequestContext, hook: ResolvedHook<unknown>, attempt: number, provider: string, error: unknown, sent: boolean): HookFailedError {
  const said = describeThrown(error);
  const quoted = said.length > QUOTED ? `${said.slice(0, QUOTED)}…` : said;
  const what = sent ? `on the answer to attempt ${attempt} ('${provider}'); the answer was dropped` : `before attempt ${attempt} ('${provider}'); nothing was sent`;
  return new HookFailedError(
    hook.name,
    `keyplex: the ${hook.name} hook threw ${what}, and the request is not retried: ${quoted}. Fix the hook, or catch the errors it expects inside it.`,
    { requestId: ctx.requestId, attempts: ctx.history.outcomes, cause: error },
  );
}

/** What the attempt sends after the `beforeAttempt` hooks: the caller's headers and the body. */
export interface HookedRequest {
  headers: Record<string, string>;
  body: Body | null | undefined;
}

/**
 * Runs the `beforeAttempt` hooks on an attempt not yet sent (its lease is
 * undone if one throws or the request ends meanwhile).
 */
export async function beforeAttempt(
  hooks: ResolvedHooks,
  ctx: RequestContext,
  lease: Lease,
  attempt: number,
  body: Body | null | undefined,
  signal: AbortSignal,
): Promise<HookedRequest> {
  const headers = new Headers(ctx.request.headers);
  // One parse for every hook that asks for the body; each sees the changes of the ones before.
  let json: Record<string, unknown> | undefined = hooks.beforeBody && typeof body === 'string' && ctx.request.isJson ? (JSON.parse(body) as Record<string, unknown>) : undefined;
  const base = stateBase(ctx, lease, attempt, signal);
  /** The last hook that had the body: the one a body that cannot be sent is put down to. */
  let bodyHook: ResolvedHook<unknown> | undefined;
  for (const hook of hooks.beforeAttempt!) {
    const state: BeforeAttemptState = { ...base, headers, body: hook.body === 'json' ? json : undefined };
    if (json !== undefined && hook.body === 'json') bodyHook = hook;
    try {
      const result = await untilAborted(hook.run(state), signal, () => ENDED);
      if (result !== undefined && result !== null) {
        if (hook.body !== 'json') throw new TypeError('it returned a body without asking for one; register it as { body: "json", run }');
        if (json === undefined) throw new TypeError("it returned a body for a request whose body is not a JSON object");
        if (!isPlainObject(result)) throw new TypeError(`it returned something other than a JSON object body (${describeType(result)})`);
        json = result;
      }
      // keyplex reads the answer as the caller asked (a stream, or JSON): an answer of the other kind would only fail, billed, on every key.
      if (hook.body === 'json' && json !== undefined && (json.stream === true) !== ctx.request.stream) {
        throw new TypeError(`it changed \`stream\` to ${String(json.stream)}; keyplex reads the answer as the caller asked (stream: ${String(ctx.request.stream)})`);
      }
      if (headers.has('authorization')) throw new TypeError('it set the Authorization header, which keyplex alone sets');
    } catch (error) {
      lease.settle('undone');
      if (error === ENDED) throw signal.reason;
      throw hookFailed(ctx, hook, attempt, base.provider, error, false);
    }
    if (signal.aborted) {
      lease.settle('undone');
      throw signal.reason;
    }
  }
  const plain: Record<string, string> = {};
  // What a hook set is forwarded as the caller's headers are (framing and hop-by-hop ones are fetch's to set; the body may have changed size).
  headers.forEach((value, name) => {
    if (forwarded(name)) plain[name] = value;
  });
  return { headers: plain, body: json === undefined ? body : sendable(ctx, lease, attempt, base.provider, json, bodyHook!) };
}

/** The hooked body as JSON text; a body that has none (a BigInt, a cycle) fails the request as the last body hook's. */
function sendable(ctx: RequestContext, lease: Lease, attempt: number, provider: string, json: Record<string, unknown>, hook: ResolvedHook<unknown>): string {
  try {
    return JSON.stringify(json);
  } catch (error) {
    lease.settle('undone');
    throw hookFailed(ctx, hook, attempt, provider, new TypeError(`its body could not be sent as JSON (${describeThrown(error)})`), false);
  }
}

/**
 * Whether a success's body is text a hook may read: not audio, images or a
 * file's bytes, which decoded as text and rebuilt would reach the caller
 * corrupted (an error's body is read as text whatever it says it is).
 */
function isText(contentType: string): boolean {
  return contentType === '' || contentType.startsWith('text/') || contentType.includes('json') || contentType.includes('xml');
}

/** A Response whose body fails with `error` when read (send treats that as a transport failure). */
function failingBody(response: Response, error: unknown): Response {
  const body = new ReadableStream({ start: (controller) => controller.error(error) });
  return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
}

/**
 * Runs the `afterResponse` hooks on an upstream answer. Returns the answer to
 * go on with (rebuilt from its text when a hook read the body).
 */
export async function afterResponse(
  hooks: ResolvedHooks,
  ctx: RequestContext,
  lease: Lease,
  attempt: number,
  response: Response,
  signal: AbortSignal,
  /** Removes pieces of the attempt's key from a body the hooks read (the upstream may echo it). */
  redact?: (text: string) => string,
): Promise<Response> {
  const now = Date.now();
  const contentType = response.headers.get('content-type') ?? '';
  const stream = contentType.includes('text/event-stream');
  let text: string | undefined;
  if (hooks.afterBody && !stream && response.body && !NULL_BODY.has(response.status) && (!response.ok || isText(contentType))) {
    try {
      text = await response.text();
    } catch (error) {
      return failingBody(response, error);
    }
    if (redact !== undefined) text = redact(text);
    response = new Response(text, { status: response.status, statusText: response.statusText, headers: response.headers });
  }
  let json: unknown;
  let parsed = false;
  const base = stateBase(ctx, lease, attempt, signal);
  for (const hook of hooks.afterResponse!) {
    let body: unknown;
    if (hook.body === 'text') body = text;
    else if (hook.body === 'json' && text !== undefined) {
      if (!parsed) {
        parsed = true;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
      }
      body = json;
    }
    const state: AfterResponseState = { ...base, status: response.status, headers: response.headers, latencyMs: elapsedMs(lease.sentAt, now), stream, body };
    try {
      await untilAborted(hook.run(state), signal, () => ENDED);
    } catch (error) {
      if (text === undefined) void response.body?.cancel().catch(() => {});
      const kind = error === ENDED ? 'aborted' : response.ok ? 'success' : classifyStatus(response.status, response.headers, undefined).kind;
      lease.record(attempt, response.status, kind, Date.now());
      lease.settle('dropped');
      if (error === ENDED) throw signal.reason;
      throw hookFailed(ctx, hook, attempt, base.provider, error, true);
    }
  }
  return response;
}
