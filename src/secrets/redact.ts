/**
 * Redaction of keys an upstream echoes back: in its status text, headers,
 * error bodies, 200 bodies and event streams. Whatever keyplex passes on
 * holds no piece of {@link PIECE} or more characters of the key the attempt
 * used; each such piece is replaced by `[key <id>]`.
 *
 * Only the key the attempt sent is looked for: the upstream saw no other.
 * Each key's search structure is built once ({@link redactorOf}) and a text
 * is scanned in one pass that reads a 2-character probe every 7
 * characters: any 8-character piece of the key holds one such probe whole,
 * so checking the probes against the key's 2-grams (one lookup in a table
 * shared by all keys, loaded with the key being searched for), and the few
 * that pass against the key itself, finds every piece. Bodies with no echo
 * pass unchanged. Byte arrays are searched in WebAssembly
 * (pipeline/simd.ts `probe`, a table of the key's byte pairs), which also
 * passes over a probe unless it lies in 7 of the key's pairs in a row, as
 * any piece does; the JSON check then reads the copy it made.
 *
 * A piece that lies wholly inside a provider's public key prefix (such as
 * `sk-proj-`, the same for every key) is left alone.
 *
 * A piece written with JSON escapes inside it (`\/`, `\u0041`), which
 * `JSON.parse` gives back whole, is found too, and replaced escapes and all
 * (secrets/escapes.ts). Limit: a piece in another case is not found. A
 * replacement that begins right after a JSON escape takes the escape along,
 * so a JSON text stays JSON.
 */
import type { HeaderEntries } from '../header-list';
import type { Key } from '../keys/key';
import { secretOf } from '../keys/key';
import { stage, wasm } from '../pipeline/simd';
import { decodedView, escapedText, originalIndex, usualKey } from './escapes';

/** The shortest piece of a key that is redacted. */
export const PIECE = 8;
/** Probe length and spacing: `STEP + PROBE - 1 <= PIECE`, so every piece holds a whole probe. */
const PROBE = 2;
const STEP = 7;
const BACKSLASH = 0x5c;
/**
 * Prefixes providers put before the secret part of their keys, the same for
 * every key: a reply may name them (`keys start with sk-proj-`) without
 * echoing anything.
 */
const PUBLIC_PREFIX = /^(?:sk-(?:proj|svcacct|admin|or-v\d+|ant-(?:api|admin)\d\d)-|sk-|gsk_|xai-|AIza)/;
const U = 0x75;
/** Byte arrays from this long are searched in WebAssembly (pipeline/simd.ts), shorter ones here: about where the copy there costs less than it saves. */
const STAGE_FROM = 64;

/** Reads the code unit (string) or byte at an index. */
type At = (i: number) => number;

/**
 * What the scan under way reads when a probe passes (scans are synchronous:
 * one at a time), through {@link atText} or {@link atByte}: no closure is
 * made per scan. Emptied after each scan, so that nothing is kept alive.
 */
let scanned: string | Uint8Array = '';
const atText: At = (i) => (scanned as string).charCodeAt(i);
const atByte: At = (i) => (scanned as Uint8Array)[i]!;

/** A 2-character probe as a 14-bit index (exact for ASCII; other characters alias, and are ruled out when checked). */
function probeIndex(a: number, b: number): number {
  return ((a & 0x7f) << 7) | (b & 0x7f);
}

/**
 * The 2-grams of one key, as a byte per 14-bit probe index: the hot loop's
 * one lookup. Shared by every key (16 KiB once, not per key): loaded with
 * the key a scan searches for, unloaded by the next key's scan. Scans are
 * synchronous, so no other key's scan runs while one holds it.
 */
const PROBES = new Uint8Array(1 << 14);
let loaded: string | undefined;

/**
 * Where the loaded key's 2-grams are, shared as {@link PROBES} is (no index
 * per key): `FIRST[probe]` is the first place holding it plus one (0: none),
 * `NEXT[place]` the next place with the same probe plus one.
 */
const FIRST = new Uint32Array(1 << 14);
let NEXT = new Uint32Array(64);

/** Sets or clears a key's 2-grams in {@link PROBES}, {@link FIRST}, {@link NEXT} and the WebAssembly key table. */
function mark(key: string, on: number): void {
  if (on !== 0 && NEXT.length < key.length) NEXT = new Uint32Array(key.length);
  const table = wasm()?.table;
  // From the end, so that each probe's chain runs in ascending places.
  for (let p = key.length - 2; p >= 0; p--) {
    const a = key.charCodeAt(p);
    const b = key.charCodeAt(p + 1);
    const h = probeIndex(a, b);
    PROBES[h] = on;
    if (table !== undefined) table[(a & 0xff) | ((b & 0xff) << 8)] = on;
    if (on !== 0) {
      NEXT[p] = FIRST[h]!;
      FIRST[h] = p + 1;
    } else FIRST[h] = 0;
  }
}

/** Loads a key's 2-grams into {@link PROBES}, unloading the last key's. */
function load(key: string): void {
  if (loaded === key) return;
  if (loaded !== undefined) mark(loaded, 0);
  mark(key, 1);
  loaded = key;
}

/**
 * Finds and replaces the pieces of one key. Made once per key by
 * {@link redactorOf}; a probe that passes the shared table is placed in the
 * key through the shared {@link FIRST}/{@link NEXT} chains of the loaded key
 * (no index per key: it cost ~270 B a key), and the marker is made on the
 * first match, so a key costs little more than this object.
 */
export class KeyRedactor {
  readonly #key: string;
  readonly #id: string;
  #markerText: string | undefined;
  #markerBytes: Uint8Array | undefined;
  /** The length of the key's public prefix (`sk-proj-`): a piece wholly inside it is no secret. */
  readonly #public: number;
  /** The key's length in bytes. */
  readonly length: number;
  /** Whether the key holds only `-`, `.`, `_`, digits and letters (secrets/escapes.ts). */
  readonly #usual: boolean;

  /** @param secret the key (printable ASCII, as configuration requires). @param id the key's id, shown instead. */
  constructor(secret: string, id: string) {
    this.#key = secret;
    this.#id = id;
    this.length = secret.length;
    this.#public = PUBLIC_PREFIX.exec(secret)?.[0].length ?? 0;
    this.#usual = usualKey(secret);
  }

  get #marker(): string {
    return (this.#markerText ??= `[key ${this.#id}]`);
  }

  /** `text` with every piece of the key replaced; the same string when it holds none. */
  text(text: string): string {
    const runs = this.#escaped(text, this.#scanText(text));
    if (runs === undefined) return text;
    let out = '';
    let from = 0;
    for (let r = 0; r < runs.length; r += 2) {
      out += text.slice(from, runs[r]) + this.#marker;
      from = runs[r + 1]!;
    }
    return out + text.slice(from);
  }

  /** `bytes` with every piece of the key replaced; the same array when they hold none. */
  bytes(bytes: Uint8Array): Uint8Array {
    const runs = this.findBytes(bytes);
    if (runs === undefined) return bytes;
    const marker = (this.#markerBytes ??= new TextEncoder().encode(this.#marker));
    let size = bytes.length;
    for (let r = 0; r < runs.length; r += 2) size += marker.length - (runs[r + 1]! - runs[r]!);
    const out = new Uint8Array(size);
    let from = 0;
    let to = 0;
    for (let r = 0; r < runs.length; r += 2) {
      out.set(bytes.subarray(from, runs[r]), to);
      to += runs[r]! - from;
      out.set(marker, to);
      to += marker.length;
      from = runs[r + 1]!;
    }
    out.set(bytes.subarray(from), to);
    return out;
  }

  /** Whether `text` holds a piece of the key. */
  finds(text: string): boolean {
    return this.#escaped(text, this.#scanText(text)) !== undefined;
  }

  /**
   * `runs` (the pieces found as sent in `input`) with the pieces written
   * with JSON escapes inside them added, when `input` holds an escape of a
   * character of the key (secrets/escapes.ts; else `runs` as they are).
   */
  #escaped(input: string | Uint8Array, runs: number[] | undefined): number[] | undefined {
    const text = input.length < PIECE ? undefined : escapedText(input, this.#key, this.#usual);
    if (text === undefined) return runs;
    const view = decodedView(text);
    const found = this.#scanText(view.text);
    if (found === undefined) return runs;
    const all = runs === undefined ? [] : runs.slice();
    for (let r = 0; r < found.length; r += 2) all.push(originalIndex(view, found[r]!), originalIndex(view, found[r + 1]!));
    return mergeRuns(all);
  }

  #scanText(text: string): number[] | undefined {
    const n = text.length;
    // Shorter than a piece (a rate-limit value, a status text): nothing to find, and no key loaded for it.
    if (n < PIECE) return undefined;
    let runs: number[] | undefined;
    load(this.#key);
    for (let j = nextTextProbe(text, 0); j !== -1; j = nextTextProbe(text, j + STEP)) {
      scanned = text;
      runs = this.#extend(atText, n, j, probeIndex(text.charCodeAt(j), text.charCodeAt(j + 1)), runs);
    }
    scanned = '';
    return runs;
  }

  /**
   * The pieces of the key in `bytes`: start and end pairs, in order;
   * undefined when none. A long array is searched where it is staged in
   * WebAssembly memory (pipeline/simd.ts), which the JSON check then reads
   * without copying it again.
   */
  findBytes(bytes: Uint8Array): number[] | undefined {
    const n = bytes.length;
    if (n < PIECE) return undefined;
    load(this.#key);
    const staged = n >= STAGE_FROM ? stage(bytes) : null;
    let runs: number[] | undefined;
    if (staged !== null) runs = this.#findStaged(staged, n);
    else {
      for (let j = nextByteProbe(bytes, 0); j !== -1; j = nextByteProbe(bytes, j + STEP)) {
        scanned = bytes;
        runs = this.#extend(atByte, n, j, probeIndex(bytes[j]!, bytes[j + 1]!), runs);
      }
      scanned = '';
    }
    return this.#escaped(bytes, runs);
  }

  /** {@link findBytes} over the `n` bytes staged at `m`: WebAssembly finds the probes that may start a piece. */
  #findStaged(m: Uint8Array, n: number): number[] | undefined {
    const probe = wasm()!.probe;
    let runs: number[] | undefined;
    for (let j = probe(0, n - 1); j !== -1; j = probe(j + STEP, n - 1)) {
      scanned = m;
      runs = this.#extend(atByte, n, j, probeIndex(m[j]!, m[j + 1]!), runs);
    }
    scanned = '';
    return runs;
  }

  /**
   * The probe at `j` passed the filter: every place of the key it matches is
   * grown both ways; a match of a whole piece or more joins `runs` (pairs of
   * start and end, in order, merged when they touch).
   */
  #extend(at: At, n: number, j: number, h: number, runs: number[] | undefined): number[] | undefined {
    const k = this.#key;
    for (let q = FIRST[h]!; q !== 0; q = NEXT[q - 1]!) {
      const p = q - 1;
      if (k.charCodeAt(p) !== at(j) || k.charCodeAt(p + 1) !== at(j + 1)) continue;
      let start = j;
      while (start > 0 && start - j + p > 0 && at(start - 1) === k.charCodeAt(start - 1 - j + p)) start--;
      let end = j + PROBE;
      while (end < n && end - j + p < k.length && at(end) === k.charCodeAt(end - j + p)) end++;
      if (end - start < PIECE || p + end - j <= this.#public) continue;
      start = escapeStart(at, start);
      runs ??= [];
      const last = runs.length - 1;
      if (last > 0 && start <= runs[last]!) {
        runs[last - 1] = Math.min(runs[last - 1]!, start);
        runs[last] = Math.max(runs[last]!, end);
      } else runs.push(start, end);
    }
    return runs;
  }
}

/**
 * The next probe position from `j` on (every STEP-th) whose 2-gram may be
 * the loaded key's, or -1. The hot loop of a scan: one table lookup per
 * probe, kept apart from any closure so that it compiles to plain loads.
 */
function nextTextProbe(text: string, j: number): number {
  const last = text.length - 1;
  for (; j < last; j += STEP) {
    if (PROBES[probeIndex(text.charCodeAt(j), text.charCodeAt(j + 1))] !== 0) return j;
  }
  return -1;
}

/**
 * {@link nextTextProbe} over bytes: four probes a turn, one branch for all
 * four (about a third faster on a 64 KiB body), then one at a time from
 * the four that held a hit.
 */
function nextByteProbe(bytes: Uint8Array, j: number): number {
  const stop = bytes.length - 3 * STEP - PROBE;
  for (; j < stop; j += 4 * STEP) {
    const any = PROBES[probeIndex(bytes[j]!, bytes[j + 1]!)]! | PROBES[probeIndex(bytes[j + STEP]!, bytes[j + STEP + 1]!)]!;
    if ((any | PROBES[probeIndex(bytes[j + 2 * STEP]!, bytes[j + 2 * STEP + 1]!)]! | PROBES[probeIndex(bytes[j + 3 * STEP]!, bytes[j + 3 * STEP + 1]!)]!) !== 0) break;
  }
  const last = bytes.length - 1;
  for (; j < last; j += STEP) {
    if (PROBES[probeIndex(bytes[j]!, bytes[j + 1]!)] !== 0) return j;
  }
  return -1;
}

/** Moves `start` back over a JSON escape the replacement would cut (`\n`, `\u00e9`), so no backslash is left dangling. */
function escapeStart(at: At, start: number): number {
  for (let b = start - 1; b >= 0 && b >= start - 5; b--) {
    if (at(b) !== BACKSLASH) continue;
    let slashes = 1;
    while (b - slashes >= 0 && at(b - slashes) === BACKSLASH) slashes++;
    if (slashes % 2 === 0) return start;
    const length = at(b + 1) === U ? 6 : 2;
    return b + length > start ? b : start;
  }
  return start;
}

/** Start and end pairs sorted by start, those that overlap or touch merged. */
function mergeRuns(runs: number[]): number[] {
  const order: number[] = [];
  for (let r = 0; r < runs.length; r += 2) order.push(r);
  order.sort((a, b) => runs[a]! - runs[b]!);
  const out: number[] = [];
  for (const r of order) {
    const last = out.length - 1;
    if (last > 0 && runs[r]! <= out[last]!) out[last] = Math.max(out[last]!, runs[r + 1]!);
    else out.push(runs[r]!, runs[r + 1]!);
  }
  return out;
}

const redactors = new WeakMap<Key, KeyRedactor>();

/** The redactor of a key, made on first use and kept while the key lives. */
export function redactorOf(key: Key): KeyRedactor {
  let redactor = redactors.get(key);
  if (redactor === undefined) {
    redactor = new KeyRedactor(secretOf(key), key.id);
    redactors.set(key, redactor);
  }
  return redactor;
}

/**
 * `response` with its status text and headers cleared of the key: the same
 * object when they hold none (the usual case), else a copy around the same
 * body.
 */
export function redactEnvelope(response: Response, redactor: KeyRedactor, entries: HeaderEntries): Response {
  if (!envelopeHolds(response, redactor, entries)) return response;
  const headers = new Headers();
  for (const entry of entries) if (!redactor.finds(entry[0])) headers.append(entry[0], redactor.text(entry[1]));
  return new Response(response.body, { status: response.status, statusText: redactor.text(response.statusText), headers });
}

/** Whether the status text, or a header's name or value (`entries`: the response's headers), holds a piece of the key. */
function envelopeHolds(response: Response, redactor: KeyRedactor, entries: HeaderEntries): boolean {
  if (redactor.finds(response.statusText)) return true;
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    if (redactor.finds(entry[0]) || redactor.finds(entry[1])) return true;
  }
  return false;
}
