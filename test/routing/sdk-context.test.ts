/**
 * Context-window fit end to end: deployments whose `contextWindow` cannot
 * hold a request are skipped before sending, driven through the real `openai`
 * SDK wrapped by `manager.wrap()`, against msw stand-ins of the providers.
 */
import OpenAI from 'openai';
import { describe, expect, test } from 'vitest';
import { getKeyplexDetails, type KeyManagerOptions } from '../../src/index';
import { fakeKey } from '../support/fake-keys';
import { chatReply, errorReply, provider, type UpstreamCall } from '../support/upstream';
import '../support/setup';
import { record } from '../support/events';
import { useManagers } from '../support/scaffold';

const SMALL = 'https://api.small.test/v1';
const LARGE = 'https://api.large.test/v1';
const CHAT = 'chat';

const manage = useManagers();

const models = (recorded: readonly UpstreamCall[]): unknown[] => recorded.map((call) => call.body?.model);
/** A chat request of about `tokens` estimated input tokens (4 characters a token). */
const sized = (model: string, tokens: number, extra: Partial<OpenAI.ChatCompletionCreateParamsNonStreaming> = {}) => ({
  model,
  messages: [{ role: 'user' as const, content: 'x'.repeat(tokens * 4) }],
  ...extra,
});

describe('context window', () => {
  /** `chat` on small (window 1,000 tokens, configured first) and large (window 128,000). */
  function windowSetup(options: { large?: boolean } = {}) {
    const seenSmall = provider(SMALL, () => chatReply('chat-small'));
    const seenLarge = provider(LARGE, () => chatReply('chat-large'));
    const providers: KeyManagerOptions['providers'] = {
      small: { baseURL: SMALL, keys: [fakeKey('small')], models: { [CHAT]: { upstream: 'chat-small', contextWindow: 1000 } } },
    };
    if (options.large !== false) {
      providers.large = { baseURL: LARGE, keys: [fakeKey('large')], models: { [CHAT]: { upstream: 'chat-large', contextWindow: 128_000 } } };
    }
    const { manager, client } = manage({ providers });
    return { seenSmall, seenLarge, manager, client };
  }

  test('skips a deployment whose window cannot hold a request of about 3,000 tokens', async () => {
    const { seenSmall, seenLarge, client } = windowSetup();

    const reply = await client.chat.completions.create(sized(CHAT, 3000));

    expect(reply.model).toBe('chat-large');
    expect([seenSmall.length, seenLarge.length]).toEqual([0, 1]);
  });

  test('uses the small-window deployment (first in order) for a small request', async () => {
    const { seenSmall, seenLarge, client } = windowSetup();

    await client.chat.completions.create(sized(CHAT, 100));

    expect([seenSmall.length, seenLarge.length]).toEqual([1, 0]);
    expect(models(seenSmall)).toEqual(['chat-small']);
  });

  test("counts the request's output allowance (max_tokens) against the window", async () => {
    const { seenSmall, seenLarge, client } = windowSetup();

    // 600 prompt tokens fit 1,000 alone; with max_tokens 500 they do not.
    await client.chat.completions.create(sized(CHAT, 600, { max_tokens: 300 }));
    await client.chat.completions.create(sized(CHAT, 600, { max_tokens: 500 }));

    expect([seenSmall.length, seenLarge.length]).toEqual([1, 1]);
  });

  test('ranks the first deployment that fits first in the attempt event', async () => {
    const { manager, client } = windowSetup();
    const attempts = record(manager, 'attempt');

    await client.chat.completions.create(sized(CHAT, 3000));

    expect(attempts.map((e) => [e.provider, e.rank])).toEqual([['large', 1]]);
  });

  test('treats a deployment without a configured window as fitting any request', async () => {
    const seen = provider(LARGE, () => chatReply('chat-any'));
    const { client } = manage({ providers: { any: { baseURL: LARGE, keys: [fakeKey('any')], models: { [CHAT]: 'chat-any' } } } });

    await client.chat.completions.create(sized(CHAT, 50_000));

    expect(seen).toHaveLength(1);
  });

  test('raises BadRequestError with code context_length_exceeded when no deployment fits, sending nothing', async () => {
    const { seenSmall, client } = windowSetup({ large: false });

    const error = await client.chat.completions.create(sized(CHAT, 3000)).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as { status?: number }).status).toBe(400);
    expect(getKeyplexDetails(error)?.code).toBe('context_length_exceeded');
    expect(seenSmall).toHaveLength(0);
  });

  test('reports the context_length_exceeded failure in the failure event', async () => {
    const { manager, client } = windowSetup({ large: false });
    const failures = record(manager, 'failure');

    await client.chat.completions.create(sized(CHAT, 3000)).catch(() => undefined);

    expect(failures.map((f) => [f.model, f.attempts, f.error.code])).toEqual([[CHAT, 0, 'context_length_exceeded']]);
  });

  test("falls back along the model's fallbacks when none of its deployments fits", async () => {
    const seenSmall = provider(SMALL, () => chatReply('gpt-4.1-mini'));
    const seenLarge = provider(LARGE, () => chatReply('gpt-4.1'));
    const { client } = manage({
      providers: {
        small: { baseURL: SMALL, keys: [fakeKey('small')], models: { 'gpt-4.1-mini': { contextWindow: 1000 } } },
        large: { baseURL: LARGE, keys: [fakeKey('large')], models: { 'gpt-4.1': { contextWindow: 1_047_576 } } },
      },
      routing: { fallbacks: { 'gpt-4.1-mini': ['gpt-4.1'] } },
    });

    const reply = await client.chat.completions.create(sized('gpt-4.1-mini', 3000));

    expect(reply.model).toBe('gpt-4.1');
    expect([seenSmall.length, seenLarge.length]).toEqual([0, 1]);
  });
});

describe('context fallbacks', () => {
  /** gpt-4.1-mini on small (window 1,000), gpt-4.1 on large; `contextFallbacks: { 'gpt-4.1-mini': 'gpt-4.1' }`. */
  function contextFallbackSetup(smallWindow: number | undefined) {
    const small = { reply: () => chatReply('gpt-4.1-mini') as Response };
    const seenSmall = provider(SMALL, () => small.reply());
    const seenLarge = provider(LARGE, () => chatReply('gpt-4.1'));
    const { manager, client } = manage({
      providers: {
        small: { baseURL: SMALL, keys: [fakeKey('small')], models: { 'gpt-4.1-mini': smallWindow === undefined ? {} : { contextWindow: smallWindow } } },
        large: { baseURL: LARGE, keys: [fakeKey('large')], models: ['gpt-4.1'] },
      },
      routing: { contextFallbacks: { 'gpt-4.1-mini': 'gpt-4.1' } },
    });
    return { small, seenSmall, seenLarge, manager, client };
  }

  test('serves a request too long for every deployment of the model with its context fallback', async () => {
    const { seenSmall, seenLarge, client } = contextFallbackSetup(1000);

    const reply = await client.chat.completions.create(sized('gpt-4.1-mini', 3000));

    expect(reply.model).toBe('gpt-4.1');
    expect([seenSmall.length, seenLarge.length]).toEqual([0, 1]);
  });

  test('retries with the context fallback when the upstream answers context_length_exceeded', async () => {
    const { small, seenSmall, seenLarge, client } = contextFallbackSetup(undefined);
    small.reply = () => errorReply(400, 'context_length_exceeded', {}, "This model's maximum context length is 1000 tokens.");

    const reply = await client.chat.completions.create(sized('gpt-4.1-mini', 3000));

    expect(reply.model).toBe('gpt-4.1');
    expect([seenSmall.length, seenLarge.length]).toEqual([1, 1]);
  });

  test.each([
    ['Gemini', { error: { code: 400, message: 'The input token count (3012) exceeds the maximum number of tokens allowed (1000).', status: 'INVALID_ARGUMENT' } }],
    ['Gemini, as a one-item list', [{ error: { code: 400, message: 'The input token count (3012) exceeds the maximum number of tokens allowed (1000).', status: 'INVALID_ARGUMENT' } }]],
    ['Anthropic', { type: 'error', error: { type: 'invalid_request_error', message: 'prompt is too long: 3012 tokens > 1000 maximum' } }],
    ['DeepSeek', { error: { message: "This model's maximum context length is 1000 tokens. However, you requested 3012 tokens (3012 in the messages, 0 in the completion). Please reduce the length of the messages or completion.", type: 'invalid_request_error', param: null, code: 'invalid_request_error' } }],
    ['Mistral', { object: 'error', message: 'Prompt contains 3012 tokens and 0 draft tokens, too large for model with 1000 maximum context length', type: 'invalid_request_error', code: 3051 }],
    ['xAI', { code: 'Client specified an invalid argument', error: "This model's maximum prompt length is 1000 but the request contains 3012 tokens." }],
  ])('retries with the context fallback when the upstream says the prompt is too long without the code (%s)', async (_provider, body) => {
    const { small, seenSmall, seenLarge, client } = contextFallbackSetup(undefined);
    small.reply = () => Response.json(body, { status: 400 });

    const reply = await client.chat.completions.create(sized('gpt-4.1-mini', 3000));

    expect(reply.model).toBe('gpt-4.1');
    expect([seenSmall.length, seenLarge.length]).toEqual([1, 1]);
  });

  test('does not use the context fallback for a request that fits', async () => {
    const { seenSmall, seenLarge, client } = contextFallbackSetup(1000);

    await client.chat.completions.create(sized('gpt-4.1-mini', 100));

    expect([seenSmall.length, seenLarge.length]).toEqual([1, 0]);
  });
});
