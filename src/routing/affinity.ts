/**
 * Object affinity: which key created each object that OpenAI keeps per
 * project — a response, a file, a batch, a conversation, an upload, a vector
 * store, a fine-tuning job, a stored chat completion (`store: true`). Such an
 * object is known only to the project of the key that created it, so a later
 * request naming it must go to that key: another key, of another project or
 * provider, answers `previous_response_not_found` (400) or 404. The pipeline remembers the key
 * when a `POST` to the object's collection succeeds (and the file a completed
 * upload produced) and pins the requests that name the id, in their path or
 * body (src/pipeline/affinity.ts).
 *
 * One bounded map per manager, in memory: the least recently used ids go
 * first past `maxIds`, and an id is forgotten `ttlMs` after it was
 * remembered. Each entry is the id and one short string naming the provider,
 * the key and the object's kind (no reference to the key itself: a removed
 * key is not kept alive, and the entry could be shared through a store as it is).
 */
import { Lru } from '../cache/lru';
import { withoutQuery } from '../request';

/** Between the provider id, the key id and the kind in a remembered entry (none may hold it). */
const SEPARATOR = '\u0000';
const RESPONSES = '/responses';
const FILES = '/files';
const BATCHES = '/batches';
const CONVERSATIONS = '/conversations';
const UPLOADS = '/uploads';
const VECTOR_STORES = '/vector_stores';
const FINE_TUNING_JOBS = '/fine_tuning/jobs';
/**
 * Chat completions: one is kept per key only when created with `store: true`
 * ({@link chatCreation}), and its messages may name files.
 */
export const CHAT = '/chat/completions';

/** What one object of a collection is called (in errors). */
const KINDS: Readonly<Record<string, ObjectKind>> = {
  [RESPONSES]: 'response',
  [FILES]: 'file',
  [BATCHES]: 'batch',
  [CONVERSATIONS]: 'conversation',
  [UPLOADS]: 'upload',
  [VECTOR_STORES]: 'vector_store',
  [FINE_TUNING_JOBS]: 'fine_tuning_job',
  [CHAT]: 'chat_completion',
};

/** Every kind's name. */
const KIND_NAMES: ReadonlySet<ObjectKind> = new Set(Object.values(KINDS));

/**
 * Where a path's collection is looked up: the low five bits of its first and
 * third letters, which no two collections share (`/files` and
 * `/fine_tuning/jobs` share their first). A slot of a dense table: the
 * lookup is two character reads and an index, no string hashed.
 */
function slotOf(path: string): number {
  return ((path.charCodeAt(1) & 31) << 5) | (path.charCodeAt(3) & 31);
}

/** Each collection at {@link slotOf} its name; the other slots undefined. */
const BY_SLOT: (string | undefined)[] = new Array<string | undefined>(1024).fill(undefined);
for (const collection of Object.keys(KINDS)) {
  const slot = slotOf(collection);
  if (BY_SLOT[slot] !== undefined) throw new Error(`keyplex: object collections ${BY_SLOT[slot]} and ${collection} share a slot`);
  BY_SLOT[slot] = collection;
}

/** The kinds of object kept with the key that created them. */
export type ObjectKind = 'response' | 'file' | 'batch' | 'conversation' | 'upload' | 'vector_store' | 'fine_tuning_job' | 'chat_completion';

/** Where an object was created, and what it is. */
export interface ObjectHome {
  readonly provider: string;
  readonly keyId: string;
  readonly kind: ObjectKind;
}

/** The ids of the objects created through this manager, and the key of each. */
export class ObjectAffinity {
  /**
   * How many files and vector stores were remembered here (ever: not lowered
   * as they are forgotten; counted by {@link remember}, whether this manager
   * created them or learnt them from the store). While 0, chat messages, a response's `input` and
   * `tools` are not searched for ids: a manager that created none pays nothing.
   */
  contentObjects = 0;
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
    if (kind === 'file' || kind === 'vector_store') this.contentObjects++;
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
 * their key; undefined for every other path. Two character reads, and one
 * `startsWith` for a path whose first and third letters match a
 * collection's: the cost of a request outside these collections
 * (`/embeddings` matches none). `/chat/completions` itself is no collection
 * here (a chat completion is kept only when stored: {@link chatCreation}),
 * a path under it (`/chat/completions/{id}…`) is.
 */
export function objectCollection(path: string): string | undefined {
  const collection = BY_SLOT[slotOf(path)];
  if (collection === undefined || !path.startsWith(collection)) return undefined;
  const next = path.charCodeAt(collection.length);
  if (next === 47 /* / */) return collection;
  // The collection itself (a query allowed): where its objects are created.
  return (path.length === collection.length || next === 63 /* ? */) && collection !== CHAT ? collection : undefined;
}

/** Whether a request is a `POST /chat/completions` (a query allowed), whose messages may name files. */
export function isChat(method: string, path: string): boolean {
  return method === 'POST' && (path.length === CHAT.length ? path === CHAT : path.charCodeAt(CHAT.length) === 63 /* ? */ && path.startsWith(CHAT));
}

/** Whether `kind` is one of the kinds kept with their key (an answer from a store is checked with it). */
export function isObjectKind(kind: unknown): kind is ObjectKind {
  return typeof kind === 'string' && KIND_NAMES.has(kind as ObjectKind);
}

/** What the reply to a request creates: an object of `kind`, whose id is the reply's `id`, or (`inFile`) its `file`'s. */
export interface Creation {
  readonly kind: ObjectKind;
  readonly inFile: boolean;
}

const CREATIONS: Readonly<Record<string, Creation>> = Object.fromEntries(Object.entries(KINDS).map(([collection, kind]) => [collection, Object.freeze({ kind, inFile: false })]));
/** A stored chat completion. */
const STORED_CHAT = CREATIONS[CHAT]!;
/** A completed upload's reply: the file it produced (`{ id, …, file: { id } }`). */
const PRODUCED_FILE: Creation = Object.freeze({ kind: 'file', inFile: true });
const COMPLETE = '/complete';

/**
 * What a request to `collection` creates: an object of it for a `POST` to
 * the collection itself (a query allowed), the file an upload produces for
 * `POST /uploads/{id}/complete`; undefined for any other request.
 */
export function creation(method: string, path: string, collection: string | undefined): Creation | undefined {
  if (method !== 'POST' || collection === undefined) return undefined;
  const end = collection.length;
  if (path.length === end || path.charCodeAt(end) === 63 /* ? */) return CREATIONS[collection];
  if (collection !== UPLOADS) return undefined;
  return withoutQuery(path).endsWith(COMPLETE) ? PRODUCED_FILE : undefined;
}

/**
 * What a `POST /chat/completions` (a query allowed) creates: a stored chat
 * completion when its body asks `store: true` (OpenAI keeps it in the key's
 * project: `chat.completions.retrieve`, `messages.list`, `update`, `delete`);
 * undefined otherwise, and for any other request (`stored`: the body's
 * `store` is true, read at intercept).
 */
export function chatCreation(method: string, path: string, stored: boolean): Creation | undefined {
  return stored && isChat(method, path) ? STORED_CHAT : undefined;
}

/**
 * The ids {@link namedObjects} found, its first `count` slots: one list,
 * overwritten by each call (read it before the next). Never shortened:
 * setting an array's length drops its storage, made again at the next id.
 */
export const NAMED: string[] = [];
let count = 0;

/**
 * The objects a request to `collection` (or {@link CHAT}) names, in order:
 * the `{id}` of a `{collection}/{id}…` path (retrieve, delete, `content`,
 * `cancel`, `items`, a vector store's `files`…), then in its JSON body a
 * response's `previous_response_id` and `conversation` (an id, or `{ id }`),
 * a batch's `input_file_id`, a fine-tuning job's `training_file` and
 * `validation_file`, a vector store's `file_ids`, `file_id` and `files[].file_id`;
 * with `content` also the files of content parts (a response's `input` and a
 * conversation's `items`: `input_file`, `input_image`; chat `messages`:
 * `{ type: 'file', file: { file_id } }`) and a response's `tools`
 * (`file_search`'s `vector_store_ids`, `code_interpreter`'s container
 * `file_ids`). An id that is no object (`/responses/input_tokens`) is looked
 * up and not found: such a request is routed as usual. Returns how many it
 * found, in the first slots of {@link NAMED} (shared).
 */
export function namedObjects(path: string, collection: string, json: Record<string, unknown> | undefined, content: boolean): number {
  count = 0;
  if (path.charCodeAt(collection.length) === 47 /* / */) add(pathId(path, collection));
  if (json === undefined) return count;
  switch (collection) {
    case RESPONSES:
      add(json.previous_response_id);
      add(conversationId(json.conversation));
      if (content) {
        partsIn(json.input);
        toolIds(json.tools);
      }
      break;
    case CHAT:
      if (content) partsIn(json.messages);
      break;
    case CONVERSATIONS:
      if (content) partsIn(json.items);
      break;
    case BATCHES:
      add(json.input_file_id);
      break;
    case FINE_TUNING_JOBS:
      add(json.training_file);
      add(json.validation_file);
      break;
    case VECTOR_STORES:
      add(json.file_id);
      addAll(json.file_ids);
      if (Array.isArray(json.files)) for (const file of json.files) add((file as { file_id?: unknown } | null)?.file_id);
      break;
  }
  return count;
}

/** The `{id}` of a `{collection}/{id}…` path; undefined for the collection itself. */
function pathId(path: string, collection: string): string | undefined {
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

/** Adds `id` to {@link NAMED} when it is a non-empty string. */
function add(id: unknown): void {
  if (typeof id === 'string' && id !== '') NAMED[count++] = id;
}

function addAll(ids: unknown): void {
  if (Array.isArray(ids)) for (let i = 0; i < ids.length; i++) add(ids[i]);
}

/** The files of the content parts of each item of `items` (messages; a function call's `output` list too). A string (plain text) is not looked into. */
function partsIn(items: unknown): void {
  if (!Array.isArray(items)) return;
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as { content?: unknown; output?: unknown } | null;
    if (typeof item !== 'object' || item === null) continue;
    const { content, output } = item;
    if (Array.isArray(content)) for (let j = 0; j < content.length; j++) partFile(content[j]);
    if (Array.isArray(output)) for (let j = 0; j < output.length; j++) partFile(output[j]);
  }
}

/** The file of one content part: `input_file`'s or `input_image`'s `file_id`, chat's `{ type: 'file', file: { file_id } }`. */
function partFile(part: unknown): void {
  if (typeof part !== 'object' || part === null) return;
  const { type } = part as { type?: unknown };
  if (type === 'input_file' || type === 'input_image') add((part as { file_id?: unknown }).file_id);
  else if (type === 'file') add((part as { file?: { file_id?: unknown } | null }).file?.file_id);
}

/** A response's tools' objects: `file_search`'s vector stores, a `code_interpreter` container's files. */
function toolIds(tools: unknown): void {
  if (!Array.isArray(tools)) return;
  for (let i = 0; i < tools.length; i++) {
    const tool = tools[i] as { type?: unknown; vector_store_ids?: unknown; container?: unknown } | null;
    if (typeof tool !== 'object' || tool === null) continue;
    if (tool.type === 'file_search') addAll(tool.vector_store_ids);
    else if (tool.type === 'code_interpreter' && typeof tool.container === 'object' && tool.container !== null) addAll((tool.container as { file_ids?: unknown }).file_ids);
  }
}

/** A response's `conversation`: an id, or an object with one. */
function conversationId(conversation: unknown): unknown {
  return typeof conversation === 'object' && conversation !== null ? (conversation as { id?: unknown }).id : conversation;
}
