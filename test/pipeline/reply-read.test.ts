/**
 * The JSON reply read once (send.ts `jsonReply`, respond.ts `reply`):
 * the body parsed whole once (a body broken anywhere is retried); what the SDK and the raw Response show unchanged.
 * And `stats({ keys: false })`, the snapshot without per-key detail.
 */
import { HttpResponse } from 'msw';
import { expect, test } from 'vitest';
import { collected, settled } from '../support/memory';
import { NO_BACKOFF, useManagers } from '../support/scaffold';
import { fakeKey } from '../support/fake-keys';
import { chatReply, provider } from '../support/upstream';
import '../support/setup';

const ONE = 'https://one.test/v1';
const BODY = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hi' }] };
// replyHeaders: the tests read which provider answered, and after how many attempts, from the reply.
const manage = useManagers({ ...NO_BACKOFF, replyHeaders: true, providers: { one: { baseURL: ONE, keys: [fakeKey('one'), fakeKey('one')] } } });

test('usage after other members, nested look-alikes and braces in strings: counted as a full parse would', async () => {
  const body = {
    id: 'chatcmpl-1',
    object: 'chat.completion',
    model: 'gpt-4.1',
    choices: [{ index: 0, message: { role: 'assistant', content: 'a } "usage": {"total_tokens": 999} {', refusal: null }, finish_reason: 'stop', logprobs: null }],
    usage: { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 },
    service_tier: 'default',
    system_fingerprint: 'fp',
  };
  provider(ONE, () => HttpResponse.json(body, { headers: { 'x-request-id': 'req_1' } }));
  const { client, manager } = manage();
  const { data, response } = await client.chat.completions.create(BODY).withResponse();
  expect(data.choices[0]!.message.content).toBe(body.choices[0]!.message.content);
  expect((data as { _request_id?: string })._request_id).toBe('req_1');
  expect(response.headers.get('x-keyplex-provider')).toBe('one');
  expect(response.headers.get('x-keyplex-attempts')).toBe('1');
  expect(response.headers.get('content-length')).toBeNull();
  const totals = manager.stats().totals;
  expect(totals.tokens.inputTokens).toBe(7);
  expect(totals.tokens.outputTokens).toBe(3);
});

test('a reply whose usage is not a top-level last member is parsed whole (usage first, nested usage last)', async () => {
  const text = '{"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6},"id":"x","object":"chat.completion","model":"gpt-4.1","choices":[],"meta":{"usage":{"total_tokens":1}}}';
  provider(ONE, () => new Response(text, { headers: { 'content-type': 'application/json' } }));
  const { client, manager } = manage();
  await client.chat.completions.create(BODY);
  expect(manager.stats().totals.tokens.totalTokens).toBe(6);
});

test('a 200 whose body is not JSON fails the attempt (invalid_response) and the next key answers', async () => {
  let calls = 0;
  provider(ONE, () => (++calls === 1 ? new Response('{"id":"x","usage":{"total_tokens":1}', { headers: { 'content-type': 'application/json' } }) : chatReply('gpt-4.1', 'ok', { prompt: 1, completion: 1 })));
  const { client } = manage();
  const { data, response } = await client.chat.completions.create(BODY).withResponse();
  expect(data.choices[0]!.message.content).toBe('ok');
  expect(response.headers.get('x-keyplex-attempts')).toBe('2');
});

test('a large 200 broken only in its middle fails the attempt too (the whole body is checked) and the next key answers', async () => {
  const good = JSON.stringify({ id: 'x', object: 'chat.completion', model: 'gpt-4.1', choices: [{ index: 0, message: { role: 'assistant', content: 'z'.repeat(20_000) }, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } });
  const broken = good.slice(0, 5_000) + '"}, garbage' + good.slice(5_000);
  let calls = 0;
  provider(ONE, () => (++calls === 1 ? new Response(broken, { headers: { 'content-type': 'application/json' } }) : chatReply('gpt-4.1', 'ok', { prompt: 1, completion: 1 })));
  const { client } = manage();
  const { data, response } = await client.chat.completions.create(BODY).withResponse();
  expect(data.choices[0]!.message.content).toBe('ok');
  expect(response.headers.get('x-keyplex-attempts')).toBe('2');
});

test('the raw Response handed back can still be read as a stream or twice', async () => {
  provider(ONE, () => chatReply('gpt-4.1', 'ok'));
  const { manager } = manage();
  const first = await manager.fetch(`${ONE}/chat/completions`, { method: 'POST', body: JSON.stringify(BODY), headers: { 'content-type': 'application/json' } });
  expect(((await first.json()) as { model: string }).model).toBe('gpt-4.1');
  const second = await manager.fetch(`${ONE}/chat/completions`, { method: 'POST', body: JSON.stringify(BODY), headers: { 'content-type': 'application/json' } });
  const bytes = new Uint8Array(await second.arrayBuffer());
  expect(JSON.parse(new TextDecoder().decode(bytes))).toMatchObject({ model: 'gpt-4.1' });
});

test('stats({ keys: false }) gives the same snapshot without per-key detail', async () => {
  provider(ONE, () => chatReply('gpt-4.1', 'ok', { prompt: 2, completion: 1 }));
  const { client, manager } = manage();
  await client.chat.completions.create(BODY);
  const full = manager.stats();
  const cheap = manager.stats({ keys: false });
  expect(full.providers.one!.keys).toHaveLength(2);
  expect(cheap.providers.one!.keys).toEqual([]);
  expect({ ...cheap.providers.one, keys: full.providers.one!.keys }).toEqual(full.providers.one);
  expect(cheap.totals).toEqual(full.totals);
});

test('the reply read as text behaves as a Response body: one read, clone before it, a stream on demand', async () => {
  provider(ONE, () => chatReply('gpt-4.1', 'ok'));
  const { manager } = manage();
  const ask = () => manager.fetch(`${ONE}/chat/completions`, { method: 'POST', body: JSON.stringify(BODY), headers: { 'content-type': 'application/json' } });
  const once = await ask();
  const copy = once.clone();
  expect(once.bodyUsed).toBe(false);
  expect(JSON.parse(await once.text())).toMatchObject({ model: 'gpt-4.1' });
  expect(once.bodyUsed).toBe(true);
  await expect(once.text()).rejects.toThrow(TypeError);
  await expect(once.arrayBuffer()).rejects.toThrow(TypeError);
  expect(() => once.clone()).toThrow(TypeError);
  expect(((await copy.json()) as { model: string }).model).toBe('gpt-4.1');
  const streamed = await ask();
  const text = await new Response(streamed.body).text();
  expect(JSON.parse(text)).toMatchObject({ model: 'gpt-4.1' });
  expect(streamed.bodyUsed).toBe(true);
  expect((await (await ask()).blob()).type).toBe('application/json');
});

test('a reply the SDK keeps holds no copy of its bytes once its body is read, nor does keyplex', async () => {
  // Half a MiB: under the size the JSON check copies into WebAssembly memory (1 MiB), so that it reads them there.
  const HALF_MIB = 1 << 19;
  const small = await chatReply('gpt-4.1').text();
  const large = JSON.stringify({ ...JSON.parse(small), note: 'x'.repeat(HALF_MIB) });
  let reply = large;
  // The fake fetch answers in memory: its bytes are made per reply, as a network's are.
  const fetch = (async () => new Response(reply, { headers: { 'content-type': 'application/json' } })) as typeof globalThis.fetch;
  const { client } = manage({ fetch });
  // A large reply first (WebAssembly memory grows to hold it), then a small one: what follows is measured from there.
  await client.chat.completions.create(BODY);
  reply = small;
  await client.chat.completions.create(BODY);
  reply = large;
  const arrayBuffers = () => process.memoryUsage().arrayBuffers;
  const before = collected(arrayBuffers);
  const kept: unknown[] = [];
  for (let i = 0; i < 8; i++) kept.push((await client.chat.completions.create(BODY).withResponse()).response);
  // Eight replies of half a MiB kept: their bytes would be 4 MiB. None is held, not even the last one's (by the JSON check).
  expect((await settled(arrayBuffers, before + HALF_MIB / 2)) - before).toBeLessThan(HALF_MIB / 2);
  expect(kept).toHaveLength(8);
});

test("keyplex's own refusals and an upstream's failure read as Response bodies too: status, headers, a stream, a clone", async () => {
  provider(ONE, () => HttpResponse.json({ error: { message: 'bad input', type: 'invalid_request_error', code: null, param: null } }, { status: 400 }));
  const { manager } = manage({ lanes: { standard: { concurrency: 1, maxQueue: 0 } } });
  const ask = () => manager.fetch(`${ONE}/chat/completions`, { method: 'POST', body: JSON.stringify(BODY), headers: { 'content-type': 'application/json' } });
  const [upstream, refused] = await Promise.all([ask(), ask()]);
  expect(refused.status).toBe(429);
  expect(refused.headers.get('content-type')).toBe('application/json');
  expect(JSON.parse(decodeURIComponent(refused.headers.get('x-keyplex-detail')!))).toMatchObject({ code: 'lane_full' });
  const copy = refused.clone();
  expect(JSON.parse(await new Response(refused.body).text())).toMatchObject({ error: { code: 'lane_full', type: 'keyplex_error' } });
  expect(((await copy.json()) as { error: { code: string } }).error.code).toBe('lane_full');
  expect(upstream.status).toBe(400);
  expect(upstream.headers.get('x-keyplex-detail')).not.toBeNull();
  expect(((await upstream.json()) as { error: { message: string } }).error.message).toBe('bad input');
  await expect(upstream.text()).rejects.toThrow(TypeError);
});
