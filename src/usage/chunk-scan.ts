/**
 * A quick judge for the usual streamed event, a chat (or legacy completion)
 * chunk, read from the bytes as they arrived: it checks that the event's data
 * is JSON and counts what the tap needs (generated text, a finish reason) in
 * one pass, building nothing — no decoded text, no parsed objects (the SDK
 * parses each event again anyway).
 *
 * It only ever accepts. Anything it is not sure of — data that is not JSON,
 * a usage, error or `type` value other than null, tool calls, a key it reads
 * given twice or written with escapes, bytes that are not well-formed UTF-8,
 * deep nesting — it leaves to the full reading (decode, `JSON.parse`), so
 * what it accepts is what `JSON.parse` accepts and reads the same.
 */

/** The event is left to the full reading. */
export const SKIP = -1;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const MINUS = 0x2d;
const ZERO = 0x30;
const NINE = 0x39;
/** Nesting beyond this is left to the full reading. */
const MAX_DEPTH = 64;

const bytesOf = (word: string): Uint8Array => new TextEncoder().encode(word);
const CHOICES = bytesOf('choices');
/** Top-level keys whose only value taken here is `null` (they bear on usage, errors or the event's kind; Groq's `x_groq` carries its usage). */
const NULL_ONLY = ['usage', 'error', 'type', 'usageMetadata', 'usage_metadata', 'x_groq'].map(bytesOf);
/** {@link NULL_ONLY}'s index of `type`: an event with one is no opening chunk (see {@link opening}). */
const TYPE = 2;
/** A delta's legacy function call: a chunk with one is left to the full reading to say whether it opens the stream. */
const FUNCTION_CALL = bytesOf('function_call');
/** Keys read in a choice, and the text fields of a delta (their bit: 1 << index). */
const CHOICE_KEYS = ['delta', 'finish_reason', 'text'].map(bytesOf);
const DELTA_KEYS = ['tool_calls', 'content', 'reasoning_content', 'reasoning', 'refusal'].map(bytesOf);
const NULL = bytesOf('null');
const TRUE = bytesOf('true');
const FALSE = bytesOf('false');

// The judge's state: one judgement runs at a time (it never yields).
let b: Uint8Array = new Uint8Array(0);
let end = 0;
/** Length of the last string read, in UTF-16 code units once decoded. */
let strLen = 0;
let keyStart = 0;
let keyEnd = 0;
/** Set by `next`: the value just passed was the last of its object or array. */
let closed = false;
let finishedChunk = false;
/** Whether the chunk judged so far can still be an opening one (see {@link opening}). */
let openingChunk = false;

/** The generated text of `bytes[from, to)` in UTF-16 code units, or {@link SKIP}; see {@link finished}. */
export function judgeChunk(bytes: Uint8Array, from: number, to: number): number {
  b = bytes;
  end = to;
  finishedChunk = false;
  openingChunk = true;
  textChars = 0;
  const chars = top(ws(from));
  b = EMPTY;
  return chars;
}

/** True when the last chunk {@link judgeChunk} accepted has a choice with a finish reason. */
export function finished(): boolean {
  return finishedChunk;
}

/**
 * True when the last chunk {@link judgeChunk} accepted is sure to carry no
 * output (sse-events.ts `isPrelude`): its `choices` an array of objects, none
 * with text, a finish reason (`null` or none) or a function call, and no
 * `type`. False also when unsure (a `function_call`, a finish reason that is
 * neither a string nor null, a choice that is no object): the full reading
 * decides then.
 */
export function opening(): boolean {
  return openingChunk && textChars === 0 && !finishedChunk;
}

const EMPTY = new Uint8Array(0);

function top(i: number): number {
  if (i >= end || b[i] !== OPEN_OBJECT) return SKIP;
  let sawChoices = false;
  let k: number;
  i = ws(i + 1);
  if (i < end && b[i] === CLOSE_OBJECT) i++;
  else {
    for (;;) {
      if ((i = key(i)) < 0) return SKIP;
      if (isKey(CHOICES)) {
        if (sawChoices) return SKIP;
        sawChoices = true;
        if (b[i] === OPEN_ARRAY) {
          const got = choices(i);
          if (got < 0) return SKIP;
          i = got;
        } else {
          openingChunk = false;
          if ((i = value(i, 1)) < 0) return SKIP;
        }
      } else if ((k = keyIn(NULL_ONLY)) !== -1) {
        if (k === TYPE) openingChunk = false;
        if ((i = word(i, NULL)) < 0) return SKIP;
      } else if ((i = value(i, 1)) < 0) return SKIP;
      if ((i = next(i, CLOSE_OBJECT)) < 0) return SKIP;
      if (closed) break;
    }
  }
  if (!sawChoices) openingChunk = false;
  return ws(i) === end ? textChars : SKIP;
}

/** Generated text counted by `choices` (kept apart from the index it returns). */
let textChars = 0;

/** A `choices` array at `i`: each object choice read; the index after it, or -1. */
function choices(i: number): number {
  i = ws(i + 1);
  if (i < end && b[i] === CLOSE_ARRAY) return i + 1;
  for (;;) {
    if (b[i] !== OPEN_OBJECT) openingChunk = false;
    if ((i = b[i] === OPEN_OBJECT ? members(i, CHOICE_KEYS, 3) : value(i, 2)) < 0) return -1;
    if ((i = next(i, CLOSE_ARRAY)) < 0) return -1;
    if (closed) return i;
  }
}

/**
 * A choice (`keys` {@link CHOICE_KEYS}) or a delta ({@link DELTA_KEYS}) at
 * `i`: its text counted, a finish reason noted, a delta read; a key read
 * twice is left to the full reading. The index after it, or -1.
 */
function members(i: number, keys: readonly Uint8Array[], depth: number): number {
  const delta = keys === DELTA_KEYS;
  let seen = 0;
  i = ws(i + 1);
  if (i < end && b[i] === CLOSE_OBJECT) return i + 1;
  for (;;) {
    if ((i = key(i)) < 0) return -1;
    const k = keyIn(keys);
    const bit = k === -1 ? 0 : 1 << k;
    if ((seen & bit) !== 0) return -1;
    seen |= bit;
    const c = b[i];
    if (delta && k === 0) {
      // Tool calls: their arguments are counted by the full reading.
      if ((i = word(i, NULL)) < 0) return -1;
    } else if (!delta && k === 0 && c === OPEN_OBJECT) {
      if ((i = members(i, DELTA_KEYS, depth + 1)) < 0) return -1;
    } else if (k > 0 && c === QUOTE) {
      if ((i = string(i)) < 0) return -1;
      if (!delta && k === 1) finishedChunk = true;
      else textChars += strLen;
    } else {
      // A finish reason other than a string or null, a function call: the full reading says whether the chunk opens the stream.
      if ((!delta && k === 1 && c !== 0x6e) || (delta && k === -1 && isKey(FUNCTION_CALL))) openingChunk = false;
      if ((i = value(i, depth)) < 0) return -1;
    }
    if ((i = next(i, CLOSE_OBJECT)) < 0) return -1;
    if (closed) return i;
  }
}

/** A key and its colon at `i`: the index of its value, or -1 (malformed, or escaped). */
function key(i: number): number {
  if (i >= end || b[i] !== QUOTE) return -1;
  const j = string(i);
  // An escape (or a character beyond ASCII) makes the key longer than its code units: left to the full reading.
  if (j < 0 || j - i - 2 !== strLen) return -1;
  keyStart = i + 1;
  keyEnd = j - 1;
  const k = ws(j);
  if (k >= end || b[k] !== COLON) return -1;
  return ws(k + 1);
}

function isKey(name: Uint8Array): boolean {
  if (keyEnd - keyStart !== name.length) return false;
  for (let i = 0; i < name.length; i++) if (b[keyStart + i] !== name[i]) return false;
  return true;
}

function keyIn(names: readonly Uint8Array[]): number {
  for (let n = 0; n < names.length; n++) if (isKey(names[n]!)) return n;
  return -1;
}

/** After a value at `i`: past a comma (and whitespace), or past `close` (then {@link closed}); -1 otherwise. */
function next(i: number, close: number): number {
  i = ws(i);
  if (i >= end) return -1;
  const c = b[i];
  closed = c === close;
  if (closed) return i + 1;
  return c === COMMA ? ws(i + 1) : -1;
}

/** Any JSON value at `i`, skipped: the index after it, or -1. */
function value(i: number, depth: number): number {
  if (i >= end) return -1;
  const c = b[i]!;
  if (c === QUOTE) return string(i);
  if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
    if (depth >= MAX_DEPTH) return -1;
    const close = c + 2; // } is { + 2, ] is [ + 2
    i = ws(i + 1);
    if (i < end && b[i] === close) return i + 1;
    for (;;) {
      if (c === OPEN_OBJECT && (i = key(i)) < 0) return -1;
      if ((i = value(i, depth + 1)) < 0) return -1;
      if ((i = next(i, close)) < 0) return -1;
      if (closed) return i;
    }
  }
  if (c === MINUS || (c >= ZERO && c <= NINE)) return number(i);
  return word(i, c === 0x74 ? TRUE : c === 0x66 ? FALSE : NULL);
}

/** A string at `i` (its opening quote): the index after it, its decoded length in {@link strLen}; -1 when malformed. */
function string(i: number): number {
  const bytes = b;
  const n = end;
  let len = 0;
  for (i++; i < n; ) {
    const c = bytes[i]!;
    if (c === QUOTE) {
      strLen = len;
      return i + 1;
    }
    if (c === BACKSLASH) {
      if ((i = escape(i)) < 0) return -1;
      len++;
    } else if (c < 0x20) return -1;
    else if (c < 0x80) {
      i++;
      len++;
    } else {
      const n = utf8Length(i);
      if (n === 0) return -1;
      i += n;
      // Four bytes make a surrogate pair: two code units.
      len += n === 4 ? 2 : 1;
    }
  }
  return -1;
}

/** An escape at `i`: the index after it, or -1. */
function escape(i: number): number {
  if (i + 1 >= end) return -1;
  const e = b[i + 1];
  if (e === 0x75) {
    if (i + 6 > end) return -1;
    for (let h = i + 2; h < i + 6; h++) if (!isHex(b[h]!)) return -1;
    return i + 6;
  }
  return e === QUOTE || e === BACKSLASH || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74 ? i + 2 : -1;
}

/** The length of the well-formed UTF-8 sequence at `i` (a lead byte), or 0 (left to the decoder's replacement). */
function utf8Length(i: number): number {
  const c = b[i]!;
  const n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
  if (n === 0 || i + n > end) return 0;
  // The second byte's range is narrower after E0, ED, F0 and F4 (no overlong forms, surrogates or values past U+10FFFF).
  const lo = c === 0xe0 ? 0xa0 : c === 0xf0 ? 0x90 : 0x80;
  const hi = c === 0xed ? 0x9f : c === 0xf4 ? 0x8f : 0xbf;
  const second = b[i + 1]!;
  if (second < lo || second > hi) return 0;
  for (let k = i + 2; k < i + n; k++) if ((b[k]! & 0xc0) !== 0x80) return 0;
  return n;
}

/** A number at `i`: `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`; the index after it, or -1. */
function number(i: number): number {
  if (b[i] === MINUS) i++;
  if (i < end && b[i] === ZERO) i++;
  else if ((i = digits(i)) < 0) return -1;
  if (i < end && b[i] === 0x2e && (i = digits(i + 1)) < 0) return -1;
  if (i < end && (b[i] === 0x65 || b[i] === 0x45)) {
    i++;
    if (i < end && (b[i] === 0x2b || b[i] === MINUS)) i++;
    if ((i = digits(i)) < 0) return -1;
  }
  return i;
}

/** One or more digits at `i`: the index after them, or -1. */
function digits(i: number): number {
  const from = i;
  while (i < end && b[i]! >= ZERO && b[i]! <= NINE) i++;
  return i === from ? -1 : i;
}

/** `literal` at `i`: the index after it, or -1. */
function word(i: number, literal: Uint8Array): number {
  if (i + literal.length > end) return -1;
  for (let k = 0; k < literal.length; k++) if (b[i + k] !== literal[k]) return -1;
  return i + literal.length;
}

/** Past JSON whitespace from `i`. */
function ws(i: number): number {
  const bytes = b;
  const n = end;
  while (i < n) {
    const c = bytes[i];
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}

function isHex(c: number): boolean {
  return (c >= ZERO && c <= NINE) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);
}
