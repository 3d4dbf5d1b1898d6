/**
 * A wait a provider asks for on a transient failure (`retry-after` on a 503)
 * binds that provider: another provider that can serve the request is tried
 * at once; with none, the request waits what was asked, as before. Through
 * the SDK and msw, on a fake clock; the figures are the fake clock's.
 */
import OpenAI from 'openai';
import { expect, test, vi } from 'vitest';
import { KeyManager, type KeyManagerOptions } from '../../src/index';
import { record } from '../support/events';
import { chatReply, errorReply, keyRing, provider } from '../support/upstream';
import { closeAfterEach } from '../support/scaffold';
import '../support/setup';
import { fakeClock, until } from '../support/time';

const ONE = 'https://api.one.test/v1';
const TWO = 'https://api.two.test/v1';
const BODY = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hi' }] };

const managers = closeAfterEach();

function manage(providers: KeyManagerOptions['providers']) {
  const manager = new KeyManager({ providers, rateLimiting: { coldStart: 'open' } });
  managers.push(manager);
  return { manager, client: manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' })) };
}

/** The reply to BODY while the fake clock stands still (a wait on the clock never ends: the test fails at `until`). */
async function answerWithClockStill(client: OpenAI): Promise<OpenAI.Chat.Completions.ChatCompletion> {
  let reply: OpenAI.Chat.Completions.ChatCompletion | undefined;
  void client.chat.completions.create(BODY).then((r) => (reply = r), () => undefined);
  await until(() => reply !== undefined, 'the answer, with the clock standing still');
  return reply!;
}

const overloaded = (seconds: number) => errorReply(503, null, { 'retry-after': String(seconds) }, 'The engine is currently overloaded');

test('a 503 asking for 20 s sends the retry to the other provider at once, not after 20 s', async () => {
  fakeClock();
  const start = Date.now();
  const one = provider(ONE, () => overloaded(20));
  const sentAt: number[] = [];
  provider(TWO, () => (sentAt.push(Date.now() - start), chatReply('gpt-4.1', 'ok')));
  const { manager, client } = manage({ one: { baseURL: ONE, keys: keyRing('a', 'b').keys }, two: { baseURL: TWO, keys: keyRing('c').keys } });
  const retries = record(manager, 'retry');
  expect((await answerWithClockStill(client)).choices[0]!.message.content).toBe('ok');
  expect({ oneCalls: one.length, twoSentAtMs: sentAt }).toEqual({ oneCalls: 1, twoSentAtMs: [0] });
  expect(retries).toMatchObject([{ provider: 'one', reason: 'server_error', status: 503 }]);
});

test('with no other provider the retry waits what was asked (3 s), then another key is tried', async () => {
  fakeClock();
  const start = Date.now();
  const ring = keyRing('a', 'b');
  const sentAt: number[] = [];
  provider(ONE, ({ key }, index) => (sentAt.push(Date.now() - start), index === 0 ? overloaded(3) : chatReply('gpt-4.1', `ok from ${ring.idOf(key)}`)));
  const { client } = manage({ one: { baseURL: ONE, keys: ring.keys } });
  const pending = client.chat.completions.create(BODY);
  await until(() => sentAt.length === 1, 'the first attempt');
  await vi.advanceTimersByTimeAsync(2_999);
  expect(sentAt).toHaveLength(1);
  await vi.advanceTimersByTimeAsync(1);
  const reply = await pending;
  expect(sentAt).toEqual([0, 3_000]);
  expect(reply.choices[0]!.message.content).toMatch(/^ok from /);
});

test('a 503 asking for an hour, past the deadline, still sends the retry to the other provider at once', async () => {
  fakeClock();
  const one = provider(ONE, () => overloaded(3_600));
  provider(TWO, () => chatReply('gpt-4.1', 'ok'));
  const { client } = manage({ one: { baseURL: ONE, keys: keyRing('a').keys }, two: { baseURL: TWO, keys: keyRing('c').keys } });
  expect((await answerWithClockStill(client)).choices[0]!.message.content).toBe('ok');
  expect(one).toHaveLength(1);
});

test('with no other provider, a wait asked for past the deadline surfaces the 503 at once, as before', async () => {
  fakeClock();
  provider(ONE, () => overloaded(3_600));
  const { client } = manage({ one: { baseURL: ONE, keys: keyRing('a', 'b').keys } });
  const error = await client.chat.completions.create(BODY).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(OpenAI.InternalServerError);
  expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
});

test('both providers asking for an hour: the last 503 surfaces at once, its message saying each asked for a wait (not that keys are out of room)', async () => {
  fakeClock();
  provider(ONE, () => overloaded(3_600));
  provider(TWO, () => overloaded(3_600));
  const { client } = manage({ one: { baseURL: ONE, keys: keyRing('a').keys }, two: { baseURL: TWO, keys: keyRing('c').keys } });
  const error = await client.chat.completions.create(BODY).catch((e: unknown) => e);
  expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
  expect((error as Error).message).toContain("'one': asked for a wait of 60 min (retry-after on a server error); 'two': asked for a wait of 60 min");
  expect((error as Error).message).not.toContain('rate-limit room');
});

/** A Gemini-style 503 stating its wait in the body only (`google.rpc.RetryInfo`), no retry-after header. */
const overloadedBody = (retryDelay: string) =>
  Response.json(
    { error: { code: 503, message: 'The model is overloaded. Please try again later.', status: 'UNAVAILABLE', details: [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay }] } },
    { status: 503 },
  );

test("a 503 whose body asks for 30 s (Gemini's RetryInfo, no header) holds that provider: the other one serves at once", async () => {
  fakeClock();
  const one = provider(ONE, () => overloadedBody('30s'));
  provider(TWO, () => chatReply('gpt-4.1', 'ok'));
  const { client } = manage({ one: { baseURL: ONE, keys: keyRing('a', 'b').keys }, two: { baseURL: TWO, keys: keyRing('c').keys } });
  expect((await answerWithClockStill(client)).choices[0]!.message.content).toBe('ok');
  expect(one).toHaveLength(1);
});

test('with no other provider, the retry waits the 30 s the body asked for', async () => {
  fakeClock();
  const start = Date.now();
  const sentAt: number[] = [];
  provider(ONE, (_call, index) => (sentAt.push(Date.now() - start), index === 0 ? overloadedBody('30s') : chatReply('gpt-4.1', 'ok')));
  const { client } = manage({ one: { baseURL: ONE, keys: keyRing('a', 'b').keys } });
  const pending = client.chat.completions.create(BODY);
  await until(() => sentAt.length === 1, 'the first attempt');
  await vi.advanceTimersByTimeAsync(29_999);
  expect(sentAt).toHaveLength(1);
  await vi.advanceTimersByTimeAsync(1);
  await pending;
  expect(sentAt).toEqual([0, 30_000]);
});

test('with no other provider, the clock stepped back an hour during the wait: the retry goes after the 3 s asked for, not an hour later', async () => {
  fakeClock();
  const sent: number[] = [];
  provider(ONE, (_call, index) => (sent.push(index), index === 0 ? overloaded(3) : chatReply('gpt-4.1', 'ok')));
  const { client } = manage({ one: { baseURL: ONE, keys: keyRing('a', 'b').keys } });
  const pending = client.chat.completions.create(BODY);
  pending.catch(() => undefined);
  await until(() => sent.length === 1, 'the first attempt');
  vi.setSystemTime(Date.now() - 3_600_000);
  await vi.advanceTimersByTimeAsync(2_999);
  expect(sent).toHaveLength(1);
  await vi.advanceTimersByTimeAsync(1);
  await until(() => sent.length === 2, 'the retry');
  expect((await pending).choices[0]!.message.content).toBe('ok');
});
