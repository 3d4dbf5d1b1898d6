/**
 * The pipeline's side of object affinity (src/routing/affinity.ts): route
 * pins a request that names an object this manager created (a response, a
 * file, a batch, a conversation, an upload) to the key that created it,
 * acquire judges that key alone, and send and respond remember the objects
 * created. Requests outside those collections pay one character read (and
 * one string check when their first letter matches).
 *
 * A pinned key that is removed or disabled fails the request at once with
 * `response_key_unavailable` (the code of the first kind pinned, kept for
 * every kind) rather than sending it to a key that cannot know the object:
 * the provider's answer there (400 `previous_response_not_found`, 404) would
 * cost a request and a rate-limit slot and say less. A key that is only
 * waited for (cooling down, out of rate-limit room, behind an open circuit)
 * is waited for like any key, within the request's deadline.
 */
import { ResponseKeyUnavailableError, type AttemptOutcome } from '../errors';
import { createsObject, kindOf, namedObject, objectCollection, type ObjectKind } from '../routing/affinity';
import type { ObjectPin, RequestContext, RequestFacts } from './context';
import type { Core } from './core';
import type { KeyStates } from './explain';
import type { Lease } from './lease';

/** The keys of a pin whose key was removed: none. */
const NO_KEYS: readonly never[] = Object.freeze([]);

/** What to do instead, per kind, when the object's key is gone. */
const INSTEAD: Readonly<Record<ObjectKind, string>> = {
  response: 'Start a new conversation, or send the full input instead of previous_response_id',
  conversation: 'Start a new conversation',
  file: 'Upload the file again (with a usable key)',
  batch: 'Create the batch again (with a file uploaded through a usable key)',
  upload: 'Start the upload again',
};

/**
 * The pin of a request to `collection` that names an object this manager
 * remembers; undefined when it names none, one not remembered (routed as
 * usual), or a `provider` request option names another provider (the app's
 * choice wins).
 *
 * @throws ResponseKeyUnavailableError when the key that created it is removed or disabled.
 */
export function objectPin(core: Core, facts: RequestFacts, collection: string): ObjectPin | undefined {
  const { affinity } = core;
  const { request } = facts;
  if (affinity === undefined) return undefined;
  const id = namedObject(request.path, collection, request.json);
  const home = id === undefined ? undefined : affinity.home(id, facts.startedAt);
  if (home === undefined) return undefined;
  const option = request.options.provider;
  if (option !== undefined && option !== home.provider) return undefined;
  const key = core.pools.find((p) => p.id === home.provider)?.find(home.keyId);
  const pin: ObjectPin = { object: id!, kind: home.kind, provider: home.provider, keyId: home.keyId, keys: key === undefined ? NO_KEYS : [key] };
  const gone = keyGone(pin, facts.requestId, []);
  if (gone !== undefined) throw gone;
  return pin;
}

/** `response_key_unavailable` when the pinned key is removed or disabled; undefined while it may yet serve. */
export function keyGone(pin: ObjectPin, requestId: string, attempts: AttemptOutcome[]): ResponseKeyUnavailableError | undefined {
  const key = pin.keys[0];
  const state = key === undefined || key.removed ? 'removed' : key.disabled === undefined ? undefined : `disabled (${key.disabled})`;
  if (state === undefined) return undefined;
  const back = state === 'removed' ? 'manager.addKey()' : 'manager.enableKey()';
  return new ResponseKeyUnavailableError(
    `keyplex: ${pin.kind} '${pin.object}' was created with key '${pin.keyId}' of '${pin.provider}', which is ${state} and no longer usable; a ${pin.kind} is known only to the project of the key that created it, so the request was not sent to another key. ` +
      `${INSTEAD[pin.kind]} (or bring the key back with ${back}).`,
    { requestId, attempts },
  );
}

/** What a request waiting for its pinned key is told when none is usable in time. */
export function pinnedStates(pin: ObjectPin): KeyStates {
  return {
    text: `this request is pinned to key '${pin.keyId}' of '${pin.provider}', which created ${pin.kind} '${pin.object}' (only that key's project knows it)`,
    disabledOrGone: false,
    advice: pin.kind === 'response' || pin.kind === 'conversation' ? 'Retry later, or start a new conversation.' : 'Retry later.',
  };
}

/** Why a pinned request found no deployment: the provider of its key does not serve the model asked for. */
export function pinNotServing(pin: ObjectPin, model: string): string {
  return `keyplex: provider '${pin.provider}', whose key '${pin.keyId}' created ${pin.kind} '${pin.object}' that this request names, does not serve model '${model}'. Ask for a model it serves, or start a new conversation. Nothing was sent.`;
}

/** The collection whose object the reply to this request creates (a `POST` to it, affinity on); undefined for any other request. */
export function createdCollection(core: Core, ctx: RequestContext): string | undefined {
  const { method, path } = ctx.request;
  if (core.affinity === undefined || method !== 'POST') return undefined;
  const collection = objectCollection(path);
  return createsObject(method, path, collection) ? collection : undefined;
}

/** Remembers that object `id` of `collection` (unchecked: a non-empty string is kept) was created on the lease's key. */
export function rememberObject(core: Core, lease: Lease, collection: string, id: unknown, now: number): void {
  core.affinity?.remember(id, lease.deployment.pool.id, lease.key.id, now, kindOf(collection));
}
