/**
 * Streams that end before their end report what they used (issue 12 item 8,
 * issue 13 "Streams broken off early"): the prompt (estimated when the
 * provider did not say), the output streamed so far (estimated from the
 * deltas, 4 characters a token), its cost, flagged `partial`. A caller
 * breaking off → `success`; an upstream failure part-way → `failure`.
 */
import { describe, expect, test } from 'vitest';
import type { KeyManagerOptions } from '../../src/index';
import { managedClients } from '../support/managers';
import { fakeKey } from '../support/fake-keys';
import { chatChunks, cutSseReply, gate, provider, sseReply } from '../support/upstream';
import '../support/setup';

const ONE = 'https://api.one.test/v1';
/** 48 characters of prompt: 12 estimated tokens. */
const ask = [{ role: 'user' as const, content: 'Write a long poem about the sea, in eight lines.' }];
/** Six deltas of 8 characters: 2 tokens each. */
const WORDS = ['The sea ', 'is wide ', 'and deep', ', grey &', ' restles', 's today.'];
/** gpt-4.1: $2 per 1M input tokens, $8 per 1M output tokens. */
const cost = (input: number, output: number) => (input * 2 + output * 8) / 1e6;

const manage = managedClients({ one: { baseURL: ONE, keys: [fakeKey('one')] } });

/** Provider one sends its first `n` chunks, then nothing until the caller leaves. */
function sendsOnly(n: number) {
  provider(ONE, () => cutSseReply(chatChunks('gpt-4.1', WORDS, false), { after: n, gate: new Promise(() => undefined) }));
}

describe('a caller breaking out of a stream', () => {
  test('fires success with partial usage: the prompt estimated, the output counted from the deltas read, flagged partial', async () => {
    sendsOnly(2);
    const { client, success } = manage();

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    let read = 0;
    for await (const _ of stream) if (++read === 2) break;

    expect(success).toHaveLength(1);
    const usage = success[0]!.usage!;
    expect(usage.partial).toBe(true);
    expect(usage.inputTokens).toBeGreaterThan(0);
    // The two deltas streamed: 16 characters, 4 tokens.
    expect(usage.outputTokens).toBe(4);
    expect(usage.totalTokens).toBe(usage.inputTokens + usage.outputTokens);
    expect(success[0]!.partial).toBe(true);
  });

  test('the success event of a broken-off stream carries the cost of its partial usage', async () => {
    sendsOnly(2);
    const { client, success } = manage();

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    for await (const _ of stream) break;

    const { usage, costUsd } = success[0]!;
    expect(costUsd).toBeCloseTo(cost(usage!.inputTokens, usage!.outputTokens), 12);
    expect(costUsd).toBeGreaterThan(0);
  });

  test('a stream read to its end is not partial', async () => {
    provider(ONE, (call) => sseReply(chatChunks('gpt-4.1', WORDS, Boolean((call.body?.stream_options as { include_usage?: boolean })?.include_usage), { prompt: 12, completion: 12 })));
    const { client, success } = manage();

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    for await (const _ of stream);

    expect(success[0]?.usage).toMatchObject({ inputTokens: 12, outputTokens: 12 });
    expect(success[0]?.usage?.partial).toBeUndefined();
    expect(success[0]?.partial).toBeUndefined();
  });

  test('stats and budgets record the partial spend of a broken-off stream', async () => {
    sendsOnly(2);
    const { manager, client, success } = manage({ budgets: [{ scope: { overall: true }, limitUsd: 10, window: 'day' }] });

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    for await (const _ of stream) break;

    const spent = success[0]!.costUsd!;
    const stats = manager.stats();
    expect(stats.totals.costUsd).toBeCloseTo(spent, 12);
    expect(stats.providers.one?.keys[0]?.costUsd).toBeCloseTo(spent, 12);
    expect(stats.budgets[0]?.spentUsd).toBeCloseTo(spent, 12);
  });
});

describe('an upstream failing part-way', () => {
  /** Provider one cuts its stream once the caller has read 2 chunks. */
  async function cutAfterTwo(options: Partial<KeyManagerOptions> = {}) {
    const cut = gate();
    provider(ONE, () => cutSseReply(chatChunks('gpt-4.1', WORDS, false), { after: 2, gate: cut.promise }));
    const managed = manage(options);
    const stream = await managed.client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    let read = 0;
    await expect(
      (async () => {
        for await (const _ of stream) if (++read === 2) cut.open();
      })(),
    ).rejects.toThrow();
    return managed;
  }

  test('fires failure carrying the partial usage (output from the 2 deltas streamed) and its cost, flagged partial', async () => {
    const { failure, success } = await cutAfterTwo();

    expect(success).toEqual([]);
    expect(failure).toHaveLength(1);
    const event = failure[0]!;
    expect(event.error.code).toBe('stream_interrupted');
    expect(event.usage).toMatchObject({ outputTokens: 4, partial: true });
    expect(event.usage!.inputTokens).toBeGreaterThan(0);
    expect(event.costUsd).toBeCloseTo(cost(event.usage!.inputTokens, 4), 12);
    expect(event.partial).toBe(true);
  });

  test('stats and budgets record the partial cost of a stream that failed part-way', async () => {
    const { manager, failure } = await cutAfterTwo({ budgets: [{ scope: { overall: true }, limitUsd: 10, window: 'day' }] });

    const spent = failure[0]!.costUsd!;
    const stats = manager.stats();
    expect(stats.totals.costUsd).toBeCloseTo(spent, 12);
    expect(stats.totals.failures.stream_interrupted).toBe(1);
    expect(stats.totals.successes).toBe(0);
    expect(stats.providers.one?.keys[0]?.costUsd).toBeCloseTo(spent, 12);
    expect(stats.budgets[0]?.spentUsd).toBeCloseTo(spent, 12);
  });

  test('a usage that counts only a total, reported before the cut, is priced as on a complete reply (split at the estimated input), not free', async () => {
    const [first] = chatChunks('gpt-4.1', WORDS, false);
    const totalOnly = JSON.stringify({ id: 'chatcmpl-stream', object: 'chat.completion.chunk', created: 1_700_000_000, model: 'gpt-4.1', choices: [], usage: { total_tokens: 1_000 } });
    const cut = gate();
    provider(ONE, () => cutSseReply([first!, totalOnly], { after: 2, gate: cut.promise }));
    const { client, manager, failure } = manage({ budgets: [{ scope: { overall: true }, limitUsd: 10, window: 'day' }] });

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    await expect(
      (async () => {
        for await (const _ of stream) cut.open();
      })(),
    ).rejects.toThrow();

    // The usage as the server reported it; the cost at the 12 estimated input tokens and the 988 others as output.
    expect(failure[0]?.usage).toMatchObject({ inputTokens: 0, outputTokens: 0, totalTokens: 1_000 });
    expect(failure[0]?.costUsd).toBeCloseTo(cost(12, 988), 12);
    expect(manager.stats().budgets[0]?.spentUsd).toBeCloseTo(cost(12, 988), 12);
  });

  test('a request that failed before any answer carries no usage on its failure event', async () => {
    provider(ONE, () => new Response(JSON.stringify({ error: { message: 'nope', type: 'invalid_request_error' } }), { status: 400, headers: { 'content-type': 'application/json' } }));
    const { client, failure } = manage();

    await expect(client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true })).rejects.toThrow();

    expect(failure).toHaveLength(1);
    expect(failure[0]).not.toHaveProperty('usage');
    expect(failure[0]).not.toHaveProperty('partial');
  });
});
