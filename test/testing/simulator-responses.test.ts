/**
 * The simulator's `response_failed` fault, through keyplex and the real
 * `openai` SDK: a Responses answer that fails part-way (`server_error`) is a
 * failure keyplex judges as such, streamed or not.
 */
import OpenAI from 'openai';
import { describe, expect, test } from 'vitest';
import { MODEL, simulated, useSimulator } from '../integrations/simulated';

useSimulator();

describe('the response_failed fault', () => {
  test('JSON: the first key answers 200 with status "failed"; keyplex retries on another key and the app gets the completed response', async () => {
    const { manager, events, tallies } = simulated({ faults: [{ kind: 'response_failed', requests: [0] }] });
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
    const reply = await client.responses.create({ model: MODEL, input: 'hello there' });
    expect(reply.status).toBe('completed');
    expect(events.retry).toMatchObject([{ status: 502 }]);
    expect(events.success.map((e) => e.attempts)).toEqual([2]);
    expect(events.failure).toHaveLength(0);
    expect(tallies().reduce((n, t) => n + t.successes, 0)).toBe(1);
  });

  test('stream: half the text, then response.failed; the app reads it as its last event and keyplex emits failure, not success', async () => {
    const { manager, events } = simulated({ faults: [{ kind: 'response_failed', requests: [0] }] });
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
    const stream = await client.responses.create({ model: MODEL, input: 'hello there', stream: true });
    const types: string[] = [];
    for await (const event of stream) types.push(event.type);
    expect(types).toContain('response.output_text.delta');
    expect(types.at(-1)).toBe('response.failed');
    expect(events.success).toHaveLength(0);
    expect(events.failure.map((e) => e.error.code)).toEqual(['stream_interrupted']);
    expect(events.failure[0]!.usage?.outputTokens).toBeGreaterThan(0);
  });
});
