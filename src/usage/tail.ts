/**
 * The `usage` of a JSON reply read from the end of its text, without parsing
 * the whole body: chat completions, completions, embeddings and Responses
 * replies put their top-level `usage` object last or nearly last, so this
 * costs the same for a 600-byte reply as for a 64 KiB one. The SDK parses the
 * body itself; keyplex parsing it a second time cost a full parse per reply.
 */

const QUOTE = 34; // "
const BACKSLASH = 92;
const OPEN = 123; // {
const CLOSE = 125; // }
const COMMA = 44;
const COLON = 58;

function isSpace(c: number): boolean {
  return c === 32 || c === 10 || c === 13 || c === 9;
}

function skipSpace(text: string, i: number): number {
  while (i < text.length && isSpace(text.charCodeAt(i))) i++;
  return i;
}

/** Index just past the object that starts at `start` (a `{`), strings skipped; -1 when it does not close. */
function objectEnd(text: string, start: number): number {
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN) depth++;
    else if (c === CLOSE && --depth === 0) return i + 1;
  }
  return -1;
}

/**
 * The value of the body's top-level `"usage"` member when the body is a JSON
 * object whose last `"usage"` key is a top-level member holding an object:
 * `{ usage }`, parsed from that member alone. `undefined` when the text does
 * not have that shape (no usage, usage nested deeper, not an object, or
 * malformed where it was read): the caller then parses the body whole. What
 * lies before the member is not checked, as the SDK parses it anyway; the
 * member and everything after it must be valid JSON closing the body.
 */
export function tailUsage(text: string): { usage: unknown } | undefined {
  const key = text.lastIndexOf('"usage"');
  if (key < 0) return undefined;
  const first = skipSpace(text, 0);
  if (text.charCodeAt(first) !== OPEN) return undefined;
  // A member name, not the end of a string value: a `,` or `{` comes before it.
  let before = key - 1;
  while (before > first && isSpace(text.charCodeAt(before))) before--;
  const lead = text.charCodeAt(before);
  if (lead !== COMMA && lead !== OPEN) return undefined;
  let at = skipSpace(text, key + 7);
  if (text.charCodeAt(at) !== COLON) return undefined;
  at = skipSpace(text, at + 1);
  if (text.charCodeAt(at) !== OPEN) return undefined;
  const end = objectEnd(text, at);
  if (end < 0) return undefined;
  try {
    const usage: unknown = JSON.parse(text.slice(at, end));
    // What follows must close the body at the top level: `}` alone, or `, more members }`.
    const next = skipSpace(text, end);
    const c = text.charCodeAt(next);
    if (c === CLOSE) return skipSpace(text, next + 1) === text.length ? { usage } : undefined;
    // A comma must lead to another member (JSON allows no trailing comma).
    if (c !== COMMA || text.charCodeAt(skipSpace(text, next + 1)) !== QUOTE) return undefined;
    const rest: unknown = JSON.parse(`{${text.slice(next + 1)}`);
    return typeof rest === 'object' && rest !== null ? { usage } : undefined;
  } catch {
    return undefined;
  }
}
