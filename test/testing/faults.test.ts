/**
 * The simulator's stream and body faults (stall, keep-alive only, garbage,
 * truncation, wrong content type), served through `simulatorFetch`, the
 * in-process transport.
 */
import { describe, expect, test } from 'vitest';
import { ProviderSimulator, simulatorFetch, type FaultKind } from '../../src/testing/index';

const KEY = 'fake-sim-faults-0123456789abcdef';

function simulated(kind: FaultKind) {
  const sim = new ProviderSimulator({ providers: [{ id: 'a', keys: [KEY], models: ['gpt-4.1'], faults: [{ kind }] }] });
  const fetch = simulatorFetch(sim);
  const call = (stream: boolean, signal?: AbortSignal) =>
    fetch(`${sim.baseURL('a')}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }], stream }),
      signal,
    });
  return { sim, call };
}

/** Reads a body's events (split on blank lines) until it ends or `max` were read. */
async function events(response: Response, max = 1_000): Promise<string[]> {
  const text: string[] = [];
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  while (text.length < max) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    const parts = buffer.split('\n\n');
    buffer = parts.pop()!;
    text.push(...parts);
  }
  await reader.cancel();
  return text;
}

describe('stream faults', () => {
  test('stream_stall sends the first event, then nothing until the client goes away', async () => {
    const { call } = simulated('stream_stall');
    const control = new AbortController();
    const response = await call(true, control.signal);
    const reader = response.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toMatch(/^data: \{/);
    const next = reader.read();
    const raced = await Promise.race([next.then(() => 'read'), new Promise((resolve) => setTimeout(() => resolve('waiting'), 50))]);
    expect(raced).toBe('waiting');
    control.abort(new Error('client gone'));
    await expect(next).rejects.toThrow('client gone');
  });

  test('stream_keepalive sends the first event, then only SSE comments', async () => {
    const { call } = simulated('stream_keepalive');
    const seen = await events(await call(true), 3);
    expect(seen[0]).toMatch(/^data: \{/);
    expect(seen.slice(1)).toEqual([': keep-alive', ': keep-alive']);
  }, 10_000);

  test('stream_garbage sends an event whose data is not JSON half-way, then the rest', async () => {
    const { call } = simulated('stream_garbage');
    const seen = await events(await call(true));
    const bad = seen.filter((e) => {
      try {
        return e !== 'data: [DONE]' && (JSON.parse(e.slice(6)), false);
      } catch {
        return true;
      }
    });
    expect(bad).toHaveLength(1);
    expect(seen.at(-1)).toBe('data: [DONE]');
  });

  test('stream_truncate ends the body cleanly half-way, without a finish reason or [DONE]', async () => {
    const { call } = simulated('stream_truncate');
    const seen = await events(await call(true));
    expect(seen.length).toBeGreaterThan(1);
    expect(seen.join('\n')).not.toContain('[DONE]');
    expect(seen.join('\n')).not.toContain('"finish_reason":"stop"');
  });

  test.each(['stream_stall', 'stream_keepalive'] as const)('%s on a JSON request hangs until the client goes away', async (kind) => {
    const { call } = simulated(kind);
    const control = new AbortController();
    const pending = call(false, control.signal);
    control.abort(new Error('client gone'));
    await expect(pending).rejects.toThrow('client gone');
  });

  test.each(['stream_garbage', 'stream_truncate'] as const)('%s on a JSON request answers malformed JSON', async (kind) => {
    const { call } = simulated(kind);
    const response = await call(false);
    expect(response.status).toBe(200);
    await expect(response.json()).rejects.toThrow(SyntaxError);
  });

  test.each([false, true])('wrong_content_type answers 200 text/plain (stream: %s)', async (stream) => {
    const { sim, call } = simulated('wrong_content_type');
    const response = await call(stream);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(sim.tallies().a?.faults.wrong_content_type).toBe(1);
  });
});

describe('simulatorFetch', () => {
  test('a reset fault rejects like a dropped connection', async () => {
    const { call } = simulated('reset');
    await expect(call(false)).rejects.toThrow(TypeError);
  });

  test('a URL that no simulated provider serves answers 404', async () => {
    const sim = new ProviderSimulator({ providers: [{ id: 'a', keys: [KEY], models: ['gpt-4.1'] }] });
    const response = await simulatorFetch(sim)('https://elsewhere.test/v1/models');
    expect(response.status).toBe(404);
  });
});
