/**
 * The headers of the reply the SDK gets: the upstream's, less the two that
 * no longer describe the body, plus keyplex's four when the `replyHeaders`
 * option asks for them — read through, not copied.
 *
 * Why keyplex's four are off by default: the openai SDK formats every reply
 * header for its debug log on every request, logging on or not (lower-cased,
 * three regular-expression replaces and three set lookups each, then an
 * object of them all). With OpenAI's rate-limit headers in the reply, the
 * four cost the SDK 41,858 instructions per request (callgrind, the SDK
 * alone on a fake fetch at concurrency 64: 520,871 with them, 476,509 with
 * them left out of iteration, 479,013 with the upstream's Headers as they
 * are), a fifth of keyplex's added cost (2026-12-01).
 *
 * Copying them into a new `Headers` (what `new Response(body, { headers })`
 * does) validates and appends each upstream header again, and the four
 * `set`s after it drop the sorted order undici caches, so the SDK's
 * iteration of every reply sorts them once more (with OpenAI's six
 * rate-limit headers, the reply's construction and the SDK's reading of its
 * headers took 151K instructions that way, 113K this way; end to end, 0.75%
 * of a request's). This view answers `get`/`has` from its own four values or the
 * upstream's `Headers`, and iterates the upstream's sorted entries merged
 * with its own. It is a real `Headers` (`instanceof` holds, `new Headers(it)`
 * and `new Response(_, { headers: it })` copy it through its iterator); the
 * first `set`, `append` or `delete` copies it into itself, and from then on it
 * behaves as the plain `Headers` it then is.
 *
 * Each listing gives pairs its reader alone holds, as a Headers' iterator
 * does. The SDK lists them twice per reply: the first listing gets the
 * pairs send read (which keyplex reads no more), the list itself when there
 * is nothing to merge or leave out; later ones fresh pairs of the same
 * strings. V8 heap per request, JSON + six rate-limit headers in-process
 * (bench/alloc-stream.ts exact mode, 18 batches): 79.26 -> 78.78 KiB; listing the
 * upstream's again for the later ones instead of keeping the strings:
 * 79.12 KiB, and an iteration of the upstream's per listing (2026-12-02).
 */

import { REQUEST_ID_HEADER } from '../details';
import { headerEntries, type HeaderEntries } from '../header-list';

/** keyplex's reply headers, in sorted order (how `Headers` iterates). */
const OWN = ['x-keyplex-attempts', 'x-keyplex-key-id', 'x-keyplex-provider', REQUEST_ID_HEADER] as const;
const OWN_PREFIX = 'x-keyplex-';
/** Upstream headers that no longer describe the body once fetch has decoded it (or keyplex re-framed it). */
const BODY_FRAMING = new Set(['content-length', 'content-encoding']);

export class ReplyHeaders extends Headers {
  /** The upstream's headers; null once copied into this object. */
  #upstream: Headers | null;
  /**
   * The upstream's entries as send read them, until the first listing hands
   * their pairs to its reader; then undefined, and {@link #strings} holds
   * their names and values. Undefined from the start when send had none:
   * each listing reads {@link #upstream} then.
   */
  #read: HeaderEntries | undefined;
  /** The names and values of {@link #read} once its pairs were given away (name, value, name, value, ...): later listings make fresh pairs of them. */
  #strings: string[] | undefined = undefined;
  /** Values of {@link OWN}, in its order; undefined when keyplex adds none (the upstream's `x-keyplex-*` headers, if any, pass as they are). */
  readonly #own: readonly [string, string, string, string] | undefined;
  readonly #dropFraming: boolean;

  /**
   * @param read - `upstream`'s entries as read already ({@link headerEntries}), when the caller has them: no iteration of the upstream's then.
   * @param own - the values of keyplex's headers (attempts, key id, provider, request id), or undefined for none.
   * @param dropFraming - leave out `content-length` and `content-encoding` (the body was decoded or re-framed).
   */
  constructor(upstream: Headers, read: HeaderEntries | undefined, own: readonly [string, string, string, string] | undefined, dropFraming: boolean) {
    super();
    this.#upstream = upstream;
    this.#read = read;
    this.#own = own;
    this.#dropFraming = dropFraming;
  }

  /** The value of keyplex's own header `name` (lower case), undefined when it is not one; null for a dropped one. */
  #ownValue(name: string): string | null | undefined {
    if (name.startsWith(OWN_PREFIX)) {
      const own = this.#own;
      const at = own === undefined ? -1 : (OWN as readonly string[]).indexOf(name);
      if (at !== -1) return own![at];
    } else if (this.#dropFraming && BODY_FRAMING.has(name)) return null;
    return undefined;
  }

  /** As {@link #ownValue} for a name in any case; an invalid name throws, as Headers' own methods do. */
  #answer(upstream: Headers, name: string): string | null | undefined {
    const lower = lowerCase(name);
    const own = this.#ownValue(lower);
    // The upstream's has() checks the name as Headers does, unless it is plainly the lower-case one.
    if (own !== undefined && lower !== name) upstream.has(name);
    return own;
  }

  /**
   * Every entry in `Headers`' order, as pairs no one else holds (a reader
   * may change them, as it may a Headers' own): the upstream's sorted entries
   * with keyplex's merged in. The pairs of the upstream's are used as they
   * come from {@link #fresh}; with none of keyplex's to merge and none to
   * leave out, the list is {@link #fresh}'s itself.
   */
  #entries(upstream: Headers): [string, string][] {
    const read = this.#fresh(upstream);
    const own = this.#own;
    if (own === undefined && !(this.#dropFraming && holdsFraming(read))) return read;
    const out: [string, string][] = [];
    // With none of keyplex's own: as if all were merged already.
    let next = own === undefined ? OWN.length : 0;
    for (let i = 0; i < read.length; i++) {
      const name = read[i]![0];
      while (next < OWN.length && OWN[next]! < name) out.push([OWN[next]!, own![next++]!]);
      // An upstream header of keyplex's own name is replaced by keyplex's.
      if (this.#ownValue(name) === undefined) out.push(read[i]!);
    }
    while (next < OWN.length) out.push([OWN[next]!, own![next++]!]);
    return out;
  }

  /**
   * The upstream's entries as a list of pairs no one else holds or reads:
   * the first time, the pairs send read (keyplex reads them no more: their
   * names and values are kept apart, in {@link #strings}); then fresh pairs
   * of those strings; or, when send read none, the upstream's entries read
   * now (its iterator makes a fresh pair per entry).
   */
  #fresh(upstream: Headers): [string, string][] {
    const read = this.#read;
    if (read !== undefined) {
      this.#read = undefined;
      const strings: string[] = (this.#strings = new Array<string>(2 * read.length));
      for (let i = 0; i < read.length; i++) {
        strings[2 * i] = read[i]![0];
        strings[2 * i + 1] = read[i]![1];
      }
      return read as [string, string][];
    }
    const strings = this.#strings;
    if (strings === undefined) return headerEntries(upstream) as [string, string][];
    const pairs = new Array<[string, string]>(strings.length >> 1);
    for (let i = 0; i < pairs.length; i++) pairs[i] = [strings[2 * i]!, strings[2 * i + 1]!];
    return pairs;
  }

  /** Copies the view into this object, for a change to it. */
  #materialise(): void {
    const upstream = this.#upstream;
    if (upstream === null) return;
    this.#upstream = null;
    const append = Headers.prototype.append;
    for (const [name, value] of this.#entries(upstream)) append.call(this, name, value);
  }

  static {
    // On the prototype: the DOM typings declare Headers' members in ways a class body cannot override them all.
    type Self = ReplyHeaders;
    const base = Headers.prototype;
    const entries = (self: Self): [string, string][] | null => (self.#upstream === null ? null : self.#entries(self.#upstream));
    const methods: Record<string, (this: Self, ...args: never[]) => unknown> = {
      get(this: Self, name: string): string | null {
        const upstream = this.#upstream;
        if (upstream === null) return base.get.call(this, name);
        const own = this.#answer(upstream, name);
        return own === undefined ? upstream.get(name) : own;
      },
      has(this: Self, name: string): boolean {
        const upstream = this.#upstream;
        if (upstream === null) return base.has.call(this, name);
        const own = this.#answer(upstream, name);
        return own === undefined ? upstream.has(name) : own !== null;
      },
      getSetCookie(this: Self): string[] {
        const upstream = this.#upstream;
        return upstream === null ? base.getSetCookie.call(this) : upstream.getSetCookie();
      },
      set(this: Self, name: string, value: string): void {
        this.#materialise();
        base.set.call(this, name, value);
      },
      append(this: Self, name: string, value: string): void {
        this.#materialise();
        base.append.call(this, name, value);
      },
      delete(this: Self, name: string): void {
        this.#materialise();
        base.delete.call(this, name);
      },
      forEach(this: Self, callback: (value: string, name: string, parent: Headers) => void, thisArg?: unknown): void {
        const list = entries(this);
        if (list === null) return base.forEach.call(this, callback, thisArg);
        for (const [name, value] of list) callback.call(thisArg, value, name, this);
      },
      entries(this: Self): IterableIterator<[string, string]> {
        return (entries(this) ?? Array.from(base.entries.call(this)))[Symbol.iterator]() as IterableIterator<[string, string]>;
      },
      keys(this: Self): IterableIterator<string> {
        return (entries(this)?.map((entry) => entry[0]) ?? Array.from(base.keys.call(this)))[Symbol.iterator]() as IterableIterator<string>;
      },
      values(this: Self): IterableIterator<string> {
        return (entries(this)?.map((entry) => entry[1]) ?? Array.from(base.values.call(this)))[Symbol.iterator]() as IterableIterator<string>;
      },
    };
    const proto = ReplyHeaders.prototype as unknown as Record<PropertyKey, unknown>;
    for (const [name, value] of Object.entries(methods)) Object.defineProperty(proto, name, { configurable: true, writable: true, value });
    Object.defineProperty(proto, Symbol.iterator, { configurable: true, writable: true, value: methods.entries });
    Object.defineProperty(proto, Symbol.for('nodejs.util.inspect.custom'), {
      configurable: true,
      value(this: Self) {
        return new Headers(this);
      },
    });
  }
}

/** Whether `entries` hold a header of {@link BODY_FRAMING}. */
function holdsFraming(entries: HeaderEntries): boolean {
  for (let i = 0; i < entries.length; i++) if (BODY_FRAMING.has(entries[i]![0])) return true;
  return false;
}

/**
 * `name.toLowerCase()`, without the copy it makes of a name already in lower
 * case (32 B for `x-request-id`; the SDK asks for three or four names per
 * reply, all lower case): the name itself when it holds no ASCII capital
 * and nothing beyond ASCII.
 */
function lowerCase(name: string): string {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if ((c >= 0x41 && c <= 0x5a) || c > 0x7f) return name.toLowerCase();
  }
  return name;
}
