/**
 * The provider simulator's msw transport, driven by the real `openai` SDK.
 */
import OpenAI from 'openai';
import { setupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { ProviderSimulator, type SimProviderOptions } from '../../src/testing';
import { simulatorHandlers } from '../../src/testing/msw';

const KEY = 'fake-sim-key-000000000001';
const T0 = 1_700_000_040_000;

const mswServer = setupServer();
beforeAll(() => mswServer.listen({ onUnhandledFrame: 'error' }));
afterEach(() => mswServer.resetHandlers());
afterAll(() => mswServer.close());

function simulator(provider: Partial<SimProviderOptions> = {}): ProviderSimulator {
  return new ProviderSimulator({
    now: () => T0,
    providers: [{ id: 'a', keys: [KEY], models: ['gpt-4.1', 'text-embedding-3-small'], ...provider }],
  });
}

/** A simulator served through msw, and an SDK client pointed at it. */
function viaMsw(provider: Partial<SimProviderOptions> = {}) {
  const sim = simulator(provider);
  mswServer.use(...simulatorHandlers(sim));
  return { sim, client: new OpenAI({ baseURL: sim.baseURL('a'), apiKey: KEY, maxRetries: 0 }) };
}

const messages = [{ role: 'user' as const, content: 'hello there' }];

describe('msw transport with the openai SDK', () => {
  test('a chat completion parses', async () => {
    const { client } = viaMsw();
    const reply = await client.chat.completions.create({ model: 'gpt-4.1', messages });
    expect(reply.object).toBe('chat.completion');
    expect(reply.choices[0]?.message.content?.split(' ')).toHaveLength(reply.usage?.completion_tokens ?? -1);
    expect(reply.usage?.prompt_tokens).toBe(3);
  });

  test('a chat stream with include_usage ends with a usage chunk', async () => {
    const { client } = viaMsw();
    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      usage = chunk.usage;
    }
    expect(usage?.completion_tokens).toBe(text.split(' ').length);
  });

  test('a chat stream without include_usage has no usage', async () => {
    const { client } = viaMsw();
    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages, stream: true });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.some((c) => c.usage)).toBe(false);
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe('stop');
  });

  test('a responses call parses, output_text included', async () => {
    const { client } = viaMsw();
    const reply = await client.responses.create({ model: 'gpt-4.1', input: 'hello' });
    expect(reply.status).toBe('completed');
    expect(reply.output_text.split(' ')).toHaveLength(reply.usage?.output_tokens ?? -1);
    expect(reply.usage?.input_tokens_details.cached_tokens).toBe(0);
  });

  test('a responses stream delivers deltas and usage on completion', async () => {
    const { client } = viaMsw();
    const stream = await client.responses.create({ model: 'gpt-4.1', input: 'hello', stream: true });
    let text = '';
    let outputTokens = -1;
    for await (const event of stream) {
      if (event.type === 'response.output_text.delta') text += event.delta;
      if (event.type === 'response.completed') outputTokens = event.response.usage?.output_tokens ?? -1;
    }
    expect(text.split(' ')).toHaveLength(outputTokens);
  });

  test("the SDK's responses.stream() helper accumulates the final response", async () => {
    const { client } = viaMsw();
    const final = await client.responses.stream({ model: 'gpt-4.1', input: 'hello' }).finalResponse();
    expect(final.output_text.length).toBeGreaterThan(0);
  });

  test('embeddings decode from the base64 the SDK asks for by default', async () => {
    const { client } = viaMsw();
    const asBase64 = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['one', 'two'] });
    const asFloats = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['one', 'two'], encoding_format: 'float' });
    expect(asBase64.data).toHaveLength(2);
    expect(Array.from(asBase64.data[1]!.embedding)).toEqual(asFloats.data[1]!.embedding);
    expect(asBase64.usage.prompt_tokens).toBe(2);
  });

  test('legacy completions and the model list parse', async () => {
    const { client } = viaMsw();
    const completion = await client.completions.create({ model: 'gpt-4.1', prompt: 'hi', max_tokens: 4 });
    expect(completion.usage?.completion_tokens).toBe(4);
    const models = [];
    for await (const model of client.models.list()) models.push(model.id);
    expect(models).toEqual(['gpt-4.1', 'text-embedding-3-small']);
  });

  test('a rate limit surfaces as the SDK RateLimitError with the retry headers', async () => {
    const { client } = viaMsw({ rpm: 1 });
    await client.chat.completions.create({ model: 'gpt-4.1', messages });
    const error = await client.chat.completions.create({ model: 'gpt-4.1', messages }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    expect((error as InstanceType<typeof OpenAI.RateLimitError>).headers.get('retry-after-ms')).toBe('60000');
    expect((error as InstanceType<typeof OpenAI.RateLimitError>).code).toBe('rate_limit_exceeded');
  });

  test('a revoked key surfaces as AuthenticationError', async () => {
    const { client } = viaMsw({ keys: [{ key: KEY, revoked: true }] });
    await expect(client.chat.completions.create({ model: 'gpt-4.1', messages })).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  test('a reset surfaces as APIConnectionError', async () => {
    const { client } = viaMsw({ faults: [{ kind: 'reset' }] });
    await expect(client.chat.completions.create({ model: 'gpt-4.1', messages })).rejects.toBeInstanceOf(OpenAI.APIConnectionError);
  });

  test('a hang surfaces as a timeout', async () => {
    const { client } = viaMsw({ faults: [{ kind: 'hang' }] });
    await expect(client.chat.completions.create({ model: 'gpt-4.1', messages }, { timeout: 50 })).rejects.toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
  });

  test('a stream_cut fails the stream after some chunks', async () => {
    const { client } = viaMsw({ faults: [{ kind: 'stream_cut' }] });
    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages, stream: true });
    let chunks = 0;
    await expect(
      (async () => {
        for await (const _ of stream) chunks++;
      })(),
    ).rejects.toThrow();
    expect(chunks).toBeGreaterThan(0);
  });

  test('a malformed body fails to parse', async () => {
    const { client } = viaMsw({ faults: [{ kind: 'malformed' }] });
    await expect(client.chat.completions.create({ model: 'gpt-4.1', messages })).rejects.toThrow();
  });

  test('an outage surfaces as InternalServerError with status 503', async () => {
    const { client } = viaMsw({ faults: [{ kind: 'outage' }] });
    await expect(client.chat.completions.create({ model: 'gpt-4.1', messages })).rejects.toMatchObject({ status: 503 });
  });

  test('simulatorHandlers(sim) serves every provider', async () => {
    const sim = new ProviderSimulator({
      providers: [
        { id: 'a', keys: [KEY], models: ['gpt-4.1'] },
        { id: 'b', keys: [KEY], models: ['gpt-4.1'], baseURL: 'https://api.b.test/v1/' },
      ],
    });
    mswServer.use(...simulatorHandlers(sim));
    const b = new OpenAI({ baseURL: sim.baseURL('b'), apiKey: KEY, maxRetries: 0 });
    await b.chat.completions.create({ model: 'gpt-4.1', messages });
    expect(sim.baseURL('b')).toBe('https://api.b.test/v1');
    expect(sim.tallies().b?.successes).toBe(1);
    expect(sim.tallies().a?.requests).toBe(0);
  });
});
