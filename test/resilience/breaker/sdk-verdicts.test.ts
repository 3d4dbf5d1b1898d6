/**
 * What counts against a circuit (docs/resilience.md, "Circuit breakers"),
 * through the real `openai` SDK: transient failures (5xx, resets, timeouts,
 * broken streams) count against the key and deployment circuits; the
 * caller's own limits (a stream it does not read, its deadline) and a
 * caller error do not, whatever `x-should-retry` says about retrying.
 */
import OpenAI from 'openai';
import { HttpResponse } from 'msw';
import { describe, expect, test, vi } from 'vitest';
import { getKeyplexDetails, keyplex, type KeyManager, type KeyManagerOptions } from '../../../src/index';
import { useManagers } from '../../support/scaffold';
import { chatChunks, errorReply, keyRing, provider } from '../../support/upstream';
import '../../support/setup';
import { fakeClock, until } from '../../support/time';
import { record } from '../../support/events';

const A = 'https://api.a.test/v1';
const MODEL = 'gpt-4.1';
const BODY = { model: MODEL, messages: [{ role: 'user' as const, content: 'hi' }] };
/** One failure opens a circuit: any verdict of `failure` shows. */
const ONE_STRIKE = { policy: { kind: 'consecutive' as const, threshold: 1 }, openMs: 10_000 };
const THREE_STRIKES = { policy: { kind: 'consecutive' as const, threshold: 3 }, openMs: 10_000 };

const manage = useManagers();

/** The deployment's and the key's circuit states. */
function circuits(manager: KeyManager): { deployment: string | undefined; key: string | undefined } {
  const stats = manager.stats();
  return { deployment: stats.deployments.find((d) => d.provider === 'a')?.circuit, key: stats.providers.a?.keys[0]?.circuit };
}

/** Provider a with one key, its answers from `answer`, both circuits as `circuit`; the circuit:open events. */
function oneKey(answer: () => Response, circuit: typeof ONE_STRIKE, options: Partial<KeyManagerOptions> = {}) {
  const ring = keyRing('a1');
  const seen = provider(A, answer);
  const { manager, client } = manage({ providers: { a: { baseURL: A, keys: ring.keys, models: [MODEL] } }, circuitBreaker: { deployment: circuit, key: circuit }, ...options });
  return { seen, manager, client, opened: record(manager, 'circuit:open') };
}

/** Two chat chunks, then a body that never sends anything again (nor ends). */
function twoChunksThenSilence(): Response {
  const text = chatChunks(MODEL, ['Hel', 'lo', ' wor', 'ld'], false)
    .slice(0, 2)
    .map((e) => `data: ${e}\n\n`)
    .join('');
  const body = new ReadableStream<Uint8Array>({ start: (c) => c.enqueue(new TextEncoder().encode(text)), pull: () => new Promise<void>(() => undefined) });
  return new HttpResponse(body, { headers: { 'content-type': 'text/event-stream', 'transfer-encoding': 'chunked' } });
}

/** A chat chunk every 500 ms, for 50 s. */
function endlessStream(): Response {
  const events = chatChunks(MODEL, Array.from({ length: 100 }, () => 'x'), false);
  let at = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (at > 0) await new Promise((resolve) => setTimeout(resolve, 500));
      const event = events[at++];
      if (event === undefined) controller.close();
      else controller.enqueue(new TextEncoder().encode(`data: ${event}\n\n`));
    },
  });
  return new HttpResponse(body, { headers: { 'content-type': 'text/event-stream', 'transfer-encoding': 'chunked' } });
}

describe('the caller’s own limits open no circuit', () => {
  test('a stream the caller stops reading is let go at streamIdleTimeoutMs without a failure against the provider', async () => {
    fakeClock();
    const { manager, client, opened } = oneKey(twoChunksThenSilence, ONE_STRIKE, { streamIdleTimeoutMs: 1_000 });
    const failures = record(manager, 'failure');

    await client.chat.completions.create({ ...BODY, stream: true });
    await vi.advanceTimersByTimeAsync(1_000);
    await until(() => failures.length === 1, 'the unread stream let go');

    expect(failures[0]!.error.message).toContain('not read for 1000 ms');
    expect(opened).toEqual([]);
    expect(circuits(manager)).toEqual({ deployment: 'closed', key: 'closed' });
  });

  test('a stream still sending at the request’s deadline ends there without a failure against the provider', async () => {
    fakeClock();
    const { manager, client, opened } = oneKey(endlessStream, ONE_STRIKE, { deadlineMs: 3_000 });

    const stream = await client.chat.completions.create({ ...BODY, stream: true }, keyplex.options({}));
    const reading = (async () => {
      try {
        for await (const _ of stream);
      } catch (error) {
        return error;
      }
    })();
    await vi.advanceTimersByTimeAsync(3_000);

    expect(getKeyplexDetails(await reading)?.code).toBe('deadline_exceeded');
    expect(opened).toEqual([]);
    expect(circuits(manager)).toEqual({ deployment: 'closed', key: 'closed' });
  });
});

describe('x-should-retry changes the retry, not the verdict', () => {
  test('5xx answers with x-should-retry: false still count against the circuits (three open them)', async () => {
    fakeClock();
    const { manager, client } = oneKey(() => errorReply(503, 'service_unavailable', { 'x-should-retry': 'false' }), THREE_STRIKES);

    for (let i = 0; i < 3; i++) await expect(client.chat.completions.create(BODY)).rejects.toBeInstanceOf(OpenAI.InternalServerError);

    expect(circuits(manager)).toEqual({ deployment: 'open', key: 'open' });
  });

  test('400 answers with x-should-retry: true are retried but open no circuit (the provider answered)', async () => {
    fakeClock();
    const answer = () => errorReply(400, 'invalid_value', { 'x-should-retry': 'true' }, "Invalid 'temperature'");
    const { seen, manager, client, opened } = oneKey(answer, THREE_STRIKES, { retry: { maxAttempts: 2, baseDelayMs: 0 } });

    for (let i = 0; i < 3; i++) await expect(client.chat.completions.create(BODY)).rejects.toBeInstanceOf(OpenAI.BadRequestError);

    // Each was tried twice: six answers, three of them in a row on the same key and deployment.
    expect(seen).toHaveLength(6);
    expect(opened).toEqual([]);
    expect(circuits(manager)).toEqual({ deployment: 'closed', key: 'closed' });
  });
});
