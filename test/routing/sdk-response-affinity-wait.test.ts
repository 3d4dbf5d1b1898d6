/**
 * Response affinity when the pinned key is only waited for: a request naming
 * a response whose key is rate-limited waits for that key (not another),
 * within its deadline, and requests that name no response take the other keys
 * meanwhile (fake timers: the wait is moved by hand); a follow-up its
 * response's provider cannot serve is refused unsent.
 */
import { HttpResponse } from 'msw';
import { expect, test, vi } from 'vitest';
import { useManagers } from '../support/scaffold';
import { chatReply, errorReply, keyRing, provider, responseObject } from '../support/upstream';
import '../support/setup';
import { caught } from '../support/caught';
import { getKeyplexDetails } from '../../src/index';
import { fakeClock, until } from '../support/time';

const ONE = 'https://api.one.test/v1';
const MODEL = 'gpt-4.1';
const manage = useManagers();

test('a pinned key rate-limited for 2 s is waited for, while a chat request takes the other key at once', async () => {
  fakeClock();
  const ring = keyRing('a', 'b');
  let limited = false;
  const seen = provider(ONE, (call) => {
    if (call.path.startsWith('/chat')) return chatReply(MODEL);
    // The conversation's second turn meets one 429 on its key.
    if (call.body?.previous_response_id !== undefined && !limited) {
      limited = true;
      return errorReply(429, 'rate_limit_exceeded', { 'retry-after-ms': '2000' }, 'Rate limit reached');
    }
    return HttpResponse.json(responseObject(MODEL, 'hello', 'completed', {}));
  });
  const { client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys } }, keySelection: 'round-robin' });
  const first = await client.responses.create({ model: MODEL, input: 'hi' });
  let answered = false;
  const second = client.responses.create({ model: MODEL, input: 'more', previous_response_id: first.id }).finally(() => (answered = true));
  await until(() => seen.length === 2, 'the 429 on the pinned key');
  let chatted = false;
  const chat = client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }).then(() => (chatted = true));
  await until(() => chatted, 'the chat request answered while the pinned one waits');
  expect(answered).toBe(false);
  await vi.advanceTimersByTimeAsync(2_000);
  expect((await second).id).toBe('resp_test');
  await chat;
  // Turn one, turn two's 429, the chat, turn two again: the conversation only ever on key a.
  expect(ring.ids(seen)).toEqual(['a', 'a', 'b', 'a']);
});

test("a follow-up asking for a model its response's provider does not serve fails unsent with model_not_served, naming that provider", async () => {
  const seen = provider(ONE, () => HttpResponse.json(responseObject(MODEL, 'hello', 'completed', {})));
  const two = provider('https://api.two.test/v1', () => HttpResponse.json(responseObject('deepseek-chat', 'hello', 'completed', {})));
  const { client } = manage({
    providers: { one: { baseURL: ONE, keys: keyRing('a').keys, models: [MODEL] }, two: { baseURL: 'https://api.two.test/v1', keys: keyRing('b').keys, models: ['deepseek-chat'] } },
  });
  const first = await client.responses.create({ model: MODEL, input: 'hi' });
  const error = await caught(() => client.responses.create({ model: 'deepseek-chat', input: 'more', previous_response_id: first.id }));
  expect(getKeyplexDetails(error)?.code).toBe('model_not_served');
  expect(error.message).toMatch(/provider 'one', whose key 'a' created response 'resp_test'.*does not serve model 'deepseek-chat'.*start a new conversation/);
  expect([seen.length, two.length]).toEqual([1, 0]);
});
