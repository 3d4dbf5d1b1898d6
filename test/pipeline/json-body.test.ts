/**
 * The reply-body JSON check (src/pipeline/json-body.ts) against decoding and
 * `JSON.parse`: it accepts exactly what `JSON.parse` accepts, and the
 * members usage accounting reads come out the same. Seeded random JSON texts
 * and byte mutations of them (truncations, insertions, broken UTF-8,
 * control characters), plus hand-picked cases.
 */
import { describe, expect, test, vi } from 'vitest';
import { parseJsonSummary } from '../../src/pipeline/json-body';
import { usageFromBody } from '../../src/usage/usage';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
type Obj = Record<string, unknown>;

/** What parseJsonSummary makes of `data`: the summary, or 'broken'. */
function summary(data: string | Uint8Array): unknown {
  const bytes = typeof data === 'string' ? encoder.encode(data) : data;
  try {
    return parseJsonSummary(bytes);
  } catch (error) {
    expect(error).toBeInstanceOf(SyntaxError);
    return 'broken';
  }
}

/** The check agrees with JSON.parse on `data`: same verdict, same usage and model. */
function agrees(data: string | Uint8Array): boolean {
  const bytes = typeof data === 'string' ? encoder.encode(data) : data;
  const text = decoder.decode(bytes);
  const shown = text.length > 300 ? `${text.slice(0, 300)}…` : text;
  let parsed: unknown;
  let ok = true;
  try {
    parsed = JSON.parse(text);
  } catch {
    ok = false;
  }
  const got = summary(bytes);
  expect(got === 'broken', shown).toBe(!ok);
  if (!ok) return false;
  expect(usageFromBody(got), shown).toEqual(usageFromBody(parsed));
  expect((got as Obj | null)?.model, shown).toEqual((parsed as Obj | null)?.model);
  const isObject = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
  expect(isObject(got), shown).toBe(isObject(parsed));
  return true;
}

/** A small seeded generator (xorshift32), numbers in [0, 1). */
function random(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

const PIECES = ['Hello', ' wor', 'ld', '"', '\\', '\n', '\t', '\u0001', '\u001f', 'é', '日本', '😀', '\ud800', '/', 'usage', 'x'.repeat(40), ''];
const NAMES = ['usage', 'model', 'type', 'response', 'usageMetadata', 'usage_metadata', 'id', 'choices', 'prompt_tokens', 'completion_tokens', 'total_tokens', 'input_tokens'];
const NUMBERS = [0, 1, -1, 12, 3.5, -0.25, 1e21, 1.5e-7, 2 ** 53, 123456789];

function value(next: () => number, depth: number): unknown {
  const r = next();
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]!;
  if (depth > 3 || r < 0.35) {
    const k = next();
    if (k < 0.4) return Array.from({ length: Math.floor(next() * 4) }, () => pick(PIECES)).join('');
    if (k < 0.8) return pick(NUMBERS);
    return pick([true, false, null]);
  }
  if (r < 0.55) return Array.from({ length: Math.floor(next() * 4) }, () => value(next, depth + 1));
  const o: Obj = {};
  for (let i = Math.floor(next() * 5); i > 0; i--) o[pick(NAMES)] = value(next, depth + 1);
  if (depth === 0 && next() < 0.5) o.usage = { prompt_tokens: Math.floor(next() * 100), completion_tokens: 3, total_tokens: 7 };
  if (depth === 0 && next() < 0.3) o.type = pick(['response.completed', 'x']);
  return o;
}

/** JSON text of `v`, sometimes pretty-printed, sometimes with escapes written out. */
function textOf(next: () => number, v: unknown): string {
  const text = JSON.stringify(v, null, next() < 0.3 ? 2 : undefined);
  return next() < 0.3 ? text.replace(/[^\x20-\x7e\n ]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).replace(/\\\\u/g, '\\u005cu') : text;
}

function mutate(next: () => number, bytes: Uint8Array): Uint8Array {
  const at = Math.floor(next() * (bytes.length + 1));
  const kind = next();
  const junk = [0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x20, 0x0a, 0x01, 0x00, 0x30, 0x2d, 0x2e, 0x65, 0x75, 0x74, 0xff, 0xc3, 0xe2, 0xef, 0xbb, 0xbf];
  const b = junk[Math.floor(next() * junk.length)]!;
  if (kind < 0.3) return bytes.subarray(0, at);
  if (kind < 0.6) return Uint8Array.from([...bytes.subarray(0, at), b, ...bytes.subarray(at)]);
  if (kind < 0.8) return Uint8Array.from([...bytes.subarray(0, at), ...bytes.subarray(at + 1)]);
  const out = Uint8Array.from(bytes);
  if (at < out.length) out[at] = b;
  return out;
}

describe('accepts exactly what JSON.parse accepts', () => {
  test('seeded random JSON texts and mutations of them', () => {
    const next = random(20261201);
    let accepted = 0;
    let rejected = 0;
    for (let n = 0; n < 4000; n++) {
      const text = textOf(next, value(next, 0));
      expect(agrees(text)).toBe(true);
      let bytes: Uint8Array = encoder.encode(text);
      for (let m = 0; m < 3; m++) {
        bytes = mutate(next, bytes);
        if (agrees(bytes)) accepted++;
        else rejected++;
      }
    }
    // Both verdicts are exercised.
    expect(accepted).toBeGreaterThan(500);
    expect(rejected).toBeGreaterThan(2000);
  });

  test.each([
    ['broken in its middle', '{"a":"x", garbage "b":1}'],
    ['unbalanced', '{"a":[1,2}'],
    ['unclosed', '{"a":[1,2]'],
    ['closed twice', '{"a":1}}'],
    ['bare word', '{"a":nope}'],
    ['truncated literal', '[tru]'],
    ['control character in a string', '{"a":"x\u0001y"}'],
    ['newline in a string', '{"a":"x\ny"}'],
    ['bad escape', '{"a":"\\x"}'],
    ['short unicode escape', '{"a":"\\u12g4"}'],
    ['leading zero', '[01]'],
    ['bare dot', '[1.]'],
    ['bare exponent', '[1e]'],
    ['plus sign', '[+1]'],
    ['trailing comma', '[1,]'],
    ['trailing comma in an object', '{"a":1,}'],
    ['missing colon', '{"a" 1}'],
    ['name not a string', '{a:1}'],
    ['two values', '{} {}'],
    ['empty', ''],
    ['whitespace only', ' \n'],
    ['a form feed as whitespace', '\f{}'],
    ['unterminated string', '"abc'],
    ['unterminated escape', '"abc\\'],
  ])('rejects %s', (_, text) => {
    expect(agrees(text)).toBe(false);
  });

  test.each([
    ['a byte order mark', '\ufeff{"model":"m","usage":{"prompt_tokens":1,"completion_tokens":2}}'],
    ['pretty-printed', '{\n\t"model" : "m" ,\r\n "usage": { "prompt_tokens" : 1 }\n}\n'],
    ['escapes of every kind', '{"a":"\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\\ud800"}'],
    ['numbers of every shape', '[0,-0,1.5,-1.25e+10,2E-3,1e400,123456789012345678901234567890]'],
    ['a top-level array', '[{"usage":{"prompt_tokens":1}}]'],
    ['a top-level string', '"usage"'],
    ['a top-level number', '42'],
    ['a top-level literal', 'null'],
    ['empty containers', '{"a":{},"b":[],"usage":{}}'],
    ['duplicate members, the last one wins', '{"usage":{"prompt_tokens":1},"model":"a","usage":{"prompt_tokens":5},"model":"b"}'],
    ['a name written with escapes', '{"us\\u0061ge":{"prompt_tokens":3,"completion_tokens":4},"model":"m"}'],
    ['nested usage members are not top-level ones', '{"choices":[{"usage":{"prompt_tokens":9}}],"x":{"model":"no"}}'],
    ['a Responses stream event', '{"type":"response.completed","response":{"usage":{"input_tokens":4,"output_tokens":2}}}'],
    ['Gemini usage metadata', '{"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":2}}'],
    ['invalid UTF-8 inside a string', new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xe2, 0x22, 0x7d])],
    ['non-ASCII outside strings', new Uint8Array([0x5b, 0x31, 0xc3, 0xa9, 0x5d])],
    ['a long string', `{"model":"m","content":"${'The quick brown fox. '.repeat(5000)}","usage":{"total_tokens":8}}`],
    ['a model name beyond ASCII', '{"model":"modèle-日本-😀","usage":{"prompt_tokens":1}}'],
    ['a usage member of over 600 bytes', `{"usage":{"prompt_tokens":1,"completion_tokens_details":{"note":"${'x'.repeat(600)}"}},"model":"m"}`],
    ['a model name with an escape beyond ASCII', '{"model":"mod\\u00e8le","usage":{"prompt_tokens":1}}'],
    ['a usage name written with an escape', '{"usage":{"prompt\\u005ftokens":5,"completion_tokens":1}}'],
    ['a details name written with an escape', '{"usage":{"prompt_tokens":5,"prompt_tokens_details":{"cached\\u005ftokens":2}}}'],
    ['a usage that is not an object', '{"usage":[1,2],"model":"m"}'],
    ['a usage of null', '{"usage":null}'],
    ['a model that is not a string', '{"model":{"name":"m"},"usage":{"prompt_tokens":1}}'],
  ])('agrees on %s', (_, data) => {
    agrees(data);
  });

  test('nesting deeper than the check goes is left to JSON.parse', () => {
    expect(agrees(`${'['.repeat(2000)}1${']'.repeat(2000)}`)).toBe(true);
    expect(agrees(`${'['.repeat(2000)}1${']'.repeat(1999)}`)).toBe(false);
    expect(agrees(`{"usage":${'['.repeat(600)}${']'.repeat(600)},"model":"m"}`)).toBe(true);
  });

  test('a body over the size the check takes is parsed whole, the same', () => {
    const big = JSON.stringify({ model: 'm', content: 'x'.repeat(1_100_000), usage: { prompt_tokens: 2, completion_tokens: 1 } });
    expect(agrees(big)).toBe(true);
    expect(agrees(`${big.slice(0, 500_000)}"${big.slice(500_000)}`)).toBe(false);
  });

  test('a small body after a large one is judged on its own bytes', () => {
    expect(agrees(JSON.stringify({ content: 'y'.repeat(200_000) }))).toBe(true);
    expect(agrees('{"a":1')).toBe(false);
    expect(agrees('"ab')).toBe(false);
  });

  test('where WebAssembly is missing, JSON.parse judges and the whole value comes back', async () => {
    vi.resetModules();
    vi.stubGlobal('WebAssembly', undefined);
    try {
      const { parseJsonSummary: alone } = await import('../../src/pipeline/json-body');
      expect(alone(encoder.encode('{"model":"m","usage":{"prompt_tokens":1},"id":"x"}'))).toEqual({ model: 'm', usage: { prompt_tokens: 1 }, id: 'x' });
      expect(() => alone(encoder.encode('{"a":'))).toThrow(SyntaxError);
    } finally {
      vi.unstubAllGlobals();
    }
  });
});
