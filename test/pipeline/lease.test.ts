/**
 * The lease settles every attempt the same way, whatever the reply's shape:
 * JSON, binary (audio, file contents) or a stream. These pin what the six
 * hand-written copies in the old `#send` got differently.
 */
import { expect, test } from 'vitest';
import { fakeKey } from '../support/fake-keys';
import { askedUsage, chatChunks, chatReply, provider, sseReply } from '../support/upstream';
import '../support/setup';
import { NO_BACKOFF, useManagers } from '../support/scaffold';

const ONE = 'https://one.test/v1';
const manage = useManagers({ ...NO_BACKOFF, providers: { one: { baseURL: ONE, keys: [fakeKey('one')] } } });

const audio = () => new Response(new Uint8Array([0x49, 0x44, 0x33, 0x04, 0, 0, 0, 0]), { status: 200, headers: { 'content-type': 'audio/mpeg' } });

test('a binary reply (audio/mpeg) records its attempt latency on key, provider and deployment like a JSON one', async () => {
  provider(ONE, () => audio());
  const { client, manager } = manage();

  for (let i = 0; i < 2; i++) {
    const speech = await client.audio.speech.create({ model: 'gpt-4o-mini-tts', voice: 'alloy', input: 'hi' });
    expect((await speech.arrayBuffer()).byteLength).toBe(8);
  }

  const stats = manager.stats();
  const key = stats.providers.one!.keys[0]!;
  expect(key).toMatchObject({ successes: 2, inFlight: 0 });
  expect(key.latencyMs.count).toBe(2);
  expect(stats.providers.one!.latencyMs.count).toBe(2);
  expect(stats.deployments.find((d) => d.upstreamModel === 'gpt-4o-mini-tts')).toMatchObject({ successes: 2, inFlight: 0 });
  expect(stats.deployments.find((d) => d.upstreamModel === 'gpt-4o-mini-tts')!.latencyMs.count).toBe(2);
});

test('binary and JSON replies leave the same figures behind', async () => {
  provider(ONE, (call) => (call.path.startsWith('/audio') ? audio() : chatReply('gpt-4.1')));
  const { client, manager } = manage();

  await (await client.audio.speech.create({ model: 'gpt-4.1', voice: 'alloy', input: 'hi' })).arrayBuffer();
  await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] });

  const key = manager.stats().providers.one!.keys[0]!;
  expect(key).toMatchObject({ requests: 2, successes: 2, inFlight: 0 });
  expect(key.latencyMs.count).toBe(2);
  const deployment = manager.stats().deployments.find((d) => d.upstreamModel === 'gpt-4.1')!;
  expect(deployment).toMatchObject({ requests: 2, successes: 2, inFlight: 0 });
  expect(deployment.latencyMs.count).toBe(2);
});

test('a streamed reply records its attempt latency (to its last byte) on key, provider and deployment when it ends', async () => {
  provider(ONE, (call) => sseReply(chatChunks('gpt-4.1', ['a', 'b'], askedUsage(call))));
  const { client, manager } = manage();

  for (let i = 0; i < 2; i++) {
    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }], stream: true });
    for await (const _chunk of stream) void _chunk;
  }

  const stats = manager.stats();
  const key = stats.providers.one!.keys[0]!;
  expect(key).toMatchObject({ successes: 2, inFlight: 0 });
  expect(key.ttftMs.count).toBe(2);
  expect(key.latencyMs.count).toBe(2);
  expect(stats.providers.one!.latencyMs.count).toBe(2);
  expect(stats.deployments.find((d) => d.upstreamModel === 'gpt-4.1')!.latencyMs.count).toBe(2);
});

test('a `fetch` option that answers no Response is a connection failure saying so, and leaves no attempt counted in flight', async () => {
  const { client, manager } = manage({ fetch: (async () => undefined) as unknown as typeof globalThis.fetch });

  const error = await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);

  expect((error as Error).message).toContain('the `fetch` option answered undefined, not a Response');
  const stats = manager.stats();
  expect(stats.providers.one!.keys[0]).toMatchObject({ inFlight: 0 });
  expect(stats.deployments.every((d) => d.inFlight === 0)).toBe(true);
});

test('an attempt that fails inside keyplex (a reply whose headers cannot be read) leaves nothing counted in flight', async () => {
  // Passes for a Response (status, headers.get) but its headers do not iterate: keyplex's own reading of them throws.
  const odd = { status: 200, ok: true, statusText: 'OK', headers: { get: () => null }, body: null };
  const { client, manager } = manage({ fetch: (async () => odd) as unknown as typeof globalThis.fetch });

  for (let i = 0; i < 3; i++) await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] }).catch(() => undefined);

  const stats = manager.stats();
  expect(stats.providers.one!.keys[0]).toMatchObject({ inFlight: 0, status: 'active' });
  expect(stats.deployments.every((d) => d.inFlight === 0)).toBe(true);
});
