/**
 * The headers of the reply the SDK gets (pipeline/reply-headers.ts): the
 * upstream's, less content-length and content-encoding, plus keyplex's four
 * with the `replyHeaders` option (none without it), read through rather than
 * copied — and for every reader a `Headers` like any other: iterated in
 * order, case-blind, copyable, changeable.
 */
import { HttpResponse } from 'msw';
import { APIError } from 'openai';
import { describe, expect, test } from 'vitest';
import { record } from '../support/events';
import { NO_BACKOFF, useManagers } from '../support/scaffold';
import { fakeKey } from '../support/fake-keys';
import { chatChunks, chatReply, provider, sseReply } from '../support/upstream';
import '../support/setup';

const ONE = 'https://one.test/v1';
const BODY = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hi' }] };
const manage = useManagers({ ...NO_BACKOFF, replyHeaders: true, providers: { one: { baseURL: ONE, keys: [fakeKey('one')] } } });

const RATE = { 'x-ratelimit-limit-requests': '10000', 'x-ratelimit-remaining-requests': '9999', 'x-ratelimit-reset-requests': '6ms' };

/** The headers of a JSON reply whose upstream sent `headers` besides its own. */
async function replyHeaders(headers: Record<string, string>): Promise<Headers> {
  provider(ONE, () => chatReply('gpt-4.1', 'ok', {}, { headers: { 'x-request-id': 'req_1', ...RATE, ...headers } }));
  const { client } = manage();
  const { response } = await client.chat.completions.create(BODY).withResponse();
  return response.headers;
}

describe('without the replyHeaders option (the default)', () => {
  const plain = useManagers({ ...NO_BACKOFF, providers: { one: { baseURL: ONE, keys: [fakeKey('one')] } } });

  test("a JSON reply carries the upstream's headers and none of keyplex's", async () => {
    provider(ONE, () => chatReply('gpt-4.1', 'ok', {}, { headers: { 'x-request-id': 'req_1', ...RATE } }));
    const { client } = plain();
    const { response } = await client.chat.completions.create(BODY).withResponse();
    const names = [...response.headers.keys()];
    expect(names.filter((name) => name.startsWith('x-keyplex-'))).toEqual([]);
    expect(response.headers.get('x-keyplex-request-id')).toBeNull();
    expect(Object.fromEntries(response.headers)).toMatchObject({ 'x-request-id': 'req_1', ...RATE });
    expect(names).not.toContain('content-length');
  });

  test("a streamed reply likewise; an upstream's own x-keyplex-* header passes as it is", async () => {
    provider(ONE, () => {
      const reply = sseReply(chatChunks('gpt-4.1', ['a', 'b'], true));
      reply.headers.set('x-keyplex-provider', 'upstream-said');
      return reply;
    });
    const { client } = plain();
    const { data, response } = await client.chat.completions.create({ ...BODY, stream: true }).withResponse();
    expect([...response.headers].filter(([name]) => name.startsWith('x-keyplex-'))).toEqual([['x-keyplex-provider', 'upstream-said']]);
    expect(response.headers.get('x-keyplex-attempts')).toBeNull();
    let text = '';
    for await (const chunk of data) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe('ab');
  });

  test('a failed request still names its request id (and keyplex\'s detail)', async () => {
    provider(ONE, () => HttpResponse.json({ error: { message: 'bad request' } }, { status: 400 }));
    const { client, manager } = plain();
    const requests = record(manager, 'request');
    const error = (await client.chat.completions.create(BODY).then(
      () => undefined,
      (e: unknown) => e,
    )) as APIError;
    expect(error).toBeInstanceOf(APIError);
    expect(error.headers?.get('x-keyplex-request-id')).toBe(requests[0]!.requestId);
    expect(error.headers?.get('x-keyplex-detail')).not.toBeNull();
  });

  test('replyHeaders must be a boolean', () => {
    expect(() => plain({ replyHeaders: 'yes' as unknown as boolean })).toThrow(/replyHeaders/);
  });
});

test("a JSON reply's headers iterate as Headers would: sorted, the upstream's framing headers left out, keyplex's four in their places", async () => {
  const headers = await replyHeaders({ 'content-encoding': 'identity', 'x-zeta': 'last' });
  const names = [...headers].map(([name]) => name);
  expect(names).toEqual([...names].sort());
  expect(names).toEqual(expect.arrayContaining(['content-type', 'x-keyplex-attempts', 'x-keyplex-key-id', 'x-keyplex-provider', 'x-keyplex-request-id', 'x-ratelimit-limit-requests', 'x-request-id', 'x-zeta']));
  expect(names).not.toContain('content-length');
  expect(names).not.toContain('content-encoding');
  expect(new Set(names).size).toBe(names.length);
  expect(Object.fromEntries(headers)).toMatchObject({ 'x-keyplex-provider': 'one', 'x-keyplex-attempts': '1', 'x-zeta': 'last', ...RATE });
});

test('an upstream header with one of keyplex\'s names is replaced by keyplex\'s, in get and in iteration alike', async () => {
  const headers = await replyHeaders({ 'x-keyplex-provider': 'spoofed', 'x-keyplex-attempts': '99' });
  expect(headers.get('x-keyplex-provider')).toBe('one');
  expect([...headers].filter(([name]) => name === 'x-keyplex-provider')).toEqual([['x-keyplex-provider', 'one']]);
  expect([...headers.values()]).not.toContain('spoofed');
  expect([...headers.keys()].filter((name) => name === 'x-keyplex-attempts')).toHaveLength(1);
});

test('get and has ignore case, answer null and false for the framing headers, and reject an invalid name as Headers does', async () => {
  const headers = await replyHeaders({});
  expect(headers.get('X-Keyplex-Provider')).toBe('one');
  expect(headers.has('X-REQUEST-ID')).toBe(true);
  expect(headers.get('Content-Type')).toContain('application/json');
  expect(headers.get('content-length')).toBeNull();
  expect(headers.has('Content-Length')).toBe(false);
  expect(headers.get('x-absent')).toBeNull();
  expect(() => headers.get('bad name')).toThrow(TypeError);
  expect(() => headers.has('x-keyplex-provider\n')).toThrow(TypeError);
});

test('the headers are a Headers: instanceof, forEach, copies through new Headers and new Response, and shown by inspection', async () => {
  const headers = await replyHeaders({});
  expect(headers).toBeInstanceOf(Headers);
  const seen: [string, string][] = [];
  headers.forEach((value, name, parent) => {
    expect(parent).toBe(headers);
    seen.push([name, value]);
  });
  expect(seen).toEqual([...headers]);
  expect([...new Headers(headers)]).toEqual(seen);
  expect([...new Response(null, { headers }).headers]).toEqual(seen);
  const { inspect } = await import('node:util');
  expect(inspect(headers)).toContain("'x-keyplex-provider': 'one'");
});

test('the headers can be changed: set, append and delete act on every entry, keyplex\'s included', async () => {
  const headers = await replyHeaders({});
  headers.set('x-keyplex-provider', 'mine');
  headers.append('x-added', 'a');
  headers.delete('x-request-id');
  expect(headers.get('x-keyplex-provider')).toBe('mine');
  expect(headers.get('x-added')).toBe('a');
  expect(headers.has('x-request-id')).toBe(false);
  expect(headers.get('x-keyplex-attempts')).toBe('1');
  expect(headers.get('x-ratelimit-remaining-requests')).toBe('9999');
  expect(Object.fromEntries(headers)).toMatchObject({ 'x-keyplex-provider': 'mine', 'x-added': 'a', 'x-keyplex-key-id': expect.any(String) });
});

test('several set-cookie headers stay apart, in iteration and in getSetCookie, before and after a change', async () => {
  provider(ONE, () => {
    const reply = chatReply('gpt-4.1', 'ok');
    const headers = new Headers(reply.headers);
    headers.append('set-cookie', 'a=1');
    headers.append('set-cookie', 'b=2');
    return new HttpResponse(reply.body, { headers });
  });
  const { client } = manage();
  const { response } = await client.chat.completions.create(BODY).withResponse();
  const headers = response.headers;
  expect(headers.getSetCookie()).toEqual(['a=1', 'b=2']);
  expect([...headers].filter(([name]) => name === 'set-cookie')).toEqual([['set-cookie', 'a=1'], ['set-cookie', 'b=2']]);
  headers.set('x-changed', '1');
  expect(headers.getSetCookie()).toEqual(['a=1', 'b=2']);
});

test("a streamed reply carries the same headers, and its clone keeps them", async () => {
  provider(ONE, () => {
    const reply = sseReply(chatChunks('gpt-4.1', ['a', 'b'], true));
    reply.headers.set('x-request-id', 'req_s');
    return reply;
  });
  const { client } = manage();
  const { data, response } = await client.chat.completions.create({ ...BODY, stream: true }).withResponse();
  expect(response.headers.get('x-keyplex-provider')).toBe('one');
  expect(response.headers.get('x-request-id')).toBe('req_s');
  const copy = response.clone();
  expect(copy.headers.get('x-keyplex-provider')).toBe('one');
  expect(copy.headers.get('content-type')).toContain('text/event-stream');
  let text = '';
  for await (const chunk of data) text += chunk.choices[0]?.delta.content ?? '';
  expect(text).toBe('ab');
  await copy.body?.cancel();
});

test("a binary reply's blob carries the upstream's content type", async () => {
  provider(ONE, () => new HttpResponse(new Uint8Array([1, 2, 3]), { headers: { 'content-type': 'audio/mpeg' } }));
  const { client } = manage();
  const speech = await client.audio.speech.create({ model: 'gpt-4o-mini-tts', voice: 'alloy', input: 'hi' });
  expect(speech.headers.get('content-type')).toBe('audio/mpeg');
  const blob = await speech.blob();
  expect(blob.type).toBe('audio/mpeg');
  expect([...new Uint8Array(await blob.arrayBuffer())]).toEqual([1, 2, 3]);
});

test('iterating again gives the same entries, as fresh pairs: a reader changing one changes nothing', async () => {
  const headers = await replyHeaders({ 'x-zeta': 'last' });
  const first = [...headers.entries()];
  const value = first[0]![1];
  first[0]![1] = 'changed by the reader';
  expect([...headers][0]).toEqual([first[0]![0], value]);
  expect([...headers]).toEqual([...new Headers(headers)]);
  expect([...headers.keys()]).toEqual(first.map(([name]) => name));
  expect([...headers.values()]).toEqual([...headers].map(([, v]) => v));
  const iterator = headers.entries();
  expect(iterator[Symbol.iterator]()).toBe(iterator);
});

test.each([
  ['without', false],
  ['with', true],
])("the first reader's pairs are its own too (manager.fetch, %s keyplex's headers): changing them changes no later listing", async (_, own) => {
  provider(ONE, () => chatReply('gpt-4.1', 'ok', {}, { headers: { 'x-request-id': 'req_1', ...RATE } }));
  const { manager } = manage({ replyHeaders: own });
  const response = await manager.fetch(`${ONE}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(BODY) });
  const first = [...response.headers];
  const expected = first.map(([name, value]) => [name, value]);
  for (const pair of first) pair[1] = 'changed by the reader';
  first.length = 0;
  expect([...response.headers]).toEqual(expected);
  expect([...response.headers.values()]).not.toContain('changed by the reader');
  expect(Object.fromEntries(expected)).toMatchObject({ 'x-request-id': 'req_1', ...RATE });
  await response.text();
});

/** A fetch answering a chat completion whose headers count how often they are iterated (the count in `reads`). */
function countingFetch(extra: Record<string, string> = {}): { fetch: typeof globalThis.fetch; reads: { count: number } } {
  const reads = { count: 0 };
  const fetch = (async () => {
    const response = chatReply('gpt-4.1', 'ok', {}, { headers: { 'x-request-id': 'req_1', ...RATE, ...extra } });
    const headers = response.headers;
    const iterate = headers[Symbol.iterator].bind(headers);
    const counted = () => (reads.count++, iterate());
    Object.assign(headers, { [Symbol.iterator]: counted, entries: counted, forEach: (...args: Parameters<Headers['forEach']>) => (reads.count++, Headers.prototype.forEach.apply(headers, args)) });
    return response;
  }) as typeof globalThis.fetch;
  return { fetch, reads };
}

test("the upstream's headers are read once, however often the SDK and the caller iterate the reply's", async () => {
  const { fetch, reads } = countingFetch();
  const { client } = manage({ fetch });
  const { response } = await client.chat.completions.create(BODY).withResponse();
  const entries = [...response.headers];
  expect(Object.fromEntries(entries)).toMatchObject({ 'x-request-id': 'req_1', 'x-keyplex-provider': 'one', ...RATE });
  expect([...response.headers]).toEqual(entries);
  expect(reads.count).toBe(1);
});

test("headers an afterResponse hook had are iterated afresh: what the SDK lists is what they hold then", async () => {
  const { fetch, reads } = countingFetch();
  const { client } = manage({ fetch, hooks: { afterResponse: ({ headers }) => void headers.set('x-from-hook', 'yes') } });
  const { response } = await client.chat.completions.create(BODY).withResponse();
  expect(Object.fromEntries(response.headers)).toMatchObject({ 'x-from-hook': 'yes', 'x-keyplex-provider': 'one' });
  expect(reads.count).toBeGreaterThan(1);
});
