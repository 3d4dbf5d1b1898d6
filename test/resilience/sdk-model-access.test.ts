/**
 * A key whose project cannot use one model. OpenAI answers such a key 403
 * `model_not_found` ("Project `proj_…` does not have access to model
 * `gpt-4.1`"), and a provider that does not serve a model answers 404
 * `model_not_found` (or in its own words: DeepSeek's and OpenRouter's are
 * 400s): the key is fine for every other model, and another key or provider
 * may serve this one. So the key is not disabled, the
 * request goes on to another key, and the key is left for last for that
 * model a while (classify.ts, acquire.ts).
 */
import OpenAI from 'openai';
import { describe, expect, test, vi } from 'vitest';
import { getKeyplexDetails } from '../../src/index';
import { useManagers } from '../support/scaffold';
import { chatReply, errorReply, keyRing, provider, type UpstreamCall } from '../support/upstream';
import { record } from '../support/events';
import { fakeClock } from '../support/time';
import '../support/setup';

const ONE = 'https://api.one.test/v1';
const TWO = 'https://api.two.test/v1';
const manage = useManagers({});
const ask = (model: string) => ({ model, messages: [{ role: 'user' as const, content: 'hi' }] });

/** OpenAI's answer to a key whose project has no access to `model`. */
function noAccess(model: string): Response {
  return errorReply(403, 'model_not_found', {}, `Project \`proj_fake0001\` does not have access to model \`${model}\``);
}

/** OpenAI's answer for a model it does not know (or the organisation cannot see). */
function notFound(model: string): Response {
  return errorReply(404, 'model_not_found', {}, `The model \`${model}\` does not exist or you do not have access to it.`);
}

const modelOf = (call: UpstreamCall) => call.body?.model;

describe('403 model_not_found: the project of one key cannot use a model', () => {
  test('the key stays in use: no key:disabled, its requests go to the other key, and it serves other models', async () => {
    const ring = keyRing('a', 'b');
    const seen = provider(ONE, (call) => (ring.idOf(call.key) === 'a' && modelOf(call) === 'gpt-4.1' ? noAccess('gpt-4.1') : chatReply(String(modelOf(call)))));
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys, models: ['gpt-4.1', 'gpt-4.1-mini'] } } });
    const disabled = record(manager, 'key:disabled');

    for (let i = 0; i < 6; i++) await client.chat.completions.create(ask('gpt-4.1'));
    for (let i = 0; i < 6; i++) await client.chat.completions.create(ask('gpt-4.1-mini'));

    expect(disabled).toEqual([]);
    const mini = seen.filter((call) => modelOf(call) === 'gpt-4.1-mini');
    expect(new Set(ring.ids(mini))).toEqual(new Set(['a', 'b']));
    expect(manager.stats().providers.one!.keys.map((k) => k.status)).toEqual(['active', 'active']);
  });

  test("stats() name the model a key refused and how long it is left for last for it; enableKey clears it", async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    provider(ONE, (call) => (ring.idOf(call.key) === 'a' && modelOf(call) === 'gpt-4.1' ? noAccess('gpt-4.1') : chatReply('gpt-4.1')));
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, keySelection: 'round-robin' });
    const keyA = () => manager.stats().providers.one!.keys.find((k) => k.id === 'a')!;

    for (let i = 0; i < 2; i++) await client.chat.completions.create(ask('gpt-4.1'));
    expect(keyA().refusedModels).toEqual({ 'gpt-4.1': { remainingMs: 600_000 } });
    await vi.advanceTimersByTimeAsync(600_000);
    expect(keyA().refusedModels).toBeUndefined();

    for (let i = 0; i < 2; i++) await client.chat.completions.create(ask('gpt-4.1'));
    expect(keyA().refusedModels).toBeDefined();
    manager.enableKey('one', 'a');
    expect(keyA().refusedModels).toBeUndefined();
  });

  test('the key is left for last for that model: the upstream hears it at most once for it over 8 requests', async () => {
    const ring = keyRing('a', 'b');
    const seen = provider(ONE, (call) => (ring.idOf(call.key) === 'a' && modelOf(call) === 'gpt-4.1' ? noAccess('gpt-4.1') : chatReply('gpt-4.1')));
    const { client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } } });

    for (let i = 0; i < 8; i++) await client.chat.completions.create(ask('gpt-4.1'));

    const refused = seen.filter((call) => ring.idOf(call.key) === 'a');
    expect(refused.length).toBeLessThanOrEqual(1);
    expect(ring.ids(seen).filter((id) => id === 'b')).toHaveLength(8);
  });

  test('no key has access: the app gets the upstream 403 (PermissionDeniedError, model_not_found), and every key still serves other models', async () => {
    const ring = keyRing('a', 'b');
    provider(ONE, (call) => (modelOf(call) === 'gpt-4.1' ? noAccess('gpt-4.1') : chatReply('gpt-4.1-mini')));
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys, models: ['gpt-4.1', 'gpt-4.1-mini'] } } });
    const disabled = record(manager, 'key:disabled');

    const error = await client.chat.completions.create(ask('gpt-4.1')).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect((error as InstanceType<typeof OpenAI.PermissionDeniedError>).code).toBe('model_not_found');
    expect(getKeyplexDetails(error)?.attempts.map((a) => a.status)).toEqual([403, 403]);
    expect(disabled).toEqual([]);
    const served = await client.chat.completions.create(ask('gpt-4.1-mini'));
    expect(served.model).toBe('gpt-4.1-mini');
  });
});

describe('fallbacks', () => {
  test("no key may use the model: the model's configured fallback serves the request", async () => {
    const first = provider(ONE, () => noAccess('gpt-4.1'));
    const second = provider(TWO, () => chatReply('gpt-4.1-mini'));
    const { client } = manage({
      providers: { one: { baseURL: ONE, keys: keyRing('a', 'b').keys, models: ['gpt-4.1'] }, two: { baseURL: TWO, keys: keyRing('c').keys, models: ['gpt-4.1-mini'] } },
      routing: { fallbacks: { 'gpt-4.1': ['gpt-4.1-mini'] } },
    });

    const reply = await client.chat.completions.create(ask('gpt-4.1'));

    expect(reply.model).toBe('gpt-4.1-mini');
    expect([first.length, second.length]).toEqual([2, 1]);
  });
});

describe('404 model_not_found: a provider does not serve the model', () => {
  test('the request fails over to a provider that serves it', async () => {
    const one = keyRing('a');
    const two = keyRing('c');
    const first = provider(ONE, () => notFound('gpt-4.1'));
    const second = provider(TWO, () => chatReply('gpt-4.1'));
    const { client } = manage({ providers: { one: { baseURL: ONE, keys: one.keys }, two: { baseURL: TWO, keys: two.keys } } });

    const reply = await client.chat.completions.create(ask('gpt-4.1'));

    expect(reply.model).toBe('gpt-4.1');
    expect([first.length, second.length]).toEqual([1, 1]);
  });

  test.each([
    ['DeepSeek (400)', 400, { error: { message: 'Model Not Exist', type: 'invalid_request_error', param: null, code: 'invalid_request_error' } }],
    ['OpenRouter (400)', 400, { error: { message: 'openai/gpt-4.1 is not a valid model ID', code: 400 } }],
    ['Gemini (404, a one-item list)', 404, [{ error: { code: 404, message: 'models/gpt-4.1 is not found for API version v1main, or is not supported for generateContent.', status: 'NOT_FOUND' } }]],
    ['Anthropic (404)', 404, { type: 'error', error: { type: 'not_found_error', message: 'model: gpt-4.1' } }],
    ['Together (404)', 404, { error: { message: 'Unable to access model gpt-4.1. Please visit https://api.together.ai/models to view the list of supported models.', type: 'invalid_request_error', param: null, code: 'model_not_available' } }],
  ])("a provider's own way to say it does not serve the model, %s: the request fails over", async (_name, status, body) => {
    const first = provider(ONE, () => Response.json(body, { status }));
    const second = provider(TWO, () => chatReply('gpt-4.1'));
    const { client } = manage({ providers: { one: { baseURL: ONE, keys: keyRing('a').keys }, two: { baseURL: TWO, keys: keyRing('c').keys } } });

    const reply = await client.chat.completions.create(ask('gpt-4.1'));

    expect(reply.model).toBe('gpt-4.1');
    expect([first.length, second.length]).toEqual([1, 1]);
  });

  test('none serves it: the app gets the upstream 404 (NotFoundError) after one attempt on each provider', async () => {
    const first = provider(ONE, () => notFound('gpt-4.1'));
    const second = provider(TWO, () => notFound('gpt-4.1'));
    const { client } = manage({ providers: { one: { baseURL: ONE, keys: keyRing('a').keys }, two: { baseURL: TWO, keys: keyRing('c').keys } } });

    const error = await client.chat.completions.create(ask('gpt-4.1')).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect([first.length, second.length]).toEqual([1, 1]);
  });

  test('a 404 without model_not_found (a path the provider lacks) still surfaces at once', async () => {
    const first = provider(ONE, () => errorReply(404, null, {}, 'Not found'));
    const second = provider(TWO, () => chatReply('gpt-4.1'));
    const { client } = manage({ providers: { one: { baseURL: ONE, keys: keyRing('a').keys }, two: { baseURL: TWO, keys: keyRing('c').keys } } });

    const error = await client.chat.completions.create(ask('gpt-4.1')).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect([first.length, second.length]).toEqual([1, 0]);
  });
});
