/**
 * A key echoed with JSON escapes inside it: `\u0066ake-…`, or `abc\/def`
 * (PHP's `json_encode` writes every `/` so). The raw bytes then hold no
 * 8-character piece of the key, yet `JSON.parse` (the SDK's) gives it back
 * whole, in an error message or a completion. Such a text is searched
 * again as JSON would read it: {@link decodedView} decodes its escapes of
 * printable ASCII characters (no key holds another), keeping where each
 * came from, so that a piece found there is replaced where it lies in the
 * text, escapes and all.
 *
 * Only a text holding an escape of a character the key holds is decoded
 * (see {@link needsDecoding}): the escapes of real replies (`\n`, `\"`,
 * `\u00e9` and other non-ASCII characters, Go's `\u003c`) stand for
 * characters no key holds, so their texts are searched once, as before.
 */
import { Buffer } from 'node:buffer';

/** The longest escape (`\u0041`): a piece of `n` characters spans at most `MAX_ESCAPE × n` bytes. */
export const MAX_ESCAPE = 6;
const U = 0x75;
/** The two-character escapes of printable characters, and what they stand for. */
const SHORT: Record<number, number> = { 0x22: 0x22, 0x5c: 0x5c, 0x2f: 0x2f };
/** The `\u` escapes of `-`, `.`, `0`-`9`, `A`-`Z`, `_`, `a`-`z`: every character of the usual keys (see {@link usualKey}). */
const USUAL_ESCAPE = /\\u00(?:2[dDeE]|3\d|[46][1-9a-fA-F]|[57][0-9aA]|5[fF])/;
/** The `\u` escape of any printable ASCII character, for a key with other characters. */
const ASCII_ESCAPE = /\\u00[2-7][0-9a-f]/gi;
const BACKSLASH = 0x5c;
const U00 = Buffer.from('\\u00');
/** The two-character escapes of printable characters a key may hold. */
const SHORT_ESCAPES = ['/', '"', '\\'];

/** Whether every character of `key` is one of `-`, `.`, `_`, a digit or a letter (OpenAI's, Anthropic's, Google's keys: base64url and hex). */
export function usualKey(key: string): boolean {
  return /^[\w.-]*$/.test(key);
}

/** The value of a hexadecimal digit, or -1. */
function hex(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x57 : -1;
}

/** The printable ASCII character the escape at `i` (a backslash) stands for, or -1; its length is 6 for `\u`, else 2. */
function escapedAt(text: string, i: number): number {
  const next = text.charCodeAt(i + 1);
  if (next !== U) return SHORT[next] ?? -1;
  let code = 0;
  for (let d = 2; d < 6; d++) {
    const v = hex(text.charCodeAt(i + d));
    if (v === -1) return -1;
    code = (code << 4) | v;
  }
  return code >= 0x20 && code < 0x7f ? code : -1;
}

/**
 * The text to look at for escaped pieces of `key` (printable ASCII;
 * `usual`: {@link usualKey}) — `input` as text, bytes as Latin-1 (a byte
 * above ASCII stays one character: no key holds one) — or undefined when it
 * holds no escape of a character of the key, so no piece that is not there
 * as it was sent. A text without a backslash, and bytes without `\u00` or
 * such a `\/`, `\"`, `\\`, cost a native search or two; one with `\u00…`
 * escapes (`\u00e9` from Python, `\u003c` from Go) one regular expression
 * test over its text: a 64 KiB reply full of them about a third of what its
 * `JSON.parse` costs.
 */
export function escapedText(input: string | Uint8Array, key: string, usual: boolean): string | undefined {
  let text: string;
  if (typeof input === 'string') {
    if (!input.includes('\\')) return undefined;
    text = input;
  } else {
    const bytes = Buffer.from(input.buffer, input.byteOffset, input.length);
    if (bytes.indexOf(BACKSLASH) === -1) return undefined;
    if (bytes.indexOf(U00) === -1) return shortEscapeOf(bytes, key) ? bytes.toString('latin1') : undefined;
    text = bytes.toString('latin1');
  }
  return escapesKeyChar(text, key, usual) || shortEscapeOf(text, key) ? text : undefined;
}

/** Whether `input` holds `\/`, `\"` or `\\` of a character the key holds. */
function shortEscapeOf(input: string | Buffer, key: string): boolean {
  return SHORT_ESCAPES.some((c) => key.includes(c) && input.includes(`\\${c}`));
}

/** Whether `text` holds a `\u` escape of a character of `key`. */
function escapesKeyChar(text: string, key: string, usual: boolean): boolean {
  if (usual) return USUAL_ESCAPE.test(text);
  ASCII_ESCAPE.lastIndex = 0;
  for (let match = ASCII_ESCAPE.exec(text); match !== null; match = ASCII_ESCAPE.exec(text)) {
    if (key.includes(String.fromCharCode(Number.parseInt(match[0].slice(2), 16)))) {
      ASCII_ESCAPE.lastIndex = 0;
      return true;
    }
  }
  return false;
}

/**
 * A text as JSON reads it (its escapes of printable ASCII characters
 * decoded), and where they were: for each, its place in `text`, in the
 * text read and where it ended there (three numbers an escape, in order;
 * nothing per other character).
 */
export interface DecodedView {
  text: string;
  escapes: number[];
}

/** `text` with its escapes of printable ASCII characters decoded (see {@link DecodedView}). */
export function decodedView(text: string): DecodedView {
  let out = '';
  let from = 0;
  const escapes: number[] = [];
  for (let i = text.indexOf('\\'); i !== -1; i = text.indexOf('\\', i)) {
    const code = escapedAt(text, i);
    if (code === -1) {
      // Not one to decode; `\\` is passed over whole, so that its second backslash starts nothing.
      i += 2;
      continue;
    }
    out += text.slice(from, i);
    from = i + (text.charCodeAt(i + 1) === U ? 6 : 2);
    escapes.push(out.length, i, from);
    out += String.fromCharCode(code);
    i = from;
  }
  return { text: out + text.slice(from), escapes };
}

/** Where the character at `at` of a view's decoded text (or its end) lies in the text it was read from. */
export function originalIndex(view: DecodedView, at: number): number {
  const escapes = view.escapes;
  // The last escape at or before `at`.
  let low = 0;
  let high = escapes.length / 3;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (escapes[mid * 3]! <= at) low = mid + 1;
    else high = mid;
  }
  if (low === 0) return at;
  const e = (low - 1) * 3;
  return escapes[e] === at ? escapes[e + 1]! : escapes[e + 2]! + (at - escapes[e]! - 1);
}
