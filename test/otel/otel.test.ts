/**
 * keyplex/otel through the real OpenTelemetry SDK (in-memory exporters) and
 * the real openai SDK: span names and attributes as the GenAI semantic
 * conventions say, attempts and fail-overs as child spans, token and duration
 * metrics equal to the `success` events, and no key nor prompt anywhere.
 */
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader, type DataPoint, type Histogram, type MetricData } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import OpenAI from 'openai';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { KeyManager, type KeyManagerOptions, type SuccessEvent } from '../../src/index';
import { instrument, knownModels, type Instrumentation } from '../../src/otel/index';
import { fakeKey } from '../support/fake-keys';
import { backgroundResponse, chatChunks, chatReply, errorReply, provider, sseReply } from '../support/upstream';
import '../support/setup';
import { fakeClock } from '../support/time';

const OPENAI = 'https://api.openai.com/v1';
const DEEPSEEK = 'https://api.deepseek.com/v1';
const PROMPT = 'my very private prompt about the quarterly numbers';

interface Rig {
  manager: KeyManager;
  client: OpenAI;
  spans: () => ReadableSpan[];
  metrics: () => Promise<MetricData[]>;
  successes: SuccessEvent[];
  keys: string[];
  otel: Instrumentation;
}

const rigs: Rig[] = [];
afterEach(async () => {
  for (const rig of rigs.splice(0)) {
    rig.otel.close();
    await rig.manager.close();
  }
});

function rig(options: Partial<KeyManagerOptions> = {}): Rig {
  const keys = [fakeKey('openai'), fakeKey('openai'), fakeKey('deepseek')];
  const config: KeyManagerOptions = {
    providers: {
      openai: { baseURL: OPENAI, keys: [{ key: keys[0]!, id: 'oa-1' }, { key: keys[1]!, id: 'oa-2' }], models: ['gpt-4.1'] },
      deepseek: { baseURL: DEEPSEEK, keys: [{ key: keys[2]!, id: 'ds-1' }], models: { 'gpt-4.1': 'deepseek-chat' } },
    },
    retry: { baseDelayMs: 0, maxDelayMs: 0 },
    keySelection: 'round-robin',
    ...options,
  };
  const manager = new KeyManager(config);
  const spanExporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spanExporter)] });
  const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 3_600_000 });
  const meterProvider = new MeterProvider({ readers: [reader] });
  const otel = instrument(manager, { tracerProvider, meterProvider, models: knownModels(config) });
  const successes: SuccessEvent[] = [];
  manager.on('success', (e) => successes.push(e));
  const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
  const metrics = async () => {
    metricExporter.reset();
    await reader.forceFlush();
    return metricExporter.getMetrics().flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics));
  };
  const made: Rig = { manager, client, spans: () => spanExporter.getFinishedSpans(), metrics, successes, keys, otel };
  rigs.push(made);
  return made;
}

const ask = (client: OpenAI) => client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: PROMPT }] });
const requestSpans = (spans: ReadableSpan[]) => spans.filter((s) => s.kind === SpanKind.CLIENT);
const childrenOf = (spans: ReadableSpan[], parent: ReadableSpan) =>
  spans.filter((s) => s.parentSpanContext?.spanId === parent.spanContext().spanId).sort((a, b) => Number(a.attributes['keyplex.attempt.number']) - Number(b.attributes['keyplex.attempt.number']));
const metric = (all: MetricData[], name: string) => all.find((m) => m.descriptor.name === name);

describe('spans', () => {
  test('one CLIENT span per request, named and attributed as the GenAI conventions say, with its attempt as a child', async () => {
    provider(OPENAI, (call) => chatReply(String(call.body?.model), 'hi', { prompt: 1200, cached: 200, completion: 300, reasoning: 50 }));
    const { client, spans, successes } = rig();

    await ask(client);

    const [request] = requestSpans(spans());
    expect(requestSpans(spans())).toHaveLength(1);
    expect(request!.name).toBe('chat gpt-4.1');
    expect(request!.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': 'gpt-4.1',
      'gen_ai.response.model': 'gpt-4.1',
      'gen_ai.usage.input_tokens': 1200,
      'gen_ai.usage.output_tokens': 300,
      'gen_ai.usage.cache_read.input_tokens': 200,
      'gen_ai.usage.cache_creation.input_tokens': 0,
      'gen_ai.usage.reasoning.output_tokens': 50,
      'server.address': 'api.openai.com',
      'server.port': 443,
      'keyplex.provider': 'openai',
      'keyplex.key_id': 'oa-1',
      'keyplex.attempts': 1,
      'keyplex.cost_usd': successes[0]!.costUsd,
      'keyplex.request_id': successes[0]!.requestId,
    });
    expect(request!.attributes['error.type']).toBeUndefined();
    expect(request!.status.code).toBe(SpanStatusCode.UNSET);
    const attempts = childrenOf(spans(), request!);
    expect(attempts.map((a) => [a.name, a.kind, a.attributes['keyplex.key_id'], a.attributes['keyplex.attempt.number']])).toEqual([
      ['keyplex.attempt openai', SpanKind.INTERNAL, 'oa-1', 1],
    ]);
  });

  test('a 429 rotates to another key, and a 500 fails over to another provider: each attempt is a child span with its outcome', async () => {
    provider(OPENAI, (call, i) => (i === 0 ? errorReply(429, 'rate_limit_exceeded', { 'retry-after-ms': '60000' }) : errorReply(500, 'server_error')));
    provider(DEEPSEEK, (call) => chatReply(String(call.body?.model)));
    const { client, spans } = rig();

    await ask(client);

    const [request] = requestSpans(spans());
    const attempts = childrenOf(spans(), request!);
    expect(
      attempts.map((a) => ({
        provider: a.attributes['keyplex.provider'],
        key: a.attributes['keyplex.key_id'],
        error: a.attributes['error.type'],
        status: a.attributes['http.response.status_code'],
        failover: a.attributes['keyplex.failover'],
        code: a.status.code,
      })),
    ).toEqual([
      { provider: 'openai', key: 'oa-1', error: 'rate_limit', status: 429, failover: undefined, code: SpanStatusCode.ERROR },
      { provider: 'openai', key: 'oa-2', error: 'server_error', status: 500, failover: undefined, code: SpanStatusCode.ERROR },
      { provider: 'deepseek', key: 'ds-1', error: undefined, status: undefined, failover: true, code: SpanStatusCode.UNSET },
    ]);
    expect(attempts[1]!.attributes['keyplex.retry.reason']).toBe('server_error');
    expect(attempts[2]!.attributes).toMatchObject({ 'keyplex.failover.from_provider': 'openai', 'keyplex.failover.reason': 'server_error', 'gen_ai.provider.name': 'deepseek', 'server.address': 'api.deepseek.com' });
    expect(request!.events.map((e) => [e.name, e.attributes?.['keyplex.failover.to_provider']])).toEqual([['keyplex.failover', 'deepseek']]);
    expect(request!.attributes).toMatchObject({ 'gen_ai.provider.name': 'deepseek', 'gen_ai.response.model': 'deepseek-chat', 'keyplex.attempts': 3 });
  });

  test('a request that fails for good: error.type and ERROR status on the request span and its last attempt', async () => {
    provider(OPENAI, () => errorReply(503, 'overloaded'));
    provider(DEEPSEEK, () => errorReply(503, 'overloaded'));
    const { client, spans } = rig({ retry: { maxAttempts: 2, baseDelayMs: 0, maxDelayMs: 0 } });

    await expect(ask(client)).rejects.toThrow();

    const [request] = requestSpans(spans());
    expect(request!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'keyplex: upstream_error' });
    expect(request!.attributes).toMatchObject({ 'error.type': 'upstream_error', 'http.response.status_code': 503, 'keyplex.attempts': 2 });
    const attempts = childrenOf(spans(), request!);
    expect(attempts.map((a) => [a.attributes['error.type'], a.attributes['http.response.status_code']])).toEqual([
      ['server_error', 503],
      ['server_error', 503],
    ]);
    expect(attempts.every((a) => a.status.code === SpanStatusCode.ERROR)).toBe(true);
  });

  test('a streamed request records the time to first chunk in seconds', async () => {
    provider(OPENAI, (call) => sseReply(chatChunks(String(call.body?.model), ['a', 'b'], true, { prompt: 40, completion: 2 })));
    const { client, spans, successes } = rig();

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: PROMPT }], stream: true });
    for await (const chunk of stream) void chunk;

    const [request] = requestSpans(spans());
    expect(request!.attributes['gen_ai.request.stream']).toBe(true);
    expect(request!.attributes['gen_ai.response.time_to_first_chunk']).toBe(successes[0]!.ttftMs! / 1000);
    expect(request!.attributes['gen_ai.usage.output_tokens']).toBe(2);
  });
});

test('a stream cut after its first bytes: the request span and its attempt end with stream_interrupted', async () => {
  provider(OPENAI, (call) => sseReply(chatChunks(String(call.body?.model), ['a', 'b', 'c'], true), { failAfter: 2 }));
  const { client, spans } = rig();

  const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: PROMPT }], stream: true });
  await expect(
    (async () => {
      for await (const chunk of stream) void chunk;
    })(),
  ).rejects.toThrow();

  const [request] = requestSpans(spans());
  expect(request!.attributes['error.type']).toBe('stream_interrupted');
  expect(request!.status.code).toBe(SpanStatusCode.ERROR);
  expect(childrenOf(spans(), request!).map((a) => a.attributes['error.type'])).toEqual(['stream_interrupted']);
});

function histogramPoints(data: MetricData | undefined): DataPoint<Histogram>[] {
  return (data?.dataPoints ?? []) as DataPoint<Histogram>[];
}

describe('metrics', () => {
  test('token usage and duration equal the success events; TTFT for streams; cost summed', async () => {
    provider(OPENAI, (call, i) =>
      call.body?.stream ? sseReply(chatChunks('gpt-4.1', ['x'], true, { prompt: 70, completion: 9 })) : chatReply('gpt-4.1', 'hi', { prompt: 100 + i, completion: 10 + i }),
    );
    const { client, metrics, successes } = rig();

    for (let i = 0; i < 5; i++) await ask(client);
    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: PROMPT }], stream: true });
    for await (const chunk of stream) void chunk;

    const all = await metrics();
    const tokens = histogramPoints(metric(all, 'gen_ai.client.token.usage'));
    const sum = (type: string) => tokens.filter((p) => p.attributes['gen_ai.token.type'] === type).reduce((s, p) => s + p.value.sum!, 0);
    const count = (type: string) => tokens.filter((p) => p.attributes['gen_ai.token.type'] === type).reduce((s, p) => s + p.value.count, 0);
    expect(sum('input')).toBe(successes.reduce((s, e) => s + e.usage!.inputTokens, 0));
    expect(sum('output')).toBe(successes.reduce((s, e) => s + e.usage!.outputTokens, 0));
    expect(count('input')).toBe(6);
    expect(tokens[0]!.attributes).toMatchObject({ 'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': 'openai', 'gen_ai.request.model': 'gpt-4.1', 'server.address': 'api.openai.com', 'server.port': 443 });
    expect(metric(all, 'gen_ai.client.token.usage')!.descriptor.unit).toBe('{token}');

    const duration = histogramPoints(metric(all, 'gen_ai.client.operation.duration'));
    expect(metric(all, 'gen_ai.client.operation.duration')!.descriptor.unit).toBe('s');
    expect(duration.reduce((s, p) => s + p.value.count, 0)).toBe(6);
    expect(duration.reduce((s, p) => s + p.value.sum!, 0)).toBeCloseTo(successes.reduce((s, e) => s + e.latencyMs / 1000, 0), 9);
    expect(duration[0]!.value.buckets.boundaries).toEqual([0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]);

    const ttfc = histogramPoints(metric(all, 'gen_ai.client.operation.time_to_first_chunk'));
    expect(ttfc.reduce((s, p) => s + p.value.count, 0)).toBe(1);
    expect(ttfc[0]!.value.sum).toBe(successes[5]!.ttftMs! / 1000);

    const cost = metric(all, 'keyplex.client.cost')!.dataPoints.reduce((s, p) => s + (p.value as number), 0);
    expect(cost).toBeCloseTo(successes.reduce((s, e) => s + e.costUsd!, 0), 12);
  });

  test('a background response polled to completion: its token usage and cost are recorded once, when it ended', async () => {
    provider(OPENAI, (call) => Response.json(backgroundResponse('gpt-4.1', 'resp_bg', call.method === 'POST' ? 'queued' : 'completed', call.method === 'POST' ? null : { prompt: 1_000, completion: 100_000 })));
    const { client, metrics } = rig({ providers: { openai: { baseURL: OPENAI, keys: [fakeKey('openai')], models: ['gpt-4.1'] } } });

    await client.responses.create({ model: 'gpt-4.1', input: 'research this', background: true });
    for (let poll = 0; poll < 3; poll++) await client.responses.retrieve('resp_bg');

    const all = await metrics();
    const output = histogramPoints(metric(all, 'gen_ai.client.token.usage')).filter((p) => p.attributes['gen_ai.token.type'] === 'output');
    // Was: no token usage and no cost (the create answered queued; the polls read what was made).
    expect(output.map((p) => [p.attributes['gen_ai.request.model'], p.value.sum])).toEqual([['gpt-4.1', 100_000]]);
    const cost = metric(all, 'keyplex.client.cost')!.dataPoints.reduce((s, p) => s + (p.value as number), 0);
    expect(cost).toBeCloseTo(0.802, 12);
  });

  test('a failed request is in the duration metric with error.type; retries and fail-overs are counted', async () => {
    provider(OPENAI, () => errorReply(500, 'server_error'));
    provider(DEEPSEEK, () => errorReply(500, 'server_error'));
    const { client, metrics } = rig({ retry: { maxAttempts: 3, baseDelayMs: 0, maxDelayMs: 0 } });

    await expect(ask(client)).rejects.toThrow();

    const all = await metrics();
    const duration = histogramPoints(metric(all, 'gen_ai.client.operation.duration'));
    expect(duration.map((p) => [p.attributes['error.type'], p.value.count])).toEqual([['upstream_error', 1]]);
    const retries = metric(all, 'keyplex.client.retries')!.dataPoints.reduce((s, p) => s + (p.value as number), 0);
    expect(retries).toBe(2);
    expect(metric(all, 'keyplex.client.failovers')!.dataPoints.map((p) => [p.attributes['keyplex.failover.to_provider'], p.value])).toEqual([['deepseek', 1]]);
  });

  test('a clock stepped back during a request records a duration of 0 (the SDK drops a negative one: the request would be missing)', async () => {
    fakeClock();
    provider(OPENAI, () => {
      vi.setSystemTime(Date.now() - 3_600_000);
      return chatReply('gpt-4.1');
    });
    const { client, metrics, successes } = rig();
    await ask(client);
    vi.useRealTimers(); // the reader's flush waits on timers
    expect(successes[0]!.latencyMs).toBe(0); // the event says 0 itself now; the adapter records what it says
    const duration = histogramPoints(metric(await metrics(), 'gen_ai.client.operation.duration'));
    expect(duration.map((p) => [p.value.count, p.value.sum])).toEqual([[1, 0]]);
  });

  test("keyplex's state as gauges: keys by status, circuits, lanes, in flight", async () => {
    provider(OPENAI, () => errorReply(401, 'invalid_api_key'));
    provider(DEEPSEEK, (call) => chatReply(String(call.body?.model)));
    const { client, metrics } = rig();

    await ask(client);

    const all = await metrics();
    const keys = metric(all, 'keyplex.keys')!.dataPoints.map((p) => [p.attributes['keyplex.provider'], p.attributes['keyplex.key.status'], p.value]);
    expect(keys).toEqual(
      expect.arrayContaining([
        // Both openai keys answered 401: disabled; the request went on to deepseek.
        ['openai', 'disabled', 2],
        ['openai', 'active', 0],
        ['deepseek', 'active', 1],
        ['deepseek', 'disabled', 0],
      ]),
    );
    expect(metric(all, 'keyplex.circuits')!.dataPoints.some((p) => p.attributes['keyplex.circuit.state'] === 'closed' && (p.value as number) > 0)).toBe(true);
    const lanes = metric(all, 'keyplex.lane.concurrency')!.dataPoints.map((p) => p.attributes['keyplex.lane']);
    expect(lanes).toEqual(expect.arrayContaining(['critical', 'standard', 'batch']));
    expect(metric(all, 'keyplex.requests.in_flight')!.dataPoints[0]!.value).toBe(0);
    expect(metric(all, 'keyplex.key.disabled')!.dataPoints.map((p) => [p.attributes['keyplex.key.disabled_reason'], p.value])).toEqual([['unauthorized', 2]]);
  });

  test('model names asked for that the configuration does not know are bounded (maxModels, then _OTHER)', async () => {
    provider('https://any.models.test/v1', (call) => chatReply(String(call.body?.model)));
    const manager = new KeyManager({ providers: { any: { baseURL: 'https://any.models.test/v1', keys: [fakeKey('any')] } } });
    const reader = new PeriodicExportingMetricReader({ exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE), exportIntervalMillis: 3_600_000 });
    const otel = instrument(manager, { tracerProvider: false, meterProvider: new MeterProvider({ readers: [reader] }), maxModels: 3 });
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
    try {
      for (let i = 0; i < 8; i++) await client.chat.completions.create({ model: `made-up-${i}`, messages: [{ role: 'user', content: 'x' }] });
      const { resourceMetrics } = await reader.collect();
      const duration = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === 'gen_ai.client.operation.duration')!;
      const models = new Set(duration.dataPoints.map((p) => p.attributes['gen_ai.request.model']));
      expect([...models].sort()).toEqual(['_OTHER', 'made-up-0', 'made-up-1', 'made-up-2']);
    } finally {
      otel.close();
      await manager.close();
    }
  });
});

test('paths a caller chooses (a gateway passing its users\' paths on) make a bounded set of gen_ai.operation.name values', async () => {
  provider(OPENAI, () => chatReply('gpt-4.1'));
  const { client, metrics, spans } = rig();
  const letters = (i: number) => [...i.toString(26)].map((c) => String.fromCharCode(97 + parseInt(c, 26))).join('');
  for (let i = 0; i < 40; i++) await client.post(`/zz${letters(i)}`, { body: { model: 'gpt-4.1' } });
  await client.images.generate({ model: 'gpt-4.1', prompt: 'x' }).catch(() => undefined);
  const names = new Set(histogramPoints(metric(await metrics(), 'gen_ai.client.operation.duration')).map((p) => p.attributes['gen_ai.operation.name']));
  expect([...names].sort()).toEqual(['_OTHER', 'images']);
  // Spans name the request by the same bounded value.
  expect(new Set(requestSpans(spans()).map((s) => s.attributes['gen_ai.operation.name'])).size).toBe(2);
});

describe('context', () => {
  test("the request span is a child of the caller's active span (with a context manager installed)", async () => {
    provider(OPENAI, (call) => chatReply(String(call.body?.model)));
    const { client, spans } = rig();
    const manager = new AsyncLocalStorageContextManager().enable();
    context.setGlobalContextManager(manager);
    try {
      const tracer = new BasicTracerProvider().getTracer('app');
      const parent = tracer.startSpan('handle user request');
      await context.with(trace.setSpan(context.active(), parent), () => ask(client));
      parent.end();
      const [request] = requestSpans(spans());
      expect(request!.parentSpanContext?.spanId).toBe(parent.spanContext().spanId);
      expect(request!.spanContext().traceId).toBe(parent.spanContext().traceId);
    } finally {
      context.disable();
    }
  });
});

describe('nothing secret is recorded', () => {
  test('no key (nor any 8 characters of one) and no prompt text in any span, event or metric attribute', async () => {
    provider(OPENAI, (call, i) => (i === 0 ? errorReply(400, 'bad', {}, `you said: ${PROMPT}`) : errorReply(429, 'rate_limit_exceeded')));
    provider(DEEPSEEK, (call) => chatReply(String(call.body?.model), `echo ${PROMPT}`));
    const { client, spans, metrics, keys } = rig();

    await expect(ask(client)).rejects.toThrow();
    await ask(client);
    await ask(client);

    const texts: string[] = [];
    for (const span of spans()) {
      texts.push(span.name, JSON.stringify(span.attributes), JSON.stringify(span.status), JSON.stringify(span.events));
    }
    for (const data of await metrics()) texts.push(JSON.stringify(data.dataPoints.map((p) => p.attributes)));
    const recorded = texts.join('\n');
    expect(spans().length).toBeGreaterThan(3);
    for (const key of keys) {
      // The random part of the fake key: its label (`deepseek`) is also, rightly, a provider name.
      const secret = key.slice(key.lastIndexOf('-') + 1);
      for (let i = 0; i + 8 <= secret.length; i++) expect(recorded).not.toContain(secret.slice(i, i + 8));
    }
    expect(recorded).not.toContain('quarterly');
  });
});

describe('close()', () => {
  test('stops recording and ends what is open', async () => {
    provider(OPENAI, (call) => chatReply(String(call.body?.model)));
    const { client, spans, otel } = rig();
    await ask(client);
    otel.close();
    otel.close();
    await ask(client);
    expect(requestSpans(spans())).toHaveLength(1);
  });
});

describe('what instrument() is given is checked, as new KeyManager() checks its options', () => {
  const managers: KeyManager[] = [];
  afterEach(async () => {
    for (const m of managers.splice(0)) await m.close();
  });
  const manager = () => {
    const m = new KeyManager({ providers: { openai: { baseURL: OPENAI, keys: [fakeKey('openai')] } } });
    managers.push(m);
    return m;
  };

  test('an unknown option (`model` for `models`) is refused naming it and the likely one, not ignored', () => {
    expect(() => instrument(manager(), { model: ['gpt-4.1'] } as never)).toThrow(
      expect.objectContaining({ code: 'invalid_config', field: 'model', message: expect.stringMatching(/did you mean `models`/) }),
    );
  });

  test('a tracerProvider or meterProvider that is not one is refused naming it', () => {
    expect(() => instrument(manager(), { tracerProvider: 'x' as never })).toThrow(expect.objectContaining({ code: 'invalid_config', field: 'tracerProvider' }));
    expect(() => instrument(manager(), { meterProvider: {} as never })).toThrow(expect.objectContaining({ code: 'invalid_config', field: 'meterProvider' }));
  });

  test('something that is not a KeyManager is refused with a ConfigError, not a TypeError from inside', () => {
    expect(() => instrument({} as never)).toThrow(expect.objectContaining({ code: 'invalid_config', field: 'manager', message: expect.stringMatching(/new KeyManager/) }));
  });
});
