/**
 * How a Responses API answer is judged (`client.responses.create`, streamed
 * and not): its end says how it went. `response.completed` is a success;
 * `response.incomplete` too (the caller's limit, `max_output_tokens`, or a
 * content filter: as a chat `finish_reason: "length"`); `response.failed`
 * (the response's `error` set, status "failed") is a failure of its code: a
 * `server_error` before anything reached the caller fails over, after it the
 * request fails (its usage priced) and the key learns of it. A JSON reply of
 * status "failed" is a 200 carrying an error, as chat's.
 */
import OpenAI from 'openai';
import { HttpResponse } from 'msw';
import { describe, expect, test } from 'vitest';
import { getKeyplexDetails } from '../../src/index';
import { caught } from '../support/caught';
import { record } from '../support/events';
import { managedClients } from '../support/managers';
import { fakeKey } from '../support/fake-keys';
import { namedSseReply, provider, responseObject, responsesEvents, responsesReply, type NamedEvent } from '../support/upstream';
import '../support/setup';

const ONE = 'https://api.one.test/v1';
const TWO = 'https://api.two.test/v1';
const MODEL = 'gpt-4.1';
const WORDS = ['Hel', 'lo', ' wor', 'ld'];

const manage = managedClients({ one: { baseURL: ONE, keys: [fakeKey('one')] }, two: { baseURL: TWO, keys: [fakeKey('two')] } });

/** A Responses object that ended `status`: failed with `code`, or incomplete for `max_output_tokens`; its usage 30 in, 8 out. */
function ended(status: 'failed' | 'incomplete', code = 'server_error') {
  return {
    ...responseObject(MODEL, WORDS.join(''), 'completed', { prompt: 30, completion: 8 }),
    status,
    error: status === 'failed' ? { code, message: `The response failed (${code}).` } : null,
    incomplete_details: status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
  };
}

/** A Responses stream: `response.created` and the text deltas (with `output`), then its end as `status`. */
function streamEnding(status: 'failed' | 'incomplete', options: { output?: boolean; code?: string } = {}): NamedEvent[] {
  const events = responsesEvents(MODEL, WORDS, { prompt: 30, completion: 8 });
  const type = `response.${status}`;
  const last = { event: type, data: { type, sequence_number: events.length, response: ended(status, options.code) } };
  return options.output === false ? [last] : [...events.slice(0, -1), last];
}

/** Reads a Responses stream whole: the event types the app saw, and what its loop threw. */
async function readAll(stream: AsyncIterable<OpenAI.Responses.ResponseStreamEvent>) {
  const types: string[] = [];
  try {
    for await (const event of stream) types.push(event.type);
    return { types, error: undefined };
  } catch (error) {
    return { types, error };
  }
}

const PRICE = (30 * 2 + 8 * 8) / 1e6;

describe('a Responses stream that ends with response.failed after output reached the caller', () => {
  test('the app sees the event as the SDK yields it; keyplex emits failure (stream_interrupted), not success, with the usage priced', async () => {
    provider(ONE, () => namedSseReply(streamEnding('failed')));
    const { client, success, failure } = manage();
    const { types, error } = await readAll(await client.responses.create({ model: MODEL, input: 'hi', stream: true }));
    expect(error).toBeUndefined();
    expect(types.at(-1)).toBe('response.failed');
    expect(success).toHaveLength(0);
    expect(failure.map((e) => e.error.code)).toEqual(['stream_interrupted']);
    expect(failure[0]!.error.message).toContain('response.failed');
    expect(failure[0]).toMatchObject({ usage: { inputTokens: 30, outputTokens: 8 } });
    expect(failure[0]!.costUsd).toBeCloseTo(PRICE, 12);
  });

  test('stats count a failure, not a success, for the request and for the key (whose health learns of it)', async () => {
    provider(ONE, () => namedSseReply(streamEnding('failed')));
    const { client, manager } = manage();
    await readAll(await client.responses.create({ model: MODEL, input: 'hi', stream: true }));
    const stats = manager.stats();
    expect(stats.totals).toMatchObject({ successes: 0, failures: { stream_interrupted: 1 }, inFlight: 0 });
    expect(stats.providers.one!.keys[0]).toMatchObject({ successes: 0, failures: { stream_interrupted: 1 } });
  });

  test("a failure of the caller's request (invalid_prompt) fails the request without counting against the key's circuit", async () => {
    provider(ONE, () => namedSseReply(streamEnding('failed', { code: 'invalid_prompt' })));
    const { client, manager, failure } = manage({ circuitBreaker: { key: { policy: { kind: 'consecutive', threshold: 1 } } } });
    const opened = record(manager, 'circuit:open');
    await readAll(await client.responses.create({ model: MODEL, input: 'hi', stream: true }));
    expect(failure.map((e) => e.error.code)).toEqual(['stream_interrupted']);
    expect(opened).toHaveLength(0);
  });

  test('a server_error does count against it: a circuit of threshold 1 opens', async () => {
    provider(ONE, () => namedSseReply(streamEnding('failed')));
    const { client, manager } = manage({ circuitBreaker: { key: { policy: { kind: 'consecutive', threshold: 1 } } } });
    const opened = record(manager, 'circuit:open');
    await readAll(await client.responses.create({ model: MODEL, input: 'hi', stream: true }));
    expect(opened.length).toBeGreaterThan(0);
  });
});

describe('a Responses stream whose first event is response.failed (nothing reached the caller)', () => {
  test('server_error: another provider serves the stream, one failover, no failure', async () => {
    const one = provider(ONE, () => namedSseReply(streamEnding('failed', { output: false })));
    provider(TWO, () => namedSseReply(responsesEvents(MODEL, WORDS)));
    const { client, manager, success, failure } = manage();
    const failover = record(manager, 'failover');
    const { types, error } = await readAll(await client.responses.create({ model: MODEL, input: 'hi', stream: true }));
    expect(error).toBeUndefined();
    expect(types.at(-1)).toBe('response.completed');
    expect(one).toHaveLength(1);
    expect(failover).toHaveLength(1);
    expect(success).toHaveLength(1);
    expect(success[0]).toMatchObject({ provider: 'two', attempts: 2 });
    expect(failure).toHaveLength(0);
  });

  test('as the last answer it is raised at the call as the SDK error (502), with the response error message', async () => {
    provider(ONE, () => namedSseReply(streamEnding('failed', { output: false })));
    provider(TWO, () => namedSseReply(streamEnding('failed', { output: false })));
    const { client, success, failure } = manage();
    const error = await caught(() => client.responses.create({ model: MODEL, input: 'hi', stream: true }));
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
    expect((error as Error).message).toContain('The response failed (server_error).');
    expect(getKeyplexDetails(error)).toMatchObject({ code: 'upstream_error', status: 502 });
    expect(success).toHaveLength(0);
    expect(failure.map((e) => e.error.code)).toEqual(['upstream_error']);
  });

  test('invalid_prompt is the request itself: raised at once as a 400, no other provider tried', async () => {
    provider(ONE, () => namedSseReply(streamEnding('failed', { output: false, code: 'invalid_prompt' })));
    const two = provider(TWO, () => namedSseReply(responsesEvents(MODEL, WORDS)));
    const { client, manager } = manage();
    const error = await caught(() => client.responses.create({ model: MODEL, input: 'hi', stream: true }));
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect(two).toHaveLength(0);
    expect(manager.stats().providers.one!.keys[0]).toMatchObject({ status: 'active', circuit: 'closed' });
  });
});

describe('a Responses `error` event named by its type alone (no `event:` line)', () => {
  test('as the first event: nothing reached the caller, another provider serves the stream', async () => {
    const error = JSON.stringify({ type: 'error', sequence_number: 0, code: 'server_error', message: 'The server had an error.', param: null });
    provider(ONE, () => new HttpResponse(`data: ${error}\n\n`, { headers: { 'content-type': 'text/event-stream' } }));
    provider(TWO, () => namedSseReply(responsesEvents(MODEL, WORDS)));
    const { client, success, failure } = manage();
    const { types, error: thrown } = await readAll(await client.responses.create({ model: MODEL, input: 'hi', stream: true }));
    expect(thrown).toBeUndefined();
    expect(types).not.toContain('error');
    expect(success[0]).toMatchObject({ provider: 'two', attempts: 2 });
    expect(failure).toHaveLength(0);
  });
});

describe('a Responses stream that ends with response.incomplete (max_output_tokens: the caller’s limit)', () => {
  test('is a success with its usage priced, as a chat completion cut at its length', async () => {
    provider(ONE, () => namedSseReply(streamEnding('incomplete')));
    const { client, success, failure } = manage();
    const { types, error } = await readAll(await client.responses.create({ model: MODEL, input: 'hi', stream: true }));
    expect(error).toBeUndefined();
    expect(types.at(-1)).toBe('response.incomplete');
    expect(failure).toHaveLength(0);
    expect(success).toHaveLength(1);
    expect(success[0]).toMatchObject({ usage: { inputTokens: 30, outputTokens: 8 }, attempts: 1 });
    expect(success[0]!.costUsd).toBeCloseTo(PRICE, 12);
  });
});

describe('a Responses JSON reply (200) of status "failed"', () => {
  test('server_error: retried on another provider, and the app gets the completed response', async () => {
    const one = provider(ONE, () => HttpResponse.json(ended('failed')));
    provider(TWO, () => responsesReply(MODEL, 'ok'));
    const { client, success, failure } = manage();
    const reply = await client.responses.create({ model: MODEL, input: 'hi' });
    expect(reply.status).toBe('completed');
    expect(reply.output_text).toBe('ok');
    expect(one).toHaveLength(1);
    expect(success).toHaveLength(1);
    expect(success[0]).toMatchObject({ provider: 'two', attempts: 2 });
    expect(failure).toHaveLength(0);
  });

  test('as the last answer it surfaces as the SDK error (502) with the response error message; failure, no success', async () => {
    provider(ONE, () => HttpResponse.json(ended('failed')));
    provider(TWO, () => HttpResponse.json(ended('failed')));
    const { client, manager, success, failure } = manage();
    const error = await caught(() => client.responses.create({ model: MODEL, input: 'hi' }));
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect((error as Error).message).toContain('The response failed (server_error).');
    expect(success).toHaveLength(0);
    expect(failure.map((e) => e.error.code)).toEqual(['upstream_error']);
    expect(manager.stats().totals).toMatchObject({ successes: 0, failures: { upstream_error: 1 } });
  });

  test('status "incomplete" is a success (the caller’s limit), its usage counted', async () => {
    provider(ONE, () => HttpResponse.json(ended('incomplete')));
    const { client, success, failure } = manage();
    const reply = await client.responses.create({ model: MODEL, input: 'hi' });
    expect(reply.status).toBe('incomplete');
    expect(failure).toHaveLength(0);
    expect(success[0]).toMatchObject({ usage: { inputTokens: 30, outputTokens: 8 }, attempts: 1 });
  });

  test('a stored response retrieved by id (GET /responses/{id}) that had failed is a successful retrieval', async () => {
    provider(ONE, () => HttpResponse.json(ended('failed')));
    const { client, success, failure } = manage();
    const got = await client.responses.retrieve('resp_test');
    expect(got.status).toBe('failed');
    expect(success).toHaveLength(1);
    expect(failure).toHaveLength(0);
  });
});

