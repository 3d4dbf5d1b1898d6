/**
 * The endpoints other than chat completions, through the real `openai` SDK:
 * multipart uploads, binary replies, requests that name no model, under the
 * failures of the outcome table.
 */
import { toFile, toStreamingFile } from 'openai';
import { describe, expect, test } from 'vitest';
import { useManagers } from '../support/scaffold';
import { keyRing } from '../support/upstream';
import { record } from '../support/events';
import { keyplex } from '../../src/index';

const ONE = 'https://api.one.test/v1';
const manage = useManagers();

/** What one upstream call carried. */
interface Sent {
  url: string;
  method: string;
  key: string;
  contentType: string | null;
  bytes: Uint8Array;
}

/** A `fetch` option recording each call (its body read whole) and answering with `answer`. */
function upstream(answer: (sent: Sent, index: number) => Response | Promise<Response>) {
  const sent: Sent[] = [];
  const fetch = (async (url: string, init: RequestInit) => {
    const request = new Request(url, init);
    const call: Sent = {
      url,
      method: request.method,
      key: (request.headers.get('authorization') ?? '').replace(/^Bearer /, ''),
      contentType: request.headers.get('content-type'),
      bytes: new Uint8Array(await request.arrayBuffer()),
    };
    sent.push(call);
    return answer(call, sent.length - 1);
  }) as typeof globalThis.fetch;
  return { sent, fetch };
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}

function errorJson(status: number, code: string): Response {
  return json({ error: { message: 'upstream error', type: code, code, param: null } }, status);
}

/** The multipart body's text less its boundaries (each attempt's FormData is serialised with its own). */
function withoutBoundaries(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes).replace(/-{2,}[\w-]+/g, '--');
}

test("the SDK's probe before its first upload (`fetch('data:,')`) is no upstream request: the upload is the first and only call", async () => {
  const ring = keyRing('a', 'b');
  const up = upstream(() => json({ text: 'hello' }));
  const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, fetch: up.fetch });
  const requests = record(manager, 'request');

  const file = await toFile(new Uint8Array([1, 2, 3, 255, 0]), 'a.wav', { type: 'audio/wav' });
  await client.audio.transcriptions.create({ model: 'whisper-1', file });

  expect(up.sent.map((s) => `${s.method} ${s.url}`)).toEqual([`POST ${ONE}/audio/transcriptions`]);
  expect(requests.map((r) => r.path)).toEqual(['/audio/transcriptions']);
});

test('a multipart upload that met a 500 is sent again whole, its file bytes and fields alike, on another key', async () => {
  const ring = keyRing('a', 'b');
  const up = upstream((_, i) => (i === 0 ? errorJson(500, 'server_error') : json({ text: 'hello' })));
  const { client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, fetch: up.fetch });
  const audio = new Uint8Array(4096).map((_, i) => (i * 37) & 255);

  const reply = await client.audio.transcriptions.create({ model: 'whisper-1', file: await toFile(audio, 'a.wav', { type: 'audio/wav' }), language: 'en' });

  expect(reply.text).toBe('hello');
  expect(up.sent.map((s) => ring.idOf(s.key))).toEqual(['a', 'b']);
  expect(up.sent[1]!.bytes.length).toBeGreaterThan(audio.length);
  expect(withoutBoundaries(up.sent[1]!.bytes)).toBe(withoutBoundaries(up.sent[0]!.bytes));
  expect(up.sent[1]!.contentType).toMatch(/^multipart\/form-data; boundary=/);
});

describe('a file download (`files.content`) is passed on as it comes, whatever its content type says', () => {
  const JSONL = '{"id":"batch_req_1","custom_id":"r1"}\n{"id":"batch_req_2","custom_id":"r2"}\n';

  test.each(['application/json', 'application/jsonl', 'application/x-ndjson', 'application/octet-stream'])('batch output (JSON lines) labelled %s: one call, the bytes as sent', async (type) => {
    const ring = keyRing('a', 'b');
    const up = upstream(() => new Response(JSONL, { headers: { 'content-type': type, 'x-request-id': 'req_1' } }));
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, fetch: up.fetch });
    const successes = record(manager, 'success');

    const content = await client.files.content('file-1');

    expect(await content.text()).toBe(JSONL);
    expect(content.headers.get('content-type')).toBe(type);
    expect(content.headers.get('x-request-id')).toBe('req_1');
    expect(up.sent.map((s) => `${s.method} ${s.url}`)).toEqual([`GET ${ONE}/files/file-1/content`]);
    expect(successes).toHaveLength(1);
  });

  test('JSON lines labelled as such, asked for without the SDK (no `accept`), pass too', async () => {
    const up = upstream(() => new Response(JSONL, { headers: { 'content-type': 'application/x-ndjson' } }));
    const { manager } = manage({ providers: { one: { baseURL: ONE, keys: keyRing('a').keys } }, fetch: up.fetch });

    const response = await manager.fetch(`${ONE}/files/file-1/content`);

    expect(await response.text()).toBe(JSONL);
    expect(up.sent).toHaveLength(1);
  });
});

describe('a streamed upload (a file given as a stream: the SDK encodes the form as it sends it)', () => {
  const TWO = 'https://api.two.test/v1';
  const providers = (ring: ReturnType<typeof keyRing>) => ({
    one: { baseURL: ONE, keys: ring.keys.slice(0, 2), models: ['gpt-4.1'] },
    two: { baseURL: TWO, keys: ring.keys.slice(2), models: ['whisper-1'] },
  });
  /** A 4 KiB "file" the SDK reads as it sends. */
  const fileStream = () => new ReadableStream<Uint8Array>({ start: (c) => (c.enqueue(new Uint8Array(4096).fill(7)), c.close()) });

  test('is sent once, whole, and a failure is handed back, never replayed half-sent', async () => {
    const ring = keyRing('a', 'b', 'z');
    const up = upstream(() => errorJson(500, 'server_error'));
    const { manager, client } = manage({ providers: providers(ring), fetch: up.fetch });
    const failures = record(manager, 'failure');

    const error = await client.audio.transcriptions.create({ file: await toStreamingFile(fileStream(), 'a.wav'), model: 'whisper-1' }, keyplex.options({ provider: 'two' })).catch((e: unknown) => e);

    expect(error).toMatchObject({ status: 500 });
    expect(up.sent.map((s) => [s.url, ring.idOf(s.key)])).toEqual([[`${TWO}/audio/transcriptions`, 'z']]);
    expect(up.sent[0]!.bytes.length).toBeGreaterThan(4096);
    expect(failures.map((f) => f.attempts)).toEqual([1]);
    expect(manager.stats().providers.two!.keys.map((k) => k.inFlight)).toEqual([0]);
  });

  test('its fields are not read (the model may follow the file): it goes where a request naming no model goes, the first provider, unless pinned', async () => {
    const ring = keyRing('a', 'b', 'z');
    const up = upstream(() => json({ text: 'hello' }));
    const { client } = manage({ providers: providers(ring), fetch: up.fetch });

    await client.audio.transcriptions.create({ file: await toStreamingFile(fileStream(), 'a.wav'), model: 'whisper-1' });

    expect(up.sent.map((s) => s.url)).toEqual([`${ONE}/audio/transcriptions`]);
  });
});

test('a multipart upload failed over to a provider with its own name for the model is sent with that name, its file unchanged', async () => {
  const TWO = 'https://api.two.test/v1';
  const ring = keyRing('a', 'z');
  const up = upstream((s) => (s.url.startsWith(ONE) ? errorJson(503, 'overloaded') : json({ text: 'hello' })));
  const { client } = manage({
    providers: {
      one: { baseURL: ONE, keys: ring.keys.slice(0, 1), models: ['whisper-1'] },
      two: { baseURL: TWO, keys: ring.keys.slice(1), models: { 'whisper-1': 'whisper-large-v3' } },
    },
    fetch: up.fetch,
  });
  const audio = new Uint8Array(2048).map((_, i) => (i * 13) & 255);

  await client.audio.transcriptions.create({ file: await toFile(audio, 'a.wav', { type: 'audio/wav' }), model: 'whisper-1' });

  const forms = await Promise.all(up.sent.map((s) => new Response(s.bytes, { headers: { 'content-type': s.contentType! } }).formData()));
  expect(up.sent.map((s) => new URL(s.url).origin)).toEqual([new URL(ONE).origin, ...Array<string>(up.sent.length - 1).fill(new URL(TWO).origin)]);
  expect(forms.map((f) => f.get('model'))).toEqual(['whisper-1', ...Array<string>(forms.length - 1).fill('whisper-large-v3')]);
  for (const form of forms) {
    const file = form.get('file') as File;
    expect([file.name, new Uint8Array(await file.arrayBuffer())]).toEqual(['a.wav', audio]);
  }
});

test('speech after a 429 without headers, a connection reset and a 401: the audio byte for byte, its headers, no usage', async () => {
  const ring = keyRing('a', 'b', 'c', 'd');
  const audio = new Uint8Array(70_000).map((_, i) => (i * 31) & 255);
  const failures: (() => Response)[] = [() => errorJson(429, 'rate_limit_exceeded'), () => { throw new TypeError('fetch failed'); }, () => errorJson(401, 'invalid_api_key')];
  const up = upstream((_, i) => failures[i]?.() ?? new Response(audio, { headers: { 'content-type': 'audio/mpeg', 'x-request-id': 'req_1' } }));
  const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, fetch: up.fetch });
  const successes = record(manager, 'success');

  const speech = await client.audio.speech.create({ model: 'gpt-4o-mini-tts', voice: 'alloy', input: 'hi' });

  expect(new Uint8Array(await speech.arrayBuffer())).toEqual(audio);
  expect([speech.headers.get('content-type'), speech.headers.get('x-request-id')]).toEqual(['audio/mpeg', 'req_1']);
  expect(new Set(up.sent.map((s) => ring.idOf(s.key))).size).toBe(4);
  expect(successes.map((s) => [s.attempts, s.usage, s.costUsd])).toEqual([[4, null, null]]);
  expect(manager.stats().providers.one!.keys.filter((k) => k.status !== 'active').map((k) => k.status).sort()).toEqual(['cooling', 'disabled']);
});

test('a JSON-lines download that quotes the key reaches the caller without it, the rest of its bytes as sent', async () => {
  const ring = keyRing('a');
  const secret = ring.keys[0]!.key;
  const line = (text: string) => `{"custom_id":"r1","response":{"body":{"error":"${text}"}}}\n`;
  const up = upstream(() => new Response(line(`Incorrect API key provided: ${secret}.`), { headers: { 'content-type': 'application/json' } }));
  const { client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, fetch: up.fetch });

  const text = await (await client.files.content('file-1')).text();

  expect(text).not.toContain(secret.slice(-12));
  expect(text.startsWith('{"custom_id":"r1","response":{"body":{"error":"Incorrect API key provided: ')).toBe(true);
  expect(text.endsWith('."}}}\n')).toBe(true);
});
