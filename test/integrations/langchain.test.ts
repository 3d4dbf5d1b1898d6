/**
 * keyplex under LangChain.js: `@langchain/openai`'s `ChatOpenAI` (chat
 * completions, and the Responses API when asked for), with `manager.fetch`
 * as the client's `fetch`, against the provider simulator.
 */
import { ChatOpenAI, OpenAIEmbeddings } from '@langchain/openai';
import type { AIMessageChunk } from '@langchain/core/messages';
import { describe, expect, test } from 'vitest';
import { getKeyplexDetails, KEYPLEX_BASE_URL, keyplex, type KeyManager } from '../../src/index';
import { EMBEDDING_MODEL, expectRateLimitMovedOn, expectRetriedByKeyplexOnly, MODEL, simulated, simulatedWithLimitedKey, useSimulator } from './simulated';

useSimulator();

/** A ChatOpenAI whose every call goes through `manager`, its own retries off. */
function chat(manager: KeyManager, useResponsesApi: boolean, headers?: Record<string, string>): ChatOpenAI {
  return new ChatOpenAI({
    model: MODEL,
    apiKey: 'managed-by-keyplex',
    maxRetries: 0,
    useResponsesApi,
    configuration: { fetch: manager.fetch, baseURL: KEYPLEX_BASE_URL, defaultHeaders: headers },
  });
}

/** The text of a message's content. */
function textOf(message: AIMessageChunk): string {
  return typeof message.content === 'string' ? message.content : message.content.map((part) => ('text' in part ? part.text : '')).join('');
}

/** Every chunk of a stream, concatenated into one message. */
async function streamed(model: ChatOpenAI, input: string, options?: Parameters<ChatOpenAI['stream']>[1]): Promise<AIMessageChunk> {
  let whole: AIMessageChunk | undefined;
  for await (const chunk of await model.stream(input, options)) whole = whole === undefined ? chunk : whole.concat(chunk);
  if (whole === undefined) throw new Error('the stream had no chunk');
  return whole;
}

const prompt = 'Write a haiku about rate limits.';

const variants = [
  { name: 'chat completions', useResponsesApi: false, path: '/chat/completions' },
  { name: 'Responses API', useResponsesApi: true, path: '/responses' },
];

describe.each(variants)('ChatOpenAI, $name', ({ useResponsesApi, path }) => {
  test('invoke: the reply comes back, and a success event carries the same usage and a cost', async () => {
    const { manager, events, sim, secrets } = simulated();

    const reply = await chat(manager, useResponsesApi).invoke(prompt);

    const text = textOf(reply);
    expect(text.length).toBeGreaterThan(0);
    expect(events.request.map((e) => e.path)).toEqual([path]);
    expect(events.success).toHaveLength(1);
    const success = events.success[0]!;
    expect(success).toMatchObject({ provider: 'sim', model: MODEL, attempts: 1, stream: false });
    expect(success.usage).toMatchObject({ inputTokens: reply.usage_metadata?.input_tokens, outputTokens: reply.usage_metadata?.output_tokens });
    expect(reply.usage_metadata?.output_tokens).toBe(text.split(' ').length);
    expect(success.costUsd).toBeGreaterThan(0);
    expect(secrets).toEqual(expect.arrayContaining(sim.tallies().sim!.credentialsSeen));
  });

  test('stream: the text streams, and usage arrives both in the app and in the success event', async () => {
    const { manager, events } = simulated();

    const whole = await streamed(chat(manager, useResponsesApi), prompt);

    const text = textOf(whole);
    expect(text.split(' ').length).toBe(whole.usage_metadata?.output_tokens);
    expect(whole.usage_metadata?.input_tokens).toBeGreaterThan(0);
    expect(events.success).toHaveLength(1);
    const success = events.success[0]!;
    expect(success).toMatchObject({ provider: 'sim', model: MODEL, attempts: 1, stream: true });
    expect(success.usage).toMatchObject({ inputTokens: whole.usage_metadata?.input_tokens, outputTokens: whole.usage_metadata?.output_tokens });
    expect(success.costUsd).toBeGreaterThan(0);
  });

  test('keys rotate: three calls use the three keys', async () => {
    const { manager, tallies } = simulated();
    const model = chat(manager, useResponsesApi);

    await model.invoke(prompt);
    await model.invoke(prompt);
    await streamed(model, prompt);
    await model.invoke(prompt);

    expect(tallies().map((t) => t.successes)).toEqual([2, 1, 1]);
  });

  test('a 429 on one key: the call moves to another key and the app sees success', async () => {
    const setup = await simulatedWithLimitedKey();
    const { manager } = setup;
    const model = chat(manager, useResponsesApi);

    const invoked = await model.invoke(prompt);
    const whole = await streamed(model, prompt);

    expect(textOf(invoked).length).toBeGreaterThan(0);
    expect(textOf(whole).length).toBeGreaterThan(0);
    expectRateLimitMovedOn(setup);
  });

  test('keyplex options for every call of a model: the client default headers', async () => {
    const { manager, events } = simulated();
    const model = chat(manager, useResponsesApi, keyplex.options({ tags: ['batch-job'], lane: 'batch' }).headers);

    await model.invoke(prompt);
    await streamed(model, prompt);

    expect(events.success.map((e) => e.tags)).toEqual([['batch-job'], ['batch-job']]);
  });

  test('keyplex options for one invoke: `options` of the call', async () => {
    const { manager, events } = simulated();

    await chat(manager, useResponsesApi).invoke(prompt, { options: keyplex.options({ tags: ['one-call'], deadlineMs: 30_000 }) });

    expect(events.success.map((e) => e.tags)).toEqual([['one-call']]);
  });

  test('when every attempt fails: one LangChain call, keyplex retried it, and getKeyplexDetails() reads the error', async () => {
    const setup = simulated({ faults: [{ kind: 'server_error' }] });
    const { manager, events } = setup;

    const error: unknown = await chat(manager, useResponsesApi).invoke(prompt).catch((e: unknown) => e);

    expect(error).toMatchObject({ status: 500 });
    expect(getKeyplexDetails(error)).toMatchObject({ code: 'upstream_error', status: 500 });
    // maxRetries: 0 — LangChain sent the call once; keyplex made its attempts (on several keys).
    expectRetriedByKeyplexOnly(setup);
  });
});

describe('OpenAIEmbeddings', () => {
  test('embedDocuments goes through keyplex too: keys rotate, usage and cost in the success events', async () => {
    const { manager, events, tallies } = simulated();
    const embeddings = new OpenAIEmbeddings({
      model: EMBEDDING_MODEL,
      apiKey: 'managed-by-keyplex',
      maxRetries: 0,
      configuration: { fetch: manager.fetch, baseURL: KEYPLEX_BASE_URL },
    });

    const vectors = await embeddings.embedDocuments(['one', 'two', 'three']);
    await embeddings.embedQuery('four');

    expect(vectors).toHaveLength(3);
    expect(events.success).toHaveLength(2);
    expect(events.success.every((e) => (e.usage?.inputTokens ?? 0) > 0 && (e.costUsd ?? 0) > 0)).toBe(true);
    expect(tallies().filter((t) => t.successes > 0)).toHaveLength(2);
  });
});
