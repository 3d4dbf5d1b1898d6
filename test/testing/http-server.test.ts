/**
 * The provider simulator's loopback HTTP server, driven by `fetch` and the
 * real `openai` SDK. No msw here: it would intercept loopback fetches too.
 */
import OpenAI from 'openai';
import { afterEach, describe, expect, test } from 'vitest';
import { ProviderSimulator, type SimProviderOptions, type SimulatorServer } from '../../src/testing';
import { eventually } from '../support/time';

const KEY = 'fake-sim-key-000000000001';
const T0 = 1_700_000_040_000;

function simulator(provider: Partial<SimProviderOptions> = {}): ProviderSimulator {
  return new ProviderSimulator({
    now: () => T0,
    providers: [{ id: 'a', keys: [KEY], models: ['gpt-4.1', 'text-embedding-3-small'], ...provider }],
  });
}

const messages = [{ role: 'user' as const, content: 'hello there' }];

describe('loopback HTTP server', () => {
  const servers: SimulatorServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  async function viaHttp(provider: Partial<SimProviderOptions> = {}) {
    const sim = simulator(provider);
    const server = await sim.listen();
    servers.push(server);
    return { sim, server, client: new OpenAI({ baseURL: server.baseURL('a'), apiKey: KEY, maxRetries: 0 }) };
  }

  function post(server: SimulatorServer, body: unknown, init: RequestInit = {}): Promise<Response> {
    return fetch(`${server.baseURL('a')}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      ...init,
    });
  }

  test('listens on 127.0.0.1 and serves a provider under /<id>/v1', async () => {
    const { server } = await viaHttp({ rpm: 5 });
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(server.baseURL('a')).toBe(`${server.url}/a/v1`);
    const res = await post(server, { model: 'gpt-4.1', messages });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-ratelimit-remaining-requests')).toBe('4');
    expect(((await res.json()) as { object: string }).object).toBe('chat.completion');
  });

  test('the SDK streams a chat completion over the socket', async () => {
    const { client } = await viaHttp();
    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages, stream: true, stream_options: { include_usage: true } });
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) usage = chunk.usage ?? usage;
    expect(usage?.prompt_tokens).toBe(3);
  });

  test('the SDK parses a chat completion', async () => {
    const { client } = await viaHttp();
    const reply = await client.chat.completions.create({ model: 'gpt-4.1', messages });
    expect(reply.choices[0]?.message.content?.split(' ')).toHaveLength(reply.usage?.completion_tokens ?? -1);
  });

  test('the SDK streams a chat completion without usage when not asked', async () => {
    const { client } = await viaHttp();
    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages, stream: true });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.length).toBeGreaterThan(2);
    expect(chunks.some((c) => c.usage)).toBe(false);
  });

  test('the SDK parses a responses call', async () => {
    const { client } = await viaHttp();
    const reply = await client.responses.create({ model: 'gpt-4.1', input: 'hello' });
    expect(reply.output_text.split(' ')).toHaveLength(reply.usage?.output_tokens ?? -1);
  });

  test('the SDK streams a responses call', async () => {
    const { client } = await viaHttp();
    const stream = await client.responses.create({ model: 'gpt-4.1', input: 'hello', stream: true });
    const types = new Set<string>();
    for await (const event of stream) types.add(event.type);
    expect(types).toContain('response.output_text.delta');
    expect(types).toContain('response.completed');
  });

  test('the SDK decodes embeddings', async () => {
    const { client } = await viaHttp();
    const reply = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'hello' });
    expect(reply.data[0]?.embedding).toHaveLength(8);
  });

  test('an unknown provider path answers 404', async () => {
    const { server } = await viaHttp();
    const res = await fetch(`${server.url}/zzz/v1/models`);
    expect(res.status).toBe(404);
  });

  test('a reset destroys the socket', async () => {
    const { server } = await viaHttp({ faults: [{ kind: 'reset' }] });
    await expect(post(server, { model: 'gpt-4.1', messages })).rejects.toThrow(TypeError);
  });

  test('a stream_cut destroys the socket mid-body', async () => {
    const { server } = await viaHttp({ faults: [{ kind: 'stream_cut' }] });
    const res = await post(server, { model: 'gpt-4.1', messages, stream: true });
    expect(res.status).toBe(200);
    await expect(res.text()).rejects.toThrow();
  });

  test('a hang holds the request until the client gives up', async () => {
    const { server } = await viaHttp({ faults: [{ kind: 'hang' }] });
    await expect(post(server, { model: 'gpt-4.1', messages }, { signal: AbortSignal.timeout(50) })).rejects.toMatchObject({ name: 'TimeoutError' });
  });

  test('close() ends hung connections', async () => {
    const { sim, server } = await viaHttp({ faults: [{ kind: 'hang' }] });
    const pending = post(server, { model: 'gpt-4.1', messages });
    pending.catch(() => undefined);
    // Once the simulator holds it (however long that takes on a loaded machine), not after a fixed pause.
    await eventually(() => sim.tallies().a?.requests === 1, 'the request reached the simulator');
    await server.close();
    await expect(pending).rejects.toThrow(TypeError);
  });

  test('a client that goes away aborts the latency wait', async () => {
    const { sim, server } = await viaHttp({ latency: { medianMs: 10_000, p99Ms: 10_000 } });
    const handle = sim.handle.bind(sim);
    let answer: Promise<unknown> | undefined;
    sim.handle = (id, request) => {
      const pending = handle(id, request);
      answer = pending;
      return pending;
    };
    // The client gives up once the simulator is waiting out the latency (not after a fixed 30 ms, which a loaded machine can spend before the request arrives).
    const controller = new AbortController();
    const request = post(server, { model: 'gpt-4.1', messages }, { signal: controller.signal });
    request.catch(() => undefined);
    await eventually(() => answer !== undefined, 'the simulator holds the request');
    controller.abort();
    await expect(request).rejects.toMatchObject({ name: 'AbortError' });
    await expect(answer).rejects.toMatchObject({ name: 'AbortError' });
    expect(sim.tallies().a?.successes).toBe(0);
  });

  test('listen() rejects a bad port', async () => {
    await expect(simulator().listen(-1)).rejects.toThrow(RangeError);
  });
});
