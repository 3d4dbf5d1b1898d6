/**
 * keyplex/prometheus through prom-client and the real openai SDK: the
 * exposition parsed, counters equal to the events, gauges of keyplex's state,
 * and label cardinality bounded under a million distinct model names.
 */
import EventEmitter from 'eventemitter3';
import OpenAI from 'openai';
import { Gauge, Registry } from 'prom-client';
import { describe, expect, test, vi } from 'vitest';
import { KeyManager, type FailureEvent, type KeyManagerOptions, type SuccessEvent } from '../../src/index';
import { knownModels, registerKeyplexMetrics, type ObservedManager } from '../../src/prometheus/index';
import { ConfigError } from '../../src/errors';
import { fakeKey } from '../support/fake-keys';
import { parseExposition } from '../support/prometheus';
import { backgroundResponse, chatChunks, chatReply, errorReply, provider, sseReply } from '../support/upstream';
import '../support/setup';
import { closeAfterEach } from '../support/scaffold';
import { fakeClock } from '../support/time';

const OPENAI = 'https://api.openai.test/v1';
const DEEPSEEK = 'https://api.deepseek.test/v1';

const managers = closeAfterEach();

function rig(options: Partial<KeyManagerOptions> = {}) {
  const config: KeyManagerOptions = {
    providers: {
      openai: { baseURL: OPENAI, keys: [{ key: fakeKey('openai'), id: 'oa-1' }, { key: fakeKey('openai'), id: 'oa-2' }], models: ['gpt-4.1'] },
      deepseek: { baseURL: DEEPSEEK, keys: [{ key: fakeKey('deepseek'), id: 'ds-1' }], models: ['deepseek-chat', 'gpt-4.1'] },
    },
    retry: { baseDelayMs: 0, maxDelayMs: 0, maxAttempts: 3 },
    budgets: [{ id: 'daily', scope: { overall: true }, limitUsd: 5, window: 'day' }],
    ...options,
  };
  const manager = new KeyManager(config);
  managers.push(manager);
  const registry = new Registry();
  const metrics = registerKeyplexMetrics(manager, { registry, models: knownModels(config) });
  const successes: SuccessEvent[] = [];
  const failures: FailureEvent[] = [];
  manager.on('success', (e) => successes.push(e));
  manager.on('failure', (e) => failures.push(e));
  const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
  const scrape = async () => parseExposition(await registry.metrics());
  return { manager, client, registry, metrics, successes, failures, scrape };
}

const ask = (client: OpenAI, model = 'gpt-4.1') => client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hello' }] });

describe('the exposition', () => {
  test('requests, durations, tokens and cost equal the events; names and types follow Prometheus conventions', async () => {
    provider(OPENAI, (call, i) =>
      call.body?.stream ? sseReply(chatChunks('gpt-4.1', ['a'], true, { prompt: 30, completion: 3 })) : chatReply('gpt-4.1', 'hi', { prompt: 100 + i, cached: 20, completion: 7 }),
    );
    const { client, successes, scrape } = rig();

    for (let i = 0; i < 4; i++) await ask(client);
    const stream = await client.chat.completions.create({ model: 'gpt-4.1', stream: true, messages: [{ role: 'user', content: 'x' }] });
    for await (const chunk of stream) void chunk;

    const m = await scrape();
    const labels = { provider: 'openai', model: 'gpt-4.1' };
    expect(m.sum('keyplex_requests_total', { ...labels, outcome: 'success' })).toBe(5);
    expect(m.types.get('keyplex_requests_total')).toBe('counter');
    expect(m.types.get('keyplex_request_duration_seconds')).toBe('histogram');
    expect(m.sum('keyplex_request_duration_seconds_count', labels)).toBe(5);
    expect(m.sum('keyplex_request_duration_seconds_sum', labels)).toBeCloseTo(successes.reduce((s, e) => s + e.latencyMs / 1000, 0), 9);
    expect(m.sum('keyplex_time_to_first_chunk_seconds_count', labels)).toBe(1);
    expect(m.sum('keyplex_tokens_total', { ...labels, type: 'input' })).toBe(successes.reduce((s, e) => s + e.usage!.inputTokens, 0));
    expect(m.sum('keyplex_tokens_total', { ...labels, type: 'output' })).toBe(successes.reduce((s, e) => s + e.usage!.outputTokens, 0));
    expect(m.sum('keyplex_tokens_total', { ...labels, type: 'cache_read' })).toBe(80);
    expect(m.sum('keyplex_cost_usd_total', labels)).toBeCloseTo(successes.reduce((s, e) => s + e.costUsd!, 0), 12);
    expect(m.types.get('keyplex_cost_usd_total')).toBe('counter');
    // Every name is snake case with the prefix; counters end in _total, durations in _seconds.
    for (const [name, type] of m.types) {
      expect(name).toMatch(/^keyplex_[a-z_]+$/);
      if (type === 'counter') expect(name).toMatch(/_total$/);
    }
  });

  test('a background response polled to completion: its tokens and cost are counted once, when it ended, and no request more', async () => {
    provider(OPENAI, (call) => Response.json(backgroundResponse('gpt-4.1', 'resp_bg', call.method === 'POST' ? 'queued' : 'completed', call.method === 'POST' ? null : { prompt: 1_000, completion: 100_000 })));
    const { client, scrape } = rig({ budgets: [] });

    await client.responses.create({ model: 'gpt-4.1', input: 'research this', background: true });
    for (let poll = 0; poll < 3; poll++) await client.responses.retrieve('resp_bg');

    const m = await scrape();
    const labels = { provider: 'openai', model: 'gpt-4.1' };
    // 1,000 input + 100,000 output tokens at 2 / 8 USD per million. Was: no tokens, no cost.
    expect(m.sum('keyplex_tokens_total', { ...labels, type: 'output' })).toBe(100_000);
    expect(m.sum('keyplex_cost_usd_total', labels)).toBeCloseTo(0.802, 12);
    expect(m.sum('keyplex_requests_total', { outcome: 'success' })).toBe(4);
  });

  test('failures by error code, retries and fail-overs by reason, key and circuit state, lanes and budgets', async () => {
    provider(OPENAI, (call, i) => (i === 0 ? errorReply(401, 'invalid_api_key') : errorReply(500, 'server_error')));
    provider(DEEPSEEK, (call) => (call.body?.model === 'deepseek-chat' ? errorReply(400, 'invalid_request_error') : chatReply('gpt-4.1')));
    const { client, scrape } = rig();

    await ask(client);
    await expect(ask(client, 'deepseek-chat')).rejects.toThrow();

    const m = await scrape();
    expect(m.sum('keyplex_requests_total', { provider: 'deepseek', model: 'gpt-4.1', outcome: 'success' })).toBe(1);
    expect(m.sum('keyplex_requests_total', { provider: 'deepseek', model: 'deepseek-chat', outcome: 'upstream_error' })).toBe(1);
    expect(m.sum('keyplex_retries_total', { provider: 'openai', reason: 'unauthorized' })).toBe(1);
    expect(m.sum('keyplex_retries_total', { provider: 'openai', reason: 'server_error' })).toBe(1);
    expect(m.sum('keyplex_failovers_total', { from_provider: 'openai', to_provider: 'deepseek', reason: 'server_error' })).toBe(1);
    expect(m.sum('keyplex_key_disabled_total', { provider: 'openai', reason: 'unauthorized' })).toBe(1);
    expect(m.find('keyplex_keys', { provider: 'openai' }).map((s) => [s.labels.status, s.value])).toEqual([
      ['active', 1],
      ['cooling', 0],
      ['disabled', 1],
    ]);
    expect(m.sum('keyplex_circuits', { scope: 'key', state: 'closed' })).toBe(3);
    expect(m.find('keyplex_lane_concurrency').map((s) => s.labels.lane)).toEqual(['critical', 'standard', 'batch']);
    expect(m.sum('keyplex_budget_limit_usd', { budget: 'daily' })).toBe(5);
    expect(m.sum('keyplex_budget_spent_usd', { budget: 'daily' })).toBeGreaterThan(0);
    expect(m.sum('keyplex_requests_in_flight')).toBe(0);
  });

  test('a clock stepped back during a request records a duration of 0, never a negative one (a falling _sum reads as a counter reset)', async () => {
    fakeClock();
    provider(OPENAI, () => {
      vi.setSystemTime(Date.now() - 3_600_000); // NTP steps the clock back an hour while the request is out
      return chatReply('gpt-4.1');
    });
    const { client, successes, scrape } = rig();
    await ask(client);
    expect(successes[0]!.latencyMs).toBe(0); // the event says 0 itself now; the adapter records what it says
    const m = await scrape();
    expect(m.sum('keyplex_request_duration_seconds_count', { outcome: 'success' })).toBe(1);
    expect(m.sum('keyplex_request_duration_seconds_sum', { outcome: 'success' })).toBe(0);
  });

  test('close() removes the metrics and stops counting', async () => {
    provider(OPENAI, () => chatReply('gpt-4.1'));
    const { client, registry, metrics } = rig();
    await ask(client);
    metrics.close();
    metrics.close();
    expect(await registry.metrics()).not.toContain('keyplex_');
  });

  test('a second registration under the same names is refused with a ConfigError saying what to do; the first keeps counting', async () => {
    provider(OPENAI, () => chatReply('gpt-4.1'));
    const { client, registry } = rig();
    const other = new KeyManager({ providers: { openai: { baseURL: OPENAI, keys: [fakeKey()] } } });
    managers.push(other);

    let error: unknown;
    try {
      registerKeyplexMetrics(other, { registry });
    } catch (e) {
      error = e;
    }

    expect(error).toBeInstanceOf(ConfigError);
    expect(error).toMatchObject({ code: 'invalid_config', field: 'registry' });
    expect((error as Error).message).toMatch(/keyplex_requests_total.*close\(\).*`prefix`/s);
    await ask(client);
    expect(parseExposition(await registry.metrics()).sum('keyplex_requests_total')).toBe(1);
  });

  test('a name taken by a metric of the app leaves none of keyplex\'s registered, and nothing counting', () => {
    const manager = new KeyManager({ providers: { openai: { baseURL: OPENAI, keys: [fakeKey()] } } });
    managers.push(manager);
    const registry = new Registry();
    registry.registerMetric(new Gauge({ name: 'keyplex_requests_in_flight', help: "the app's own", registers: [] }));
    const on = vi.spyOn(manager, 'on');

    expect(() => registerKeyplexMetrics(manager, { registry })).toThrow(ConfigError);

    expect(registry.getMetricsAsArray().map((m) => m.name)).toEqual(['keyplex_requests_in_flight']);
    expect(on).not.toHaveBeenCalled();
  });

  test('options are validated with a precise message', () => {
    const manager = new KeyManager({ providers: { openai: { baseURL: OPENAI, keys: [fakeKey()] } } });
    managers.push(manager);
    expect(() => registerKeyplexMetrics(manager, { registry: new Registry(), prefix: '9bad' })).toThrow(ConfigError);
    expect(() => registerKeyplexMetrics(manager, { registry: new Registry(), maxModels: -1 })).toThrow(/maxModels|whole number/);
    expect(() => registerKeyplexMetrics(manager, { registry: new Registry(), buckets: [1, 0.5] })).toThrow(/increasing/);
  });
});

/** A stand-in manager whose events the test fires directly: a million requests in seconds. */
function eventSource(): ObservedManager & { emit: EventEmitter['emit'] } {
  const emitter = new EventEmitter();
  const stats = { totals: { inFlight: 0 }, providers: {}, deployments: [], models: {}, lanes: {}, budgets: [] } as unknown as ReturnType<ObservedManager['stats']>;
  return {
    on: (event, listener) => emitter.on(event, listener),
    off: (event, listener) => emitter.off(event, listener),
    emit: emitter.emit.bind(emitter),
    stats: () => stats,
    lanes: {},
    toJSON: () => ({ providers: [{ id: 'openai', baseURL: OPENAI }] }),
  };
}

describe('label cardinality', () => {
  test('1,000,000 distinct model names asked for make at most known + maxModels + 1 model labels', () => {
    const source = eventSource();
    const registry = new Registry();
    registerKeyplexMetrics(source, { registry, models: ['gpt-4.1', 'fast'], maxModels: 10 });
    const base = { tags: [], metadata: {}, provider: 'openai', keyId: 'k1', upstreamModel: undefined, attempts: 1, usage: null, costUsd: null, stream: false };
    for (let i = 0; i < 1_000_000; i++) {
      source.emit(i % 2 === 0 ? 'success' : 'failure', {
        ...base,
        requestId: `r${i}`,
        model: i % 1000 === 0 ? 'gpt-4.1' : `user-supplied-model-${i}`,
        latencyMs: 5,
        error: { code: 'upstream_error', message: 'x', attempts: [{ attempt: 1, provider: 'openai', keyId: 'k1', upstreamModel: undefined, status: 500, kind: 'server_error', latencyMs: 1 }] },
      });
    }
    return registry.metrics().then((text) => {
      const m = parseExposition(text);
      const models = new Set(m.find('keyplex_requests_total').map((s) => s.labels.model));
      expect(models.size).toBeLessThanOrEqual(1 + 10 + 1);
      expect(models).toContain('gpt-4.1');
      expect(models).toContain('other');
      // Every request is counted, under some label.
      expect(m.sum('keyplex_requests_total')).toBe(1_000_000);
      // Series of the whole registry stay bounded too.
      expect(m.samples.length).toBeLessThan(2000);
    });
  }, 60_000);
});

describe('what registerKeyplexMetrics() is given is checked, as new KeyManager() checks its options', () => {
  test('an unknown option (`model` for `models`) is refused naming it and the likely one, not ignored', () => {
    const manager = new KeyManager({ providers: { openai: { baseURL: OPENAI, keys: [fakeKey()] } } });
    managers.push(manager);
    expect(() => registerKeyplexMetrics(manager, { registry: new Registry(), model: ['gpt-4.1'] } as never)).toThrow(
      expect.objectContaining({ code: 'invalid_config', field: 'model', message: expect.stringMatching(/did you mean `models`/) }),
    );
  });

  test('a Registry given as the options is refused saying to pass it as { registry }', () => {
    const manager = new KeyManager({ providers: { openai: { baseURL: OPENAI, keys: [fakeKey()] } } });
    managers.push(manager);
    expect(() => registerKeyplexMetrics(manager, new Registry() as never)).toThrow(
      expect.objectContaining({ code: 'invalid_config', field: 'options', message: expect.stringMatching(/\{ registry \}/) }),
    );
  });

  test('something that is not a KeyManager is refused with a ConfigError, not a TypeError from inside', () => {
    expect(() => registerKeyplexMetrics({} as never, { registry: new Registry() })).toThrow(
      expect.objectContaining({ code: 'invalid_config', field: 'manager', message: expect.stringMatching(/new KeyManager/) }),
    );
  });
});
