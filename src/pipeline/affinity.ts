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
 *
 * With a state store configured whose session keeps object homes
 * (`rememberObject`/`objectHome`: the Redis store does), what one manager
 * remembers is written to the store too, never waited for; and a request
 * naming an object this manager does not know asks the store once before it
 * is routed (another replica may have created it), the answer kept here.
 * Other requests ask nothing.
 */
import { ResponseKeyUnavailableError, type AttemptOutcome } from '../errors';
import { createsObject, isObjectKind, kindOf, namedObject, objectCollection, type ObjectKind } from '../routing/affinity';
import type { StoreObjectHome } from '../store/types';
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

/** Remembers that object `id` of `collection` (a non-empty string is kept, unchecked) was created on the lease's key; shared through the store when one is configured. */
export function rememberObject(core: Core, lease: Lease, collection: string, id: unknown, now: number): void {
  const { affinity, session } = core;
  if (affinity === undefined || typeof id !== 'string' || id === '') return;
  const home: StoreObjectHome = { provider: lease.deployment.pool.id, keyId: lease.key.id, kind: kindOf(collection) };
  affinity.remember(id, home.provider, home.keyId, now, home.kind);
  if (core.options.store === undefined || session.rememberObject === undefined) return;
  try {
    // Never waited for: the store reports its own failures (store:error); a rejection is let go.
    const written = session.rememberObject(id, home, core.options.affinity!.ttlMs);
    if (written instanceof Promise) written.catch(() => undefined);
  } catch {
    // A store that throws (against its contract) loses the write, never the request.
  }
}

/**
 * When the request names an object this manager does not know and the
 * configured store may (another replica created it): the store's answer,
 * kept in this manager's memory once it comes (route then pins the request
 * as for an object created here). Undefined, at once, for every other
 * request, and when the store answers at once. A store that fails or answers
 * nothing leaves the request routed as usual.
 */
export function objectLookup(core: Core, facts: RequestFacts): Promise<void> | undefined {
  const { affinity, session } = core;
  if (core.options.store === undefined || affinity === undefined || session.objectHome === undefined) return undefined;
  const { request } = facts;
  const collection = objectCollection(request.path);
  const id = collection === undefined ? undefined : namedObject(request.path, collection, request.json);
  if (id === undefined || affinity.home(id, facts.startedAt) !== undefined) return undefined;
  const learn = (home: StoreObjectHome | undefined): void => {
    // Of the right shape only: a custom store's other answer is none.
    if (typeof home !== 'object' || home === null || !isObjectKind(home.kind) || typeof home.provider !== 'string' || typeof home.keyId !== 'string') return;
    affinity.remember(id, home.provider, home.keyId, Date.now(), home.kind);
  };
  try {
    const answer = session.objectHome(id);
    if (!(answer instanceof Promise)) return void learn(answer);
    return answer.then(learn, () => undefined);
  } catch {
    return undefined;
  }
}
