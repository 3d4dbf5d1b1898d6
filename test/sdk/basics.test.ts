import { describe, expect, test } from 'vitest';
import { useManagers } from '../support/scaffold';
import { fakeKey } from '../support/fake-keys';
import { chatReply, provider } from '../support/upstream';
import '../support/setup';

const manage = useManagers({});

describe('wrap()', () => {
  test('a chat completion reaches the provider with a configured key and comes back typed', async () => {
    const key = fakeKey();
    const seen = provider('https://api.one.test/v1', (call) => chatReply(String(call.body?.model), 'hi there'));
    const { client } = manage({ providers: { one: { baseURL: 'https://api.one.test/v1', keys: [key] } } });

    const reply = await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] });

    expect(reply.choices[0]?.message.content).toBe('hi there');
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ path: '/chat/completions', key, method: 'POST' });
  });
});

describe('wrap() of an AzureOpenAI client', () => {
  test("is refused at once, saying to wrap an OpenAI client and to give Azure's v1 endpoint as a provider", async () => {
    const { AzureOpenAI } = await import('openai');
    const { ConfigError } = await import('../../src/index');
    const { manager } = manage({ providers: { one: { baseURL: 'https://api.one.test/v1', keys: [fakeKey()] } } });
    const azure = new AzureOpenAI({ apiKey: 'managed-by-keyplex', endpoint: 'https://res.openai.azure.com', apiVersion: '2024-10-21', deployment: 'gpt-4.1' });

    expect(() => manager.wrap(azure)).toThrow(ConfigError);
    expect(() => manager.wrap(azure)).toThrow("'https://<resource>.openai.azure.com/openai/v1'");
  });
});

describe('wrap() of something that is not an SDK client', () => {
  // From JavaScript: the OpenAI class itself, a namespace of the client, a client of another library.
  test.each([
    ['the OpenAI class, not an instance', async () => (await import('openai')).default],
    ['a resource of a client', async () => new (await import('openai')).default({ apiKey: 'managed-by-keyplex' }).chat],
    ['a plain object', async () => ({})],
    ['undefined', async () => undefined],
  ])('%s is refused with a ConfigError saying what to pass', async (_, make) => {
    const { ConfigError } = await import('../../src/index');
    const { manager } = manage({ providers: { one: { baseURL: 'https://api.one.test/v1', keys: [fakeKey()] } } });
    const client = (await make()) as never;

    expect(() => manager.wrap(client)).toThrow(ConfigError);
    expect(() => manager.wrap(client)).toThrow(/new OpenAI\(/);
    expect(() => manager.wrap(client)).toThrow(/manager\.fetch/);
  });
});
