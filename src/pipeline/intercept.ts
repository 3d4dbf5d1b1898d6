/**
 * Intercept: the SDK's request read once (method, path, JSON body, keyplex
 * options — src/request.ts), the token estimate, and the request context
 * made, counted and announced (`request`).
 */
import { estimateInputTokens, estimateOutputTokens } from '../resilience/rate-limit/index';
import { intercept as read } from '../request';
import { AttemptHistory, type RequestContext, type RoutePlan } from './context';
import { modelStats, type Core } from './core';

const EMPTY_TAGS: readonly string[] = Object.freeze([]);
const EMPTY_METADATA: Readonly<Record<string, string | number | boolean>> = Object.freeze({});
/** The route before routing ran (no deployment). */
const UNROUTED: RoutePlan = Object.freeze({ deployments: Object.freeze([]) as unknown as RoutePlan['deployments'], ranks: new Map(), contextTooLong: false, excludedModels: undefined, affinity: undefined });

/** The context of a new request, counted in the stats and announced with `request`. */
export function intercept(core: Core, input: string | URL | Request, init: RequestInit | undefined): RequestContext {
  const startedAt = Date.now();
  const request = read(input, init, core.pools);
  const deadlineMs = request.options.deadlineMs ?? core.options.deadlineMs;
  const inputTokens = request.json ? estimateInputTokens(request.json) : 0;
  const outputTokens = request.json ? estimateOutputTokens(request.json, core.options.rateLimiting.defaultOutputTokens) : 0;
  const ctx: RequestContext = {
    requestId: core.idPrefix + (++core.sequence).toString(36),
    tags: request.options.tags ?? EMPTY_TAGS,
    metadata: request.options.metadata ?? EMPTY_METADATA,
    request,
    startedAt,
    deadlineAt: startedAt + deadlineMs,
    deadlineMs,
    inputTokens,
    outputTokens,
    tokens: inputTokens + outputTokens,
    route: UNROUTED,
    history: new AttemptHistory(),
    budgetHold: undefined,
    budgetHeldUsd: 0,
    keyBudgetHold: undefined,
    releaseLane: undefined,
    streaming: false,
    finish: undefined,
  };
  core.totals.requests++;
  // A name no configuration knows takes one of the bounded places for per-model state (src/routing/model-names.ts).
  if (request.model !== undefined) core.modelNames.use(core, request.model);
  const model = modelStats(core, request.model);
  if (model) model.requests++;
  core.inFlight++;
  if (core.hub.wants('request')) {
    core.hub.emit('request', {
      requestId: ctx.requestId,
      tags: ctx.tags,
      metadata: ctx.metadata,
      method: request.method,
      path: request.path,
      model: request.model,
      stream: request.stream,
    });
  }
  return ctx;
}
