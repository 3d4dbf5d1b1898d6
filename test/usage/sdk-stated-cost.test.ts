/**
 * The cost a provider states in its reply, through the real SDK: OpenRouter's
 * `usage.cost` (plus the upstream's cost when the key is the user's own,
 * BYOK) and xAI's `usage.cost_in_usd_ticks` (1 USD = 1e10 ticks), in JSON
 * replies and in a stream's last usage chunk. It prices a reply when no
 * price is configured (over the built-in table's guess), for events, stats
 * and budgets; a configured price still wins. A reply whose cost is not known
 * at all, under a budget, is warned of once.
 */
import { afterEach, describe, expect, test, vi } from 'vitest';
import { getKeyplexDetails, type KeyManagerOptions } from '../../src/index';
import { fakeKey } from '../support/fake-keys';
import { provider, sseReply } from '../support/upstream';
import '../support/setup';
import { record } from '../support/events';
import { NO_BACKOFF, useManagers } from '../support/scaffold';

const ROUTER = 'https://openrouter.test/api/v1';
const XAI = 'https://xai.test/v1';

const managed = useManagers({
  ...NO_BACKOFF,
  providers: {
    openrouter: { baseURL: ROUTER, keys: [fakeKey('or')], serveAnyModel: true },
  },
});

function manage(options: Partial<KeyManagerOptions> = {}) {
  const made = managed(options);
  return { ...made, successes: record(made.manager, 'success') };
}

const ask = [{ role: 'user' as const, content: 'hi' }];
const TOKENS = { prompt_tokens: 1_000, completion_tokens: 500, total_tokens: 1_500 };

/** A chat completion of `model` whose usage has the token counts above and `extra` (cost fields). */
function costedReply(model: string, extra: Record<string, unknown>): Response {
  return Response.json({
    id: 'gen-1',
    object: 'chat.completion',
    created: 1,
    model,
    choices: [{ index: 0, message: { role: 'assistant', content: 'ok', refusal: null }, finish_reason: 'stop', logprobs: null }],
    usage: { ...TOKENS, ...extra },
  });
}

/** A streamed chat completion of `model` whose last chunk carries the usage above and `extra`. */
function costedStream(model: string, extra: Record<string, unknown>): Response {
  const base = { id: 'gen-s', object: 'chat.completion.chunk', created: 1, model };
  return sseReply([
    JSON.stringify({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: 'ok' }, finish_reason: null }] }),
    JSON.stringify({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }),
    JSON.stringify({ ...base, choices: [], usage: { ...TOKENS, ...extra } }),
  ]);
}

async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of stream);
}

describe('a cost the reply states prices a model keyplex has no price for', () => {
  test("OpenRouter's usage.cost in a JSON reply is the success event's costUsd and the stats' spend", async () => {
    provider(ROUTER, (call) => costedReply(String(call.body?.model), { cost: 0.00123, is_byok: false }));
    const { client, manager, successes } = manage();

    await client.chat.completions.create({ model: 'acme/unlisted-model', messages: ask });

    // Was: costUsd null, 0 spent, counted as an unpriced reply.
    expect(successes[0]?.costUsd).toBe(0.00123);
    expect(successes[0]?.usage?.statedCostUsd).toBe(0.00123);
    expect(manager.stats().totals).toMatchObject({ costUsd: 0.00123, unpricedReplies: 0 });
  });

  test("OpenRouter's usage.cost in a stream's last usage chunk prices the stream", async () => {
    provider(ROUTER, (call) => costedStream(String(call.body?.model), { cost: 0.0042 }));
    const { client, manager, successes } = manage();

    await drain(await client.chat.completions.create({ model: 'acme/unlisted-model', messages: ask, stream: true }));

    expect(successes[0]).toMatchObject({ stream: true, costUsd: 0.0042 });
    expect(manager.stats().totals.costUsd).toBe(0.0042);
  });

  test("an OpenRouter BYOK reply costs OpenRouter's charge plus the upstream's, which the user's own key paid", async () => {
    provider(ROUTER, (call) => costedReply(String(call.body?.model), { cost: 0.0001, is_byok: true, cost_details: { upstream_inference_cost: 0.002 } }));
    const { client, successes } = manage();

    await client.chat.completions.create({ model: 'acme/unlisted-model', messages: ask });

    expect(successes[0]?.costUsd).toBeCloseTo(0.0021, 12);
  });

  test("a reply that is not BYOK does not add cost_details.upstream_inference_cost (OpenRouter's cost includes it)", async () => {
    provider(ROUTER, (call) => costedReply(String(call.body?.model), { cost: 0.002, is_byok: false, cost_details: { upstream_inference_cost: 0.002 } }));
    const { client, successes } = manage();

    await client.chat.completions.create({ model: 'acme/unlisted-model', messages: ask });

    expect(successes[0]?.costUsd).toBe(0.002);
  });

  test("xAI's usage.cost_in_usd_ticks is read at 1e10 ticks a dollar, in JSON replies and streams", async () => {
    provider(XAI, (call) =>
      call.body?.stream === true ? costedStream(String(call.body?.model), { cost_in_usd_ticks: 200_000_000 }) : costedReply(String(call.body?.model), { cost_in_usd_ticks: 37_756_000 }),
    );
    const { client, successes } = manage({ providers: { xai: { baseURL: XAI, keys: [fakeKey('xai')], models: ['grok-unlisted'] } } });

    await client.chat.completions.create({ model: 'grok-unlisted', messages: ask });
    await drain(await client.chat.completions.create({ model: 'grok-unlisted', messages: ask, stream: true }));

    expect(successes.map((s) => s.costUsd)).toEqual([0.0037756, 0.02]);
  });

  test('a stated cost spends budgets: past the cap the next request is refused', async () => {
    provider(ROUTER, (call) => costedReply(String(call.body?.model), { cost: 0.4 }));
    const { client, manager } = manage({ budgets: [{ scope: { overall: true }, limitUsd: 1, window: 'day' }] });

    const codes: string[] = [];
    for (let i = 0; i < 4; i++) codes.push(await client.chat.completions.create({ model: 'acme/unlisted-model', messages: ask }).then(() => 'ok', (e: unknown) => String(getKeyplexDetails(e)?.code)));

    // Was: all 4 served, 0 spent (1.60 billed against a 1.00 cap).
    expect(codes).toEqual(['ok', 'ok', 'ok', 'budget_exceeded']);
    expect(manager.stats().budgets[0]).toMatchObject({ spentUsd: expect.closeTo(1.2, 9), heldUsd: 0 });
  });

  test("OpenRouter's cost 0 for a free model is a known cost of 0, not an unpriced reply", async () => {
    provider(ROUTER, (call) => costedReply(String(call.body?.model), { cost: 0 }));
    const { client, manager, successes } = manage();

    await client.chat.completions.create({ model: 'acme/unlisted-model:free', messages: ask });

    expect(successes[0]?.costUsd).toBe(0);
    expect(manager.stats().totals.unpricedReplies).toBe(0);
  });
});

describe('which figure wins', () => {
  test("a stated cost wins over the built-in table's list price (the table is a dated guess; the reply is the bill)", async () => {
    provider(ROUTER, (call) => costedReply(String(call.body?.model), { cost: 0.5 }));
    const { client, successes } = manage();

    // openai/gpt-4.1 is in the built-in table (2 / 8 USD per million): 0.006 for these tokens.
    await client.chat.completions.create({ model: 'openai/gpt-4.1', messages: ask });

    expect(successes[0]?.costUsd).toBe(0.5);
  });

  test("a price configured on the deployment wins over a stated cost (the user's explicit word, e.g. a gateway's markup)", async () => {
    provider(ROUTER, (call) => costedReply(String(call.body?.model), { cost: 0.5 }));
    const { client, successes } = manage({
      providers: { openrouter: { baseURL: ROUTER, keys: [fakeKey('or')], models: { 'acme/unlisted-model': { price: { input: 10, output: 20 } } } } },
    });

    await client.chat.completions.create({ model: 'acme/unlisted-model', messages: ask });

    expect(successes[0]?.costUsd).toBeCloseTo((1_000 * 10 + 500 * 20) / 1e6, 12);
    // The provider's figure stays in the usage, to compare.
    expect(successes[0]?.usage?.statedCostUsd).toBe(0.5);
  });

  test('a price given in the `prices` option wins over a stated cost too', async () => {
    provider(ROUTER, (call) => costedReply(String(call.body?.model), { cost: 0.5 }));
    const { client, successes } = manage({ prices: { 'openai/gpt-4.1': { input: 1, output: 1 } } });

    await client.chat.completions.create({ model: 'openai/gpt-4.1', messages: ask });

    expect(successes[0]?.costUsd).toBeCloseTo(1_500 / 1e6, 12);
  });
});

describe('a stated cost that makes no sense reads as missing', () => {
  test.each<[string, Record<string, unknown>]>([
    ['a negative cost', { cost: -1 }],
    ['an absurdly large cost', { cost: 1e300 }],
    ['a cost above 1,000 USD for one reply', { cost: 5_000 }],
    ['a cost that is a string', { cost: '0.5' }],
    ['negative ticks', { cost_in_usd_ticks: -5 }],
    ['absurdly many ticks', { cost_in_usd_ticks: 1e30 }],
    ['BYOK without the upstream cost', { cost: 0, is_byok: true }],
  ])('%s: the reply is priced as it was before (here: unpriced)', async (_, extra) => {
    provider(ROUTER, (call) => costedReply(String(call.body?.model), extra));
    const { client, manager, successes } = manage();

    await client.chat.completions.create({ model: 'acme/unlisted-model', messages: ask });

    expect(successes[0]?.costUsd).toBeNull();
    expect(successes[0]?.usage).not.toHaveProperty('statedCostUsd');
    expect(manager.stats().totals.unpricedReplies).toBe(1);
  });
});

describe('a reply whose cost is unknown under a budget', () => {
  afterEach(() => vi.restoreAllMocks());

  function warnings() {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    return () => warn.mock.calls.filter(([, options]) => (options as { code?: string } | undefined)?.code === 'KEYPLEX_UNPRICED_REPLY').map(([message]) => String(message));
  }

  test('warns once per provider and model that budgets counted nothing for it', async () => {
    provider(ROUTER, (call) => costedReply(String(call.body?.model), {}));
    const seen = warnings();
    const { client, manager } = manage({ budgets: [{ scope: { overall: true }, limitUsd: 1, window: 'day' }] });

    for (let i = 0; i < 3; i++) await client.chat.completions.create({ model: 'acme/warned-a', messages: ask });
    await client.chat.completions.create({ model: 'acme/warned-b', messages: ask });

    // Was: no word at all; the budget silently counted 0 for 4 replies of 1,500 tokens.
    expect(seen()).toHaveLength(2);
    expect(seen()[0]).toContain("'acme/warned-a'");
    expect(seen()[0]).toContain("'openrouter'");
    expect(seen()[0]).toContain('price');
    expect(manager.stats().totals.unpricedReplies).toBe(4);
  });

  test('warns of a streamed reply of an unpriced model that reported no usage either', async () => {
    provider(ROUTER, (call) => sseReply([JSON.stringify({ id: 's', object: 'chat.completion.chunk', created: 1, model: String(call.body?.model), choices: [{ index: 0, delta: { content: 'ok' }, finish_reason: 'stop' }] })]));
    const seen = warnings();
    const { client } = manage({ budgets: [{ scope: { overall: true }, limitUsd: 1, window: 'day' }] });

    await drain(await client.chat.completions.create({ model: 'acme/warned-c', messages: ask, stream: true }));

    expect(seen()).toHaveLength(1);
  });

  test('warns of what a broken stream of an unpriced model used before it broke', async () => {
    const chunk = (model: string) => JSON.stringify({ id: 's', object: 'chat.completion.chunk', created: 1, model, choices: [{ index: 0, delta: { content: 'ok' }, finish_reason: null }] });
    provider(ROUTER, (call) => sseReply([chunk(String(call.body?.model)), chunk(String(call.body?.model))], { failAfter: 2 }));
    const seen = warnings();
    const { client, manager } = manage({ budgets: [{ scope: { overall: true }, limitUsd: 1, window: 'day' }] });
    const failures = record(manager, 'failure');

    const stream = await client.chat.completions.create({ model: 'acme/warned-g', messages: ask, stream: true });
    await expect(drain(stream)).rejects.toThrow();

    expect(failures[0]).toMatchObject({ partial: true, costUsd: null });
    expect(seen()).toHaveLength(1);
  });

  test("warns under a provider's budget alone too", async () => {
    provider(ROUTER, (call) => costedReply(String(call.body?.model), {}));
    const seen = warnings();
    const { client } = manage({ budgets: [{ scope: { provider: 'openrouter' }, limitUsd: 1, window: 'day' }] });

    await client.chat.completions.create({ model: 'acme/warned-f', messages: ask });

    expect(seen()).toHaveLength(1);
  });

  test('does not warn without a budget that counts the reply', async () => {
    provider(ROUTER, (call) => costedReply(String(call.body?.model), {}));
    const seen = warnings();
    const { client } = manage({ budgets: [{ scope: { model: 'gpt-4.1' }, limitUsd: 1, window: 'day' }] });

    await client.chat.completions.create({ model: 'acme/warned-d', messages: ask });

    expect(seen()).toEqual([]);
  });

  test('does not warn when the reply states its cost', async () => {
    provider(ROUTER, (call) => costedReply(String(call.body?.model), { cost: 0.01 }));
    const seen = warnings();
    const { client } = manage({ budgets: [{ scope: { overall: true }, limitUsd: 1, window: 'day' }] });

    await client.chat.completions.create({ model: 'acme/warned-e', messages: ask });

    expect(seen()).toEqual([]);
  });
});

test('concurrent requests to a model priced only by what its replies state are held against a cap at the cost per token last stated', async () => {
  // 1,000 + 500 tokens for 0.40 USD a reply; max_tokens 500 makes each request's estimate close to that.
  provider(ROUTER, (call) => costedReply(String(call.body?.model), { cost: 0.4 }));
  const { client, manager } = manage({ budgets: [{ scope: { overall: true }, limitUsd: 1, window: 'day' }] });
  const body = { model: 'acme/unlisted-model', messages: [{ role: 'user' as const, content: 'x'.repeat(4_000) }], max_tokens: 500 };

  await client.chat.completions.create(body);
  const results = await Promise.allSettled(Array.from({ length: 50 }, () => client.chat.completions.create(body)));

  // Was: all 50 served (held at 0 each), 20.40 USD spent of a 1 USD cap.
  const served = results.filter((r) => r.status === 'fulfilled').length;
  expect(served).toBeLessThanOrEqual(2);
  expect(manager.stats().budgets[0]!.spentUsd).toBeLessThanOrEqual(1 + 0.4 + 1e-9);
});

test("an xAI image generation, whose usage states only its cost, is priced at that cost", async () => {
  provider(XAI, () => Response.json({ created: 1, data: [{ url: 'https://img.test/1.png' }], usage: { cost_in_usd_ticks: 200_000_000 } }));
  const { client, successes } = manage({ providers: { xai: { baseURL: XAI, keys: [fakeKey('xai')], models: ['grok-imagine-unlisted'] } } });

  await client.images.generate({ model: 'grok-imagine-unlisted', prompt: 'a cat' });

  // Was: usage null, costUsd null (a usage without token counts read as none).
  expect(successes[0]).toMatchObject({ costUsd: 0.02, usage: { inputTokens: 0, outputTokens: 0, totalTokens: 0, statedCostUsd: 0.02 } });
});
