/**
 * The request pipeline, its stage order in one place (DESIGN.md §2):
 *
 *   intercept → route → admit (budget, lane) → loop { acquire a key → send → decide } → respond → account
 *
 * Each stage is a module of this folder with a typed input and output; they
 * share the manager-wide {@link Core} and the request's {@link RequestContext}.
 * Respond and account run inside send for a success (a stream is accounted
 * when it ends) and in `finishFailure` for a failure.
 */
import { ManagerClosedError, RequestOptionsError, UnknownBaseUrlError } from '../errors';
import { isLocalFetch, jsonRequestInit, releaseJson } from '../request';
import { decide, type RetryDecision } from '../resilience/retry/policy';
import { sleep } from '../resilience/backoff';
import { acquire, untriedKeys } from './acquire';
import { objectLookup } from './affinity';
import { admitBudget, admitLane } from './admit';
import { failed } from './account';
import type { RequestContext } from './context';
import { modelStats, type Core } from './core';
import { RequestAbort, untilAborted } from './abort';
import { AttemptFailure } from './failure';
import { intercept } from './intercept';
import type { Lease } from './lease';
import { errorResponse } from '../details';
import { finishFailure, unroutable } from './respond';
import { route } from './route';
import { answerFromCache } from './cached';
import { send } from './send';
import { published, whenLoaded } from './store-sync';

/** One request through the pipeline: the `fetch` the SDK calls. */
export async function handle(core: Core, input: string | URL | Request, init: RequestInit | undefined): Promise<Response> {
  // A `data:` or `blob:` URL (the SDK's probe before its first upload) is read by the platform's fetch, never sent to a provider.
  if (isLocalFetch(input)) return globalThis.fetch(input, init);
  if (core.closed) return errorResponse(new ManagerClosedError(), 503);
  // A `Request` with a JSON body: read, so that it is routed by its model and may be retried, as the same call made with (url, init).
  if (input instanceof Request) init = (await jsonRequestInit(input, init)) ?? init;
  let ctx: RequestContext;
  try {
    ctx = intercept(core, input, init);
  } catch (error) {
    // Options that did not come through keyplex.options() are refused at the call too, nothing sent.
    if (error instanceof RequestOptionsError) return errorResponse(error, 400);
    // A URL whose API base keyplex cannot tell (another library's own base URL): refused, nothing sent.
    if (error instanceof UnknownBaseUrlError) return errorResponse(error, 400);
    throw error;
  }
  // One controller, one timer (deadline and attempt timeout) and one listener per request: see ./abort.ts.
  // As of the request's start (the clock read once at intercept): its deadline is ctx.deadlineAt exactly.
  const abort = new RequestAbort(ctx.startedAt, ctx.deadlineMs, core.options.attemptTimeoutMs, ctx.request.signal);
  core.active.add(abort);
  try {
    const loading = whenLoaded(core);
    if (loading) await untilAborted(loading, abort.signal);
    if (core.cache !== undefined) {
      const cached = await answerFromCache(core, ctx, abort.signal);
      if (cached !== undefined) return cached;
    }
    // A request naming an object that another replica may have created: the store asked where, before routing (./affinity.ts).
    const homing = objectLookup(core, ctx);
    if (homing !== undefined) await untilAborted(homing, abort.signal);
    const refused = refusal(core, ctx);
    if (refused !== undefined) return refused;
    // Routing, the estimate and the cache key have read the parsed body: a request waiting for a slot or a key holds its text only.
    releaseJson(ctx.request);
    const waiting = admitLane(core, ctx, abort.signal);
    if (waiting !== undefined) await waiting;
    // The attempt loop, here rather than in an async function of its own (one promise and its turns less per request).
    for (let attempt = 1; ; attempt++) {
      let lease: Lease | undefined;
      try {
        // Acquire and send inline: a lease (at once when a key is usable), its attempt counted, the send.
        const next = acquire(core, ctx, attempt, abort);
        lease = next instanceof Promise ? await next : next;
        countAttempt(core, ctx, attempt, lease);
        return await send(core, ctx, lease, attempt, abort);
      } catch (error) {
        // An error of keyplex's own mid-attempt (not an upstream's answer): the lease is let go all the same.
        if (lease !== undefined && !(error instanceof AttemptFailure)) lease.abandon(attempt, Date.now());
        await afterFailure(core, ctx, error, abort);
      }
    }
  } catch (error) {
    return finishFailure(core, ctx, error, abort.signal);
  } finally {
    ended(core, ctx, abort);
  }
}

/** Route and budgets: the answer when the request is refused before any key is picked. */
function refusal(core: Core, ctx: RequestContext): Response | undefined {
  ctx.route = route(core, ctx);
  if (ctx.route.deployments.length === 0) {
    const error = unroutable(core, ctx);
    failed(core, ctx, error.toDetail());
    return errorResponse(error, error.status ?? 400);
  }
  const refused = admitBudget(core, ctx);
  if (refused) {
    failed(core, ctx, refused.toDetail());
    return errorResponse(refused, refused.status ?? 429);
  }
  return undefined;
}

/** The pipeline call is over: the lane slot and the abort state, unless a stream is still being read; in-flight count. */
function ended(core: Core, ctx: RequestContext, abort: RequestAbort): void {
  if (!ctx.streaming) ctx.releaseLane?.();
  // A stream still being read stays abortable (caller, close(), and the deadline unless
  // `streamDeadline` is 'first-byte') until it ends.
  if (!ctx.streaming) detach(core, abort);
  else {
    if (core.options.streamDeadline === 'first-byte') abort.dropDeadline();
    ctx.finish = () => detach(core, abort);
  }
  core.inFlight--;
  if (core.inFlight === 0 && core.idleWaiters.length > 0) {
    for (const resolve of core.idleWaiters.splice(0)) resolve();
  }
}

/** The request leaves close()'s reach, stops listening to the caller's signal and clears its timer. */
function detach(core: Core, abort: RequestAbort): void {
  core.active.delete(abort);
  abort.detach();
}

/**
 * After a failed attempt, whatever the retry policy decides: surface (the
 * error is thrown on), rotate at once or back off (the returned promise
 * resolves when the next attempt may go). A plain loop rather than p-retry:
 * the policy owns the counting (free rotations), the delays and the
 * deadline, so p-retry would only add its own counting to work around;
 * errors that are not attempt failures (no key, a budget or store refusal,
 * the request's abort) end the loop as they are.
 */
function afterFailure(core: Core, ctx: RequestContext, error: unknown, abort: RequestAbort): Promise<void> {
  if (abort.ended) throw abort.signal.reason;
  if (!(error instanceof AttemptFailure)) throw error;
  const history = ctx.history;
  const reading = Date.now();
  const decision = decide(
    error,
    {
      replayable: ctx.request.replayable,
      retriesUsed: history.retriesUsed,
      transientFailures: history.transientTotal,
      providerTransientFailures: error.providerTransientFailures,
      // The request's time, which its deadline is a moment of (a clock stepped meanwhile moves neither).
      now: abort.time(reading),
      deadlineAt: ctx.deadlineAt,
      otherProviders: error.retryAfterMs !== undefined && ctx.route.deployments.some((d) => d.pool !== history.last?.pool),
      untriedKeys: error.classification.modelUnavailable ? untriedKeys(ctx, reading) : undefined,
    },
    core.options.retry,
  );
  if (decision.action === 'surface') throw error;
  return retryAfter(core, ctx, error, decision, abort.signal);
}

/** Carries out a rotate or backoff decision: counts it, announces `retry`, waits. */
async function retryAfter(core: Core, ctx: RequestContext, failure: AttemptFailure, decision: Exclude<RetryDecision, { action: 'surface' }>, signal: AbortSignal): Promise<void> {
  const history = ctx.history;
  if (decision.consumesRetry) history.retriesUsed++;
  const delayMs = decision.action === 'backoff' ? decision.ms : 0;
  if (decision.action === 'backoff' && decision.avoidProvider) {
    (history.avoided ??= new Set()).add(history.last!.pool);
  }
  // A wait the provider asked for binds that provider: acquire waits for it only when no other provider can serve.
  const held = decision.action === 'backoff' && failure.retryAfterMs !== undefined;
  if (held) (history.held ??= new Map()).set(history.last!.pool, { until: Date.now() + delayMs, ms: delayMs });
  if (core.hub.wants('retry')) {
    core.hub.emit('retry', {
      requestId: ctx.requestId,
      tags: ctx.tags,
      metadata: ctx.metadata,
      attempt: failure.outcome.attempt,
      provider: failure.outcome.provider,
      keyId: failure.outcome.keyId,
      reason: failure.classification.kind,
      status: failure.outcome.status,
      delayMs,
    });
  }
  // What this attempt found (a revoked key, a cooldown) reaches the other replicas before this request moves on.
  const publishing = published(core);
  const sleepMs = held ? 0 : delayMs;
  await (publishing ? untilAborted(Promise.all([publishing, sleep(sleepMs, signal)]), signal) : sleep(sleepMs, signal));
}

/** An attempt on `lease` begins: the fail-over and retry counts, and `failover`. */
function countAttempt(core: Core, ctx: RequestContext, attempt: number, lease: Lease): void {
  const { deployment, key } = lease;
  const last = ctx.history.last;
  if (last && last.pool !== deployment.pool) {
    core.totals.failovers++;
    const model = modelStats(core, ctx.request.model);
    if (model) model.failovers++;
    deployment.pool.counters.failovers++;
    deployment.stats.failovers++;
    if (core.hub.wants('failover')) {
      core.hub.emit('failover', {
        requestId: ctx.requestId,
        tags: ctx.tags,
        metadata: ctx.metadata,
        attempt,
        from: { provider: last.pool.id, keyId: last.key.id },
        to: { provider: deployment.pool.id, keyId: key.id },
        reason: last.kind,
      });
    }
  }
  if (attempt > 1) {
    core.totals.retries++;
    const model = modelStats(core, ctx.request.model);
    if (model) model.retries++;
    key.counters.retries++;
    deployment.pool.counters.retries++;
    deployment.stats.retries++;
  }
}
