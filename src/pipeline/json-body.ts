/**
 * A JSON reply body proved well-formed without building it, and the few
 * top-level members keyplex reads from it (`usage`, `model`, ...) parsed
 * alone.
 *
 * keyplex must not hand the SDK a 200 it cannot parse (a body broken
 * anywhere is retried), and the SDK parses the text again itself: parsing
 * it whole here too cost as much as the SDK's own parse (~0.4 µs per KiB,
 * plus the garbage). Instead the bytes are walked once: the short
 * structural parts (brackets, commas, numbers, literals, escapes) in
 * JavaScript, and the contents of strings, most of a reply's bytes, hopped
 * over by a 16-bytes-a-step SIMD search for the next `"`, `\` or control
 * character in WebAssembly (simd.ts `next`). What it accepts, `JSON.parse`
 * accepts (once decoded, as `Response.text()` decodes: a byte order mark
 * dropped, bytes outside strings ASCII). Where WebAssembly is missing, for
 * bodies over simd.ts's `MAX_STAGED`, nesting deeper than
 * {@link MAX_DEPTH}, or a top-level name written with escapes, it leaves the
 * answer to `JSON.parse`.
 */

import { stage, unstage, wasm } from './simd';

/**
 * The members of a reply's top-level object keyplex reads (usage.ts's
 * `usageFromBody`, the reply's model, an error in a 200's body), and last the
 * `id`, read only when asked for (a created response's, for response affinity).
 */
const WANTED = ['usage', 'model', 'usageMetadata', 'usage_metadata', 'type', 'response', 'error', 'id'];
/** Where `id` is in {@link WANTED}: the members before it are always read. */
const ID = WANTED.length - 1;
const MAX_DEPTH = 512;

const [QUOTE, BACKSLASH, COMMA, COLON, OPEN_OBJECT, CLOSE_OBJECT, OPEN_ARRAY, CLOSE_ARRAY, MINUS, ZERO, NINE] = Array.from('"\\,:{}[]-09', (c) => c.charCodeAt(0)) as [number, number, number, number, number, number, number, number, number, number, number];

/** Per byte: 1 for JSON whitespace, 2 for the character after `\` in a short escape, 4 for a hex digit, 8 for a digit. */
const CLASS = new Uint8Array(256);
for (const c of ' \t\n\r') CLASS[c.charCodeAt(0)]! |= 1;
for (const c of '"\\/bfnrt') CLASS[c.charCodeAt(0)]! |= 2;
for (const c of '0123456789abcdefABCDEF') CLASS[c.charCodeAt(0)]! |= 4;
for (const c of '0123456789') CLASS[c.charCodeAt(0)]! |= 8;
const WS = 1;
const ESCAPE = 2;
const HEX = 4;
const DIGIT = 8;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const WANTED_BYTES = WANTED.map((name) => encoder.encode(name));
const LITERALS = new Map([0x74, 0x66, 0x6e].map((b) => [b, encoder.encode(b === 0x74 ? 'true' : b === 0x66 ? 'false' : 'null')]));
/** Container kinds by depth: 1 object, 0 array. */
const kinds = new Uint8Array(MAX_DEPTH);
/** Value ranges of the wanted members (start, end per name; the last one wins, as in JSON.parse). */
const ranges = new Int32Array(WANTED.length * 2);

/** The outcome of {@link scan}: not JSON, or the answer left to JSON.parse. */
const BROKEN = -1;
const UNSURE = -2;

/**
 * The value usage accounting reads from a JSON reply, as `JSON.parse(text)`
 * would give it as far as its wanted top-level members go: an object of
 * just those members (null when the body is JSON but not an object), its
 * `id` too when `withId`. Throws a SyntaxError where `JSON.parse` of the
 * decoded text would.
 */
export function parseJsonSummary(bytes: Uint8Array, withId = false): unknown {
  try {
    return summaryOf(bytes, withId ? WANTED.length : ID);
  } finally {
    // The last reader of the body: the staged copy does not keep the reply's bytes alive.
    unstage();
  }
}

/** The summary of `bytes`: the first `members` of {@link WANTED}. */
function summaryOf(bytes: Uint8Array, members: number): unknown {
  const n = bytes.length;
  // Staged already when the key search read it (secrets/redact.ts): then not copied again.
  const m = stage(bytes);
  if (m === null) return JSON.parse(decoder.decode(bytes));
  ranges.fill(-1);
  const top = scan(wasm()!.next, m, n);
  if (top === BROKEN) throw new SyntaxError('Malformed JSON reply body');
  if (top === UNSURE) return JSON.parse(decoder.decode(bytes));
  if (top !== OPEN_OBJECT) return null;
  const summary: Record<string, unknown> = {};
  for (let w = 0; w < members; w++) {
    const start = ranges[2 * w]!;
    // `response` (a Responses stream event's) only matters beside a `type`.
    if (start < 0 || (w === 5 && ranges[8]! < 0)) continue;
    summary[WANTED[w]!] = JSON.parse(text(m, start, ranges[2 * w + 1]!));
  }
  return summary;
}

/**
 * `m[start, end)` as text, by the decoder. (Making short ASCII runs in
 * JavaScript with `String.fromCharCode.apply` instead counted fewer
 * instructions under callgrind but took 5x the time: 797 against 144 ns for
 * a usage object and a model name, as `apply` copies the bytes into a list
 * first; 2026-12-01.)
 */
function text(m: Uint8Array, start: number, end: number): string {
  return decoder.decode(m.subarray(start, end));
}

/** Past JSON whitespace from `i`. */
function ws(m: Uint8Array, i: number): number {
  while ((CLASS[m[i]!]! & WS) !== 0) i++;
  return i;
}

/** Past the string starting (at its quote) at `i`; -1 when it is malformed. `escaped` is set when it holds an escape. */
function string(next: (i: number) => number, m: Uint8Array, i: number): number {
  let j = next(i + 1);
  for (;;) {
    const b = m[j];
    if (b === QUOTE) return j + 1;
    // A control character, or the zeros past the end: unterminated.
    if (b !== BACKSLASH) return -1;
    escaped = true;
    const e = m[j + 1]!;
    if (e === 0x75) {
      if ((CLASS[m[j + 2]!]! & CLASS[m[j + 3]!]! & CLASS[m[j + 4]!]! & CLASS[m[j + 5]!]! & HEX) === 0) return -1;
      j = next(j + 6);
    } else if ((CLASS[e]! & ESCAPE) !== 0) j = next(j + 2);
    else return -1;
  }
}
let escaped = false;

/** Past the number at `i` (JSON's grammar: no leading zeros, no bare dot, no `+`); -1 when malformed. */
function number(m: Uint8Array, i: number): number {
  if (m[i] === MINUS) i++;
  if (m[i] === ZERO) i++;
  else if (m[i]! > ZERO && m[i]! <= NINE) while ((CLASS[m[++i]!]! & DIGIT) !== 0);
  else return -1;
  if (m[i] === 0x2e) {
    if ((CLASS[m[++i]!]! & DIGIT) === 0) return -1;
    while ((CLASS[m[++i]!]! & DIGIT) !== 0);
  }
  if ((m[i]! | 0x20) === 0x65) {
    if (m[++i] === MINUS || m[i] === 0x2b) i++;
    if ((CLASS[m[i]!]! & DIGIT) === 0) return -1;
    while ((CLASS[m[++i]!]! & DIGIT) !== 0);
  }
  return i;
}

/** Past the object member name at `i` and its colon; -1 when malformed. At depth 1 it says which wanted member follows. */
function name(next: (i: number) => number, m: Uint8Array, i: number, depth: number): number {
  if (m[i] !== QUOTE) return -1;
  escaped = false;
  const end = string(next, m, i);
  if (end < 0) return -1;
  if (depth === 1) wanted = escaped ? -2 : wantedAt(m, i + 1, end - 1);
  const colon = ws(m, end);
  return m[colon] === COLON ? ws(m, colon + 1) : -1;
}
/** The wanted member the current top-level value belongs to (-1 none, -2 a name with escapes: unsure). */
let wanted = -1;

function wantedAt(m: Uint8Array, from: number, to: number): number {
  outer: for (let w = 0; w < WANTED_BYTES.length; w++) {
    const bytes = WANTED_BYTES[w]!;
    if (bytes.length !== to - from) continue;
    for (let k = 0; k < bytes.length; k++) if (bytes[k] !== m[from + k]) continue outer;
    return w;
  }
  return -1;
}

/**
 * Walks the JSON text in `m[0, n)` (zeros after it): its first byte when it
 * is one well-formed value (after a byte order mark), else BROKEN, or
 * UNSURE when JSON.parse must judge. Fills {@link ranges} for a top-level object.
 */
function scan(next: (i: number) => number, m: Uint8Array, n: number): number {
  const bom = m[0] === 0xef && m[1] === 0xbb && m[2] === 0xbf ? 3 : 0;
  let i = ws(m, bom);
  const first = m[i]!;
  let depth = 0;
  let start = i;
  wanted = -1;
  for (;;) {
    // A value starts at i.
    const b = m[i]!;
    if (b === OPEN_OBJECT || b === OPEN_ARRAY) {
      const close = b === OPEN_OBJECT ? CLOSE_OBJECT : CLOSE_ARRAY;
      i = ws(m, i + 1);
      if (m[i] === close) i++;
      else {
        if (depth === MAX_DEPTH) return UNSURE;
        kinds[depth++] = b === OPEN_OBJECT ? 1 : 0;
        if (b === OPEN_OBJECT && (i = name(next, m, i, depth)) < 0) return BROKEN;
        if (wanted === -2) return UNSURE;
        if (depth === 1) start = i;
        continue;
      }
    } else if (b === QUOTE) i = string(next, m, i);
    else if (b === MINUS || (b >= ZERO && b <= NINE)) i = number(m, i);
    else {
      const literal = LITERALS.get(b);
      if (literal === undefined) return BROKEN;
      for (let k = 1; k < literal.length; k++) if (m[i + k] !== literal[k]) return BROKEN;
      i += literal.length;
    }
    if (i < 0) return BROKEN;
    // After a value: close containers, or move to the next element or member.
    for (;;) {
      if (depth === 1 && wanted >= 0 && kinds[0] === 1) {
        ranges[2 * wanted] = start;
        ranges[2 * wanted + 1] = i;
        wanted = -1;
      }
      i = ws(m, i);
      if (depth === 0) return i === n ? first : BROKEN;
      const c = m[i];
      const object = kinds[depth - 1] === 1;
      if (c === COMMA) {
        i = ws(m, i + 1);
        if (object && (i = name(next, m, i, depth)) < 0) return BROKEN;
        if (wanted === -2) return UNSURE;
        if (depth === 1) start = i;
        break;
      }
      if (c !== (object ? CLOSE_OBJECT : CLOSE_ARRAY)) return BROKEN;
      depth--;
      i++;
    }
  }
}
