/**
 * Latency routing while a deployment fails or changes speed, through the
 * real `openai` SDK against msw stand-ins, on the fake clock: a deployment
 * that fails fast does not look fast, and one that turned slow and then
 * recovered gets its traffic back.
 */
import { describe, expect, test, vi } from 'vitest';
import { fakeKey } from '../support/fake-keys';
import type { KeyManagerOptions } from '../../src/index';
import { chatChunks, chatReply, errorReply, provider, sseReply, type UpstreamCall } from '../support/upstream';
import '../support/setup';
import { fakeClock, until } from '../support/time';
import { useManagers } from '../support/scaffold';

const A = 'https://api.a.test/v1';
const B = 'https://api.b.test/v1';
const CHAT = 'chat';
const HI = { model: CHAT, messages: [{ role: 'user' as const, content: 'hi' }] };

// No backoff between attempts: fake timers never advance on their own here.
const manage = useManagers();

/** How provider `a` answers a call: a reply or a 500 after `ms`, or nothing (`hang`: the attempt's timeout, `ms`, ends it). */
type Answer = { kind: 'reply' | 'error' | 'hang'; ms: number };

/** A reply in the form asked for: a stream to a stream request, else JSON. */
const answer = (model: string, call: UpstreamCall) => (call.body?.stream ? sseReply(chatChunks(model, ['hi'], false)) : chatReply(model));

/**
 * `chat` on a and b, routed by latency. b answers after `bMs` (100 ms); a as
 * `answerA(index)` says. `send()` sends one request, moves the fake clock
 * by exactly each call's time as the call reaches its provider, and returns
 * the providers it went to, in order (`'a>b'`: a failed, b served).
 */
function latencySetup(answerA: (index: number) => Answer, options: Partial<KeyManagerOptions> = {}, bMs = 100) {
  fakeClock();
  const B_DELAY_MS = bMs;
  const later = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
  const times = { a: [] as number[], b: [] as number[] };
  const seenA = provider(A, async (call, index) => {
    const { kind, ms } = answerA(index);
    times.a.push(ms);
    if (kind === 'hang') await new Promise(() => undefined);
    await later(ms);
    return kind === 'error' ? errorReply(500, 'server_error') : answer('a-chat', call);
  });
  const seenB = provider(B, async (call) => {
    times.b.push(B_DELAY_MS);
    await later(B_DELAY_MS);
    return answer('b-chat', call);
  });
  const { manager, client } = manage({
    providers: {
      a: { baseURL: A, keys: [fakeKey('a')], models: { [CHAT]: 'a-chat' } },
      b: { baseURL: B, keys: [fakeKey('b')], models: { [CHAT]: 'b-chat' } },
    },
    routing: { strategy: 'latency' },
    ...options,
  });
  async function send(stream = false): Promise<string> {
    let settled = false;
    const reply = (stream ? client.chat.completions.create({ ...HI, stream: true }) : client.chat.completions.create(HI)).finally(() => (settled = true));
    const went: string[] = [];
    let a = seenA.length;
    let b = seenB.length;
    for (;;) {
      await until(() => settled || seenA.length > a || seenB.length > b, 'a provider holds the request, or it settled');
      if (seenA.length > a) {
        went.push('a');
        await vi.advanceTimersByTimeAsync(times.a[a++]!);
      } else if (seenB.length > b) {
        went.push('b');
        await vi.advanceTimersByTimeAsync(times.b[b++]!);
      } else break;
    }
    const got = await reply;
    if (stream) for await (const _ of got as AsyncIterable<unknown>);
    return went.join('>');
  }
  return { manager, send };
}

describe('latency routing and failures', () => {
  test('a deployment whose failures come back fast is not ranked as fast: its slower replies decide', async () => {
    // a fails every other call in 1 ms and answers the others in 150 ms; b answers in 100 ms.
    const { send } = latencySetup((i) => (i % 2 === 0 ? { kind: 'error', ms: 1 } : { kind: 'reply', ms: 150 }));

    const routes: string[] = [];
    for (let i = 0; i < 20; i++) routes.push(await send());

    // Counting a's 1 ms failures as fast answers held its average near 90 ms, ahead of b, for good:
    // every other request failed there first. Its 150 ms answers now decide: b serves from the 8th request on.
    expect(routes.slice(0, 8)).toEqual(['a>b', 'a', 'a>b', 'a', 'a>b', 'a', 'a>b', 'a']);
    expect(routes.slice(8)).toEqual(Array(12).fill('b'));
  });

  test('a deployment whose streams start to time out before their first byte goes behind one that answers', async () => {
    // a's streams start in 10 ms, then (from its 3rd call) never start: the 1 s attempt timeout ends each. b's start in 100 ms.
    const { send } = latencySetup((i) => (i < 2 ? { kind: 'reply', ms: 10 } : { kind: 'hang', ms: 1_000 }), { attemptTimeoutMs: 1_000 });

    const routes: string[] = [];
    for (let i = 0; i < 8; i++) routes.push(await send(true));

    // Streams rank by time to first token, which a timeout never measured: a kept its 10 ms and every stream waited
    // out a's timeout first. The timeout counts in it now: after the first, b serves.
    expect(routes).toEqual(['a', 'b', 'a', 'a>b', 'b', 'b', 'b', 'b']);
  });
});

describe('latency routing and outliers', () => {
  // The measured case: a answers in 30 ms, b in 89 ms. Each test warms up (a, b, then a twice: a's average 30 ms).
  const warmUp = async (send: (stream?: boolean) => Promise<string>, stream = false) => {
    const routes: string[] = [];
    for (let i = 0; i < 4; i++) routes.push(await send(stream));
    expect(routes).toEqual(['a', 'b', 'a', 'a']);
  };

  test.each([
    ['reply', false],
    ['time to first token (streams)', true],
  ])('one 2 s %s among 30 ms ones (an event-loop stall, a long generation) keeps the traffic on the fast deployment', async (_, stream) => {
    // a's 4th call (index 3, the first after the warm-up) takes 2 s: the application stalled 2 s while it was in flight.
    const { send } = latencySetup((i) => ({ kind: 'reply', ms: i === 3 ? 2_000 : 30 }), {}, 89);
    await warmUp(send, stream);
    expect(await send(stream)).toBe('a'); // the 2 s one

    const routes: string[] = [];
    for (let i = 0; i < 20; i++) routes.push(await send(stream));

    // Taken whole, the 2 s sample put a's average at 627 ms: 20 of the next 20 went to b, until the minute's remeasure.
    // Clipped to 3 × 30 ms, it moves the average to 48 ms, still ahead of b's 89: all 20 stay on a.
    expect(routes.filter((r) => r === 'a').length).toBe(20);
  });

  test('a deployment that turns slow for good loses the traffic after 3 slow replies', async () => {
    // From its 4th call (index 3, the first after the warm-up) on, a answers every call in 2 s.
    const { send } = latencySetup((i) => ({ kind: 'reply', ms: i >= 3 ? 2_000 : 30 }), {}, 89);
    await warmUp(send);

    const routes: string[] = [];
    for (let i = 0; i < 10; i++) routes.push(await send());

    // a's average 30 → 48 → 77 → 123 ms: behind b's 89 after its 3rd 2 s reply (1 before the clip).
    expect(routes).toEqual(['a', 'a', 'a', ...Array(7).fill('b')]);
  });
});

describe('latency routing and recovery', () => {
  const MINUTE = 60_000;

  test('a deployment that turned slow is measured again by one request after a minute, and gets its traffic back once it recovered', async () => {
    let aMs = 10;
    const { send } = latencySetup(() => ({ kind: 'reply', ms: aMs }));
    const warmUp: string[] = [];
    for (let i = 0; i < 4; i++) warmUp.push(await send());
    expect(warmUp).toEqual(['a', 'b', 'a', 'a']);
    // a turns slow: one 500 ms reply moves its average 10 → 16 ms (clipped to 3 × 10), the 5th to 105 ms, behind b.
    aMs = 500;
    const slow: string[] = [];
    for (let i = 0; i < 6; i++) slow.push(await send());
    expect(slow).toEqual(['a', 'a', 'a', 'a', 'a', 'b']);
    // a answers in 10 ms again, but its average says 105 ms: b serves, and a is not asked within the minute.
    aMs = 10;
    const meanwhile: string[] = [];
    for (let i = 0; i < 25; i++) meanwhile.push(await send());
    expect(meanwhile).toEqual(Array(25).fill('b'));

    await vi.advanceTimersByTimeAsync(MINUTE);
    const after: string[] = [];
    for (let i = 0; i < 5; i++) after.push(await send());

    // Never measured again, a never got a request back while b was measured at 100 ms.
    // One request measures it: 10 ms, a minute after its last sample, weighs about half: 56 ms, ahead of b.
    expect(after).toEqual(['a', 'a', 'a', 'a', 'a']);
  });

  test('a deployment still slow takes one request a minute to measure it, while the others serve', async () => {
    const aMs = { value: 10 };
    const { send } = latencySetup(() => ({ kind: 'reply', ms: aMs.value }));
    for (let i = 0; i < 4; i++) await send();
    aMs.value = 500;
    for (let i = 0; i < 5; i++) await send(); // a's average 10 → 105 ms, behind b

    const routes: string[] = [];
    for (let minute = 0; minute < 3; minute++) {
      for (let i = 0; i < 25; i++) routes.push(await send());
      await vi.advanceTimersByTimeAsync(MINUTE);
    }

    // b for the first minute; then each minute, a first (measured again, still 500 ms), then b for the rest.
    const later = ['a', ...Array(24).fill('b')];
    expect(routes).toEqual([...Array(25).fill('b'), ...later, ...later]);
  });

  test('under light traffic a slow deployment is measured again at most once in 20 requests', async () => {
    const { send } = latencySetup((i) => ({ kind: 'reply', ms: i === 0 ? 10 : 500 }));
    for (let i = 0; i < 3; i++) await send(); // a 10 ms, b 100 ms, a 500 ms: a at 157 ms, behind b.

    // One request every two minutes: every measurement is over a minute old at the next.
    const routes: string[] = [];
    for (let i = 0; i < 42; i++) {
      await vi.advanceTimersByTimeAsync(2 * MINUTE);
      routes.push(await send());
    }

    expect(routes.filter((r) => r === 'a')).toHaveLength(2);
    expect(routes[20]).toBe('a');
    expect(routes[41]).toBe('a');
  });
});
