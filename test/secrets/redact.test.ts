/** The redactor itself: what counts as a piece of a key, and what the replacement keeps intact. */
import { describe, expect, test, vi } from 'vitest';
import { KeyRedactor } from '../../src/secrets/redact';
import { redactingReader } from '../../src/secrets/stream';
import { parseJsonSummary } from '../../src/pipeline/json-body';
import { wasm } from '../../src/pipeline/simd';

const KEY = 'sk-proj-9fQ2xLm7TzR4vB8nW1cY6dH3';
const redactor = new KeyRedactor(KEY, 'fp_test');
const bytes = (text: string) => new TextEncoder().encode(text);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

async function throughReader(pieces: string[], everything = true): Promise<{ out: string; reads: number }> {
  let i = 0;
  const inner = new ReadableStream<Uint8Array>({
    pull(c) {
      if (i < pieces.length) c.enqueue(bytes(pieces[i++]!));
      else c.close();
    },
  }).getReader();
  const reader = redactingReader(inner, redactor, everything);
  let out = '';
  let reads = 0;
  for (let r = await reader.read(); !r.done; r = await reader.read()) {
    out += text(r.value);
    reads++;
  }
  return { out, reads };
}

describe('KeyRedactor', () => {
  test('replaces any 8 characters of the key, wherever they start (past its public prefix `sk-proj-`)', () => {
    for (let start = 1; start + 8 <= KEY.length; start++) {
      expect(redactor.text(`a ${KEY.slice(start, start + 8)} b`)).toBe('a [key fp_test] b');
    }
  });

  test('leaves 7 characters of the key alone', () => {
    expect(redactor.text(`a ${KEY.slice(5, 12)} b`)).toBe(`a ${KEY.slice(5, 12)} b`);
  });

  test("leaves a provider's public key prefix alone, but not a piece that goes past it", () => {
    expect(redactor.text('OpenAI keys start with sk-proj-.')).toBe('OpenAI keys start with sk-proj-.');
    expect(redactor.text(`key ${KEY.slice(0, 9)}`)).toBe('key [key fp_test]');
  });

  test('returns the very same string when there is nothing to replace', () => {
    const body = JSON.stringify({ content: 'nothing to see '.repeat(100) });
    expect(redactor.text(body)).toBe(body);
  });

  test('replaces the key and its pieces in bytes as in text', () => {
    const body = `{"a":"${KEY}","b":"${KEY.slice(-10)}"}`;
    expect(text(redactor.bytes(bytes(body)))).toBe(redactor.text(body));
    expect(redactor.text(body)).toBe('{"a":"[key fp_test]","b":"[key fp_test]"}');
  });

  test('takes a JSON escape right before a piece along, so the JSON still parses', () => {
    const key = new KeyRedactor('n0tAnEscape-abcdef123456', 'fp_x');
    const body = JSON.stringify({ message: 'line\nn0tAnEscape-abc and \u00e9n0tAnEscape' });
    const out = key.text(body.replace('\u00e9', '\\u00e9'));
    expect(() => JSON.parse(out) as unknown).not.toThrow();
    expect(out).not.toContain('n0tAnEsc');
  });

  test('keys searched in turn (one lookup table shared by all keys): each finds its own pieces and only those', () => {
    const other = new KeyRedactor('gsk_Zq7Jd0Vw5Ne2Kp9Xs4Ub1Mh8', 'fp_other');
    const both = `a ${KEY.slice(10, 20)} b ${'gsk_Zq7Jd0Vw5Ne2Kp9Xs4Ub1Mh8'.slice(6, 16)} c`;
    for (let round = 0; round < 3; round++) {
      expect(redactor.text(both)).toBe(`a [key fp_test] b ${'gsk_Zq7Jd0Vw5Ne2Kp9Xs4Ub1Mh8'.slice(6, 16)} c`);
      expect(text(other.bytes(bytes(both)))).toBe(`a ${KEY.slice(10, 20)} b [key fp_other] c`);
      expect(other.finds(KEY)).toBe(false);
      expect(redactor.finds('gsk_Zq7Jd0Vw5Ne2Kp9Xs4Ub1Mh8')).toBe(false);
    }
  });

  test('a 2-gram the key holds at many places: a piece is found from each of them, with another key loaded in between', () => {
    const repeats = 'ab12ab34ab56ab78ab90abXYabZW';
    const key = new KeyRedactor(repeats, 'fp_rep');
    const other = new KeyRedactor('gsk_Zq7Jd0Vw5Ne2Kp9Xs4Ub1Mh8', 'fp_other');
    for (let start = 0; start + 8 <= repeats.length; start++) {
      const piece = repeats.slice(start, start + 8);
      expect(other.finds(`x ${piece} y`)).toBe(false);
      expect(key.text(`x ${piece} y`)).toBe('x [key fp_rep] y');
      expect(text(key.bytes(bytes(`xy ${piece} z`)))).toBe('xy [key fp_rep] z');
    }
    // Shorter than a piece at every place of `ab`: nothing.
    expect(key.finds('ab12ab3 ab34ab5 ab56ab7')).toBe(false);
  });

  test('finds a piece in bytes wherever it starts in a longer body, as in text', () => {
    const filler = 'the quick brown fox jumps over the lazy dog, '.repeat(3);
    for (let at = 0; at <= filler.length; at++) {
      const body = filler.slice(0, at) + KEY.slice(9, 17) + filler.slice(at);
      const out = redactor.text(body);
      expect(text(redactor.bytes(bytes(body)))).toBe(out);
      expect(out).toContain('[key fp_test]');
      expect(out).not.toContain(KEY.slice(9, 17));
    }
  });

  test('finds every piece in bytes that start at an odd address (read two bytes at a time), as in text', () => {
    const filler = 'the quick brown fox jumps over the lazy dog, '.repeat(2);
    for (let start = 0; start + 8 <= KEY.length; start += 3) {
      for (let at = 0; at <= 20; at++) {
        const body = `${filler.slice(0, at)}${KEY.slice(start, start + 8 + (at % 3))}${filler.slice(at)}`;
        const padded = new Uint8Array(body.length + 2);
        padded.set(bytes(body), 1);
        const view = padded.subarray(1, 1 + body.length);
        expect(text(redactor.bytes(view)), body).toBe(redactor.text(body));
        expect(text(redactor.bytes(bytes(body))), body).toBe(redactor.text(body));
      }
    }
    expect(redactor.bytes(bytes('sk-proj'))).toEqual(bytes('sk-proj'));
    expect(redactor.findBytes(new Uint8Array(0))).toBeUndefined();
  });

  test('finds a piece at either end of a text and in texts shorter than a probe step', () => {
    for (const piece of [KEY.slice(-8), KEY.slice(8, 16)]) {
      expect(redactor.text(piece)).toBe('[key fp_test]');
      expect(redactor.text(`${piece}!`)).toBe('[key fp_test]!');
      expect(redactor.text(`!${piece}`)).toBe('![key fp_test]');
      expect(text(redactor.bytes(bytes(`xy${piece}`)))).toBe('xy[key fp_test]');
    }
    expect(redactor.text('')).toBe('');
    expect(redactor.finds('s')).toBe(false);
  });
});

describe('KeyRedactor on arrays of 1 KiB and more (searched in WebAssembly)', () => {
  const filler = 'the quick brown fox jumps over the lazy dog, '.repeat(30);

  test('WebAssembly is there to search them', () => {
    expect(wasm()).not.toBeNull();
  });

  test('finds every piece of 8 to 12 characters wherever it starts, as the text search does', () => {
    for (let start = 1; start + 8 <= KEY.length; start++) {
      for (const at of [0, 1, 2, 3, 5, 6, 7, 8, 13, 500, 501, filler.length - 1, filler.length]) {
        const piece = KEY.slice(start, start + 8 + ((start + at) % 5));
        const body = filler.slice(0, at) + piece + filler.slice(at);
        const out = text(redactor.bytes(bytes(body)));
        expect(out, `${start} at ${at}`).toBe(redactor.text(body));
        expect(out).toContain('[key fp_test]');
      }
    }
  });

  test('finds pieces next to each other, at either end, and many in one body', () => {
    const body = `${KEY.slice(-9)}${filler}${KEY.slice(9, 17)}${KEY.slice(20, 29)} ${KEY}${filler}${KEY.slice(8, 16)}`;
    expect(text(redactor.bytes(bytes(body)))).toBe(redactor.text(body));
    expect(text(redactor.bytes(bytes(body)))).not.toMatch(/9fQ2xLm7|Lm7TzR4v|vB8nW1cY|cY6dH3/);
  });

  test('returns the very same array when the body holds 7 characters of the key at most, however many', () => {
    const sevens = Array.from({ length: 200 }, (_, i) => KEY.slice(8 + (i % 20), 15 + (i % 20))).join(' ');
    const body = bytes(sevens);
    expect(redactor.bytes(body)).toBe(body);
  });

  test('a key whose 2-grams repeat, with another key searched in between', () => {
    const repeats = 'ab12ab34ab56ab78ab90abXYabZW';
    const key = new KeyRedactor(repeats, 'fp_rep');
    const other = new KeyRedactor('gsk_Zq7Jd0Vw5Ne2Kp9Xs4Ub1Mh8', 'fp_other');
    const noise = 'ab12ab3 ab34ab5 ab56ab7 '.repeat(60);
    for (let start = 0; start + 8 <= repeats.length; start++) {
      const body = `${noise}${repeats.slice(start, start + 8)} ${noise}`;
      const array = bytes(body);
      expect(other.bytes(array)).toBe(array);
      expect(text(key.bytes(bytes(body)))).toBe(`${noise}[key fp_rep] ${noise}`);
    }
  });

  test('the JSON check that follows reads the redacted bytes, not the array the search staged', () => {
    const body = bytes(JSON.stringify({ model: KEY.slice(8), content: filler }));
    const out = redactor.bytes(body);
    expect(out).not.toBe(body);
    expect(parseJsonSummary(out)).toEqual({ model: '[key fp_test]' });
    const clean = bytes(JSON.stringify({ model: 'gpt', content: filler }));
    expect(parseJsonSummary(redactor.bytes(clean))).toEqual({ model: 'gpt' });
    expect(parseJsonSummary(body)).toEqual({ model: KEY.slice(8) });
  });

  test('where WebAssembly is missing, the same pieces are found in JavaScript', async () => {
    vi.resetModules();
    vi.stubGlobal('WebAssembly', undefined);
    try {
      const alone = await import('../../src/secrets/redact');
      const simd = await import('../../src/pipeline/simd');
      expect(simd.wasm()).toBeNull();
      const js = new alone.KeyRedactor(KEY, 'fp_test');
      for (const at of [0, 7, 500, filler.length]) {
        const body = `${filler.slice(0, at)}${KEY.slice(10, 19)}${filler.slice(at)}`;
        expect(text(js.bytes(bytes(body)))).toBe(redactor.text(body));
      }
    } finally {
      vi.unstubAllGlobals();
    }
  });

  test('seeded random bodies: the same pieces found in bytes as in text', () => {
    let x = 12345;
    const next = (n: number) => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) % n;
    };
    // The key's own characters as noise: many of its 2-grams, few of its pieces.
    const alphabet = `${KEY.slice(8)} "\\é`;
    for (let round = 0; round < 200; round++) {
      let body = '';
      while (body.length < 1024 + next(3000)) {
        body += next(8) === 0 ? KEY.slice(next(KEY.length - 8), KEY.length - next(4)) : alphabet[next(alphabet.length)]!;
      }
      expect(text(redactor.bytes(bytes(body))), body).toBe(redactor.text(body));
    }
  });
});

/** `text` with every character at an even place written as a `\\u` escape. */
const uEscaped = (t: string) => [...t].map((c, i) => (i % 2 === 0 ? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}` : c)).join('');

describe('a piece written with JSON escapes inside it (JSON.parse gives it back whole)', () => {
  test('`\\u` escapes, in text and in bytes short and long (WebAssembly): replaced escapes and all, the JSON still parses', () => {
    for (const pad of [0, 2000]) {
      const body = `{"message":"${'p'.repeat(pad)}bad key ${uEscaped(KEY)} and ${uEscaped(KEY.slice(-9))}."}`;
      const want = `{"message":"${'p'.repeat(pad)}bad key [key fp_test] and [key fp_test]."}`;
      expect(redactor.text(body)).toBe(want);
      expect(text(redactor.bytes(bytes(body)))).toBe(want);
      expect(JSON.parse(want)).toBeTruthy();
    }
  });

  test("PHP's `\\/`: a key holding `/` written with every `/` escaped, no 8 characters of it side by side", () => {
    const key = new KeyRedactor('fake/AbCdEf1/GhIjKl2/MnOpQr3', 'fp_php');
    const body = JSON.stringify({ error: { message: 'key fake/AbCdEf1/GhIjKl2/MnOpQr3 revoked' } }).replaceAll('/', '\\/');
    expect(key.text(body)).toBe('{"error":{"message":"key [key fp_php] revoked"}}');
    expect(key.finds(body)).toBe(true);
  });

  test('escapes of characters the key does not hold (`\\n`, `\\"`, `\\u00e9`, `\\u003c`) leave a text as it was: the very same string', () => {
    const body = JSON.stringify({ content: 'line\n"quoted" é <b> ' + KEY.slice(0, 7) }).replace('<', '\\u003c');
    expect(redactor.text(body)).toBe(body);
    const b = bytes(body);
    expect(redactor.bytes(b)).toBe(b);
  });

  test('an escaped backslash before `u0041` is no escape of `A`', () => {
    const key = new KeyRedactor('fake-u0041u0041u0041', 'fp_u');
    expect(key.text('{"a":"\\\\u0041\\\\u0041"}')).toBe('{"a":"\\\\u0041\\\\u0041"}');
  });

  test('through the stream reader: 8 characters of the key, each a `\\u` escape (48 bytes), in a long line read in pieces of every size from 1 to 64 bytes: never passed on in two halves', async () => {
    const piece = KEY.slice(10, 18);
    const escapedPiece = [...piece].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');
    const leaks: number[] = [];
    for (let size = 1; size <= 64; size++) {
      const line = `data: {"content":"${'x'.repeat(200)}${escapedPiece}${'y'.repeat(200)}"}`;
      const { out } = await throughReader([...line.match(new RegExp(`.{1,${size}}`, 'gs'))!, '\n\n']);
      const content = (JSON.parse(out.slice('data: '.length)) as { content: string }).content;
      if (content.includes(piece)) leaks.push(size);
    }
    expect(leaks).toEqual([]);
  });

  test('through the stream reader: an escaped key in a long line read 7 bytes at a time', async () => {
    const line = `data: {"content":"${'x'.repeat(300)}${uEscaped(KEY)}${'y'.repeat(300)}"}`;
    const { out } = await throughReader([...line.match(/.{1,7}/gs)!, '\n\n']);
    expect(out).toBe(`data: {"content":"${'x'.repeat(300)}[key fp_test]${'y'.repeat(300)}"}\n\n`);
  });
});

describe('redactingReader', () => {
  test('finds a key split over many reads', async () => {
    const line = `data: {"content":"${KEY}"}\n\n`;
    const pieces = line.match(/.{1,3}/gs)!;

    expect((await throughReader(pieces)).out).toBe('data: {"content":"[key fp_test]"}\n\n');
  });

  test('holds nothing back after a line break: each complete event comes out in the read it arrived in', async () => {
    const { out, reads } = await throughReader(['data: {"a":1}\n\n', 'data: {"b":2}\n\n']);

    expect(out).toBe('data: {"a":1}\n\ndata: {"b":2}\n\n');
    expect(reads).toBe(2);
  });

  test('passes a long line on in parts without splitting a piece of the key', async () => {
    const line = `data: ${'x'.repeat(200)}${KEY}${'y'.repeat(200)}`;
    const pieces = line.match(/.{1,50}/gs)!;

    const { out } = await throughReader([...pieces, '\n\n']);
    expect(out).toBe(`data: ${'x'.repeat(200)}[key fp_test]${'y'.repeat(200)}\n\n`);
  });

  test('with only errors scanned, passes a read without `error` unchanged and redacts one with it', async () => {
    const { out } = await throughReader([`data: {"content":"${KEY}"}\n\n`, `event: error\ndata: {"error":"${KEY}"}\n\n`], false);

    expect(out).toBe(`data: {"content":"${KEY}"}\n\nevent: error\ndata: {"error":"[key fp_test]"}\n\n`);
  });
});
