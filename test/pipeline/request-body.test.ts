/**
 * The body keyplex sends: the caller's own text when nothing changes, and a
 * streamed request that did not ask for usage gets `stream_options.include_usage`
 * spliced into that text (not re-serialised), on every attempt alike.
 */
import OpenAI from 'openai';
import { expect, test } from 'vitest';
import { keyplex } from '../../src/index';
import { collected, settled } from '../support/memory';
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

test('a request waiting on its upstream holds no parsed copy of its body: a 1 MiB prompt is held once (the SDK\'s text), not twice', async () => {
  const held: (() => void)[] = [];
  const fetch = (() => new Promise<Response>((resolve) => held.push(() => resolve(chatReply('gpt-4.1'))))) as typeof globalThis.fetch;
  // coldStart 'open': every request goes out at once (no probe holding the key's others).
  const { client } = useManagers({ ...NO_BACKOFF, providers: { one: { baseURL: ONE, keys: KEYS } } })({ fetch, rateLimiting: { coldStart: 'open' } });
  const MIB = 1 << 20;
  const COUNT = 12;
  const heapUsed = () => process.memoryUsage().heapUsed;
  const before = collected(heapUsed);
  const calls = Array.from({ length: COUNT }, (_, i) => client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: String(i).padEnd(MIB, 'x') }] }));
  while (held.length < COUNT) await new Promise((resolve) => setImmediate(resolve));
  const perRequest = ((await settled(heapUsed, before + 2.5 * MIB * COUNT)) - before) / COUNT;
  for (const release of held) release();
  await Promise.all(calls);
  // Each prompt and the SDK's text of its body: 2 MiB a request. A parsed copy kept while waiting would add a third.
  expect(perRequest).toBeGreaterThan(1.5 * MIB);
  expect(perRequest).toBeLessThan(2.5 * MIB);
});

test("a retry on another provider, under its own name for the model, sends the caller's body with that name and nothing else changed", async () => {
  const TWO = 'https://two.test/v1';
  let calls = 0;
  const answer = (model: string) => () => (calls++ === 0 ? errorReply(500, 'server_error') : chatReply(model));
  provider(ONE, answer('gpt-4.1-one'));
  provider(TWO, answer('gpt-4.1-two'));
  const bodies: string[] = [];
  const fetch = ((url: string, init: RequestInit) => {
    bodies.push(init.body as string);
    return globalThis.fetch(url, init);
  }) as typeof globalThis.fetch;
  const { client } = useManagers({ ...NO_BACKOFF })({
    fetch,
    providers: {
      one: { baseURL: ONE, keys: [KEYS[0]!], models: { 'gpt-4.1': 'gpt-4.1-one' } },
      two: { baseURL: TWO, keys: [KEYS[1]!], models: { 'gpt-4.1': 'gpt-4.1-two' } },
    },
  });

  await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, max_tokens: 7 });

  const sent = JSON.parse(JSON.stringify({ model: 'gpt-4.1', messages: ask, max_tokens: 7 })) as Record<string, unknown>;
  expect(bodies.map((b) => JSON.parse(b) as Record<string, unknown>).map(({ model, ...rest }) => [model, rest])).toEqual(
    expect.arrayContaining([
      ['gpt-4.1-one', { messages: sent.messages, max_tokens: 7 }],
      ['gpt-4.1-two', { messages: sent.messages, max_tokens: 7 }],
    ]),
  );
  expect(bodies).toHaveLength(2);
});

test('hop-by-hop headers the caller gives (which fetch refuses to send) are dropped, not sent as a connection failure on every key', async () => {
  const seen = provider(ONE, () => chatReply('gpt-4.1', 'fine'));
  const { client, manager } = recording();

  const reply = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask }, { headers: { 'Keep-Alive': 'timeout=5', Expect: '100-continue', 'x-kept': '1' } });

  expect(reply.choices[0]!.message.content).toBe('fine');
  expect(seen).toHaveLength(1);
  expect(seen[0]!.headers.get('x-kept')).toBe('1');
  expect(seen[0]!.headers.has('keep-alive')).toBe(false);
  expect(manager.stats().providers.one!.keys.map((k) => k.failures)).toEqual([{}, {}]);
});

test("every header the SDK sets reaches the upstream once, its value unchanged, on each attempt; the key's, organization, project and keyplex's options never", async () => {
  provider(ONE, (_call, i) => (i === 0 ? errorReply(500, 'server_error') : chatReply('gpt-4.1')));
  const sent: Record<string, string>[] = [];
  const fetch = ((url: string, init: RequestInit) => {
    sent.push(init.headers as Record<string, string>);
    return globalThis.fetch(url, init);
  }) as typeof globalThis.fetch;
  const { manager } = useManagers({ ...NO_BACKOFF, providers: { one: { baseURL: ONE, keys: KEYS } } })({ fetch });
  const made = { apiKey: 'managed-by-keyplex', organization: 'org-sdk', project: 'proj-sdk', defaultHeaders: { 'X-Team': 'search', 'Api-Key': 'dropped' } };
  const call = { model: 'gpt-4.1', messages: ask };
  const given = keyplex.options({ tags: ['t'] }, { headers: { 'X-Trace': 'abc, def' } });
  // What the SDK hands its fetch for this call, read from a plain client's.
  let sdk: Headers | undefined;
  const plain = new OpenAI({ ...made, maxRetries: 0, fetch: (async (_url: string, init: RequestInit) => ((sdk = init.headers as Headers), chatReply('gpt-4.1'))) as typeof globalThis.fetch });
  await plain.chat.completions.create(call, given);

  await manager.wrap(new OpenAI(made)).chat.completions.create(call, given);

  const dropped = ['authorization', 'api-key', 'openai-organization', 'openai-project', 'x-keyplex-options'];
  const expected = Object.fromEntries([...sdk!].filter(([name]) => !dropped.includes(name)));
  expect(expected).toMatchObject({ 'x-team': 'search', 'x-trace': 'abc, def', 'user-agent': expect.any(String) });
  expect(sent).toHaveLength(2);
  for (const { authorization, ...rest } of sent) {
    expect(rest).toEqual(expected);
    expect(KEYS.map((key) => `Bearer ${key}`)).toContain(authorization);
  }
});

test('a `Request` given to `manager.fetch` is routed by the model in its JSON body, and retried like the same call made with (url, init)', async () => {
  const TWO = 'https://two.test/v1';
  const one = provider(ONE, () => chatReply('gpt-4.1'));
  const two = provider(TWO, (_, i) => (i === 0 ? errorReply(500, 'server_error') : chatReply('claude-sonnet-4.5')));
  const { manager } = useManagers({ ...NO_BACKOFF })({
    providers: {
      one: { baseURL: ONE, keys: [KEYS[0]!], models: ['gpt-4.1'] },
      two: { baseURL: TWO, keys: [KEYS[1]!, fakeKey('two')], models: ['claude-sonnet-4.5'] },
    },
  });
  const text = JSON.stringify({ model: 'claude-sonnet-4.5', messages: ask });

  const response = await manager.fetch(new Request('https://keyplex.invalid/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: text }));

  expect(response.status).toBe(200);
  expect(one).toHaveLength(0);
  expect(two.map((call) => call.body)).toEqual([JSON.parse(text), JSON.parse(text)]);
});
