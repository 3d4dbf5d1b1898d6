/**
 * Providers with many keys: a pick judges a bounded batch of keys from a
 * rotating start, yet every key takes its turn and a lone usable key is found.
 */
import OpenAI from 'openai';
import { expect, test, vi } from 'vitest';
import { KeyManager, type KeyManagerOptions } from '../../src/index';
import { fakeKey } from '../support/fake-keys';
import { closeAfterEach } from '../support/scaffold';

const REPLY = JSON.stringify({
  id: 'x',
  object: 'chat.completion',
  created: 1,
  model: 'gpt-4.1',
  choices: [{ index: 0, message: { role: 'assistant', content: 'hi', refusal: null }, finish_reason: 'stop', logprobs: null }],
  usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
});

const managers = closeAfterEach();

/** A manager over one provider with `count` keys whose fetch answers in memory, recording the key of each call. */
function pool(count: number, options: Partial<KeyManagerOptions> = {}) {
  const keys = Array.from({ length: count }, (_, i) => ({ key: fakeKey(`k${i}`), id: `k${i}` }));
  const byKey = new Map(keys.map((k) => [k.key, k.id]));
  const used: string[] = [];
  const fetch = async (_url: string | URL | Request, init?: RequestInit) => {
    const auth = (init?.headers as Record<string, string>).authorization!.replace('Bearer ', '');
    used.push(byKey.get(auth)!);
    return new Response(REPLY, { headers: { 'content-type': 'application/json' } });
  };
  const manager = new KeyManager({ providers: { big: { baseURL: 'https://big.invalid/v1', keys } }, fetch, ...options });
  managers.push(manager);
  return { manager, used, client: manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' })) };
}
const BODY = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hi' }] };

// 1,000 requests through the SDK: about 1 s on an idle machine, several times that on a loaded one.
// The limit only bounds a failing run; the assertion is a count.
test('with 1,000 keys, round-robin still gives every key a turn', async () => {
  const { client, used } = pool(1_000, { keySelection: 'round-robin' });
  for (let i = 0; i < 1_000; i++) await client.chat.completions.create(BODY);
  expect(new Set(used).size).toBe(1_000);
}, 60_000);

test('with 1,000 keys of which only the last is usable, a pick finds it', async () => {
  const { client, manager, used } = pool(1_000);
  for (let i = 0; i < 999; i++) manager.disableKey('big', `k${i}`);
  await client.chat.completions.create(BODY);
  expect(used).toEqual(['k999']);
});

test("a pick reads the clock as often with 10 keys as with 1: the default selector judges every key's headroom as of one reading", async () => {
  const readsPerRequest = async (count: number) => {
    // Spied before the manager exists: its rate limiters keep the clock they were given.
    const now = vi.spyOn(Date, 'now');
    try {
      const { client } = pool(count);
      await client.chat.completions.create(BODY);
      now.mockClear();
      await client.chat.completions.create(BODY);
      return now.mock.calls.length;
    } finally {
      now.mockRestore();
    }
  };
  expect(await readsPerRequest(10)).toBe(await readsPerRequest(1));
});
