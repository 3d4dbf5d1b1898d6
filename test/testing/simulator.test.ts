/**
 * The provider simulator's core, driven through `handle()` with an injected
 * clock: rate limits, auth, faults, determinism, tallies, validation.
 */
import { describe, expect, test } from 'vitest';
import {
  formatDuration,
  ProviderSimulator,
  type SimProviderOptions,
  type SimResponse,
  type SimulatorOptions,
} from '../../src/testing';
import { randomFor, sampleLatency } from '../../src/testing/content';

const KEY = 'fake-sim-key-000000000001';
const KEY2 = 'fake-sim-key-000000000002';
/** A minute-aligned start for the injected clock. */
const T0 = 1_700_000_040_000;

class Clock {
  t = T0;
  readonly now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

function simulator(provider: Partial<SimProviderOptions> = {}, options: Partial<SimulatorOptions> & { clock?: Clock } = {}) {
  const clock = options.clock ?? new Clock();
  const sim = new ProviderSimulator({
    seed: options.seed,
    now: clock.now,
    providers: [{ id: 'a', keys: [KEY, KEY2], models: ['gpt-4.1', 'text-embedding-3-small'], ...provider }],
  });
  return { sim, clock };
}

interface Call {
  key?: string | null;
  path?: string;
  method?: string;
  body?: unknown;
  signal?: AbortSignal;
  provider?: string;
}

function request(sim: ProviderSimulator, call: Call = {}): Request {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  const key = call.key === undefined ? KEY : call.key;
  if (key !== null) headers.authorization = `Bearer ${key}`;
  const method = call.method ?? 'POST';
  return new Request(`${sim.baseURL(call.provider ?? 'a')}${call.path ?? '/chat/completions'}`, {
    method,
    headers,
    body: method === 'GET' ? undefined : JSON.stringify(call.body ?? chatBody()),
    signal: call.signal,
  });
}

function chatBody(extra: Record<string, unknown> = {}, content = 'hello there'): Record<string, unknown> {
  return { model: 'gpt-4.1', messages: [{ role: 'user', content }], ...extra };
}

function response(answer: SimResponse): Response {
  if (!(answer instanceof Response)) throw new Error(`expected a Response, got ${JSON.stringify(answer)}`);
  return answer;
}

async function send(sim: ProviderSimulator, call: Call = {}): Promise<Response> {
  return response(await sim.handle(call.provider ?? 'a', request(sim, call)));
}

async function json(res: Response): Promise<any> {
  return res.json();
}

/** The `data:` payloads (and `event:` names) of an SSE body. */
async function sse(res: Response): Promise<{ event?: string; data: string }[]> {
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((block) => block.trim() !== '')
    .map((block) => {
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1] ?? '';
      return event === undefined ? { data } : { event, data };
    });
}

function limitHeaders(res: Response): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const name of ['limit', 'remaining', 'reset']) {
    for (const kind of ['requests', 'tokens']) out[`${name}-${kind}`] = res.headers.get(`x-ratelimit-${name}-${kind}`);
  }
  return out;
}

describe('formatDuration', () => {
  test.each([
    [1000, '1s'],
    [360_000, '6m0s'],
    [20, '20ms'],
    [90_500, '1m30.5s'],
    [0, '0s'],
    [1500, '1.5s'],
    [59_999, '59.999s'],
    [3_600_000, '1h0m0s'],
    [3_723_004, '1h2m3.004s'],
    [0.2, '1ms'],
  ])('%d ms is %s', (ms, expected) => {
    expect(formatDuration(ms)).toBe(expected);
  });

  test.each([-1, Number.NaN, Infinity])('rejects %d with a RangeError', (ms) => {
    expect(() => formatDuration(ms)).toThrow(RangeError);
  });
});

describe('rate limits', () => {
  test('a successful answer carries the request limit, what remains and the time to a full bucket', async () => {
    const { sim } = simulator({ rpm: 3 });
    const res = await send(sim);
    expect(res.status).toBe(200);
    expect(limitHeaders(res)).toMatchObject({ 'limit-requests': '3', 'remaining-requests': '2', 'reset-requests': '20s' });
  });

  test('the request over rpm gets 429 type "requests" with exact retry headers', async () => {
    const { sim } = simulator({ rpm: 3 });
    for (let i = 0; i < 3; i++) expect((await send(sim)).status).toBe(200);
    const res = await send(sim);
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after-ms')).toBe('20000');
    expect(res.headers.get('retry-after')).toBe('20');
    expect(limitHeaders(res)).toMatchObject({ 'limit-requests': '3', 'remaining-requests': '0', 'reset-requests': '1m0s' });
    const body = await json(res);
    expect(body.error).toMatchObject({ type: 'requests', code: 'rate_limit_exceeded', param: null });
    expect(body.error.message).toContain('Limit 3, Used 3, Requested 1');
  });

  test('the request bucket refills continuously over 60 s', async () => {
    const { sim, clock } = simulator({ rpm: 3 });
    for (let i = 0; i < 3; i++) await send(sim);
    clock.advance(5000);
    const early = await send(sim);
    expect(early.status).toBe(429);
    expect(early.headers.get('retry-after-ms')).toBe('15000');
    clock.advance(15_000);
    const res = await send(sim);
    expect(res.status).toBe(200);
    expect(limitHeaders(res)).toMatchObject({ 'remaining-requests': '0', 'reset-requests': '1m0s' });
  });

  test('the token estimate is prompt tokens plus the max-tokens field', async () => {
    const { sim } = simulator({ tpm: 1000 });
    // 40 characters = 10 prompt tokens, + 490 = 500.
    const res = await send(sim, { body: chatBody({ max_tokens: 490 }, 'x'.repeat(40)) });
    expect(limitHeaders(res)).toMatchObject({ 'limit-tokens': '1000', 'remaining-tokens': '500', 'reset-tokens': '30s' });
  });

  test('without a max-tokens field the estimate adds 256', async () => {
    const { sim } = simulator({ tpm: 1000 });
    const res = await send(sim, { body: chatBody({}, 'abcd') });
    expect(res.headers.get('x-ratelimit-remaining-tokens')).toBe(String(1000 - 1 - 256));
  });

  test('max_completion_tokens takes precedence over max_tokens in the estimate', async () => {
    const { sim } = simulator({ tpm: 1000 });
    const res = await send(sim, { body: chatBody({ max_completion_tokens: 99, max_tokens: 10 }, 'abcd') });
    expect(res.headers.get('x-ratelimit-remaining-tokens')).toBe('900');
  });

  test('the request over tpm gets 429 type "tokens" with the time until enough tokens refill', async () => {
    const { sim } = simulator({ tpm: 1000 });
    const body = chatBody({ max_tokens: 490 }, 'x'.repeat(40));
    await send(sim, { body });
    await send(sim, { body });
    const res = await send(sim, { body });
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after-ms')).toBe('30000');
    expect(res.headers.get('retry-after')).toBe('30');
    expect((await json(res)).error).toMatchObject({ type: 'tokens', code: 'rate_limit_exceeded' });
  });

  test('a 429 does not consume the bucket', async () => {
    const { sim } = simulator({ tpm: 1000 });
    expect((await send(sim, { body: chatBody({ max_tokens: 599 }, 'abcd') })).status).toBe(200); // 600 → 400 left
    expect((await send(sim, { body: chatBody({ max_tokens: 599 }, 'abcd') })).status).toBe(429);
    const res = await send(sim, { body: chatBody({ max_tokens: 299 }, 'abcd') }); // 300 fits in 400
    expect(res.status).toBe(200);
    expect(res.headers.get('x-ratelimit-remaining-tokens')).toBe('100');
  });

  test('a request larger than the tpm limit is refused without a retry time', async () => {
    const { sim } = simulator({ tpm: 100 });
    const res = await send(sim, { body: chatBody({ max_tokens: 500 }) });
    expect(res.status).toBe(429);
    expect(res.headers.get('x-should-retry')).toBe('false');
    expect(res.headers.get('retry-after-ms')).toBeNull();
    expect((await json(res)).error.message).toContain('Request too large');
  });

  test('each key has its own buckets', async () => {
    const { sim } = simulator({ keys: [{ key: KEY, rpm: 1 }, { key: KEY2, rpm: 5 }] });
    await send(sim);
    expect((await send(sim)).status).toBe(429);
    const other = await send(sim, { key: KEY2 });
    expect(other.status).toBe(200);
    expect(other.headers.get('x-ratelimit-remaining-requests')).toBe('4');
  });

  test('an unlimited dimension sends no x-ratelimit headers', async () => {
    const { sim } = simulator({ rpm: 10 });
    const res = await send(sim);
    expect(res.headers.get('x-ratelimit-limit-requests')).toBe('10');
    expect(res.headers.get('x-ratelimit-limit-tokens')).toBeNull();
  });

  test('error answers with a known key carry the rate-limit headers too', async () => {
    const { sim } = simulator({ rpm: 10 });
    const res = await send(sim, { body: chatBody({ model: 'no-such-model' }) });
    expect(res.status).toBe(404);
    expect(res.headers.get('x-ratelimit-remaining-requests')).toBe('10');
  });
});

describe('keys and requests', () => {
  test('an unknown key gets 401 invalid_api_key with the key masked', async () => {
    const { sim } = simulator();
    const secret = 'fake-unknown-key-1234567890';
    const res = await send(sim, { key: secret });
    expect(res.status).toBe(401);
    const body = await json(res);
    expect(body).toEqual({
      error: { message: 'Incorrect API key provided: fak***7890', type: 'invalid_request_error', code: 'invalid_api_key', param: null },
    });
    expect(JSON.stringify(body)).not.toContain(secret);
  });

  test('a revoked key gets the same 401', async () => {
    const { sim } = simulator({ keys: [{ key: KEY, revoked: true }] });
    const res = await send(sim);
    expect(res.status).toBe(401);
    expect((await json(res)).error.code).toBe('invalid_api_key');
  });

  test('a key over quota gets 429 insufficient_quota that should not be retried', async () => {
    const { sim } = simulator({ keys: [{ key: KEY, quotaExceeded: true }] });
    const res = await send(sim);
    expect(res.status).toBe(429);
    expect(res.headers.get('x-should-retry')).toBe('false');
    expect((await json(res)).error).toMatchObject({ code: 'insufficient_quota', type: 'insufficient_quota' });
    expect(sim.tallies().a?.rateLimited).toBe(0);
  });

  test('a request without an Authorization header gets 401', async () => {
    const { sim } = simulator();
    expect((await send(sim, { key: null })).status).toBe(401);
  });

  test('an unknown model gets 404 model_not_found', async () => {
    const { sim } = simulator();
    const res = await send(sim, { body: chatBody({ model: 'gpt-9' }) });
    expect(res.status).toBe(404);
    expect((await json(res)).error.code).toBe('model_not_found');
  });

  test('a prompt larger than the context window gets 400 context_length_exceeded', async () => {
    const { sim } = simulator({ models: { 'gpt-4.1': { contextWindow: 10 } } });
    expect((await send(sim, { body: chatBody({}, 'x'.repeat(40)) })).status).toBe(200);
    const res = await send(sim, { body: chatBody({}, 'x'.repeat(41)) });
    expect(res.status).toBe(400);
    expect((await json(res)).error).toMatchObject({ code: 'context_length_exceeded', param: 'messages' });
  });

  test('an unknown path gets 404', async () => {
    const { sim } = simulator();
    expect((await send(sim, { path: '/nope' })).status).toBe(404);
  });

  test('a body that is not JSON gets 400', async () => {
    const { sim } = simulator();
    const res = response(
      await sim.handle('a', new Request(`${sim.baseURL('a')}/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${KEY}` }, body: '{nope' })),
    );
    expect(res.status).toBe(400);
  });

  test('GET /models lists the models', async () => {
    const { sim } = simulator();
    const body = await json(await send(sim, { method: 'GET', path: '/models' }));
    expect(body.data.map((m: { id: string }) => m.id)).toEqual(['gpt-4.1', 'text-embedding-3-small']);
  });

  test('a stored response is found only with the key that created it (each key its own project)', async () => {
    const { sim } = simulator();
    const created = await json(await send(sim, { path: '/responses', body: { model: 'gpt-4.1', input: 'hello' } }));
    const next = { path: '/responses', body: { model: 'gpt-4.1', input: 'more', previous_response_id: created.id } };
    const elsewhere = await send(sim, { ...next, key: KEY2 });
    expect(elsewhere.status).toBe(400);
    expect((await json(elsewhere)).error).toMatchObject({ code: 'previous_response_not_found', param: 'previous_response_id' });
    expect((await json(await send(sim, next))).previous_response_id).toBe(created.id);
    expect((await send(sim, { method: 'GET', path: `/responses/${created.id}`, key: KEY2 })).status).toBe(404);
    expect((await json(await send(sim, { method: 'GET', path: `/responses/${created.id}` }))).id).toBe(created.id);
    expect(await json(await send(sim, { method: 'DELETE', path: `/responses/${created.id}` }))).toEqual({ id: created.id, object: 'response', deleted: true });
    expect((await send(sim, { method: 'GET', path: `/responses/${created.id}` })).status).toBe(404);
  });

  test('handle() rejects an unknown provider id', async () => {
    const { sim } = simulator();
    await expect(sim.handle('zzz', new Request('https://zzz.test/v1/models'))).rejects.toThrow(RangeError);
  });
});

describe('content and tokens', () => {
  test('prompt tokens are ceil(characters / 4) of all message text', async () => {
    const { sim } = simulator();
    const body = chatBody({ messages: [{ role: 'system', content: 'abcde' }, { role: 'user', content: [{ type: 'text', text: 'fghij' }] }] });
    expect((await json(await send(sim, { body }))).usage.prompt_tokens).toBe(3); // 10 chars
  });

  test('completion tokens are between 16 and 128 and equal the words of the text', async () => {
    const { sim } = simulator();
    for (let i = 0; i < 20; i++) {
      const body = await json(await send(sim));
      const tokens = body.usage.completion_tokens;
      expect(tokens).toBeGreaterThanOrEqual(16);
      expect(tokens).toBeLessThanOrEqual(128);
      expect(body.choices[0].message.content.split(' ')).toHaveLength(tokens);
    }
  });

  test('the max-tokens field caps the completion and finishes with "length"', async () => {
    const { sim } = simulator();
    const body = await json(await send(sim, { body: chatBody({ max_tokens: 5 }) }));
    expect(body.usage.completion_tokens).toBe(5);
    expect(body.choices[0].finish_reason).toBe('length');
  });

  test('cachedRatio reports that part of the prompt as cached', async () => {
    const { sim } = simulator({ cachedRatio: 0.5 });
    const body = await json(await send(sim, { body: chatBody({}, 'x'.repeat(40)) }));
    expect(body.usage.prompt_tokens_details.cached_tokens).toBe(5);
  });

  test('a chat stream sends a role chunk, one chunk per word, a finish chunk and [DONE]', async () => {
    const { sim } = simulator();
    const events = await sse(await send(sim, { body: chatBody({ stream: true }) }));
    expect(events.at(-1)?.data).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    expect(chunks.at(-1).choices[0].finish_reason).toBe('stop');
    expect(chunks.every((c: Record<string, unknown>) => !('usage' in c))).toBe(true);
    const text = chunks.map((c: any) => c.choices[0].delta.content ?? '').join('');
    expect(chunks).toHaveLength(text.split(' ').length + 2);
  });

  test('with include_usage every chunk has usage null and a usage chunk with no choices comes last', async () => {
    const { sim } = simulator();
    const events = await sse(await send(sim, { body: chatBody({ stream: true, stream_options: { include_usage: true } }) }));
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
    const last = chunks.at(-1);
    expect(last.choices).toEqual([]);
    expect(last.usage.completion_tokens).toBe(chunks.length - 3);
    expect(chunks.slice(0, -1).every((c: any) => c.usage === null)).toBe(true);
  });

  test('a responses stream names its events and reports usage in response.completed', async () => {
    const { sim } = simulator();
    const events = await sse(await send(sim, { path: '/responses', body: { model: 'gpt-4.1', input: 'hello', stream: true } }));
    expect(events[0]?.event).toBe('response.created');
    const deltas = events.filter((e) => e.event === 'response.output_text.delta');
    const completed = events.at(-1);
    expect(completed?.event).toBe('response.completed');
    expect(JSON.parse(completed?.data ?? '{}').response.usage.output_tokens).toBe(deltas.length);
  });

  test('embeddings are 8 deterministic unit vectors, one per input', async () => {
    const { sim } = simulator();
    const body = await json(await send(sim, { path: '/embeddings', body: { model: 'text-embedding-3-small', input: ['abcd', 'efgh'] } }));
    expect(body.data).toHaveLength(2);
    expect(body.data[0].embedding).toHaveLength(8);
    expect(Math.hypot(...body.data[0].embedding)).toBeCloseTo(1, 5);
    expect(body.usage).toEqual({ prompt_tokens: 2, total_tokens: 2 });
  });

  test('legacy completions answer a text_completion', async () => {
    const { sim } = simulator();
    const body = await json(await send(sim, { path: '/completions', body: { model: 'gpt-4.1', prompt: 'abcdefgh', max_tokens: 3 } }));
    expect(body).toMatchObject({ object: 'text_completion', usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 } });
    expect(body.choices[0].text.split(' ')).toHaveLength(3);
  });
});

describe('determinism', () => {
  async function transcript(seed: number): Promise<string[]> {
    const { sim } = simulator({}, { seed });
    const out: string[] = [];
    out.push(await (await send(sim)).text());
    out.push(await (await send(sim, { body: chatBody({ stream: true, stream_options: { include_usage: true } }) })).text());
    out.push(await (await send(sim, { path: '/responses', body: { model: 'gpt-4.1', input: 'hi' } })).text());
    out.push(await (await send(sim, { path: '/embeddings', body: { model: 'text-embedding-3-small', input: 'hi' } })).text());
    return out;
  }

  test('the same seed gives identical bodies and token counts', async () => {
    expect(await transcript(42)).toEqual(await transcript(42));
  });

  test('a different seed gives different content', async () => {
    const [a, b] = [await transcript(42), await transcript(43)];
    expect(JSON.parse(a[0] ?? '').choices[0].message.content).not.toBe(JSON.parse(b[0] ?? '').choices[0].message.content);
  });

  test('probability faults hit the same requests with the same seed', async () => {
    const hits = async (seed: number) => {
      const { sim } = simulator({ faults: [{ kind: 'server_error', probability: 0.3 }] }, { seed });
      const out: number[] = [];
      for (let i = 0; i < 40; i++) if ((await send(sim)).status === 500) out.push(i);
      return out;
    };
    const first = await hits(7);
    expect(first).toEqual(await hits(7));
    expect(first.length).toBeGreaterThan(3);
    expect(first.length).toBeLessThan(25);
  });

  test('latency samples follow the configured median and p99', () => {
    const samples = Array.from({ length: 4000 }, (_, i) => sampleLatency(randomFor(1, 'latency', i), 100, 400)).sort((a, b) => a - b);
    expect(samples[2000]).toBeGreaterThan(90);
    expect(samples[2000]).toBeLessThan(110);
    expect(samples[3960]).toBeGreaterThan(330);
    expect(samples[3960]).toBeLessThan(480);
  });
});

describe('faults', () => {
  test('server_error answers 500 with an OpenAI error body', async () => {
    const { sim } = simulator({ faults: [{ kind: 'server_error', requests: [0] }] });
    const res = await send(sim);
    expect(res.status).toBe(500);
    expect((await json(res)).error.type).toBe('server_error');
    expect((await send(sim)).status).toBe(200);
  });

  test('server_error takes a custom status', async () => {
    const { sim } = simulator({ faults: [{ kind: 'server_error', status: 502 }] });
    expect((await send(sim)).status).toBe(502);
  });

  test('reset asks the transport to drop the connection', async () => {
    const { sim } = simulator({ faults: [{ kind: 'reset' }] });
    expect(await sim.handle('a', request(sim))).toEqual({ kind: 'reset' });
  });

  test('hang asks the transport never to answer', async () => {
    const { sim } = simulator({ faults: [{ kind: 'hang' }] });
    expect(await sim.handle('a', request(sim))).toEqual({ kind: 'hang' });
  });

  test('stream_cut errors a stream body after half of its events', async () => {
    const { sim } = simulator({ faults: [{ kind: 'stream_cut' }] });
    const res = await send(sim, { body: chatBody({ stream: true }) });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let events = 0;
    await expect(
      (async () => {
        for (;;) {
          const { done } = await reader.read();
          if (done) return;
          events++;
        }
      })(),
    ).rejects.toThrow(/stream cut/);
    expect(events).toBeGreaterThan(5);
  });

  test('stream_cut on a JSON request acts as reset', async () => {
    const { sim } = simulator({ faults: [{ kind: 'stream_cut' }] });
    expect(await sim.handle('a', request(sim))).toEqual({ kind: 'reset' });
  });

  test('malformed answers 200 application/json with a body that is not JSON', async () => {
    const { sim } = simulator({ faults: [{ kind: 'malformed' }] });
    const res = await send(sim);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    await expect(res.json()).rejects.toThrow(SyntaxError);
  });

  test('outage answers 503 only inside its time window', async () => {
    const { sim, clock } = simulator({ faults: [{ kind: 'outage', fromMs: 1000, untilMs: 5000 }] });
    expect((await send(sim)).status).toBe(200);
    clock.advance(1000);
    expect((await send(sim)).status).toBe(503);
    clock.advance(3999);
    expect((await send(sim)).status).toBe(503);
    clock.advance(1);
    expect((await send(sim)).status).toBe(200);
  });

  test('faults come after authentication', async () => {
    const { sim } = simulator({ faults: [{ kind: 'server_error' }] });
    expect((await send(sim, { key: 'fake-unknown-key-000000' })).status).toBe(401);
  });

  test('a faulted request does not consume the rate limit', async () => {
    const { sim } = simulator({ rpm: 1, faults: [{ kind: 'server_error', requests: [0, 1] }] });
    await send(sim);
    await send(sim);
    const res = await send(sim);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-ratelimit-remaining-requests')).toBe('0');
  });

  test('faults are tallied by kind', async () => {
    const { sim } = simulator({ faults: [{ kind: 'reset', requests: [0] }, { kind: 'outage', requests: [1, 2] }] });
    for (let i = 0; i < 4; i++) await sim.handle('a', request(sim));
    expect(sim.tallies().a?.faults).toEqual({
      server_error: 0,
      reset: 1,
      hang: 0,
      stream_cut: 0,
      malformed: 0,
      outage: 2,
      stream_stall: 0,
      stream_keepalive: 0,
      stream_garbage: 0,
      stream_truncate: 0,
      wrong_content_type: 0,
      response_failed: 0,
    });
  });
});

describe('latency', () => {
  test('a JSON answer waits for its latency before resolving', async () => {
    const { sim } = simulator({ latency: { medianMs: 40, p99Ms: 40 } });
    const started = performance.now();
    await send(sim);
    expect(performance.now() - started).toBeGreaterThanOrEqual(35);
  });

  test('aborting the request stops the wait and rejects with the abort reason', async () => {
    const { sim } = simulator({ latency: { medianMs: 10_000, p99Ms: 10_000 } });
    const controller = new AbortController();
    const pending = sim.handle('a', request(sim, { signal: controller.signal }));
    setTimeout(() => controller.abort(), 10);
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
  });
});

describe('tallies', () => {
  test('count requests, successes, rate limits and tokens per provider and key', async () => {
    const { sim } = simulator({ keys: [{ key: KEY, rpm: 2 }, KEY2] });
    const a = await json(await send(sim));
    const b = await json(await send(sim));
    await send(sim);
    await send(sim, { key: KEY2, body: chatBody({ model: 'nope' }) });
    const tally = sim.tallies().a!;
    expect(tally).toMatchObject({ requests: 4, successes: 2, rateLimited: 1 });
    const input = a.usage.prompt_tokens + b.usage.prompt_tokens;
    const output = a.usage.completion_tokens + b.usage.completion_tokens;
    expect(tally.keys[KEY]).toMatchObject({ requests: 3, successes: 2, rateLimited: 1, inputTokens: input, outputTokens: output, tokens: input + output });
    expect(tally.keys[KEY2]).toMatchObject({ requests: 1, successes: 0 });
  });

  test('credentialsSeen lists every distinct bearer token in first-seen order', async () => {
    const { sim } = simulator();
    await send(sim, { key: KEY2 });
    await send(sim, { key: 'fake-stranger-000000000' });
    await send(sim, { key: KEY2 });
    await send(sim);
    expect(sim.tallies().a?.credentialsSeen).toEqual([KEY2, 'fake-stranger-000000000', KEY]);
  });

  test('costUsd uses the model price', async () => {
    const { sim } = simulator({ models: { 'gpt-4.1': { price: { input: 1_000_000, output: 0 } } } });
    await send(sim, { body: chatBody({}, 'x'.repeat(40)) });
    expect(sim.tallies().a?.keys[KEY]?.costUsd).toBeCloseTo(10);
  });

  test('tallies() returns a copy', async () => {
    const { sim } = simulator();
    const copy = sim.tallies();
    copy.a!.keys[KEY]!.requests = 99;
    copy.a!.credentialsSeen.push('x');
    expect(sim.tallies().a?.keys[KEY]?.requests).toBe(0);
    expect(sim.tallies().a?.credentialsSeen).toEqual([]);
  });

  test('reset() zeroes the tallies and refills the buckets', async () => {
    const { sim } = simulator({ rpm: 1 });
    await send(sim);
    sim.reset();
    expect(sim.tallies().a).toMatchObject({ requests: 0, successes: 0, credentialsSeen: [] });
    expect((await send(sim)).status).toBe(200);
  });

  test('reset() restarts request indexes and the fault clock', async () => {
    const { sim, clock } = simulator({ faults: [{ kind: 'server_error', requests: [0] }, { kind: 'outage', untilMs: 1000 }] });
    expect((await send(sim)).status).toBe(500);
    clock.advance(2000);
    expect((await send(sim)).status).toBe(200);
    sim.reset();
    expect((await send(sim)).status).toBe(500);
    expect((await send(sim)).status).toBe(503);
  });

  test('peakRequestsPerMinute is the most requests accepted in any 60 s sliding window', async () => {
    const { sim, clock } = simulator();
    for (const gap of [0, 10_000, 10_000, 45_000, 1000, 1000]) {
      clock.advance(gap);
      await send(sim);
    }
    // Requests at 0, 10, 20, 65, 66, 67 s: the window (7 s, 67 s] holds 10, 20, 65, 66, 67.
    expect(sim.peakRequestsPerMinute()).toEqual({ a: { [KEY]: 5, [KEY2]: 0 } });
  });

  test('acceptedPerMinute counts accepted requests per calendar minute', async () => {
    const { sim, clock } = simulator({ rpm: 2 });
    await send(sim);
    await send(sim);
    await send(sim); // 429: not accepted
    clock.advance(60_000);
    await send(sim);
    expect(sim.tallies().a?.acceptedPerMinute[KEY]).toEqual({ [T0]: 2, [T0 + 60_000]: 1 });
  });
});

describe('options validation', () => {
  const base = { id: 'a', keys: [KEY], models: ['gpt-4.1'] };
  test.each<[string, unknown, RegExp, ErrorConstructor]>([
    ['no providers', { providers: [] }, /providers must list at least one/, RangeError],
    ['a bad id', { providers: [{ ...base, id: 'Not OK' }] }, /providers\[0\]\.id must be a lower-case DNS label/, RangeError],
    ['duplicate ids', { providers: [base, base] }, /providers\[1\]\.id "a" is used by another provider/, RangeError],
    ['a negative rpm', { providers: [{ ...base, keys: [{ key: KEY, rpm: -1 }] }] }, /providers\[0\] \("a"\)\.keys\[0\]\.rpm must be a positive integer or Infinity/, RangeError],
    ['a string tpm', { providers: [{ ...base, tpm: '5' }] }, /\.tpm must be a number/, TypeError],
    ['a duplicate key', { providers: [{ ...base, keys: [KEY, KEY] }] }, /keys\[1\]\.key is listed twice/, RangeError],
    ['no models', { providers: [{ ...base, models: [] }] }, /models must name at least one model/, RangeError],
    ['p99 below median', { providers: [{ ...base, latency: { medianMs: 10, p99Ms: 5 } }] }, /latency\.p99Ms must be >= .*latency\.medianMs/, RangeError],
    ['an unknown fault kind', { providers: [{ ...base, faults: [{ kind: 'explode' }] }] }, /faults\[0\]\.kind must be one of/, TypeError],
    ['a probability above 1', { providers: [{ ...base, faults: [{ kind: 'reset', probability: 2 }] }] }, /faults\[0\]\.probability must be between 0 and 1/, RangeError],
    ['an empty window', { providers: [{ ...base, faults: [{ kind: 'outage', fromMs: 5, untilMs: 5 }] }] }, /faults\[0\]\.untilMs must be greater than/, RangeError],
    ['a status on a reset fault', { providers: [{ ...base, faults: [{ kind: 'reset', status: 500 }] }] }, /faults\[0\]\.status applies only to/, TypeError],
    ['a fractional seed', { providers: [base], seed: 1.5 }, /seed must be a safe integer/, TypeError],
  ])('rejects %s', (_, options, message, type) => {
    expect(() => new ProviderSimulator(options as SimulatorOptions)).toThrow(type);
    expect(() => new ProviderSimulator(options as SimulatorOptions)).toThrow(message);
  });

  test('baseURL() rejects an unknown provider', () => {
    const { sim } = simulator();
    expect(() => sim.baseURL('nope')).toThrow(/unknown provider "nope"/);
  });
});
