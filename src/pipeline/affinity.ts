/**
 * The pipeline's side of response affinity (src/routing/affinity.ts): route
 * pins a request that names a response this manager created to the key that
 * created it, acquire judges that key alone, and send and respond remember
 * the responses created. Requests outside `/responses` pay one string check.
 *
 * A pinned key that is removed or disabled fails the request at once with
 * `response_key_unavailable` rather than sending it to a key that cannot know
 * the response: the provider's answer there (400 `previous_response_not_found`,
 * 404) would cost a request and a rate-limit slot and say less. A key that
 * is only waited for (cooling down, out of rate-limit room, behind an open
 * circuit) is waited for like any key, within the request's deadline.
 */
import { ResponseKeyUnavailableError, type AttemptOutcome } from '../errors';
import { createsResponse, namedResponse } from '../routing/affinity';
import type { RequestContext, RequestFacts, ResponsePin } from './context';
import type { Core } from './core';
import type { KeyStates } from './explain';
import type { Lease } from './lease';

/** The keys of a pin whose key was removed: none. */
const NO_KEYS: readonly never[] = Object.freeze([]);

/**
 * The pin of a request that names a response this manager remembers;
 * undefined when it names none, one not remembered (routed as usual), or a
 * `provider` request option names another provider (the app's choice wins).
 *
 * @throws ResponseKeyUnavailableError when the key that created it is removed or disabled.
 */
export function responsePin(core: Core, facts: RequestFacts): ResponsePin | undefined {
  const { affinity } = core;
  const { request } = facts;
  if (affinity === undefined) return undefined;
  const id = namedResponse(request.path, request.json);
  const home = id === undefined ? undefined : affinity.home(id, facts.startedAt);
  if (home === undefined) return undefined;
  const option = request.options.provider;
  if (option !== undefined && option !== home.provider) return undefined;
  const key = core.pools.find((p) => p.id === home.provider)?.find(home.keyId);
  const pin: ResponsePin = { response: id!, provider: home.provider, keyId: home.keyId, keys: key === undefined ? NO_KEYS : [key] };
  const gone = keyGone(pin, facts.requestId, []);
  if (gone !== undefined) throw gone;
  return pin;
}

/** `response_key_unavailable` when the pinned key is removed or disabled; undefined while it may yet serve. */
export function keyGone(pin: ResponsePin, requestId: string, attempts: AttemptOutcome[]): ResponseKeyUnavailableError | undefined {
  const key = pin.keys[0];
  const state = key === undefined || key.removed ? 'removed' : key.disabled === undefined ? undefined : `disabled (${key.disabled})`;
  if (state === undefined) return undefined;
  const back = state === 'removed' ? 'manager.addKey()' : 'manager.enableKey()';
  return new ResponseKeyUnavailableError(
    `keyplex: response '${pin.response}' was created with key '${pin.keyId}' of '${pin.provider}', which is ${state} and no longer usable; a response is known only to the project of the key that created it, so the request was not sent to another key. ` +
      `Start a new conversation, or send the full input instead of previous_response_id (or bring the key back with ${back}).`,
    { requestId, attempts },
  );
}

/** What a request waiting for its pinned key is told when none is usable in time. */
export function pinnedStates(pin: ResponsePin): KeyStates {
  return {
    text: `this request is pinned to key '${pin.keyId}' of '${pin.provider}', which created response '${pin.response}' (only that key's project knows it)`,
    disabledOrGone: false,
    advice: 'Retry later, or start a new conversation.',
  };
}

/** Why a pinned request found no deployment: the provider of its key does not serve the model asked for. */
export function pinNotServing(pin: ResponsePin, model: string): string {
  return `keyplex: provider '${pin.provider}', whose key '${pin.keyId}' created response '${pin.response}' that this request names, does not serve model '${model}'. Ask for a model it serves, or start a new conversation. Nothing was sent.`;
}

/** Whether the reply to this request carries a response to remember (a `POST /responses` with affinity on). */
export function remembersResponse(core: Core, ctx: RequestContext): boolean {
  return core.affinity !== undefined && createsResponse(ctx.request.method, ctx.request.path);
}

/** Remembers that response `id` (unchecked: a non-empty string is kept) was created on the lease's key. */
export function rememberResponse(core: Core, lease: Lease, id: unknown, now: number): void {
  core.affinity?.remember(id, lease.deployment.pool.id, lease.key.id, now);
}
