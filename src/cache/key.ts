/** The cache key of a request: method, path, canonical JSON body, partition and pinned provider, hashed. */
import { createHash } from 'node:crypto';
import { describeThrown, describeType } from '../config/check';
import { HookFailedError } from '../errors';
import type { RequestContext } from '../pipeline/context';
import { asksAnswer, requestJson } from '../request';
import type { ResolvedCache } from './types';

/** JSON with every object's keys sorted, so that key order does not matter. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((item) => (item === undefined ? 'null' : canonicalJson(item))).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const parts: string[] = [];
    for (const name of Object.keys(value).sort()) {
      const item = (value as Record<string, unknown>)[name];
      if (item === undefined || typeof item === 'function') continue;
      parts.push(`${JSON.stringify(name)}:${canonicalJson(item)}`);
    }
    return `{${parts.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

function partitionOf(cache: ResolvedCache, ctx: RequestContext): string {
  const by = cache.partitionBy;
  if (by === 'none') return '';
  const tags = canonicalJson([...ctx.tags].sort());
  if (by === 'tags') return tags;
  if (by === 'tenant') return `${tags}|${canonicalJson(ctx.metadata)}`;
  let partition: unknown;
  try {
    partition = by({ tags: ctx.tags, metadata: ctx.metadata, model: ctx.request.model, path: ctx.request.path });
  } catch (error) {
    throw partitionFailed(ctx, `threw: ${describeThrown(error)}`);
  }
  // Anything but a string would make one partition of every request it is returned for (`undefined` for all): refused.
  if (typeof partition !== 'string') throw partitionFailed(ctx, `returned ${describeType(partition)}, not a string`);
  return `f:${partition}`;
}

/** The request's failure for a `partitionBy` function that could not name its partition: nothing is looked up, sent or shared. */
function partitionFailed(ctx: RequestContext, what: string): HookFailedError {
  return new HookFailedError(
    'cache.partitionBy',
    `keyplex: the cache.partitionBy function ${what}. Nothing was sent and no answer shared; make it return a string for every request.`,
    { requestId: ctx.requestId, attempts: [] },
  );
}

/**
 * The request's cache key, or `undefined` when it is not cacheable: only
 * non-streaming JSON requests for an answer (chat, completions, responses,
 * embeddings, moderations) are; a request that creates something (a batch,
 * a vector store, a job, a background response) must reach its provider each time.
 */
export function cacheKeyOf(cache: ResolvedCache, ctx: RequestContext): string | undefined {
  const { request } = ctx;
  // A background response's create answers `queued`, not the answer: each must start a run of its own.
  if (request.stream || request.background || !asksAnswer(request)) return undefined;
  const text = `${request.method} ${request.path}\n${request.options.provider ?? ''}\n${partitionOf(cache, ctx)}\n${canonicalJson(requestJson(request))}`;
  return createHash('sha256').update(text).digest('base64url');
}
