/**
 * The pipeline's side of object affinity (src/routing/affinity.ts): route
 * pins a request that names an object this manager created (a response, a
 * file, a batch, a conversation, an upload, a vector store, a fine-tuning
 * job) to the key that created it, acquire judges that key alone, and send
 * and respond remember the objects created (and the file a completed upload
 * produced). Requests outside those collections pay two character reads (and
 * one string check when they match a collection's); a chat completion's
 * messages, a response's `input` and `tools` are searched for files and
 * vector stores only once this manager remembered one. A request naming
 * objects of different keys fails unsent with `objects_on_different_keys`.
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
 * remembers is written to the store too, and the answer that created it
 * handed back once written (at most a second); and a request
 * naming an object this manager does not know asks the store once before it
 * is routed (another replica may have created it), the answer kept here.
 * Other requests ask nothing.
 */
import { ObjectsOnDifferentKeysError, ResponseKeyUnavailableError, type AttemptOutcome } from '../errors';
import { CHAT, chatCreation, creation, isChat, isObjectKind, NAMED, namedObjects, objectCollection, type Creation, type ObjectAffinity, type ObjectHome, type ObjectKind } from '../routing/affinity';
import type { StoreObjectHome, StoreSession } from '../store/types';
import type { ObjectPin, RequestContext, RequestFacts } from './context';
import type { Core } from './core';
import type { KeyStates } from './explain';
import type { Lease } from './lease';
import { decodeText } from './read-body';

/** The keys of a pin whose key was removed: none. */
const NO_KEYS: readonly never[] = Object.freeze([]);

/** What to do instead, per kind, when the object's key is gone. */
const INSTEAD: Readonly<Record<ObjectKind, string>> = {
  response: 'Start a new conversation, or send the full input instead of previous_response_id',
  conversation: 'Start a new conversation',
  file: 'Upload the file again (with a usable key)',
  batch: 'Create the batch again (with a file uploaded through a usable key)',
  upload: 'Start the upload again',
  vector_store: 'Create the vector store again (with files uploaded through a usable key)',
  fine_tuning_job: 'Create the fine-tuning job again (with files uploaded through a usable key)',
  chat_completion: 'Create the chat completion again',
};

/** What an object of each kind is called in messages. */
const CALLED: Readonly<Record<ObjectKind, string>> = {
  response: 'response',
  conversation: 'conversation',
  file: 'file',
  batch: 'batch',
  upload: 'upload',
  vector_store: 'vector store',
  fine_tuning_job: 'fine-tuning job',
  chat_completion: 'stored chat completion',
};

/**
 * The pin of a request to `collection` (undefined: outside the collections,
 * a chat completion is then looked into) that names objects this manager remembers (see
 * `namedObjects`: its path, ids in its body and, once this manager remembered
 * a file or vector store, the files and vector stores of its messages, input
 * and tools); undefined when it names none, none remembered (routed as
 * usual), or a `provider` request option names another provider (the app's
 * choice wins, for each object).
 *
 * @throws ResponseKeyUnavailableError when the key that created them is removed or disabled.
 * @throws ObjectsOnDifferentKeysError when they were created with different keys: no one key knows them all.
 */
export function objectPin(core: Core, facts: RequestFacts, affinity: ObjectAffinity, collection: string | undefined): ObjectPin | undefined {
  const { request } = facts;
  const { path } = request;
  const content = affinity.contentObjects > 0;
  const named = collection ?? (content && isChat(request.method, path) ? CHAT : undefined);
  if (named === undefined) return undefined;
  const count = namedObjects(path, named, request.json, content);
  if (count === 0) return undefined;
  const option = request.options.provider;
  let pin: ObjectPin | undefined;
  let others: [string, ObjectHome][] | undefined;
  for (let i = 0; i < count; i++) {
    const id = NAMED[i]!;
    const home = affinity.home(id, facts.startedAt);
    if (home === undefined || (option !== undefined && option !== home.provider)) continue;
    if (pin === undefined) pin = pinTo(core, id, home);
    else if (home.provider !== pin.provider || home.keyId !== pin.keyId) (others ??= []).push([id, home]);
  }
  if (pin === undefined) return undefined;
  if (others !== undefined) throw differentKeys(pin, others, facts.requestId);
  const gone = keyGone(pin, facts.requestId, []);
  if (gone !== undefined) throw gone;
  return pin;
}

/** A pin to the key that created object `id`. */
function pinTo(core: Core, id: string, home: ObjectHome): ObjectPin {
  const key = core.pools.find((p) => p.id === home.provider)?.find(home.keyId);
  return { object: id, kind: home.kind, provider: home.provider, keyId: home.keyId, keys: key === undefined ? NO_KEYS : [key] };
}

/** `objects_on_different_keys`: the request names `pin`'s object and `others`, created with other keys. */
function differentKeys(pin: ObjectPin, others: readonly [string, ObjectHome][], requestId: string): ObjectsOnDifferentKeysError {
  const named = [`${CALLED[pin.kind]} '${pin.object}' (key '${pin.keyId}' of '${pin.provider}')`, ...others.map(([id, home]) => `${CALLED[home.kind]} '${id}' (key '${home.keyId}' of '${home.provider}')`)];
  return new ObjectsOnDifferentKeysError(
    `keyplex: this request names objects created with different keys: ${named.join(', ')}. Each is known only to the project of the key that created it and no one key knows them all, so nothing was sent. ` +
      'Name objects made with one key in a request (send the others in a request of their own), or make them with one key: a request creating an object that names another (vector_stores.create({ file_ids }), vector_stores.files.create) goes to that object\'s key. ' +
      'If these keys are of one project, which shares its objects, turn object affinity off with `affinity: false`.',
    { requestId },
  );
}

/** `response_key_unavailable` when the pinned key is removed or disabled; undefined while it may yet serve. */
export function keyGone(pin: ObjectPin, requestId: string, attempts: AttemptOutcome[]): ResponseKeyUnavailableError | undefined {
  const key = pin.keys[0];
  const state = key === undefined || key.removed ? 'removed' : key.disabled === undefined ? undefined : `disabled (${key.disabled})`;
  if (state === undefined) return undefined;
  const back = state === 'removed' ? 'manager.addKey()' : 'manager.enableKey()';
  return new ResponseKeyUnavailableError(
    `keyplex: ${CALLED[pin.kind]} '${pin.object}' was created with key '${pin.keyId}' of '${pin.provider}', which is ${state} and no longer usable; a ${CALLED[pin.kind]} is known only to the project of the key that created it, so the request was not sent to another key. ` +
      `${INSTEAD[pin.kind]} (or bring the key back with ${back}).`,
    { requestId, attempts },
  );
}

/** What a request waiting for its pinned key is told when none is usable in time. */
export function pinnedStates(pin: ObjectPin): KeyStates {
  return {
    text: `this request is pinned to key '${pin.keyId}' of '${pin.provider}', which created ${CALLED[pin.kind]} '${pin.object}' (only that key's project knows it)`,
    disabledOrGone: false,
    advice: pin.kind === 'response' || pin.kind === 'conversation' ? 'Retry later, or start a new conversation.' : 'Retry later.',
  };
}

/** Why a pinned request found no deployment: the provider of its key does not serve the model asked for. */
export function pinNotServing(pin: ObjectPin, model: string): string {
  return `keyplex: provider '${pin.provider}', whose key '${pin.keyId}' created ${CALLED[pin.kind]} '${pin.object}' that this request names, does not serve model '${model}'. Ask for a model it serves, or start a new conversation. Nothing was sent.`;
}

/** What the reply to this request creates (affinity on): an object of the collection it `POST`s to, or the file a completed upload produced; undefined for any other request. */
export function createdObject(core: Core, ctx: RequestContext): Creation | undefined {
  const { method, path } = ctx.request;
  if (core.affinity === undefined || method !== 'POST') return undefined;
  const collection = objectCollection(path);
  return collection === undefined ? chatCreation(method, path, ctx.request.stored) : creation(method, path, collection);
}

/** How long an answer waits at most for its object's home to be written to the store (a store's write should settle well within it; the Redis store's does within its `timeoutMs`). */
export const HOME_WRITE_WAIT_MS = 1_000;

/**
 * Remembers that object `id` (a non-empty string is kept, unchecked) that
 * `created` names was created on the lease's key, and shares it through the
 * store when one is configured; a file or vector store also turns on the
 * search of messages, input and tools for them.
 *
 * Returns the store's write when it is one to wait for: the answer is
 * handed back once it settles (see {@link homeWritten}), so that a replica
 * the application asks next with the object's id finds its home (Redis may
 * otherwise serve that replica's read before this write).
 */
export function rememberObject(core: Core, lease: Lease, created: Creation, id: unknown, now: number): Promise<unknown> | undefined {
  const { affinity, session } = core;
  if (affinity === undefined || typeof id !== 'string' || id === '') return undefined;
  const home: StoreObjectHome = { provider: lease.deployment.pool.id, keyId: lease.key.id, kind: created.kind };
  affinity.remember(id, home.provider, home.keyId, now, home.kind);
  if (core.options.store === undefined || session.rememberObject === undefined) return undefined;
  try {
    // The store reports its own failures (store:error); a rejection is let go.
    const written = session.rememberObject(id, home, core.options.affinity!.ttlMs);
    return written instanceof Promise ? written.catch(() => undefined) : undefined;
  } catch {
    // A store that throws (against its contract) loses the write, never the request.
    return undefined;
  }
}

/**
 * Settles when `written` (a home's write to the store) does, the request is
 * aborted (by its caller, its deadline) or {@link HOME_WRITE_WAIT_MS} have
 * passed, whichever comes first; never rejects: a write that fails or
 * lingers costs the answer nothing.
 */
export function homeWritten(written: Promise<unknown>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, HOME_WRITE_WAIT_MS);
    signal.addEventListener('abort', done, { once: true });
    void written.then(done);
  });
}

/**
 * When the request names objects this manager does not know and the
 * configured store may (another replica created them): the store's answers,
 * kept in this manager's memory once they come (route then pins the request
 * as for objects created here). With a store, a chat completion's messages
 * and a response's input and tools are looked into whether or not this
 * manager created a file itself (another replica may have). Undefined, at
 * once, for every other request, and when the store answers at once. A
 * store that fails or answers nothing leaves the request routed as usual.
 */
export function objectLookup(core: Core, facts: RequestFacts): Promise<void> | undefined {
  const { affinity, session } = core;
  if (core.options.store === undefined || affinity === undefined || session.objectHome === undefined) return undefined;
  const { method, path, json } = facts.request;
  const collection = objectCollection(path) ?? (isChat(method, path) ? CHAT : undefined);
  if (collection === undefined) return undefined;
  const count = namedObjects(path, collection, json, true);
  // Copied out of the shared list before anything is awaited.
  let asks: Promise<void>[] | undefined;
  for (let i = 0; i < count; i++) {
    const id = NAMED[i]!;
    if (affinity.home(id, facts.startedAt) !== undefined) continue;
    const asked = askStore(affinity, session, id);
    if (asked !== undefined) (asks ??= []).push(asked);
  }
  return asks === undefined ? undefined : Promise.all(asks).then(() => undefined);
}

/** Asks the store where object `id` was created; its answer, when it has one, is remembered here. */
function askStore(affinity: ObjectAffinity, session: StoreSession, id: string): Promise<void> | undefined {
  const learn = (home: StoreObjectHome | undefined): void => {
    // Of the right shape only: a custom store's other answer is none.
    if (typeof home !== 'object' || home === null || !isObjectKind(home.kind) || typeof home.provider !== 'string' || typeof home.keyId !== 'string') return;
    affinity.remember(id, home.provider, home.keyId, Date.now(), home.kind);
  };
  try {
    const answer = session.objectHome!(id);
    if (!(answer instanceof Promise)) return void learn(answer);
    return answer.then(learn, () => undefined);
  } catch {
    return undefined;
  }
}

/** The id of the object a JSON reply created: its `id` (in `summary`, the members read of it), or for a completed upload its `file`'s, read from the whole body (a rare reply). */
export function createdId(created: Creation, summary: unknown, body: Uint8Array): unknown {
  if (!created.inFile) return (summary as { id?: unknown } | null)?.id;
  try {
    return (JSON.parse(decodeText(body)) as { file?: { id?: unknown } | null } | null)?.file?.id;
  } catch {
    return undefined;
  }
}
