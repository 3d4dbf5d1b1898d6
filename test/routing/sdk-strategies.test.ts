/**
 * Routing strategies end to end: `cost`, `latency`, `least-busy`, `weighted`
 * and a custom strategy, driven through the real `openai` SDK wrapped by
 * `manager.wrap()`, against msw stand-ins of the providers.
 */
import { afterEach, describe, expect, test, vi } from 'vitest';
import OpenAI from 'openai';
import {
  isKeyplexError,
  type DeploymentView,
  type KeyManagerOptions,
  type RouteContext,
  type RoutingOptions,
  type RoutingStrategy,
} from '../../src/index';
import { fakeKey } from '../support/fake-keys';
import { chatChunks, chatReply, deferred, errorReply, provider, sseReply, type Deferred, type UpstreamCall } from '../support/upstream';

/** A chat answer in the form asked for: a stream to a stream request, else JSON. */
const answer = (model: string) => (call: UpstreamCall) => (call.body?.stream ? sseReply(chatChunks(model, ['hi'], false)) : chatReply(model));
import '../support/setup';
import { fakeClock, until } from '../support/time';
import { record } from '../support/events';
import { useManagers } from '../support/scaffold';
import { caught } from '../support/caught';

const PRICEY = 'https://api.pricey.test/v1';
const MID = 'https://api.mid.test/v1';
const CHEAP = 'https://api.cheap.test/v1';
const A = 'https://api.a.test/v1';
const B = 'https://api.b.test/v1';
const CHAT = 'chat';
const HI = { model: CHAT, messages: [{ role: 'user' as const, content: 'hi' }] };

// No backoff between attempts: fake timers never advance on their own here.
const manage = useManagers();
const holds: Deferred<void>[] = [];

afterEach(() => {
  for (const hold of holds.splice(0)) hold.resolve();
});

const models = (recorded: readonly UpstreamCall[]): unknown[] => recorded.map((call) => call.body?.model);

// ---------------------------------------------------------------------------
// cost

/**
 * Model `chat` on three providers, dearest first in configuration so that
 * configuration order alone would pick the wrong one. `cheap.down` makes the
 * cheap provider answer 503.
 */
function costSetup(options: Partial<KeyManagerOptions> = {}) {
  const cheap = { down: false };
  const seen = {
    pricey: provider(PRICEY, answer('pricey-chat')),
    mid: provider(MID, answer('mid-chat')),
    cheap: provider(CHEAP, (call) => (cheap.down ? errorReply(503, 'service_unavailable') : answer('cheap-chat')(call))),
  };
  const { manager, client } = manage({
    providers: {
      pricey: { baseURL: PRICEY, keys: [fakeKey('pricey')], models: { [CHAT]: { upstream: 'pricey-chat', price: { input: 10, output: 30 } } } },
      mid: { baseURL: MID, keys: [fakeKey('mid')], models: { [CHAT]: { upstream: 'mid-chat', price: { input: 1, output: 4 } } } },
      cheap: { baseURL: CHEAP, keys: [fakeKey('cheap')], models: { [CHAT]: { upstream: 'cheap-chat', price: { input: 0.1, output: 0.4 } } } },
    },
    routing: { strategy: 'cost' },
    circuitBreaker: { deployment: { policy: { kind: 'consecutive', threshold: 2 }, openMs: 10_000 } },
    ...options,
  });
  const counts = () => ({ pricey: seen.pricey.length, mid: seen.mid.length, cheap: seen.cheap.length });
  return { cheap, seen, manager, client, counts };
}

describe('cost routing', () => {
  test('sends a mixed workload (short, long, long-answer, multi-turn, streamed) to the cheapest deployment', async () => {
    const { seen, client, counts } = costSetup();

    await client.chat.completions.create(HI);
    await client.chat.completions.create({ model: CHAT, messages: [{ role: 'user', content: 'word '.repeat(4000) }] });
    await client.chat.completions.create({ ...HI, max_tokens: 8000 });
    await client.chat.completions.create({
      model: CHAT,
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'one' },
        { role: 'assistant', content: 'two' },
        { role: 'user', content: 'three' },
      ],
    });
    const stream = await client.chat.completions.create({ ...HI, stream: true });
    for await (const _ of stream) void _;

    expect(counts()).toEqual({ pricey: 0, mid: 0, cheap: 5 });
    expect(models(seen.cheap)).toEqual(Array(5).fill('cheap-chat'));
  });

  test('ranks the deployments cheapest first in the attempt event, whatever the configuration order', async () => {
    const { manager, client, cheap } = costSetup({ retry: { baseDelayMs: 0, maxAttempts: 3 }, circuitBreaker: false });
    const attempts = record(manager, 'attempt');
    cheap.down = true;

    await client.chat.completions.create(HI);

    expect(attempts.map((a) => [a.provider, a.rank, a.strategy])).toEqual([
      ['cheap', 1, 'cost'],
      ['mid', 2, 'cost'],
    ]);
  });

  test('fails over to the next cheapest (not the dearest) while the cheap one answers 503', async () => {
    const { cheap, client, counts } = costSetup();
    cheap.down = true;

    const reply = await client.chat.completions.create(HI);

    expect(reply.model).toBe('mid-chat');
    expect(counts()).toEqual({ pricey: 0, mid: 1, cheap: 1 });
  });

  test("moves traffic to the next cheapest once the cheap deployment's circuit opens", async () => {
    fakeClock();
    const { cheap, manager, client, counts } = costSetup();
    const opened = record(manager, 'circuit:open');
    cheap.down = true;

    await client.chat.completions.create(HI);
    await client.chat.completions.create(HI);
    expect(opened.map((e) => [e.scope, e.provider, e.upstreamModel])).toEqual([['deployment', 'cheap', 'cheap-chat']]);
    expect(counts()).toEqual({ pricey: 0, mid: 2, cheap: 2 });

    for (let i = 0; i < 5; i++) await client.chat.completions.create(HI);

    // While the circuit is open the cheap provider is not even tried.
    expect(counts()).toEqual({ pricey: 0, mid: 7, cheap: 2 });
  });

  test('returns to the cheap deployment once its circuit lets a probe through and it has recovered', async () => {
    fakeClock();
    const { cheap, client, counts } = costSetup();
    cheap.down = true;
    await client.chat.completions.create(HI);
    await client.chat.completions.create(HI);
    cheap.down = false;

    await vi.advanceTimersByTimeAsync(10_000);
    await client.chat.completions.create(HI);
    await client.chat.completions.create(HI);

    expect(counts()).toEqual({ pricey: 0, mid: 2, cheap: 4 });
  });

  test('prices deployments by their upstream model from the built-in price table', async () => {
    const seenOpenai = provider(A, () => chatReply('gpt-4.1'));
    const seenDeepseek = provider(B, () => chatReply('deepseek-chat'));
    const { client } = manage({
      providers: {
        openai: { baseURL: A, keys: [fakeKey('openai')], models: { [CHAT]: 'gpt-4.1' } },
        deepseek: { baseURL: B, keys: [fakeKey('deepseek')], models: { [CHAT]: 'deepseek-chat' } },
      },
      routing: { strategy: 'cost' },
    });

    for (let i = 0; i < 3; i++) await client.chat.completions.create(HI);

    expect(seenOpenai).toHaveLength(0);
    expect(models(seenDeepseek)).toEqual(['deepseek-chat', 'deepseek-chat', 'deepseek-chat']);
  });

  test("weighs this request's output allowance: cheap-input/dear-output wins short answers and loses long ones", async () => {
    // input 0.05 / output 20 vs input 2 / output 2 (USD per million tokens).
    const seenA = provider(A, () => chatReply('a-chat'));
    const seenB = provider(B, () => chatReply('b-chat'));
    const { client } = manage({
      providers: {
        a: { baseURL: A, keys: [fakeKey('a')], models: { [CHAT]: { upstream: 'a-chat', price: { input: 0.05, output: 20 } } } },
        b: { baseURL: B, keys: [fakeKey('b')], models: { [CHAT]: { upstream: 'b-chat', price: { input: 2, output: 2 } } } },
      },
      routing: { strategy: 'cost' },
    });
    // ~10,000 input tokens, 10 output: a costs ~0.0007 USD, b ~0.02.
    await client.chat.completions.create({ model: CHAT, messages: [{ role: 'user', content: 'x'.repeat(40_000) }], max_tokens: 10 });
    // ~1 input token, 10,000 output: a costs ~0.2 USD, b ~0.02.
    await client.chat.completions.create({ ...HI, max_completion_tokens: 10_000 });

    expect([seenA.length, seenB.length]).toEqual([1, 1]);
    expect(seenA[0]?.body?.max_tokens).toBe(10);
    expect(seenB[0]?.body?.max_completion_tokens).toBe(10_000);
  });
});

// ---------------------------------------------------------------------------
// latency

describe('latency routing', () => {
  /**
   * A answers after `a.delayMs`, B after 100 ms, on the fake clock. `send()`
   * sends one request, waits until a provider holds it, moves the clock by
   * exactly that provider's delay, and says which provider served it.
   */
  function latencySetup() {
    fakeClock();
    const a = { delayMs: 10 };
    const B_DELAY_MS = 100;
    const later = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
    const seenA = provider(A, async () => {
      await later(a.delayMs);
      return chatReply('a-chat');
    });
    const seenB = provider(B, async () => {
      await later(B_DELAY_MS);
      return chatReply('b-chat');
    });
    const { manager, client } = manage({
      providers: {
        a: { baseURL: A, keys: [fakeKey('a')], models: { [CHAT]: 'a-chat' } },
        b: { baseURL: B, keys: [fakeKey('b')], models: { [CHAT]: 'b-chat' } },
      },
      routing: { strategy: 'latency' },
    });
    async function send(): Promise<'a' | 'b'> {
      const before = { a: seenA.length, b: seenB.length };
      const reply = client.chat.completions.create(HI);
      await until(() => seenA.length + seenB.length > before.a + before.b, 'a provider holds the request');
      const toA = seenA.length > before.a;
      await vi.advanceTimersByTimeAsync(toA ? a.delayMs : B_DELAY_MS);
      await reply;
      return toA ? 'a' : 'b';
    }
    return { a, manager, send };
  }

  test('measures each deployment once, then sends everything to the faster one', async () => {
    const { send } = latencySetup();

    const routes: string[] = [];
    for (let i = 0; i < 6; i++) routes.push(await send());

    // Unmeasured deployments go first (a, then b), then the faster one (a, 10 ms vs 100 ms).
    expect(routes).toEqual(['a', 'b', 'a', 'a', 'a', 'a']);
  });

  test('shifts traffic to the other deployment once the fast one turns slow', async () => {
    const { a, send } = latencySetup();
    const warmUp: string[] = [];
    for (let i = 0; i < 4; i++) warmUp.push(await send());
    expect(warmUp).toEqual(['a', 'b', 'a', 'a']);

    a.delayMs = 500;
    const routes: string[] = [];
    for (let i = 0; i < 8; i++) routes.push(await send());

    // Each 500 ms answer enters as at most 3 × a's average (alpha 0.3): 10 → 16 → 26 → 41 → 66 → 105 ms,
    // behind b's 100 ms after the 5th. (One answer, taken whole, moved it to 157 ms: see sdk-latency-health's outliers.)
    expect(routes).toEqual(['a', 'a', 'a', 'a', 'a', 'b', 'b', 'b']);
  });

  test('names the latency strategy in the attempt event', async () => {
    const { manager, send } = latencySetup();
    const attempts = record(manager, 'attempt');

    await send();
    await send();
    await send();

    expect(attempts.map((e) => [e.provider, e.strategy, e.rank])).toEqual([
      ['a', 'latency', 1],
      ['b', 'latency', 1],
      ['a', 'latency', 1],
    ]);
  });
});

// ---------------------------------------------------------------------------
// least-busy

describe('least-busy routing', () => {
  function twoProviders(strategy: RoutingOptions['strategy'], handlerA: () => Promise<Response> | Response) {
    const seenA = provider(A, handlerA);
    const seenB = provider(B, () => chatReply('b-chat'));
    const { manager, client } = manage({
      providers: {
        a: { baseURL: A, keys: [fakeKey('a')], models: { [CHAT]: 'a-chat' } },
        b: { baseURL: B, keys: [fakeKey('b')], models: { [CHAT]: 'b-chat' } },
      },
      routing: { strategy },
    });
    return { seenA, seenB, manager, client };
  }

  test('sends new requests to the deployment with fewer attempts in flight', async () => {
    const hold = deferred();
    holds.push(hold);
    const { seenA, seenB, client } = twoProviders('least-busy', async () => {
      await hold.promise;
      return chatReply('a-chat');
    });

    // Both idle: configuration order, a. a now holds one request.
    const held = client.chat.completions.create(HI);
    await until(() => seenA.length === 1, 'a holds the first request');
    for (let i = 0; i < 3; i++) await client.chat.completions.create(HI);

    expect([seenA.length, seenB.length]).toEqual([1, 3]);
    hold.resolve();
    await held;
  });

  test('goes back to configuration order once the busy deployment is idle again', async () => {
    const hold = deferred();
    holds.push(hold);
    const { seenA, seenB, client } = twoProviders('least-busy', async (): Promise<Response> => {
      if (seenA.length === 1) await hold.promise;
      return chatReply('a-chat');
    });
    const held = client.chat.completions.create(HI);
    await until(() => seenA.length === 1, 'a holds the first request');
    await client.chat.completions.create(HI);
    hold.resolve();
    await held;

    await client.chat.completions.create(HI);

    expect([seenA.length, seenB.length]).toEqual([2, 1]);
  });

  test('spreads concurrent requests evenly over two deployments that hold them', async () => {
    const hold = deferred();
    holds.push(hold);
    const seenA = provider(A, async () => {
      await hold.promise;
      return chatReply('a-chat');
    });
    const seenB = provider(B, async () => {
      await hold.promise;
      return chatReply('b-chat');
    });
    const { client } = manage({
      providers: {
        a: { baseURL: A, keys: [fakeKey('a')], models: { [CHAT]: 'a-chat' } },
        b: { baseURL: B, keys: [fakeKey('b')], models: { [CHAT]: 'b-chat' } },
      },
      routing: { strategy: 'least-busy' },
      // The held calls stand for slow replies: on keys of unknown limits keyplex would hold the others for the first one's headers.
      rateLimiting: { coldStart: 'open' },
    });

    const replies: Promise<unknown>[] = [];
    for (let i = 0; i < 6; i++) {
      replies.push(client.chat.completions.create(HI));
      await until(() => seenA.length + seenB.length === i + 1, `request ${i + 1} reaches a provider`);
    }

    expect([seenA.length, seenB.length]).toEqual([3, 3]);
    hold.resolve();
    await Promise.all(replies);
  });
});

// ---------------------------------------------------------------------------
// weighted

describe('weighted routing', () => {
  function weightedSetup() {
    const seenA = provider(A, () => chatReply('a-chat'));
    const seenB = provider(B, () => chatReply('b-chat'));
    const { manager, client } = manage({
      providers: {
        a: { baseURL: A, keys: [fakeKey('a')], models: { [CHAT]: { upstream: 'a-chat', weight: 3 } } },
        b: { baseURL: B, keys: [fakeKey('b')], models: { [CHAT]: { upstream: 'b-chat' } } },
      },
      routing: { strategy: 'weighted' },
    });
    return { seenA, seenB, manager, client };
  }

  test('follows deployment weights 3:1 exactly over 40 requests', async () => {
    const { seenA, seenB, client } = weightedSetup();

    for (let i = 0; i < 40; i++) await client.chat.completions.create(HI);

    expect([seenA.length, seenB.length]).toEqual([30, 10]);
  });

  test('interleaves the heavy deployment (smooth weighted round-robin: a a b a, repeated)', async () => {
    const { manager, client } = weightedSetup();
    const attempts = record(manager, 'attempt');

    for (let i = 0; i < 12; i++) await client.chat.completions.create(HI);

    expect(attempts.map((e) => e.provider).join('')).toBe('aaba'.repeat(3));
    expect(new Set(attempts.map((e) => e.strategy))).toEqual(new Set(['weighted']));
  });
});

// ---------------------------------------------------------------------------
// custom

describe('a custom routing strategy', () => {
  /** Records what it is given and puts the last deployment first. */
  function reversing() {
    const seen: { providers: string[]; ctx: RouteContext; views: DeploymentView[] }[] = [];
    const strategy: RoutingStrategy = {
      order(deployments, ctx) {
        seen.push({ providers: deployments.map((d) => d.provider), ctx: { ...ctx }, views: [...deployments] });
        return deployments.slice().reverse();
      },
    };
    return { seen, strategy };
  }

  function customSetup(routing: KeyManagerOptions['routing']) {
    const seenA = provider(A, answer('a-chat'));
    const seenB = provider(B, answer('b-chat'));
    const { manager, client } = manage({
      providers: {
        a: {
          baseURL: A,
          keys: [fakeKey('a')],
          models: { [CHAT]: { upstream: 'a-chat', contextWindow: 8000, price: { input: 1, output: 2 }, weight: 2, tags: ['eu', 'batch'] } },
        },
        b: { baseURL: B, keys: [fakeKey('b')], models: { [CHAT]: 'b-chat' } },
      },
      routing,
      // The request id a strategy is told is checked against the reply's.
      replyHeaders: true,
    });
    return { seenA, seenB, manager, client };
  }

  test('orders the deployments: its first choice serves the request', async () => {
    const { seen, strategy } = reversing();
    const { seenA, seenB, manager, client } = customSetup({ strategy });
    const attempts = record(manager, 'attempt');

    await client.chat.completions.create(HI);

    expect(seen[0]?.providers).toEqual(['a', 'b']);
    expect([seenA.length, seenB.length]).toEqual([0, 1]);
    expect(attempts.map((e) => [e.provider, e.strategy, e.rank])).toEqual([['b', 'custom', 1]]);
  });

  test('is given a deployment whose circuit is open too, which is passed over when a key is picked', async () => {
    const { seen, strategy } = reversing();
    const seenA = provider(A, answer('a-chat'));
    const seenB = provider(B, () => errorReply(503, 'service_unavailable'));
    const { client } = manage({
      providers: {
        a: { baseURL: A, keys: [fakeKey('a')], models: { [CHAT]: 'a-chat' } },
        b: { baseURL: B, keys: [fakeKey('b')], models: { [CHAT]: 'b-chat' } },
      },
      routing: { strategy },
      circuitBreaker: { deployment: { policy: { kind: 'consecutive', threshold: 1 }, openMs: 60_000 } },
    });
    await client.chat.completions.create(HI); // b (first in reverse) fails and opens its circuit; a serves.

    await client.chat.completions.create(HI);

    expect(seen.map((s) => s.providers)).toEqual([
      ['a', 'b'],
      ['a', 'b'],
    ]);
    expect([seenA.length, seenB.length]).toEqual([2, 1]);
  });

  test("gets a RouteContext with the request's model, token estimates, stream flag and request id", async () => {
    const { seen, strategy } = reversing();
    const { client } = customSetup({ strategy });

    // 400 characters of prompt ≈ 100 tokens; max_tokens 50 is the output allowance.
    const { response } = await client.chat.completions
      .create({ model: CHAT, messages: [{ role: 'user', content: 'x'.repeat(400) }], max_tokens: 50 })
      .withResponse();
    // No max-tokens field: the configured default output allowance (256).
    await client.chat.completions.create(HI);

    expect(seen.map((s) => s.ctx)).toEqual([
      { model: CHAT, inputTokens: 100, outputTokens: 50, stream: false, requestId: response.headers.get('x-keyplex-request-id') },
      { model: CHAT, inputTokens: 1, outputTokens: 256, stream: false, requestId: expect.any(String) },
    ]);
  });

  test('gets a RouteContext that says when the request streams', async () => {
    const { seen, strategy } = reversing();
    const { client } = customSetup({ strategy });

    const stream = await client.chat.completions.create({ ...HI, stream: true });
    for await (const _ of stream) void _;

    expect(seen[0]?.ctx.stream).toBe(true);
  });

  test("sees each deployment's configured upstream model, weight, price, context window and tags", async () => {
    const { seen, strategy } = reversing();
    const { client } = customSetup({ strategy });

    await client.chat.completions.create(HI);

    const [a, b] = seen[0]?.views ?? [];
    expect(a).toMatchObject({ provider: 'a', model: CHAT, upstreamModel: 'a-chat', weight: 2, price: { input: 1, output: 2 }, contextWindow: 8000, tags: ['eu', 'batch'], inFlight: 0 });
    expect(b).toMatchObject({ provider: 'b', model: CHAT, upstreamModel: 'b-chat', weight: 1, price: undefined, contextWindow: undefined, tags: [] });
  });

  const broken: { name: string; order: RoutingStrategy['order']; says: RegExp }[] = [
    { name: 'throws', order: () => { throw new Error('ranking service down'); }, says: /RoutingStrategy\.order threw: ranking service down/ },
    { name: 'returns undefined', order: () => undefined as unknown as DeploymentView[], says: /returned undefined, not a list/ },
    { name: 'returns an empty list', order: () => [], says: /returned 0 deployments for the 2 it was given/ },
    { name: 'returns one twice', order: (d) => [d[0]!, d[0]!], says: /gave back a deployment twice or one it was not given/ },
  ];

  test.each(broken)('that $name fails the request as hook_failed (500), sending nothing, and the manager goes on serving', async ({ order, says }) => {
    let fail = true;
    const strategy: RoutingStrategy = { order: (d, ctx) => (fail ? order(d, ctx) : d.slice()) };
    const { seenA, seenB, manager, client } = customSetup({ strategy });
    const failures = record(manager, 'failure');

    const error = await caught(() => client.chat.completions.create(HI));

    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect(isKeyplexError(error, 'hook_failed')).toBe(true);
    expect(error.message).toMatch(says);
    expect(seenA.length + seenB.length).toBe(0);
    expect(failures.map((f) => f.error.code)).toEqual(['hook_failed']);
    expect(manager.stats().totals).toMatchObject({ inFlight: 0, failures: { hook_failed: 1 } });
    fail = false;
    await client.chat.completions.create(HI);
    expect(seenA).toHaveLength(1);
  });

  test('applies per model through perModel, over the global strategy', async () => {
    const { seen, strategy } = reversing();
    const { seenA, seenB, client } = customSetup({ strategy: 'ordered', perModel: { [CHAT]: strategy } });

    await client.chat.completions.create(HI);

    expect(seen).toHaveLength(1);
    expect([seenA.length, seenB.length]).toEqual([0, 1]);
  });
});
