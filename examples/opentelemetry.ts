/**
 * keyplex under OpenTelemetry: one span per request (`chat gpt-4.1`) with a
 * child span per attempt, and the GenAI client metrics. The simulator's
 * openai answers 503 now and then, so some requests show a retry or a
 * fail-over to deepseek. Spans and metrics are printed here; in an
 * application they go to whatever exporter its OpenTelemetry SDK has.
 *
 * Runs offline against keyplex's simulator: npm run example examples/opentelemetry.ts
 */
import { randomBytes } from 'node:crypto';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader, type DataPoint, type Histogram } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import OpenAI from 'openai';
import { KeyManager, type KeyManagerOptions } from 'keyplex';
import { instrument, knownModels } from 'keyplex/otel';
import { ProviderSimulator } from 'keyplex/testing';

const fake = () => `sim-${randomBytes(8).toString('hex')}`;
const openaiKeys = [fake(), fake()];
const deepseekKeys = [fake()];
const simulator = new ProviderSimulator({
  seed: 11,
  providers: [
    { id: 'openai', keys: openaiKeys, models: ['gpt-4.1'], latency: { medianMs: 5, p99Ms: 20 }, faults: [{ kind: 'server_error', status: 503, probability: 0.3 }] },
    { id: 'deepseek', keys: deepseekKeys, models: ['deepseek-chat'], latency: { medianMs: 5, p99Ms: 20 } },
  ],
});
const upstream = await simulator.listen();
const options: KeyManagerOptions = {
  providers: {
    openai: { baseURL: upstream.baseURL('openai'), keys: openaiKeys, models: ['gpt-4.1'] },
    deepseek: { baseURL: upstream.baseURL('deepseek'), keys: deepseekKeys, models: { 'gpt-4.1': 'deepseek-chat' } },
  },
  retry: { baseDelayMs: 5 },
};
const manager = new KeyManager(options);
const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));

// An application would register its SDK (NodeSDK, an OTLP exporter…) globally and call instrument(manager).
const spans = new InMemorySpanExporter();
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 3_600_000 });
const meterProvider = new MeterProvider({ readers: [reader] });
const otel = instrument(manager, { tracerProvider, meterProvider, models: knownModels(options) });

for (let i = 0; i < 8; i++) {
  await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: `question ${i}` }] });
}

const finished = spans.getFinishedSpans();
for (const request of finished.filter((s) => s.parentSpanContext === undefined)) {
  const a = request.attributes;
  console.log(`${request.name}: ${a['gen_ai.provider.name']} ${a['gen_ai.usage.input_tokens']} in / ${a['gen_ai.usage.output_tokens']} out, $${Number(a['keyplex.cost_usd']).toFixed(6)}`);
  for (const attempt of finished.filter((s) => s.parentSpanContext?.spanId === request.spanContext().spanId)) {
    const b = attempt.attributes;
    const outcome = b['error.type'] === undefined ? 'ok' : `${b['error.type']} ${b['http.response.status_code'] ?? ''}`;
    console.log(`  ${attempt.name} key ${b['keyplex.key_id']}: ${outcome}${b['keyplex.failover'] ? ' (fail-over)' : ''}`);
  }
}

await reader.forceFlush();
const metrics = metricExporter.getMetrics().flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics));
for (const name of ['gen_ai.client.token.usage', 'gen_ai.client.operation.duration']) {
  for (const point of metrics.find((m) => m.descriptor.name === name)?.dataPoints ?? []) {
    const { count, sum } = (point as DataPoint<Histogram>).value;
    console.log(`${name} ${JSON.stringify(point.attributes)}: count ${count}, sum ${sum}`);
  }
}

otel.close();
await manager.close();
await upstream.close();
await tracerProvider.shutdown();
await meterProvider.shutdown();
