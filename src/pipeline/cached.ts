/**
 * The response cache's stage (before route): a hit answers the request at
 * once — nothing routed, admitted or sent; counted as a success that cost
 * nothing — and a cacheable miss is marked so that send stores its answer.
 */
import type { RequestContext } from './context';
import { modelStats, type Core } from './core';
import { elapsedMs } from '../wall-clock';

/** The cached answer to the request, or undefined to go on. */
export async function answerFromCache(core: Core, ctx: RequestContext, signal: AbortSignal): Promise<Response | undefined> {
  const hit = await core.cache!.lookup(ctx, core.hub, signal, core.options.replyHeaders);
  if (hit === undefined) return undefined;
  const latencyMs = elapsedMs(ctx.startedAt, Date.now());
  for (const scope of [core.totals, modelStats(core, ctx.request.model)]) {
    if (!scope) continue;
    scope.succeed(null, 0);
    scope.latency.record(latencyMs);
  }
  return hit;
}
