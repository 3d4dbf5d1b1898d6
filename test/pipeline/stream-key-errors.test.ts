/**
 * An error a stream reports after data reached the caller that names the key
 * — a rate limit (`rate_limit_exceeded`) or an empty quota
 * (`insufficient_quota`), in a chat `error` event or a Responses
 * `response.failed` — acts on the key as a 429 reply of that code does: the
 * rate limit cools it down (the wait its message asks for, else
 * `cooldownMs`), the empty quota takes it out (`quota`). It says nothing of
 * the provider's health: no circuit counts it. The request still fails (the
 * data already reached the caller).
 */
import OpenAI from 'openai';
import { describe, expect, test } from 'vitest';
import { record } from '../support/events';
import { fakeKey } from '../support/fake-keys';
import { managedClients } from '../support/managers';
import { chatChunks, namedSseReply, provider, rawSseReply, responseObject, responsesEvents, type NamedEvent } from '../support/upstream';
import '../support/setup';

const ONE = 'https://api.one.test/v1';
const MODEL = 'gpt-4.1';
const WORDS = ['Hel', 'lo', ' wor', 'ld'];
/** Both circuits open at the first failure they count. */
const TRIGGERED = { policy: { kind: 'consecutive' as const, threshold: 1 } };

const manage = managedClients({ one: { baseURL: ONE, keys: [fakeKey('one')] } });

const RATE_LIMITED = { code: 'rate_limit_exceeded', type: 'requests', message: 'Rate limit reached for gpt-4.1 on requests per min (RPM): Limit 3, Used 3. Please try again in 20s.' };
const NO_QUOTA = { code: 'insufficient_quota', type: 'insufficient_quota', message: 'You exceeded your current quota, please check your plan and billing details.' };

/** A chat stream: two chunks, then `error` as an error payload. */
function chatEndingIn(error: Record<string, unknown>) {
  const frames = [...chatChunks(MODEL, WORDS, false).slice(0, 2), JSON.stringify({ error })];
  return rawSseReply(frames.map((e) => `data: ${e}\n\n`).join(''), 10_000);
}

/** A Responses stream: its text deltas, then `response.failed` with `error`. */
function responsesEndingIn(error: Record<string, unknown>) {
  const events: NamedEvent[] = responsesEvents(MODEL, WORDS).slice(0, -1);
  const response = { ...responseObject(MODEL, '', 'in_progress', null), status: 'failed', error: { code: error.code, message: error.message } };
  events.push({ event: 'response.failed', data: { type: 'response.failed', sequence_number: events.length, response } });
  return namedSseReply(events);
}

/** Streams one request on `reply` to its end; what the key and the circuits made of it. */
async function streamOn(api: 'chat' | 'responses', reply: () => Response) {
  provider(ONE, reply);
  const { client, manager, failure } = manage({ circuitBreaker: { key: TRIGGERED, deployment: TRIGGERED } });
  const opened = record(manager, 'circuit:open');
  const cooled = record(manager, 'key:cooldown');
  const disabled = record(manager, 'key:disabled');
  let thrown: unknown;
  try {
    const stream =
      api === 'chat' ? await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], stream: true }) : await client.responses.create({ model: MODEL, input: 'hi', stream: true });
    for await (const _ of stream as AsyncIterable<unknown>) void _;
  } catch (error) {
    thrown = error;
  }
  const key = manager.stats().providers.one!.keys[0]!;
  return {
    thrown,
    failures: failure.map((e) => e.error.code),
    opened: opened.map((e) => e.scope),
    cooled: cooled.map((e) => [e.keyId === key.id, e.retryAfterMs]),
    disabled: disabled.map((e) => e.reason),
    key: { status: key.status, circuit: key.circuit },
    /** The attempt as the key's and the provider's stats count it. */
    counted: [key.failures, manager.stats().providers.one!.failures],
  };
}

describe.each([
  ['a chat error event', 'chat', chatEndingIn],
  ['a Responses response.failed', 'responses', responsesEndingIn],
] as const)('%s after data reached the caller', (_name, api, endingIn) => {
  test('rate_limit_exceeded cools the key for the wait its message asks (20 s); no circuit counts it; the request fails', async () => {
    const seen = await streamOn(api, () => endingIn(RATE_LIMITED));
    // Before: opened ['deployment', 'key'], cooled [], key circuit 'open'.
    expect(seen.failures).toEqual(['stream_interrupted']);
    expect(seen.opened).toEqual([]);
    expect(seen.cooled).toEqual([[true, 20_000]]);
    expect(seen.disabled).toEqual([]);
    expect(seen.key).toEqual({ status: 'cooling', circuit: 'closed' });
    if (api === 'chat') expect(seen.thrown).toBeInstanceOf(OpenAI.APIError);
  });

  test('the stats count the attempt as the error says: rate_limit, quota (not stream_interrupted)', async () => {
    // Before: [{ stream_interrupted: 1 }, { stream_interrupted: 1 }] for both.
    expect((await streamOn(api, () => endingIn(RATE_LIMITED))).counted).toEqual([{ rate_limit: 1 }, { rate_limit: 1 }]);
    expect((await streamOn(api, () => endingIn(NO_QUOTA))).counted).toEqual([{ quota: 1 }, { quota: 1 }]);
  });

  test('rate_limit_exceeded without a wait in its message cools the key for cooldownMs (5 s)', async () => {
    const seen = await streamOn(api, () => endingIn({ ...RATE_LIMITED, message: 'Rate limit reached for gpt-4.1.' }));
    expect(seen.cooled).toEqual([[true, 5_000]]);
    expect(seen.opened).toEqual([]);
  });

  test('insufficient_quota takes the key out (quota), as a 429 insufficient_quota reply does; no circuit counts it', async () => {
    const seen = await streamOn(api, () => endingIn(NO_QUOTA));
    // Before: opened ['deployment', 'key'], disabled [], key active.
    expect(seen.failures).toEqual(['stream_interrupted']);
    expect(seen.opened).toEqual([]);
    expect(seen.disabled).toEqual(['quota']);
    expect(seen.cooled).toEqual([]);
    expect(seen.key).toMatchObject({ status: 'disabled', circuit: 'closed' });
  });
});

/**
 * Anthropic's errors (its own streams', and its OpenAI-compatible
 * endpoint's `event: error`) name their kind by `error.type`, with no
 * `code`: `rate_limit_error` (its 429), `overloaded_error` (529),
 * `api_error` (500), `invalid_request_error` (400). They are judged as
 * replies of those statuses are.
 */
describe("Anthropic's `event: error`, its kind in `error.type`, after data reached the caller", () => {
  function anthropicEndingIn(type: string, message: string) {
    const frames = chatChunks(MODEL, WORDS, false).slice(0, 2).map((e) => `data: ${e}\n\n`);
    frames.push(`event: error\ndata: ${JSON.stringify({ type: 'error', error: { type, message } })}\n\n`);
    return rawSseReply(frames.join(''), 10_000);
  }

  test('rate_limit_error cools the key (cooldownMs, 5 s), as a 429 does; no circuit counts it; the SDK raises it in the loop', async () => {
    const seen = await streamOn('chat', () => anthropicEndingIn('rate_limit_error', 'Number of request tokens has exceeded your per-minute rate limit'));
    // Before: opened ['deployment', 'key'] (or the reverse), cooled [], counted stream_interrupted.
    expect(seen.thrown).toBeInstanceOf(OpenAI.APIError);
    expect(seen.opened).toEqual([]);
    expect(seen.cooled).toEqual([[true, 5_000]]);
    expect(seen.counted).toEqual([{ rate_limit: 1 }, { rate_limit: 1 }]);
  });

  test('invalid_request_error names the request: no circuit counts it, nor the key', async () => {
    const seen = await streamOn('chat', () => anthropicEndingIn('invalid_request_error', 'messages: text content blocks must be non-empty'));
    // Before: opened both circuits, counted stream_interrupted.
    expect(seen.opened).toEqual([]);
    expect(seen.key).toEqual({ status: 'active', circuit: 'closed' });
    expect(seen.counted).toEqual([{ bad_request: 1 }, { bad_request: 1 }]);
  });

  test('overloaded_error counts against the provider and the key (their circuits open at the first failure here)', async () => {
    const seen = await streamOn('chat', () => anthropicEndingIn('overloaded_error', 'Overloaded'));
    expect(seen.failures).toEqual(['stream_interrupted']);
    expect([...seen.opened].sort()).toEqual(['deployment', 'key']);
    expect(seen.cooled).toEqual([]);
    expect(seen.counted).toEqual([{ stream_interrupted: 1 }, { stream_interrupted: 1 }]);
  });
});

describe("Anthropic's `event: error` as a stream's first event (nothing reached the caller)", () => {
  test('invalid_request_error is passed on at once as a 400 (BadRequestError): one call, no retry', async () => {
    const calls = provider(ONE, () => rawSseReply(`event: error\ndata: ${JSON.stringify({ type: 'error', error: { type: 'invalid_request_error', message: 'max_tokens: must be at most 8192' } })}\n\n`, 10_000));
    const { client } = manage();
    const thrown = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], stream: true }).then(
      () => undefined,
      (error: unknown) => error,
    );
    // Before: a 502 (InternalServerError) after 4 calls (4 × 502 server_error), each counted against the provider.
    expect(thrown).toBeInstanceOf(OpenAI.BadRequestError);
    expect(calls).toHaveLength(1);
  });
});
