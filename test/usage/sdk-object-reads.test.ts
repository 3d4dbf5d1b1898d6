/**
 * Replies that read, change or cancel something made before (a stored
 * response, chat completion or batch) carry the usage of that earlier
 * answer: it was billed once, when it was made, so they spend nothing — in
 * the events, `stats()` and budgets. The free token count neither.
 */
import { describe, expect, test } from 'vitest';
import type { KeyManagerOptions } from '../../src/index';
import { chatReply, namedSseReply, provider, responsesEvents, responsesReply } from '../support/upstream';
import '../support/setup';
import { record } from '../support/events';
import { spendingManagers } from '../support/managers';

const OPENAI = 'https://api.openai.test/v1';
/** 1,000 input + 1,000 output tokens of gpt-4.1 (2 / 8 USD per million): 0.01 USD. */
const USAGE = { prompt: 1_000, completion: 1_000 };
const ONE_REPLY = 0.01;

const managed = spendingManagers(OPENAI);

function manage(options: Partial<KeyManagerOptions> = {}) {
  const made = managed(options);
  return { ...made, successes: record(made.manager, 'success') };
}

/** A batch object as OpenAI answers it, with the usage of its requests (batches made after September 7, 2025). */
const batch = (status: string) =>
  Response.json({
    id: 'batch_1',
    object: 'batch',
    endpoint: '/v1/chat/completions',
    model: 'gpt-4.1',
    status,
    input_file_id: 'file-1',
    completion_window: '24h',
    created_at: 1_700_000_000,
    request_counts: { total: 100, completed: 100, failed: 0 },
    usage: { input_tokens: 100_000, input_tokens_details: { cached_tokens: 0 }, output_tokens: 100_000, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 200_000 },
  });

describe('a reply that reads, changes or cancels what was made before spends nothing', () => {
  test('responses.retrieve of a response made through keyplex: its cost counts once', async () => {
    provider(OPENAI, () => responsesReply('gpt-4.1', 'hi', USAGE));
    const { client, successes, spent } = manage();

    await client.responses.create({ model: 'gpt-4.1', input: 'hi' });
    await client.responses.retrieve('resp_test');
    await client.responses.retrieve('resp_test');

    // Was: 0.03 in stats and budget, 3,000 output tokens: each retrieve counted the response again.
    expect(spent()).toEqual({ costUsd: ONE_REPLY, budgetUsd: ONE_REPLY, outputTokens: 1_000 });
    expect(successes.map((s) => s.costUsd)).toEqual([ONE_REPLY, null, null]);
    expect(successes[1]?.usage).toBeNull();
  });

  test('responses.retrieve streamed (a stream replayed) and responses.cancel spend nothing', async () => {
    provider(OPENAI, (call) => (call.path.includes('stream=true') ? namedSseReply(responsesEvents('gpt-4.1', ['h', 'i'], USAGE)) : responsesReply('gpt-4.1', 'hi', USAGE)));
    const { client, spent } = manage();

    const replay = await client.responses.retrieve('resp_test', { stream: true });
    for await (const _ of replay);
    await client.responses.cancel('resp_test');

    // Was: 0.02.
    expect(spent()).toEqual({ costUsd: 0, budgetUsd: 0, outputTokens: 0 });
  });

  test('chat.completions.retrieve and update of a stored completion spend nothing', async () => {
    provider(OPENAI, () => chatReply('gpt-4.1', 'hi', USAGE));
    const { client, spent } = manage();

    await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }], store: true });
    await client.chat.completions.retrieve('chatcmpl-test');
    await client.chat.completions.update('chatcmpl-test', { metadata: { reviewed: 'yes' } });

    // Was: 0.03.
    expect(spent()).toEqual({ costUsd: ONE_REPLY, budgetUsd: ONE_REPLY, outputTokens: 1_000 });
  });

  test('polling a batch, whose object carries the usage of all its requests, spends nothing', async () => {
    provider(OPENAI, (call) => batch(call.path.endsWith('/cancel') ? 'cancelling' : 'completed'));
    const { client, spent } = manage();

    for (let poll = 0; poll < 5; poll++) await client.batches.retrieve('batch_1');
    await client.batches.cancel('batch_1');

    // Was: 6 USD (100,000 + 100,000 tokens at gpt-4.1's price, 1 USD a poll), and a 5 USD budget would have refused everything after.
    expect(spent()).toEqual({ costUsd: 0, budgetUsd: 0, outputTokens: 0 });
  });

  test('the free input token count spends nothing against budgets', async () => {
    provider(OPENAI, () => Response.json({ object: 'response.input_tokens', input_tokens: 1_000 }));
    const { client, spent } = manage();

    const counted = await client.responses.inputTokens.count({ model: 'gpt-4.1', input: 'x'.repeat(4_000) });

    expect(counted.input_tokens).toBe(1_000);
    // Was: its estimate against the budget, 1,000 input + 256 output tokens (the default allowance) at gpt-4.1's price: 0.004048 USD.
    expect(spent()).toEqual({ costUsd: 0, budgetUsd: 0, outputTokens: 0 });
  });

  test('a compaction (POST /responses/compact), a model call, is still priced', async () => {
    provider(OPENAI, () => Response.json({ id: 'resp_c', object: 'response.compaction', created_at: 1_700_000_000, output: [], usage: responsesReplyUsage() }));
    const { client, spent } = manage();

    await client.responses.compact({ model: 'gpt-4.1', input: 'a long conversation' });

    expect(spent()).toEqual({ costUsd: ONE_REPLY, budgetUsd: ONE_REPLY, outputTokens: 1_000 });
  });
});

/** The Responses usage of {@link USAGE}. */
function responsesReplyUsage() {
  return { input_tokens: 1_000, input_tokens_details: { cached_tokens: 0 }, output_tokens: 1_000, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 2_000 };
}
