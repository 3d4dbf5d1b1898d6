/** A request answered from the response cache ends its keyplex/otel span (no attempt, `keyplex.cache: hit`). */
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import OpenAI from 'openai';
import { expect, test } from 'vitest';
import { KeyManager } from '../../src/index';
import { instrument } from '../../src/otel/index';
import { chatReply, keyRing, provider } from '../support/upstream';
import '../support/setup';

const ONE = 'https://api.one.test/v1';

test('the span of a cache hit ends, marked, with no attempt under it', async () => {
  provider(ONE, () => chatReply('gpt-4.1'));
  const manager = new KeyManager({ providers: { one: { baseURL: ONE, keys: keyRing('a').keys } }, cache: { ttlMs: 60_000 } });
  const exporter = new InMemorySpanExporter();
  const otel = instrument(manager, { tracerProvider: new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }) });
  const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
  try {
    for (let i = 0; i < 2; i++) await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] });
    const spans = exporter.getFinishedSpans();
    // Request 1: its span and its attempt's; request 2 (the hit): its span only.
    expect(spans).toHaveLength(3);
    expect(spans.filter((s) => s.attributes['keyplex.cache'] === 'hit')).toHaveLength(1);
  } finally {
    otel.close();
    await manager.close();
  }
});
