import OpenAI from 'openai';
import { afterEach, describe, expect, test } from 'vitest';
import { KeyManager, type KeyManagerOptions } from '../../src/index';
import { fakeKey } from '../support/fake-keys';
import { chatReply, provider } from '../support/upstream';
import '../support/setup';

const managers: KeyManager[] = [];
function manage(options: KeyManagerOptions) {
  const manager = new KeyManager(options);
  managers.push(manager);
  return { manager, client: manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' })) };
}
afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.close()));
});

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
