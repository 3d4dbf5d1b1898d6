/**
 * The tap's quick judge of a chat chunk's bytes (src/usage/chunk-scan.ts)
 * against decoding and `JSON.parse`: whatever it accepts, `JSON.parse`
 * accepts once decoded and reads the same (generated text, finish reason, no
 * usage, no error, no event type); the usual chunks are accepted. Seeded
 * random chunks and byte mutations of them (broken UTF-8 included), plus
 * hand-picked broken JSON.
 */
import { describe, expect, test } from 'vitest';
import { finished, judgeChunk, opening, SKIP } from '../../src/usage/chunk-scan';
import { generatedChars } from '../../src/usage/sse';
import { isPrelude } from '../../src/usage/sse-events';
import { usageFromBody } from '../../src/usage/usage';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Judges `data` (text, or bytes as they came) as the tap does: in place, inside a longer run of events. */
function judge(data: string | Uint8Array): number {
  const bytes = typeof data === 'string' ? encoder.encode(data) : data;
  const run = new Uint8Array(bytes.length + 22);
  run.set(encoder.encode('data: '));
  run.set(bytes, 6);
  run.set(encoder.encode('\n\ndata: {"x":1}'), 6 + bytes.length);
  return judgeChunk(run, 6, 6 + bytes.length);
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null;

/** Chunks the quick judge was sure carry no output (an opening chunk, held with a stream's prelude). */
let openings = 0;

/** When the quick judge accepts `data`, the full reading agrees with it. */
function agrees(raw: string | Uint8Array): boolean {
  const chars = judge(raw);
  if (chars === SKIP) return false;
  const ended = finished();
  const opens = opening();
  const data = typeof raw === 'string' ? raw : decoder.decode(raw);
  let parsed: unknown;
  expect(() => (parsed = JSON.parse(data)), data).not.toThrow();
  expect(isObj(parsed) && !Array.isArray(parsed), data).toBe(true);
  const o = parsed as Obj;
  expect(chars, data).toBe(generatedChars(parsed));
  const choices = o.choices;
  expect(ended, data).toBe(Array.isArray(choices) && choices.some((c) => isObj(c) && typeof c.finish_reason === 'string'));
  expect(usageFromBody(parsed), data).toBeUndefined();
  expect(Boolean(o.error), data).toBe(false);
  expect(typeof o.type, data).not.toBe('string');
  // Sure of an opening chunk only when the full reading says so (unsure: it reads the chunk itself).
  if (opens) expect(isPrelude(o), data).toBe(true);
  if (opens) openings++;
  return true;
}

/** A small seeded generator (mulberry32). */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = ['Hello', ' wor', 'ld', '"', '\\', '\n', '\t', '\u0001', 'é', '日本', '😀', '\ud800', '/', '</script>', 'error', 'usage', ''];
const NUMBERS = ['0', '-0', '12', '-3.25', '1e5', '2E-3', '6.02e+23', '1700000000'];

function chunkOf(rnd: () => number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const text = () => Array.from({ length: Math.floor(rnd() * 4) }, () => pick(PIECES)).join('');
  const value = (depth: number): unknown => {
    const r = rnd();
    if (r < 0.2) return text();
    if (r < 0.35) return Number(pick(NUMBERS));
    if (r < 0.45) return pick([true, false, null]);
    if (depth > 2) return null;
    if (r < 0.6) return Array.from({ length: Math.floor(rnd() * 3) }, () => value(depth + 1));
    return Object.fromEntries(Array.from({ length: Math.floor(rnd() * 3) }, () => [pick(['a', 'content', 'text', 'delta', 'finish_reason', 'index']), value(depth + 1)]));
  };
  const delta: Obj = {};
  for (const k of ['role', 'content', 'reasoning_content', 'reasoning', 'refusal', 'tool_calls', 'function_call', 'other']) {
    if (rnd() < (k === 'function_call' ? 0.1 : 0.4)) delta[k] = k === 'tool_calls' ? pick([null, [{ index: 0, function: { arguments: text() } }]]) : k === 'function_call' ? pick([null, { name: 'f' }, 'x']) : rnd() < 0.8 ? text() : value(3);
  }
  const choice: Obj = { index: 0 };
  if (rnd() < 0.8) choice.delta = rnd() < 0.9 ? delta : value(2);
  if (rnd() < 0.3) choice.text = rnd() < 0.8 ? text() : value(2);
  choice.logprobs = null;
  choice.finish_reason = pick([null, null, 'stop', 'length', 7]);
  const choices = Array.from({ length: Math.floor(rnd() * 3) }, () => (rnd() < 0.9 ? choice : value(1)));
  const chunk: Obj = { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1700000000, model: 'gpt-4.1' };
  if (rnd() < 0.95) chunk.choices = rnd() < 0.95 ? choices : value(1);
  for (const k of ['usage', 'error', 'type', 'usageMetadata']) if (rnd() < 0.15) chunk[k] = rnd() < 0.6 ? null : pick([{ prompt_tokens: 1, completion_tokens: 2 }, 'response.output_text.delta', 0, { message: 'x' }]);
  if (rnd() < 0.2) chunk.system_fingerprint = value(0);
  const json = JSON.stringify(chunk, null, rnd() < 0.2 ? pick([1, '\t', ' \r\n']) : undefined);
  return json;
}

/** `data`'s bytes with one random edit: a byte dropped, doubled or replaced (by a JSON-significant or a non-ASCII one), or a member repeated. */
function mutate(data: string, rnd: () => number): Uint8Array {
  const r = rnd();
  if (r >= 0.85) {
    const member = /"(choices|delta|content|text|finish_reason|refusal|reasoning)":("[^"]*"|null|\{\}|\[\])/.exec(data);
    return encoder.encode(member ? data.replace(member[0], `${member[0]},${member[0]}`) : data);
  }
  const bytes = encoder.encode(data);
  const at = Math.floor(rnd() * bytes.length);
  if (r < 0.2) return Uint8Array.of(...bytes.subarray(0, at), ...bytes.subarray(at + 1));
  if (r < 0.3) return Uint8Array.of(...bytes.subarray(0, at + 1), ...bytes.subarray(at));
  const out = bytes.slice();
  const SIGNIFICANT = encoder.encode('{}[]":,\\-+.eE0u \u0000\u001f');
  out[at] = r < 0.65 ? SIGNIFICANT[Math.floor(rnd() * SIGNIFICANT.length)]! : [0x80, 0xbf, 0xc0, 0xc3, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff][Math.floor(rnd() * 11)]!;
  return out;
}

describe('the quick chunk judge', () => {
  test('accepts the usual chat and legacy completion chunks and reads them as the full reading does', () => {
    const usual = [
      '{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]}',
      '{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","service_tier":"default","system_fingerprint":"fp","choices":[{"index":0,"delta":{"content":" Hi \\"there\\" \\u00e9\\ud83d\\ude00"},"logprobs":null,"finish_reason":null}],"usage":null}',
      '{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}',
      '{"id":"c1","object":"text_completion","created":1,"model":"m","choices":[{"text":"日本語 😀","index":0,"logprobs":null,"finish_reason":null}]}',
      '{"choices":[{"delta":{"reasoning_content":"think","tool_calls":null}}],"error":null,"type":null}',
      ' { "choices" : [ ] } ',
    ];
    for (const data of usual) expect(agrees(data), data).toBe(true);
  });

  test("is sure the usual opening chunks carry no output (the role with empty content, Azure's prompt filter results), and that others do or may", () => {
    const openingChunks = [
      '{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}',
      '{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}]}',
      '{"choices":[{"delta":{"role":"assistant","content":null,"tool_calls":null},"finish_reason":null}]}',
    ];
    const notSure = [
      '{"choices":[{"delta":{"content":"a"},"finish_reason":null}]}',
      '{"choices":[{"delta":{},"finish_reason":"stop"}]}',
      '{"choices":[{"delta":{"function_call":{"name":"f"}}}]}',
      '{"choices":[{"delta":{"function_call":null}}]}',
      '{"choices":[{"delta":{},"finish_reason":7}]}',
      '{"choices":[1]}',
      '{"choices":{}}',
      '{"id":"c1"}',
      '{"choices":[],"type":null}',
    ];
    for (const [chunks, sure] of [[openingChunks, true], [notSure, false]] as const) {
      for (const data of chunks) {
        expect(agrees(data), data).toBe(true);
        expect(opening(), data).toBe(sure);
      }
    }
  });

  test('leaves to JSON.parse what it does not read: usage, errors, event types, tool calls, escaped or repeated keys', () => {
    const others = [
      '{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}',
      '{"error":{"message":"boom"}}',
      '{"type":"response.output_text.delta","delta":"hi"}',
      '{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"x_groq":{"id":"req_1","usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}}',
      '{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]}',
      '{"choices":[{"delta":{"content":"a","content":"bb"}}]}',
      '{"choices":[],"choices":[{"text":"x"}]}',
      '{"ch\\u006fices":[{"text":"x"}]}',
      '[{"choices":[]}]',
      `{"a":${'['.repeat(100)}${']'.repeat(100)}}`,
    ];
    for (const data of others) expect(judge(data), data).toBe(SKIP);
  });

  test('accepts no broken JSON', () => {
    const broken = ['', '{', '{"a":01}', '{"a":1.}', '{"a":.5}', '{"a":1e}', '{"a":-}', '{"a":+1}', '{"a":"\u0001"}', '{"a":"\\u12G4"}', '{"a":"\\x"}', '{"a":"\\', '{"a":tru}', '{"a":1,}', '{"a":[1,]}', '{"a" 1}', '{,}', '{} x', '{}{}', '{"a":Infinity}', '{"a":NaN}', "{'a':1}", '{"a":"x}', '\ufeff{}', '{"choices":[{"text":"a",}]}', '{"choices":[,]}'];
    for (const data of broken) {
      // (Each is judged as its UTF-8 bytes.)
      let valid = true;
      try {
        JSON.parse(data);
      } catch {
        valid = false;
      }
      if (!valid) expect(judge(data), data).toBe(SKIP);
    }
  });

  test('counts text in UTF-16 code units from well-formed UTF-8, and leaves any other byte sequence to the decoder', () => {
    const withBytes = (...bytes: number[]) => Uint8Array.of(...encoder.encode('{"choices":[{"delta":{"content":"a'), ...bytes, ...encoder.encode('b"}}]}'));
    // é, あ, 😀 (a surrogate pair), U+10FFFF
    for (const good of [[0xc3, 0xa9], [0xe3, 0x81, 0x82], [0xf0, 0x9f, 0x98, 0x80], [0xf4, 0x8f, 0xbf, 0xbf]]) expect(agrees(withBytes(...good))).toBe(true);
    // Overlong forms, surrogates, past U+10FFFF, lone continuation bytes, cut sequences: the decoder replaces them.
    for (const bad of [[0xc0, 0x80], [0xc1, 0xbf], [0xe0, 0x80, 0x80], [0xe0, 0x9f, 0xbf], [0xed, 0xa0, 0x80], [0xf0, 0x80, 0x80, 0x80], [0xf0, 0x8f, 0xbf, 0xbf], [0xf4, 0x90, 0x80, 0x80], [0xf5, 0x80, 0x80, 0x80], [0x80], [0xbf], [0xe3, 0x81], [0xf0, 0x9f, 0x98], [0xff]]) {
      expect(judge(withBytes(...bad)), bad.join(' ')).toBe(SKIP);
    }
  });

  test('on 20,000 seeded random chunks and mutations of them, whatever it accepts the full reading reads the same', () => {
    const rnd = random(20261130);
    let accepted = 0;
    let mutants = 0;
    for (let n = 0; n < 10_000; n++) {
      const data = chunkOf(rnd);
      if (agrees(data)) accepted++;
      const mutant = mutate(data, rnd);
      if (agrees(mutant)) mutants++;
    }
    // Most chunks are of the usual kind, and many mutants stay JSON: both paths are exercised.
    expect(accepted).toBeGreaterThan(3_000);
    expect(mutants).toBeGreaterThan(500);
    expect(openings).toBeGreaterThan(100);
  });
});
