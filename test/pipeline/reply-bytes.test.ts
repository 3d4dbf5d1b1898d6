/**
 * The JSON reply read as bytes (pipeline/read-body.ts), searched for the key
 * before it is decoded: what the SDK gets is what `Response.text()` would
 * have given — pieces split across reads, multi-byte characters straddling
 * them, a byte order mark — with the key's pieces replaced.
 */
import { HttpResponse } from 'msw';
import { expect, test } from 'vitest';
import { NO_BACKOFF, useManagers } from '../support/scaffold';
import { fakeKey } from '../support/fake-keys';
import { chatReply, provider } from '../support/upstream';
import '../support/setup';

const ONE = 'https://one.test/v1';
const BODY = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hi' }] };
const KEYS = [fakeKey('one'), fakeKey('one')];
// replyHeaders: the tests read which key answered, and after how many attempts, from the reply.
const manage = useManagers({ ...NO_BACKOFF, replyHeaders: true, providers: { one: { baseURL: ONE, keys: KEYS } } });

/** A JSON reply of `bytes` sent in reads of `piece` bytes; `failAfter` reads, then the body errors. */
function piecewise(bytes: Uint8Array, piece: number, failAfter = Infinity): Response {
  let offset = 0;
  let reads = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (reads++ >= failAfter) controller.error(new TypeError('terminated'));
      else if (offset >= bytes.length) controller.close();
      else {
        controller.enqueue(bytes.slice(offset, offset + piece));
        offset += piece;
      }
    },
  });
  return new HttpResponse(body, { headers: { 'content-type': 'application/json' } });
}

function completion(content: string): string {
  return JSON.stringify({ id: 'x', object: 'chat.completion', model: 'gpt-4.1', choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } });
}

test('a reply in 5-byte reads, multi-byte characters and an echoed key straddling them: the text exact, the key replaced', async () => {
  let sent = '';
  provider(ONE, (call) => {
    const key = call.key;
    sent = `héllo 👋 ${'ü'.repeat(7)} — your key is ${key}, its end ${key.slice(-9)}; ça va`;
    return piecewise(new TextEncoder().encode(completion(sent)), 5);
  });
  const { client, manager } = manage();
  const { data, response } = await client.chat.completions.create(BODY).withResponse();
  const keyId = response.headers.get('x-keyplex-key-id');
  expect(data.choices[0]!.message.content).toBe(`héllo 👋 ${'ü'.repeat(7)} — your key is [key ${keyId}], its end [key ${keyId}]; ça va`);
  expect(KEYS.some((k) => sent.includes(k))).toBe(true);
  expect(manager.stats().totals.tokens.totalTokens).toBe(5);
});

test('a reply that begins with a byte order mark parses, as Response.text() would read it', async () => {
  const text = completion('bom');
  provider(ONE, () => piecewise(new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode(text)]), 7));
  const { client } = manage();
  const data = await client.chat.completions.create(BODY);
  expect(data.choices[0]!.message.content).toBe('bom');
});

test('a reply whose body fails mid-way is a failed attempt, and the next key answers', async () => {
  let calls = 0;
  provider(ONE, () => (++calls === 1 ? piecewise(new TextEncoder().encode(completion('z'.repeat(500))), 64, 3) : chatReply('gpt-4.1', 'ok')));
  const { client } = manage();
  const { data, response } = await client.chat.completions.create(BODY).withResponse();
  expect(data.choices[0]!.message.content).toBe('ok');
  expect(response.headers.get('x-keyplex-attempts')).toBe('2');
});

test('an empty JSON 200 is a broken answer, retried on the next key', async () => {
  let calls = 0;
  provider(ONE, () => (++calls === 1 ? new HttpResponse('', { headers: { 'content-type': 'application/json' } }) : chatReply('gpt-4.1', 'ok')));
  const { client } = manage();
  const { data, response } = await client.chat.completions.create(BODY).withResponse();
  expect(data.choices[0]!.message.content).toBe('ok');
  expect(response.headers.get('x-keyplex-attempts')).toBe('2');
});
