/**
 * Every extension interface, plugged in through the public API (`new
 * KeyManager({...})` from 'keyplex') and driven by the real SDK against msw:
 * each custom part is seen to be used.
 */
import OpenAI from 'openai';
import { describe, expect, test } from 'vitest';
import {
  KeyManager,
  keyplex,
  MemoryStore,
  type AutoStrategy,
  type BreakerPolicy,
  type DeploymentView,
  type KeyManagerOptions,
  type KeySelector,
  type KeyView,
  type LaneOptions,
  type ModelPrice,
  type RequestFeatures,
  type RoutingStrategy,
  type SelectContext,
  type StateStore,
  type StoreSession,
} from '../../src/index';
import { fakeKey } from '../support/fake-keys';
import { calls, chatReply, errorReply, gate, provider } from '../support/upstream';
import '../support/setup';
import { closeAfterEach } from '../support/scaffold';

const ONE = 'https://api.one.test/v1';
const TWO = 'https://api.two.test/v1';
const BODY = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hi' }] };
const managers = closeAfterEach();

function manage(options: KeyManagerOptions): { manager: KeyManager; client: OpenAI } {
  const manager = new KeyManager(options);
  managers.push(manager);
  return { manager, client: manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' })) };
}

test('a custom KeySelector picks the key, seeing views without secrets', async () => {
  const a = fakeKey('a');
  const b = fakeKey('b');
  const seen: { keys: KeyView[]; ctx: SelectContext }[] = [];
  const lastById: KeySelector = {
    select(keys, ctx) {
      seen.push({ keys: [...keys], ctx });
      return [...keys].sort((x, y) => y.id.localeCompare(x.id))[0];
    },
  };
  const upstream = provider(ONE, () => chatReply('gpt-4.1'));
  const { client } = manage({ providers: { one: { baseURL: ONE, keys: [{ key: a, id: 'a' }, { key: b, id: 'b' }] } }, keySelection: lastById });

  await client.chat.completions.create(BODY);
  await client.chat.completions.create(BODY);

  expect(upstream.map((call) => call.key)).toEqual([b, b]);
  expect(seen).toHaveLength(2);
  expect(seen[0]!.keys.map((k) => k.id).sort()).toEqual(['a', 'b']);
  expect(seen[0]!.ctx).toMatchObject({ provider: 'one', model: 'gpt-4.1', attempt: 1 });
  expect(JSON.stringify(seen)).not.toContain(a.slice(-12));
});

test('a custom RoutingStrategy orders the deployments', async () => {
  const orders: string[][] = [];
  const lastFirst: RoutingStrategy = {
    order(deployments: readonly DeploymentView[]) {
      orders.push(deployments.map((d) => d.provider));
      return [...deployments].reverse();
    },
  };
  const one = provider(ONE, () => chatReply('gpt-4.1'));
  const two = provider(TWO, () => chatReply('gpt-4.1'));
  const { client } = manage({
    providers: { one: { baseURL: ONE, keys: [fakeKey()], models: ['gpt-4.1'] }, two: { baseURL: TWO, keys: [fakeKey()], models: ['gpt-4.1'] } },
    routing: { strategy: lastFirst },
  });

  await client.chat.completions.create(BODY);

  expect(orders).toEqual([['one', 'two']]);
  expect(one).toHaveLength(0);
  expect(two).toHaveLength(1);
});

test('a custom AutoStrategy chooses the model of an `auto` request', async () => {
  const features: RequestFeatures[] = [];
  const toolsToStrongest: AutoStrategy = {
    choose(f, models) {
      features.push(f);
      return f.hasTools ? models[models.length - 1]! : models[0]!;
    },
  };
  const upstream = provider(ONE, (call) => chatReply(String(call.body?.model)));
  const { client } = manage({
    providers: { one: { baseURL: ONE, keys: [fakeKey()], models: ['small', 'large'] } },
    routing: { auto: { models: ['small', 'large'], strategy: toolsToStrongest } },
  });

  await client.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] });
  await client.chat.completions.create({
    model: 'auto',
    messages: [{ role: 'user', content: 'weather?' }],
    tools: [{ type: 'function', function: { name: 'weather', parameters: { type: 'object' } } }],
  });

  expect(upstream.map((call) => call.body?.model)).toEqual(['small', 'large']);
  expect(features.map((f) => f.hasTools)).toEqual([false, true]);
});

test('a custom BreakerPolicy (a factory, one policy per circuit) decides when a circuit opens', async () => {
  let made = 0;
  const failuresSeen: number[] = [];
  const firstFailure = (): BreakerPolicy => {
    made++;
    let failures = 0;
    return {
      success: () => {
        failures = 0;
      },
      failure: (now) => {
        failuresSeen.push(now);
        return ++failures >= 1;
      },
      reset: () => {
        failures = 0;
      },
      get state() {
        return { failures };
      },
      restore: (state) => {
        failures = (state as { failures: number }).failures;
      },
    };
  };
  provider(ONE, () => errorReply(500, 'server_error'));
  const { manager, client } = manage({
    providers: { one: { baseURL: ONE, keys: [{ key: fakeKey(), id: 'k1' }] } },
    circuitBreaker: { key: { policy: firstFailure }, deployment: false },
    retry: { maxAttempts: 1 },
  });
  const opened: string[] = [];
  manager.on('circuit:open', (event) => opened.push(`${event.scope}:${event.keyId}`));

  await expect(client.chat.completions.create(BODY)).rejects.toBeInstanceOf(OpenAI.InternalServerError);

  expect(made).toBeGreaterThanOrEqual(1);
  expect(failuresSeen).toHaveLength(1);
  expect(opened).toEqual(['key:k1']);
});

test('custom lane options bound the lane a request names', async () => {
  const release = gate();
  provider(ONE, async () => {
    await release.promise;
    return chatReply('gpt-4.1');
  });
  const tiny: LaneOptions = { concurrency: 1, maxQueue: 0, queueTimeoutMs: 1_000 };
  const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: [fakeKey()] } }, lanes: { tiny } });
  const rejected: string[] = [];
  manager.on('lane:rejected', (event) => rejected.push(event.lane));

  const first = client.chat.completions.create(BODY, keyplex.options({ lane: 'tiny' }));
  await expect.poll(() => calls.length).toBe(1);
  const second = await client.chat.completions.create(BODY, keyplex.options({ lane: 'tiny' })).catch((e: unknown) => e);
  release.open();
  await first;

  expect(second).toBeInstanceOf(OpenAI.APIError);
  expect(rejected).toEqual(['tiny']);
});

test('a custom price prices the reply', async () => {
  const price: ModelPrice = { input: 1_000, output: 2_000 };
  provider(ONE, () => chatReply('my-model', 'hello', { prompt: 1_000, completion: 500 }));
  const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: [fakeKey()] } }, prices: { 'my-model': price } });
  const costs: (number | null)[] = [];
  manager.on('success', (event) => costs.push(event.costUsd));

  await client.chat.completions.create({ ...BODY, model: 'my-model' });

  // 1,000 input tokens at $1,000/M + 500 output tokens at $2,000/M = $1 + $1.
  expect(costs).toEqual([2]);
});

describe('a custom StateStore', () => {
  test('is opened once per manager and told of key changes', async () => {
    const inner = new MemoryStore();
    const log: string[] = [];
    const audited: StateStore = {
      open(listener) {
        log.push('open');
        const s = inner.open(listener);
        const session: StoreSession = {
          shared: s.shared,
          reserve: (key, limits, tokens) => s.reserve(key, limits, tokens),
          adjust: (key, limits, requests, tokens) => s.adjust(key, limits, requests, tokens),
          setKey: (key, status) => {
            log.push(`setKey:${key.keyId}`);
            s.setKey(key, status);
          },
          setCircuit: (circuit, snapshot) => s.setCircuit(circuit, snapshot),
          addSpend: (spend) => s.addSpend(spend),
          load: (budgets) => s.load(budgets),
          close: () => {
            log.push('close');
            return s.close();
          },
        };
        return session;
      },
    };
    provider(ONE, (_call, index) => (index === 0 ? errorReply(401, 'invalid_api_key') : chatReply('gpt-4.1')));
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: [{ key: fakeKey(), id: 'k1' }, { key: fakeKey(), id: 'k2' }] } }, store: audited, keySelection: 'round-robin' });

    await client.chat.completions.create(BODY);
    await manager.close();

    expect(log[0]).toBe('open');
    expect(log.filter((entry) => entry === 'open')).toHaveLength(1);
    expect(log.some((entry) => entry.startsWith('setKey:'))).toBe(true);
    expect(log.at(-1)).toBe('close');
  });
});
