/**
 * An attempt the upstream answered (its status and headers arrived) was
 * counted against the key's limits upstream, though its body then broke:
 * its estimated tokens stay counted in the key's window. Only an attempt
 * that never reached an answer (the connection failed) gives them back.
 * Through the real `openai` SDK and the public API, on a `fetch` of the
 * test's own (the body breaks after its 200 as it would on a socket,
 * deterministically: msw's socket may read a body ahead, before the client
 * has the headers); counts only.
 */
import { describe, expect, test } from 'vitest';
import { chatChunks, chatReply, keyRing, sseReply } from '../../support/upstream';
import '../../support/setup';
import { managedClients } from '../../support/manage';

const BASE = 'https://api.answered.test/v1';
const MODEL = 'gpt-4.1';
/** max_tokens 400 of a 1,000 tpm key: the estimate takes ~40% of its window. */
const BODY = { model: MODEL, messages: [{ role: 'user' as const, content: 'hi' }], max_tokens: 400 };

const manage = managedClients();

/** A 200 of `contentType` whose body sends `head` (no whole event or document) and then breaks. */
function brokenAfter(head: string, contentType: string): Response {
  const encoder = new TextEncoder();
  let sent = false;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent) return controller.error(new Error('upstream connection reset'));
      sent = true;
      controller.enqueue(encoder.encode(head));
    },
  });
  return new Response(body, { headers: { 'content-type': contentType } });
}

/** Key `a` answers with `broken()`, key `b` whole; both 1,000 tpm. The first request goes to `a` (the keys tie: turns start with it). */
function twoKeys(broken: () => Response, stream: boolean) {
  const ring = keyRing('a', 'b');
  const calls: { key: string }[] = [];
  const fetch = async (_url: string | URL | Request, init?: RequestInit) => {
    const key = new Headers(init?.headers).get('authorization')!.slice('Bearer '.length);
    calls.push({ key });
    if (ring.idOf(key) === 'a') return broken();
    return stream ? sseReply(chatChunks(MODEL, ['hello'], true, { prompt: 8, completion: 1 })) : chatReply(MODEL, 'hello', { prompt: 8, completion: 1 });
  };
  const { manager, client } = manage({ providers: { one: { baseURL: BASE, keys: ring.keys, tpm: 1_000 } }, retry: { baseDelayMs: 0 }, fetch });
  const headroom = (id: string) => manager.stats().providers.one!.keys.find((k) => k.id === id)!.headroom;
  return { ring, calls, manager, client, headroom };
}

describe('tokens of an attempt the upstream answered stay counted when its body breaks', () => {
  test('a stream cut after its 200, before its first whole event: key a keeps ~40% of its tokens counted (was given back: headroom 1)', async () => {
    const { ring, calls, client, headroom } = twoKeys(() => brokenAfter('data: {"id":"chatcmpl-cut","object":', 'text/event-stream'), true);
    const stream = await client.chat.completions.create({ ...BODY, stream: true });
    for await (const _ of stream);
    expect(calls.map((call) => ring.idOf(call.key))).toEqual(['a', 'b']);
    expect(headroom('a')).toBeLessThan(0.7);
    expect(headroom('a')).toBeGreaterThan(0.5);
  });

  test('a JSON answer cut after its 200, mid-body: key a keeps its tokens counted', async () => {
    const { ring, calls, client, headroom } = twoKeys(() => brokenAfter('{"id":"chatcmpl-cut","object":', 'application/json'), false);
    await client.chat.completions.create(BODY);
    expect(calls.map((call) => ring.idOf(call.key))).toEqual(['a', 'b']);
    expect(headroom('a')).toBeLessThan(0.7);
    expect(headroom('a')).toBeGreaterThan(0.5);
  });

  test('a connection that fails before any answer gives the tokens back: key a is whole again', async () => {
    const { ring, calls, client, headroom } = twoKeys(() => {
      throw new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED') });
    }, false);
    await client.chat.completions.create(BODY);
    expect(calls.map((call) => ring.idOf(call.key))).toEqual(['a', 'b']);
    expect(headroom('a')).toBe(1);
  });
});
