/**
 * stats(): per deployment and model, retries and fail-overs, percentiles from
 * histograms, and interval reporting with { reset: true }.
 */
import { expect, test } from 'vitest';
import { fakeKey } from '../support/fake-keys';
import { chatReply, errorReply, provider } from '../support/upstream';
import '../support/setup';
import { NO_BACKOFF, useManagers } from '../support/scaffold';

const ONE = 'https://one.test/v1';
const TWO = 'https://two.test/v1';
const BODY = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hi' }] };
const manage = useManagers({
  ...NO_BACKOFF,
  providers: { one: { baseURL: ONE, keys: [fakeKey('one')] }, two: { baseURL: TWO, keys: [fakeKey('two')] } },
});

test('each deployment counts its attempts, successes, failures, retries, fail-overs and tokens', async () => {
  let first = true;
  provider(ONE, () => {
    const reply = first ? errorReply(500, 'server_error') : chatReply('gpt-4.1', 'ok', { prompt: 10, completion: 5 });
    first = false;
    return reply;
  });
  provider(TWO, () => chatReply('gpt-4.1', 'ok', { prompt: 10, completion: 5 }));
  const { client, manager } = manage();

  await client.chat.completions.create(BODY); // one: 500, then two: ok
  const stats = manager.stats();
  const one = stats.deployments.find((d) => d.provider === 'one')!;
  const two = stats.deployments.find((d) => d.provider === 'two')!;

  expect(one).toMatchObject({ model: 'gpt-4.1', upstreamModel: 'gpt-4.1', requests: 1, successes: 0, failures: { server_error: 1 }, retries: 0 });
  expect(two).toMatchObject({ requests: 1, successes: 1, retries: 1, failovers: 1, tokens: { inputTokens: 10, outputTokens: 5 } });
  expect(stats.totals).toMatchObject({ requests: 1, successes: 1, retries: 1, failovers: 1 });
});

test('each model counts its requests with latency percentiles from a histogram', async () => {
  provider(ONE, () => chatReply('gpt-4.1'));
  const { client, manager } = manage();
  for (let i = 0; i < 20; i++) await client.chat.completions.create(BODY);

  const model = manager.stats().models['gpt-4.1']!;
  expect(model).toMatchObject({ model: 'gpt-4.1', requests: 20, successes: 20 });
  expect(model.latencyMs.count).toBe(20);
  expect(model.latencyMs.p50).toBeGreaterThanOrEqual(1);
  expect(model.latencyMs.p99).toBeGreaterThanOrEqual(model.latencyMs.p50!);
  expect(model.ttftMs.count).toBe(0);
});

test('each key and provider reports attempt latency percentiles too', async () => {
  provider(ONE, () => chatReply('gpt-4.1'));
  const { client, manager } = manage();
  for (let i = 0; i < 5; i++) await client.chat.completions.create(BODY);

  const one = manager.stats().providers.one!;
  expect(one.latencyMs.count).toBe(5);
  expect(one.keys[0]?.latencyMs.count).toBe(5);
  expect(one.keys[0]?.latencyMs.p99).toBeGreaterThanOrEqual(1);
  expect(manager.stats().providers.two?.keys[0]?.latencyMs).toEqual({ count: 0, p50: undefined, p95: undefined, p99: undefined });
});

test('stats({ reset: true }) returns the interval so far and starts the next one from zero', async () => {
  provider(ONE, () => chatReply('gpt-4.1'));
  const { client, manager } = manage();
  for (let i = 0; i < 3; i++) await client.chat.completions.create(BODY);

  const interval = manager.stats({ reset: true });
  const after = manager.stats();

  expect(interval.totals.requests).toBe(3);
  expect(after.totals.requests).toBe(0);
  expect(after.totals.latencyMs.count).toBe(0);
  expect(after.providers.one?.keys[0]?.requests).toBe(0);
  // Provider 'one' serves any model, so 'gpt-4.1' is a name no configuration knows: its per-model entries are released.
  expect(after.models['gpt-4.1']).toBeUndefined();
  expect(after.deployments).toEqual([]);
});

test("stats' cost sums read as the costs added up, without float noise", async () => {
  let prompt = 100_000;
  provider(ONE, () => {
    const reply = chatReply('gpt-4.1', 'ok', { prompt, completion: 0 });
    prompt *= 2;
    return reply;
  });
  const { client, manager } = manage({ providers: { one: { baseURL: ONE, keys: [fakeKey('one')] } }, prices: { 'gpt-4.1': { input: 1, output: 1 } } });
  await client.chat.completions.create(BODY); // $0.1
  await client.chat.completions.create(BODY); // $0.2
  const stats = manager.stats();
  expect(stats.totals.costUsd).toBe(0.3);
  expect(stats.providers.one?.costUsd).toBe(0.3);
  expect(stats.models['gpt-4.1']?.costUsd).toBe(0.3);
});
