/**
 * Room a key gets back before its window moves on — an estimate corrected
 * down by the reply's usage, tokens refunded, a reservation never sent —
 * goes to the requests waiting for it at once, not when their computed wait
 * ends (a period later). Through the real `openai` SDK and the public API, on
 * a fake clock that never moves here: every request counted as sent went
 * at the same instant.
 */
import { describe, expect, test } from 'vitest';
import { getKeyplexDetails, type KeyManagerOptions } from '../../../src/index';
import { fakeKey } from '../../support/fake-keys';
import { managedClients } from '../../support/manage';
import '../../support/setup';
import { fakeClock, quiesce, realSetImmediate } from '../../support/time';
import { chatChunks, chatReply, sseReply } from '../../support/upstream';

const BASE = 'https://room.test/v1';
const MODEL = 'gpt-4.1';
/** Estimated at 1 + 400 = 401 tokens (4 prompt characters, `max_tokens` 400); each reply says it used 10. */
const BODY = { model: MODEL, messages: [{ role: 'user' as const, content: 'hiya' }], max_tokens: 400 };
const USED = { prompt: 1, completion: 9 };

const manage = managedClients();

/** One key with `limits`, whose upstream answers every call at once (`reply`); `sent` counts the calls. */
function oneKey(limits: Partial<KeyManagerOptions['providers'][string]>, reply: () => Response, options: Partial<KeyManagerOptions> = {}) {
  let sent = 0;
  const fetch = (async () => {
    sent++;
    return reply();
  }) as typeof globalThis.fetch;
  const { manager, client } = manage({ providers: { one: { baseURL: BASE, keys: [fakeKey('room')], models: [MODEL], ...limits } }, fetch, ...options });
  return { manager, client, sent: () => sent };
}

/** Settles `requests` without rejecting; counts those settled. */
function track(requests: Promise<unknown>[]) {
  let settled = 0;
  const outcomes = requests.map((request) =>
    request.then(
      () => (settled++, 'served'),
      (error: unknown) => (settled++, getKeyplexDetails(error)?.code ?? String(error)),
    ),
  );
  return { outcomes, settled: () => settled };
}

describe('tokens given back by the reply wake the requests waiting for them', () => {
  test('tpm 1000, 20 requests estimated at 401 tokens that use 10: all 20 go at once (2 before: the rest waited a minute for the estimates to leave)', async () => {
    fakeClock();
    const key = oneKey({ tpm: 1_000 }, () => chatReply(MODEL, 'hello', USED));
    const run = track(Array.from({ length: 20 }, () => key.client.chat.completions.create(BODY)));

    await quiesce(() => key.sent() * 1_000 + run.settled());

    // Each reply corrects its 401 to 10: 19 × 10 + 401 = 591 tokens in the window when the 20th goes.
    expect(key.sent()).toBe(20);
    expect(await Promise.all(run.outcomes)).toEqual(Array<string>(20).fill('served'));
  });

  test('the same with streams: the usage chunk at the stream end corrects the estimate, and the waiting requests go', async () => {
    fakeClock();
    const key = oneKey({ tpm: 1_000 }, () => sseReply(chatChunks(MODEL, ['hel', 'lo'], true, USED)));
    const read = async () => {
      const stream = await key.client.chat.completions.create({ ...BODY, stream: true, stream_options: { include_usage: true } });
      for await (const chunk of stream) void chunk;
    };
    const run = track(Array.from({ length: 20 }, read));

    await quiesce(() => key.sent() * 1_000 + run.settled());

    expect(key.sent()).toBe(20);
    expect(await Promise.all(run.outcomes)).toEqual(Array<string>(20).fill('served'));
  });
});

describe('a reservation never sent wakes the requests waiting for it', () => {
  test('rpm 1: the first request fails in its (async) beforeAttempt hook, never sent, while the second waits for the key: the second goes at once, not a minute later', async () => {
    fakeClock();
    let calls = 0;
    const hooks = {
      beforeAttempt: async () => {
        // A turn of the event loop: the second request finds the key's one slot taken meanwhile, and waits.
        await new Promise<void>((resolve) => realSetImmediate(resolve));
        if (++calls === 1) throw new Error('refused by the app');
      },
    };
    const key = oneKey({ rpm: 1 }, () => chatReply(MODEL), { hooks });
    const run = track([key.client.chat.completions.create(BODY), key.client.chat.completions.create(BODY)]);

    await quiesce(() => key.sent() * 1_000 + run.settled());

    expect(run.settled()).toBe(2);
    expect(await Promise.all(run.outcomes)).toEqual(['hook_failed', 'served']);
    expect(key.sent()).toBe(1);
  });
});
