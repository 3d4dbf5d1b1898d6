/**
 * Background responses (`responses.create({ background: true })`): the
 * create answers at once, `queued` or `in_progress` and without usage, so
 * its request is settled at its estimate (account.ts); the response's real
 * usage comes later, with the terminal status (`completed`, `incomplete`,
 * `failed`, `cancelled`) the app reads by polling (`GET /responses/{id}`),
 * cancelling (`POST /responses/{id}/cancel`) or streaming (the create's own
 * stream, or one resumed with `GET /responses/{id}?stream=true`).
 *
 * This manager remembers each background response it created whose create
 * did not carry its terminal usage ({@link BackgroundRuns}: bounded as object
 * affinity is, by `affinity.maxIds` and `affinity.ttlMs`); the first reply it
 * sees that shows one of them terminal with usage counts the real cost once,
 * less what the create counted: against the create's budgets (its model,
 * tags, provider and key), in `stats()` (totals, its model, its key,
 * provider and deployment) and in a `background:settled` event. The id is
 * then forgotten: later reads spend nothing, as any read of what was made
 * before (request.ts `bills`).
 *
 * Per manager, in memory: a replica that did not create the response (or a
 * manager restarted since) spends nothing when it reads it, and its create
 * stays counted at its estimate. A response whose terminal status is never
 * read through this manager (a webhook, the dashboard) stays so too.
 *
 * Requests that are neither a background create nor made while a background
 * response is remembered pay one field read and one size check.
 */
import type { BackgroundSettledEvent } from '../events';
import type { StreamTally } from '../usage/sse';
import { usageBeyond, type Usage } from '../usage/usage';
import { costOf } from './account';
import { estimateAt } from './admit';
import type { RequestContext } from './context';
import { modelStats, type Core } from './core';
import type { Lease } from './lease';
import type { Run } from './background-runs';
import { decodeText } from './read-body';

/** The statuses a response ends in. */
const TERMINAL = new Set(['completed', 'incomplete', 'failed', 'cancelled']);
const RESPONSES = '/responses/';

/**
 * A JSON reply, accounted: a background create's (remembered unless it
 * carried its usage) or a read of a background response remembered here
 * (its cost counted when the reply shows it terminal with usage).
 * `summary`: the members read of the body (`id`, `usage`); `bytes`: the body,
 * parsed whole only for a remembered response's reply that has usage.
 */
export function backgroundJson(core: Core, ctx: RequestContext, lease: Lease, summary: unknown, usage: Usage | null, bytes: Uint8Array, now: number): void {
  if (ctx.request.background) {
    if (usage === null) remember(core, ctx, lease, (summary as { id?: unknown } | null)?.id, null, 0, estimateAt(ctx, lease.deployment), now);
    return;
  }
  const id = readId(ctx);
  const run = id === undefined ? undefined : core.background.get(id, now);
  if (run === undefined || usage === null) return;
  if (!TERMINAL.has(statusOf(bytes))) return;
  settle(core, id!, run, usage);
}

/**
 * A streamed reply ended (`usage`: what its events reported; `spent` and
 * `costUsd`: what its request was counted at, and its budgets settled at
 * as account.ts does):
 * a background create that ended before its terminal event is remembered;
 * a stream of a remembered response (resumed) that reached it counts its cost.
 */
export function backgroundStream(core: Core, ctx: RequestContext, lease: Lease, tally: StreamTally, usage: Usage | undefined, spent: Usage | null, costUsd: number | null): void {
  const now = Date.now();
  if (ctx.request.background) {
    if (!tally.sawEnd) remember(core, ctx, lease, tally.responseId, spent, costUsd ?? 0, costUsd ?? (spent === null ? estimateAt(ctx, lease.deployment) : 0), now);
    return;
  }
  const id = readId(ctx);
  const run = id === undefined ? undefined : core.background.get(id, now);
  if (run !== undefined && usage !== undefined && tally.sawEnd) settle(core, id!, run, usage);
}

function remember(core: Core, ctx: RequestContext, lease: Lease, id: unknown, counted: Usage | null, countedUsd: number, chargedUsd: number, now: number): void {
  if (typeof id !== 'string' || id === '') return;
  const runs = core.background;
  runs.add(id, {
    requestId: ctx.requestId,
    tags: ctx.tags,
    metadata: ctx.metadata,
    model: ctx.request.model,
    deployment: lease.deployment,
    keyId: lease.key.id,
    inputTokens: ctx.inputTokens,
    counted,
    countedUsd,
    chargedUsd,
    expiresAt: now + runs.ttlMs,
  });
}

/** The response a request reads (`/responses/{id}`, `/responses/{id}/cancel`, a query allowed); undefined for any other. */
function readId(ctx: RequestContext): string | undefined {
  const { path, method } = ctx.request;
  if (!path.startsWith(RESPONSES)) return undefined;
  let end = RESPONSES.length;
  while (end < path.length && path[end] !== '/' && path[end] !== '?') end++;
  const rest = path.slice(end);
  const read = method === 'GET' ? rest === '' || rest[0] === '?' : method === 'POST' && (rest === '/cancel' || rest.startsWith('/cancel?'));
  if (!read || end === RESPONSES.length) return undefined;
  try {
    return decodeURIComponent(path.slice(RESPONSES.length, end));
  } catch {
    return undefined;
  }
}

/** A response object's `status` (the top level's, not an output item's); '' when it has none or is not JSON. */
function statusOf(bytes: Uint8Array): string {
  try {
    const status = (JSON.parse(decodeText(bytes)) as { status?: unknown } | null)?.status;
    return typeof status === 'string' ? status : '';
  } catch {
    return '';
  }
}

/**
 * Response `id` (its `run`) ended with `usage`: its cost counted once, less
 * what its create counted (never below 0: spend is not taken back), against
 * the create's budgets, in the stats, and told in `background:settled`.
 */
function settle(core: Core, id: string, run: Run, usage: Usage): void {
  core.background.delete(id);
  const { deployment, keyId, model } = run;
  const pool = deployment.pool;
  const costUsd = costOf(core, run, model, usage, run.inputTokens);
  const extra = costUsd === null ? 0 : Math.max(0, costUsd - run.chargedUsd);
  if (extra > 0) {
    const info = { provider: pool.id, keyId, model, tags: run.tags };
    core.budgets?.record(info, extra);
    core.keyBudgets?.record(info, extra);
  }
  const added = run.counted === null ? usage : usageBeyond(usage, run.counted);
  const addedUsd = costUsd === null ? null : Math.max(0, costUsd - run.countedUsd);
  for (const scope of [core.totals, modelStats(core, model), pool.find(keyId)?.counters, pool.counters, deployment.stats]) scope?.spend(added, addedUsd);
  if (!core.hub.wants('background:settled')) return;
  const event: BackgroundSettledEvent = {
    requestId: run.requestId,
    tags: run.tags,
    metadata: run.metadata,
    responseId: id,
    provider: pool.id,
    keyId,
    model,
    upstreamModel: deployment.upstreamModel,
    usage: added,
    costUsd: addedUsd,
  };
  core.hub.emit('background:settled', event);
}
