/**
 * Response affinity: which key created each Responses API object. Such an
 * object (and `previous_response_id`, which names one) is known only to the
 * project of the key that created it, so a later request naming it must go to
 * that key: another key, of another project or provider, answers
 * `previous_response_not_found` (400) or 404. The pipeline remembers the key
 * when a `POST /responses` succeeds and pins the requests that name the id
 * (src/pipeline/affinity.ts).
 *
 * One bounded map per manager, in memory: the least recently used ids go
 * first past `maxIds`, and an id is forgotten `ttlMs` after it was
 * remembered. Each entry is the id and one short string naming the provider
 * and key (no reference to the key itself: a removed key is not kept alive,
 * and the entry could be shared through a store as it is).
 */
import { Lru } from '../cache/lru';

/** Between the provider id and the key id in a remembered entry (neither may hold it). */
const SEPARATOR = '\u0000';
/** The Responses API's path, and the part before an id in `/responses/{id}…`. */
const RESPONSES = '/responses';
const ID_FROM = RESPONSES.length + 1;

/** Where a response was created. */
export interface ResponseHome {
  readonly provider: string;
  readonly keyId: string;
}

/** The ids of the responses created through this manager, and the key of each. */
export class ResponseAffinity {
  readonly #ids: Lru;
  readonly #ttlMs: number;
  /** Each key's entry text, made once: every id of a key shares it (a handful of keys, many ids). */
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

  /** Remembers that response `id` (when it is a non-empty string) was created with `keyId` of `provider`, as of `now`. */
  remember(id: unknown, provider: string, keyId: string, now: number): void {
    if (typeof id !== 'string' || id === '') return;
    const made = provider + SEPARATOR + keyId;
    let home = this.#homes.get(made);
    if (home === undefined) this.#homes.set(made, (home = made));
    this.#ids.set(id, home, this.#ttlMs, now);
  }

  /** Where response `id` was created; undefined when it is not remembered (never seen here, forgotten, or expired at `now`). */
  home(id: string, now: number): ResponseHome | undefined {
    const entry = this.#ids.get(id, now);
    if (entry === undefined) return undefined;
    const at = entry.indexOf(SEPARATOR);
    return { provider: entry.slice(0, at), keyId: entry.slice(at + 1) };
  }
}

/** Whether a request creates a response: `POST /responses` (a query allowed). */
export function createsResponse(method: string, path: string): boolean {
  return method === 'POST' && path.startsWith(RESPONSES) && (path.length === RESPONSES.length || path.charCodeAt(RESPONSES.length) === 63 /* ? */);
}

/**
 * The response a request names: its JSON body's `previous_response_id`, else
 * the `{id}` of a `/responses/{id}…` path (retrieve, delete, `input_items`,
 * `cancel`). Undefined for paths outside `/responses` and for a request that
 * names none. An id that is no response (`/responses/input_tokens`) is looked
 * up and not found: such a request is routed as usual.
 */
export function namedResponse(path: string, json: Record<string, unknown> | undefined): string | undefined {
  if (!path.startsWith(RESPONSES)) return undefined;
  const previous = json?.previous_response_id;
  if (typeof previous === 'string' && previous !== '') return previous;
  if (path.charCodeAt(RESPONSES.length) !== 47 /* / */) return undefined;
  let end = ID_FROM;
  while (end < path.length && path[end] !== '/' && path[end] !== '?') end++;
  if (end === ID_FROM) return undefined;
  try {
    return decodeURIComponent(path.slice(ID_FROM, end));
  } catch {
    return undefined;
  }
}
