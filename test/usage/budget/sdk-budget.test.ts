/**
 * Budgets through the real SDK: a cap holds under concurrency, the event fires
 * once per crossing, 'reject' refuses, 'cheaper' re-routes.
 */
import OpenAI from 'openai';
import { expect, test } from 'vitest';
import { getKeyplexDetails, type KeyManagerOptions} from '../../../src/index';
import { fakeKey } from '../../support/fake-keys';
import { chatChunks, chatReply, errorReply, gate, provider, sseReply, upstreamFetch } from '../../support/upstream';
import '../../support/setup';
import { record } from '../../support/events';
import { NO_BACKOFF, useManagers } from '../../support/scaffold';

const PRICEY = 'https://pricey.test/v1';
const CHEAP = 'https://cheap.test/v1';
// 1,000 input + 1,000 output tokens at 10 / 10 USD per million: 0.02 USD a reply.
const PRICE = { input: 10, output: 10 };
const USAGE = { prompt: 1_000, completion: 1_000 };
const BODY = { model: 'chat', messages: [{ role: 'user' as const, content: 'x'.repeat(4_000) }], max_tokens: 1_000 };

const managed = useManagers({
  ...NO_BACKOFF,
  providers: {
    pricey: { baseURL: PRICEY, keys: [fakeKey('p')], models: { chat: { upstream: 'chat-large', price: PRICE } } },
    cheap: { baseURL: CHEAP, keys: [fakeKey('c')], models: { chat: { upstream: 'chat-small', price: { input: 0.1, output: 0.1 } } } },
  },
});
function manage(options: Partial<KeyManagerOptions>) {
  const made = managed(options);
  return { ...made, exceeded: record(made.manager, 'budget:exceeded') };
}

test('a 1 USD cap holds under 200 concurrent requests: spend stays within one request of it, and the event fires once', async () => {
  const { fetch } = upstreamFetch({ [PRICEY]: (call) => chatReply(String(call.body?.model), 'ok', USAGE) });
  const { client, manager, exceeded } = manage({ fetch, budgets: [{ scope: { overall: true }, limitUsd: 1, window: 'day' }] });

  const results = await Promise.allSettled(Array.from({ length: 200 }, () => client.chat.completions.create(BODY)));
  const ok = results.filter((r) => r.status === 'fulfilled').length;
  const refused = results.filter((r) => r.status === 'rejected');

  const spent = manager.stats().totals.costUsd;
  expect(spent).toBeLessThanOrEqual(1 + 0.02 + 1e-9);
  expect(ok).toBeGreaterThan(0);
  expect(ok + refused.length).toBe(200);
  expect(exceeded).toHaveLength(1);
  for (const r of refused) {
    const error = (r as PromiseRejectedResult).reason;
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    expect(getKeyplexDetails(error)?.code).toBe('budget_exceeded');
  }
});

test("a model cap with onExceeded 'cheaper' sends requests to the cheapest deployment instead of refusing", async () => {
  const pricey = provider(PRICEY, (call) => chatReply(String(call.body?.model), 'ok', USAGE));
  const cheap = provider(CHEAP, (call) => chatReply(String(call.body?.model), 'ok', USAGE));
  const { client } = manage({ budgets: [{ scope: { model: 'chat' }, limitUsd: 0.05, window: 'hour', onExceeded: 'cheaper' }] });

  for (let i = 0; i < 5; i++) await client.chat.completions.create(BODY);

  expect(pricey.length).toBeGreaterThan(0);
  expect(pricey.length).toBeLessThanOrEqual(3);
  expect(cheap.length).toBe(5 - pricey.length);
});

test("past a 'reject' cap the SDK raises RateLimitError with code budget_exceeded and retryAfterMs, and nothing is sent", async () => {
  const pricey = provider(PRICEY, (call) => chatReply(String(call.body?.model), 'ok', USAGE));
  const { client, exceeded, manager } = manage({ budgets: [{ scope: { tag: 'team-a' }, limitUsd: 0.03, window: 'minute' }] });
  const tagged = { headers: { 'x-keyplex-options': encodeURIComponent(JSON.stringify({ tags: ['team-a'] })) } };

  await client.chat.completions.create(BODY, tagged);
  const error = await client.chat.completions.create(BODY, tagged).catch((e: unknown) => e);

  expect(error).toBeInstanceOf(OpenAI.RateLimitError);
  const detail = getKeyplexDetails(error);
  expect(detail?.code).toBe('budget_exceeded');
  expect(detail?.retryAfterMs).toBeGreaterThan(0);
  expect(pricey).toHaveLength(1);
  expect(exceeded.map((e) => e.budget)).toEqual(['tag:team-a/minute']);
  expect(manager.stats().budgets[0]).toMatchObject({ id: 'tag:team-a/minute', spentUsd: expect.closeTo(0.02, 9) });
});

test('a provider cap is judged when a key is picked: past it the provider is passed over for another, and concurrent requests stay within one estimate', async () => {
  const pricey = provider(PRICEY, (call) => chatReply(String(call.body?.model), 'ok', USAGE));
  const cheap = provider(CHEAP, (call) => chatReply(String(call.body?.model), 'ok', USAGE));
  const { client, manager, exceeded } = manage({ budgets: [{ scope: { provider: 'pricey' }, limitUsd: 0.1, window: 'day' }] });

  const results = await Promise.allSettled(Array.from({ length: 50 }, () => client.chat.completions.create(BODY)));

  expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
  const spentOnPricey = manager.stats().providers.pricey!.costUsd;
  expect(spentOnPricey).toBeLessThanOrEqual(0.1 + 0.02 + 1e-9);
  expect(pricey.length).toBeGreaterThan(0);
  expect(cheap.length).toBe(50 - pricey.length);
  expect(exceeded.map((e) => e.budget)).toEqual(['provider:pricey/day']);
});

test("a first request refused on its own estimate: budget:exceeded carries that estimate, and nothing spent", async () => {
  provider(PRICEY, (call) => chatReply(String(call.body?.model), 'ok', USAGE));
  const { client, exceeded } = manage({ budgets: [{ scope: { overall: true }, limitUsd: 0.001, window: 'day' }] });

  const error = await client.chat.completions.create(BODY).catch((e: unknown) => e);
  expect(getKeyplexDetails(error)?.code).toBe('budget_exceeded');
  expect(exceeded).toHaveLength(1);
  expect(exceeded[0]).toMatchObject({ spentUsd: 0, heldUsd: 0, limitUsd: 0.001 });
  // ~1,000 prompt tokens estimated from the text and 1,000 output at 10 USD per million each: about 0.02.
  expect(exceeded[0]!.estimateUsd).toBeGreaterThan(0.001);
});

test('a failover to a dearer provider raises the request’s hold first: 200 concurrent requests stay within the cap', async () => {
  // Each request is estimated (and held) at the cheap price, 0.002; the cheap provider fails, the pricey one costs 0.02.
  // keyplex's fetch, not msw: msw's interception of these 200 requests (about 400 calls) took ~1.2 s.
  const { fetch, seen } = upstreamFetch({ [CHEAP]: () => errorReply(500), [PRICEY]: (call) => chatReply(String(call.body?.model), 'ok', USAGE) });
  const pricey = seen[PRICEY]!;
  const { client, manager } = manage({
    fetch,
    providers: {
      cheap: { baseURL: CHEAP, keys: [fakeKey('c')], models: { chat: { upstream: 'chat-small', price: { input: 1, output: 1 } } } },
      pricey: { baseURL: PRICEY, keys: [fakeKey('p')], models: { chat: { upstream: 'chat-large', price: PRICE } } },
    },
    circuitBreaker: false,
    budgets: [{ scope: { overall: true }, limitUsd: 0.2, window: 'day' }],
  });

  const results = await Promise.allSettled(Array.from({ length: 200 }, () => client.chat.completions.create(BODY)));

  // Was: 100 admitted at 0.002, all served by pricey at 0.02 each: 2.00 spent of a 0.20 cap.
  const budget = manager.stats().budgets[0]!;
  expect(budget.spentUsd).toBeLessThanOrEqual(0.2 + 1e-9);
  expect(budget.heldUsd).toBe(0);
  expect(manager.stats().totals.costUsd).toBeCloseTo(budget.spentUsd, 9);
  expect(pricey.length).toBeGreaterThan(0);
  expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(pricey.length);
});

test('replies that report no usage spend their estimates: a provider that never reports usage cannot spend past a cap', async () => {
  // No usage in the JSON replies nor in the streams (which end normally): each request's estimate is 0.02.
  provider(PRICEY, (call) =>
    call.body?.stream === true
      ? sseReply(chatChunks('chat-large', ['o', 'k'], false))
      : Response.json({ id: 'c', object: 'chat.completion', created: 1, model: 'chat-large', choices: [{ index: 0, message: { role: 'assistant', content: 'ok', refusal: null }, finish_reason: 'stop', logprobs: null }] }),
  );
  const { client, manager } = manage({
    budgets: [
      { scope: { overall: true }, limitUsd: 0.1, window: 'day' },
      { scope: { provider: 'pricey' }, limitUsd: 1, window: 'day' },
    ],
  });
  const successes = record(manager, 'success');

  const outcomes: string[] = [];
  for (let i = 0; i < 8; i++) {
    try {
      if (i % 2 === 0) await client.chat.completions.create(BODY);
      else for await (const _ of await client.chat.completions.create({ ...BODY, stream: true }));
      outcomes.push('ok');
    } catch (error) {
      outcomes.push(getKeyplexDetails(error)?.code ?? String(error));
    }
  }

  // Was: every request served, 0 spent (a reply without usage spent nothing).
  expect(outcomes).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'budget_exceeded', 'budget_exceeded', 'budget_exceeded']);
  const [overall, pricey] = manager.stats().budgets;
  expect(overall).toMatchObject({ spentUsd: expect.closeTo(0.1, 9), heldUsd: 0 });
  expect(pricey).toMatchObject({ spentUsd: expect.closeTo(0.1, 9), heldUsd: 0 });
  // The events and stats still say what the provider said: no usage, cost unknown.
  expect(successes.map((s) => s.costUsd)).toEqual([null, null, null, null, null]);
  expect(manager.stats().totals).toMatchObject({ costUsd: 0, unpricedReplies: 5 });
});

test('an answer dropped by a throwing afterResponse hook was billed: its estimate is spent', async () => {
  const pricey = provider(PRICEY, (call) => chatReply(String(call.body?.model), 'ok', USAGE));
  const { client, manager } = manage({
    budgets: [
      { scope: { overall: true }, limitUsd: 0.1, window: 'day' },
      { scope: { provider: 'pricey' }, limitUsd: 1, window: 'day' },
    ],
    hooks: {
      afterResponse: () => {
        throw new Error('audit log down');
      },
    },
  });

  const codes: string[] = [];
  for (let i = 0; i < 8; i++) codes.push(await client.chat.completions.create(BODY).then(() => 'ok', (error: unknown) => String(getKeyplexDetails(error)?.code)));

  // Was: 8 answers billed upstream, all dropped, 0 spent.
  expect(codes).toEqual([...Array(5).fill('hook_failed'), ...Array(3).fill('budget_exceeded')]);
  expect(pricey).toHaveLength(5);
  const [overall, provider_] = manager.stats().budgets;
  expect(overall).toMatchObject({ spentUsd: expect.closeTo(0.1, 9), heldUsd: 0 });
  expect(provider_).toMatchObject({ spentUsd: expect.closeTo(0.1, 9), heldUsd: 0 });
});

test('a caller leaving a stream at its finish reason, before the usage chunk, spends the estimate', async () => {
  const usageSent = gate();
  provider(PRICEY, () => {
    const events = chatChunks('chat-large', ['o', 'k'], true, USAGE);
    const encoder = new TextEncoder();
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        // The usage chunk (the last event) waits until the caller has left.
        if (sent === events.length - 1) await usageSent.promise;
        if (sent < events.length) controller.enqueue(encoder.encode(`data: ${events[sent++]}\n\n`));
        else controller.close();
      },
    });
    return new Response(body, { headers: { 'content-type': 'text/event-stream' } });
  });
  const { client, manager } = manage({ budgets: [{ scope: { overall: true }, limitUsd: 1, window: 'day' }] });
  const successes = record(manager, 'success');

  const stream = await client.chat.completions.create({ ...BODY, stream: true });
  for await (const chunk of stream) if (chunk.choices[0]?.finish_reason) break;
  usageSent.open();

  // Was: 0 spent. The stream had ended (finish reason), so its usage reads as not reported.
  expect(successes).toHaveLength(1);
  expect(successes[0]).toMatchObject({ usage: null, costUsd: null });
  expect(manager.stats().budgets[0]).toMatchObject({ spentUsd: expect.closeTo(0.02, 9), heldUsd: 0 });
});

test("past a 'cheaper' cap of the request's own, a request whose cheap provider fails still fails over to the dearer one", async () => {
  provider(CHEAP, () => errorReply(500));
  const pricey = provider(PRICEY, (call) => chatReply(String(call.body?.model), 'ok', USAGE));
  const { client, manager } = manage({
    circuitBreaker: false,
    budgets: [{ scope: { model: 'chat' }, limitUsd: 0.001, window: 'day', onExceeded: 'cheaper' }],
  });

  await client.chat.completions.create(BODY);

  expect(pricey).toHaveLength(1);
  expect(manager.stats().budgets[0]).toMatchObject({ spentUsd: expect.closeTo(0.02, 9), heldUsd: 0 });
});
