/**
 * Object affinity: which key created each object that OpenAI keeps per
 * project — a response, a file, a batch, a conversation, an upload. Such an
 * object is known only to the project of the key that created it, so a later
 * request naming it must go to that key: another key, of another project or
 * provider, answers `previous_response_not_found` (400) or 404. The pipeline
 * remembers the key when a `POST` to the object's collection succeeds and pins
 * the requests that name the id (src/pipeline/affinity.ts).
 *
 * One bounded map per manager, in memory: the least recently used ids go
 * first past `maxIds`, and an id is forgotten `ttlMs` after it was
 * remembered. Each entry is the id and one short string naming the provider,
 * the key and the object's kind (no reference to the key itself: a removed
 * key is not kept alive, and the entry could be shared through a store as it is).
 */
import { Lru } from '../cache/lru';

/** Between the provider id, the key id and the kind in a remembered entry (none may hold it). */
const SEPARATOR = '\u0000';
const RESPONSES = '/responses';
const FILES = '/files';
const BATCHES = '/batches';
const CONVERSATIONS = '/conversations';
const UPLOADS = '/uploads';

/** What one object of a collection is called (in errors). */
const KINDS: Readonly<Record<string, ObjectKind>> = { [RESPONSES]: 'response', [FILES]: 'file', [BATCHES]: 'batch', [CONVERSATIONS]: 'conversation', [UPLOADS]: 'upload' };

/** Every kind's name. */
const KIND_NAMES: ReadonlySet<ObjectKind> = new Set(Object.values(KINDS));

/** Each collection by the first letter of its name (as a character code): no two share one. */
const BY_FIRST_LETTER: Readonly<Record<number, string>> = Object.fromEntries(Object.keys(KINDS).map((collection) => [collection.charCodeAt(1), collection]));

/** The kinds of object kept with the key that created them. */
export type ObjectKind = 'response' | 'file' | 'batch' | 'conversation' | 'upload';

/** Where an object was created, and what it is. */
export interface ObjectHome {
  readonly provider: string;
  readonly keyId: string;
  readonly kind: ObjectKind;
}

/** The ids of the objects created through this manager, and the key of each. */
export class ObjectAffinity {
  readonly #ids: Lru;
  readonly #ttlMs: number;
  /** Each key's (and kind's) entry text, made once: every id of a key shares it (a handful of keys, many ids). */
  readonly #homes = new Map<string, string>();

  constructor(options: { maxIds: number; ttlMs: number }) {
    // Bounded by count; the byte budget of the shared LRU is not used here.
    this.#ids = new Lru(options.maxIds, Number.MAX_SAFE_INTEGER);
    this.#ttlMs = options.ttlMs;
  }

  /** Ids remembered (expired ones count until met). */
  get size(): number {
    return this.#ids.size;
  }

  /** Remembers that object `id` (when it is a non-empty string) of `kind` was created with `keyId` of `provider`, as of `now`. */
  remember(id: unknown, provider: string, keyId: string, now: number, kind: ObjectKind = 'response'): void {
    if (typeof id !== 'string' || id === '') return;
    const made = provider + SEPARATOR + keyId + SEPARATOR + kind;
    let home = this.#homes.get(made);
    if (home === undefined) this.#homes.set(made, (home = made));
    this.#ids.set(id, home, this.#ttlMs, now);
  }

  /** Where object `id` was created; undefined when it is not remembered (never seen here, forgotten, or expired at `now`). */
  home(id: string, now: number): ObjectHome | undefined {
    const entry = this.#ids.get(id, now);
    if (entry === undefined) return undefined;
    const at = entry.indexOf(SEPARATOR);
    const kindAt = entry.lastIndexOf(SEPARATOR);
    return { provider: entry.slice(0, at), keyId: entry.slice(at + 1, kindAt), kind: entry.slice(kindAt + 1) as ObjectKind };
  }
}

/**
 * The collection (`/files`, …) a path is in, when its objects are kept with
 * their key; undefined for every other path. One character read, and one
 * `startsWith` for a path whose first letter matches a collection's
 * (`/chat/completions` meets `/conversations`'s): the cost of a request
 * outside these collections.
 */
export function objectCollection(path: string): string | undefined {
  const collection = BY_FIRST_LETTER[path.charCodeAt(1)];
  if (collection === undefined || !path.startsWith(collection)) return undefined;
  const next = path.charCodeAt(collection.length);
  return path.length === collection.length || next === 47 /* / */ || next === 63 /* ? */ ? collection : undefined;
}

/** The kind of the objects of `collection` (one {@link objectCollection} gave). */
export function kindOf(collection: string): ObjectKind {
  return KINDS[collection]!;
}

/** Whether `kind` is one of the kinds kept with their key (an answer from a store is checked with it). */
export function isObjectKind(kind: unknown): kind is ObjectKind {
  return typeof kind === 'string' && KIND_NAMES.has(kind as ObjectKind);
}

/** Whether a request creates an object of `collection`: a `POST` to the collection itself (a query allowed). */
export function createsObject(method: string, path: string, collection: string | undefined): boolean {
  return method === 'POST' && collection !== undefined && (path.length === collection.length || path.charCodeAt(collection.length) === 63 /* ? */);
}

/**
 * The object a request to `collection` names: in its JSON body, a response's
 * `previous_response_id` or `conversation` (an id, or `{ id }`), a batch's
 * `input_file_id`; else the `{id}` of a `{collection}/{id}…` path (retrieve,
 * delete, `content`, `cancel`, `items`…). Undefined for a request that names
 * none. An id that is no object (`/responses/input_tokens`) is looked up and
 * not found: such a request is routed as usual.
 */
export function namedObject(path: string, collection: string, json: Record<string, unknown> | undefined): string | undefined {
  const inBody = json === undefined ? undefined : collection === RESPONSES ? json.previous_response_id || conversationId(json.conversation) : collection === BATCHES ? json.input_file_id : undefined;
  if (typeof inBody === 'string' && inBody !== '') return inBody;
  const from = collection.length + 1;
  if (path.charCodeAt(collection.length) !== 47 /* / */) return undefined;
  let end = from;
  while (end < path.length && path[end] !== '/' && path[end] !== '?') end++;
  if (end === from) return undefined;
  try {
    return decodeURIComponent(path.slice(from, end));
  } catch {
    return undefined;
  }
}

/** A response's `conversation`: an id, or an object with one. */
function conversationId(conversation: unknown): unknown {
  return typeof conversation === 'object' && conversation !== null ? (conversation as { id?: unknown }).id : conversation;
}
