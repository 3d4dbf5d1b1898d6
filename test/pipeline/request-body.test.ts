/**
 * The body keyplex sends: the caller's own text when nothing changes, and a
 * streamed request that did not ask for usage gets `stream_options.include_usage`
 * spliced into that text (not re-serialised), on every attempt alike.
 */
import { expect, test } from 'vitest';
import { NO_BACKOFF, useManagers } from '../support/scaffold';
import { fakeKey } from '../support/fake-keys';
import { askedUsage, chatChunks, chatReply, errorReply, provider, sseReply } from '../support/upstream';
import '../support/setup';

const ONE = 'https://one.test/v1';
const KEYS = [fakeKey('one'), fakeKey('one')];
const ask = [{ role: 'user' as const, content: 'say "hi"\n' }];

/** A manager whose fetch records each body it sends. */
function recording() {
  const bodies: unknown[] = [];
  const fetch = ((url: string, init: RequestInit) => {
    bodies.push(init.body);
    return globalThis.fetch(url, init);
  }) as typeof globalThis.fetch;
  return { bodies, ...useManagers({ ...NO_BACKOFF, providers: { one: { baseURL: ONE, keys: KEYS } } })({ fetch }) };
}

test("a streamed request is sent as the caller's text with the usage member added, on each attempt", async () => {
  const seen = provider(ONE, (call, i) => (i === 0 ? errorReply(500, 'server_error') : sseReply(chatChunks('gpt-4.1', ['a', 'b'], askedUsage(call)))));
  const { client, bodies } = recording();

  const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
  for await (const _ of stream);

  const sdkText = JSON.stringify({ model: 'gpt-4.1', messages: ask, stream: true });
  const expected = `${sdkText.slice(0, -1)},"stream_options":{"include_usage":true}}`;
  expect(bodies).toEqual([expected, expected]);
  expect(seen.map((c) => c.body?.stream_options)).toEqual([{ include_usage: true }, { include_usage: true }]);
});

test("a JSON request is sent as the caller's text", async () => {
  provider(ONE, () => chatReply('gpt-4.1'));
  const { client, bodies } = recording();

  await client.chat.completions.create({ model: 'gpt-4.1', messages: ask });

  expect(bodies).toEqual([JSON.stringify({ model: 'gpt-4.1', messages: ask })]);
});

test('a hand-written streamed body keeps its spacing and escapes: only the usage member is added', async () => {
  provider(ONE, (call) => sseReply(chatChunks('gpt-4.1', ['a'], askedUsage(call))));
  const { manager, bodies } = recording();
  const text = '{ "model": "gpt-4.1", "messages": [{ "role": "user", "content": "caf\\u00e9" }], "stream": true }\n';

  const response = await manager.fetch('https://keyplex.invalid/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: text });
  await response.text();

  expect(bodies).toEqual(['{ "model": "gpt-4.1", "messages": [{ "role": "user", "content": "caf\\u00e9" }], "stream": true ,"stream_options":{"include_usage":true}}\n']);
});
