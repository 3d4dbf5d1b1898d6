/**
 * Issue 11, "What it must show" 1, the cold start with limits only stated by
 * headers: while a key's limits are unknown, one request goes first and the
 * key's others wait for that reply's headers; then they are paced by what
 * was learnt. Through the real `openai` SDK, against the provider simulator
 * (its clock the fake `Date.now`) and msw stand-ins. Deterministic: the fake
 * clock moves only between steps; the figures are counts.
 */
import { describe, expect, test, vi } from 'vitest';
import { keyplex } from '../../../src/index';
import { ProviderSimulator } from '../../../src/testing';
import { simulatorHandlers } from '../../../src/testing/msw';
import { HttpResponse } from 'msw';
import { chatChunks, chatReply, deferred, keyRing, provider, server } from '../../support/upstream';
import '../../support/setup';
import { managedClients } from '../../support/manage';
import { fakeClock, quiesce, until } from '../../support/time';

const BODY = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hi' }], max_tokens: 1 };
const MINUTE = 60_000;

const manage = managedClients();

describe('a cold burst, limits only stated by headers', () => {
  test('120 at once on 3 fresh keys of 30 a minute (the simulator, nothing configured): 30 per key at once, the rest paced; 0 upstream 429s, 0 app errors', async () => {
    fakeClock();
    const keys = ['a', 'b', 'c'].map((id) => `fake-cold-${id}-0000000000000001`);
    const sim = new ProviderSimulator({ now: () => Date.now(), providers: [{ id: 'cold', keys: keys.map((key) => ({ key, rpm: 30 })), models: ['gpt-4.1'] }] });
    server.use(...simulatorHandlers(sim));
    const { client } = manage({ providers: { cold: { baseURL: sim.baseURL('cold'), keys } } });
    const tallies = () => Object.values(sim.tallies().cold!.keys);
    const sent = () => tallies().reduce((n, k) => n + k.requests, 0);
    let ok = 0;
    let failed = 0;
    const all = Array.from({ length: 120 }, () =>
      client.chat.completions.create(BODY, keyplex.options({ deadlineMs: 5 * MINUTE })).then(
        () => ok++,
        () => failed++,
      ),
    );
    // The fake clock stands still: what goes now is what goes at once.
    await quiesce(() => sent() * 1_000 + ok + failed);
    expect(tallies().map((k) => k.requests)).toEqual([30, 30, 30]);
    expect(tallies().map((k) => k.rateLimited)).toEqual([0, 0, 0]);
    const start = Date.now();
    // The rest is paced by the bucket learnt from the headers (1 per key every 2 s): well within the first minute.
    for (let i = 0; i < 60 && ok + failed < 120; i++) {
      await vi.advanceTimersByTimeAsync(1_000);
      await quiesce(() => sent() * 1_000 + ok + failed);
    }
    await Promise.all(all);
    expect({ ok, failed, upstream429s: tallies().reduce((n, k) => n + k.rateLimited, 0) }).toEqual({ ok: 120, failed: 0, upstream429s: 0 });
    expect(Date.now() - start).toBeLessThanOrEqual(MINUTE);
  });
});

describe('the cold-start gate: one request first, the others held for its headers', () => {
  const BASE = 'https://api.gate.test/v1';
  const LIMITS = { 'x-ratelimit-limit-requests': '100', 'x-ratelimit-remaining-requests': '99', 'x-ratelimit-reset-requests': '600ms' };
  const heldUpstream = () => heldUpstreamOn(BASE);
  const outcome = (p: Promise<unknown>) => p.then(() => 'served', (error: unknown) => (error instanceof Error ? error.constructor.name : 'failed'));

  test('the held requests go at the probe reply’s headers, paced by the limit they state', async () => {
    fakeClock();
    const up = heldUpstream();
    const { client } = manage({ providers: { gate: { baseURL: BASE, keys: keyRing('a').keys } } });
    const all = Array.from({ length: 5 }, () => outcome(client.chat.completions.create(BODY)));
    await quiesce(() => up.calls.length);
    expect(up.calls).toHaveLength(1);
    up.answer(0, chatReply('gpt-4.1', 'hello', {}, { headers: LIMITS }));
    await quiesce(() => up.calls.length);
    expect(up.calls).toHaveLength(5);
    for (let i = 1; i < 5; i++) up.answer(i, chatReply('gpt-4.1', 'hello', {}, { headers: LIMITS }));
    expect(await Promise.all(all)).toEqual(Array(5).fill('served'));
  });

  test('a 2xx that states no limits opens the key (AIMD as without the gate)', async () => {
    fakeClock();
    const up = heldUpstream();
    const { manager, client } = manage({ providers: { gate: { baseURL: BASE, keys: keyRing('a').keys } } });
    const first = Array.from({ length: 3 }, () => outcome(client.chat.completions.create(BODY)));
    await quiesce(() => up.calls.length);
    expect(up.calls).toHaveLength(1);
    up.answer(0, chatReply('gpt-4.1'));
    await quiesce(() => up.calls.length);
    expect(up.calls).toHaveLength(3);
    // Opened for good: later requests on the key go at once too.
    const later = Array.from({ length: 3 }, () => outcome(client.chat.completions.create(BODY)));
    await quiesce(() => up.calls.length);
    expect(up.calls).toHaveLength(6);
    for (let i = 1; i < 6; i++) up.answer(i, chatReply('gpt-4.1'));
    expect(await Promise.all([...first, ...later])).toEqual(Array(6).fill('served'));
    expect(manager.stats().providers.gate!.keys[0]!.limits.source).toBe('none');
  });

  test('a stream opens the gate at its headers, not at its end', async () => {
    fakeClock();
    const end = deferred();
    const stream = (events: string[]) => {
      const encoder = new TextEncoder();
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (sent === 1) await end.promise;
          if (sent < events.length) controller.enqueue(encoder.encode(`data: ${events[sent++]}\n\n`));
          else (controller.enqueue(encoder.encode('data: [DONE]\n\n')), controller.close());
        },
      });
      return new HttpResponse(body, { headers: { 'content-type': 'text/event-stream', 'transfer-encoding': 'chunked', ...LIMITS } });
    };
    const calls = provider(BASE, (call) => (call.body?.stream === true ? stream(chatChunks('gpt-4.1', ['a', 'b'], false)) : chatReply('gpt-4.1', 'hello', {}, { headers: LIMITS })));
    const { client } = manage({ providers: { gate: { baseURL: BASE, keys: keyRing('a').keys } } });
    const streamed = client.chat.completions.create({ ...BODY, stream: true }).then(async (s) => {
      let text = '';
      for await (const chunk of s) text += chunk.choices[0]?.delta.content ?? '';
      return text;
    });
    await until(() => calls.length === 1, 'the stream sent');
    // The stream is still open (held after its first event): the next request on the key goes.
    expect(await outcome(client.chat.completions.create(BODY))).toBe('served');
    expect(calls).toHaveLength(2);
    end.resolve();
    expect(await streamed).toBe('ab');
  });

  test('the probe failing without an answer (a reset, an abort) lets the next request go first; none hangs', async () => {
    fakeClock();
    const up = heldUpstream();
    const { client } = manage({ providers: { gate: { baseURL: BASE, keys: keyRing('a').keys } }, retry: { maxAttempts: 1 } });
    const abort = new AbortController();
    const aborted = outcome(client.chat.completions.create(BODY, { signal: abort.signal }));
    const failed = outcome(client.chat.completions.create(BODY));
    const served = outcome(client.chat.completions.create(BODY));
    await quiesce(() => up.calls.length);
    expect(up.calls).toHaveLength(1);
    abort.abort();
    await quiesce(() => up.calls.length);
    expect(up.calls).toHaveLength(2);
    up.answer(1, 'reset');
    await quiesce(() => up.calls.length);
    expect(up.calls).toHaveLength(3);
    up.answer(2, chatReply('gpt-4.1', 'hello', {}, { headers: LIMITS }));
    expect([await aborted, await failed, await served]).toEqual(['APIUserAbortError', 'InternalServerError', 'served']);
  });

  test('a probe with no headers after 10 s opens the key: the held requests are not kept for a slow reply', async () => {
    fakeClock();
    const up = heldUpstream();
    const { client } = manage({ providers: { gate: { baseURL: BASE, keys: keyRing('a').keys } } });
    const all = Array.from({ length: 3 }, () => outcome(client.chat.completions.create(BODY)));
    await quiesce(() => up.calls.length);
    await vi.advanceTimersByTimeAsync(9_999);
    await quiesce(() => up.calls.length);
    expect(up.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    await quiesce(() => up.calls.length);
    expect(up.calls).toHaveLength(3);
    for (let i = 0; i < 3; i++) up.answer(i, chatReply('gpt-4.1'));
    expect(await Promise.all(all)).toEqual(Array(3).fill('served'));
  });

  test('per key: the other keys stay usable; per model window under rateLimitScope model; one gate per quota group', async () => {
    fakeClock();
    const up = heldUpstream();
    const ring = keyRing('a', 'b');
    const { client } = manage({ providers: { gate: { baseURL: BASE, keys: ring.keys } } });
    const pending = Array.from({ length: 3 }, () => outcome(client.chat.completions.create(BODY)));
    await quiesce(() => up.calls.length);
    expect(ring.ids(up.calls).sort()).toEqual(['a', 'b']);

    const perModel = heldUpstreamOn('https://api.models.test/v1');
    const { client: modelClient } = manage({ providers: { m: { baseURL: 'https://api.models.test/v1', keys: keyRing('k').keys, rateLimitScope: 'model' } } });
    const models = ['m1', 'm1', 'm2'].map((model) => outcome(modelClient.chat.completions.create({ ...BODY, model })));
    await quiesce(() => perModel.calls.length);
    expect(perModel.calls.map((c) => c.body?.model)).toEqual(['m1', 'm2']);

    const grouped = heldUpstreamOn('https://api.group.test/v1');
    const keys = keyRing('g1', 'g2').keys.map((k) => ({ ...k, quotaGroup: 'acct' }));
    const { client: groupClient } = manage({ providers: { g: { baseURL: 'https://api.group.test/v1', keys } } });
    const group = Array.from({ length: 2 }, () => outcome(groupClient.chat.completions.create(BODY)));
    await quiesce(() => grouped.calls.length);
    expect(grouped.calls).toHaveLength(1);

    for (const [upstream, n] of [[up, 3], [perModel, 3], [grouped, 2]] as const) {
      for (let i = 0; i < n; i++) {
        await quiesce(() => upstream.calls.length);
        upstream.answer(i, chatReply('gpt-4.1', 'hello', {}, { headers: LIMITS }));
      }
    }
    expect(await Promise.all([...pending, ...models, ...group])).toEqual(Array(8).fill('served'));
  });

  test('no gate when limits are configured, nor with coldStart: open', async () => {
    fakeClock();
    const configured = heldUpstreamOn('https://api.conf.test/v1');
    const { client } = manage({ providers: { c: { baseURL: 'https://api.conf.test/v1', keys: keyRing('a').keys, rpm: 100 } } });
    const open = heldUpstreamOn('https://api.open.test/v1');
    const { client: openClient } = manage({ providers: { o: { baseURL: 'https://api.open.test/v1', keys: keyRing('a').keys } }, rateLimiting: { coldStart: 'open' } });
    const all = [client, client, client, openClient, openClient, openClient].map((c) => outcome(c.chat.completions.create(BODY)));
    await quiesce(() => configured.calls.length + open.calls.length);
    expect([configured.calls.length, open.calls.length]).toEqual([3, 3]);
    for (let i = 0; i < 3; i++) for (const upstream of [configured, open]) upstream.answer(i, chatReply('gpt-4.1'));
    expect(await Promise.all(all)).toEqual(Array(6).fill('served'));
  });

  test('a request waits for the deployment it prefers while its keys learn their limits, rather than moving down the route', async () => {
    fakeClock();
    const first = heldUpstreamOn('https://api.first.test/v1');
    const second = heldUpstreamOn('https://api.second.test/v1');
    const { client } = manage({
      providers: {
        first: { baseURL: 'https://api.first.test/v1', keys: keyRing('a').keys, models: { chat: 'first-chat' } },
        second: { baseURL: 'https://api.second.test/v1', keys: keyRing('b').keys, models: { chat: 'second-chat' } },
      },
    });
    const all = Array.from({ length: 3 }, () => outcome(client.chat.completions.create({ ...BODY, model: 'chat' })));
    await quiesce(() => first.calls.length + second.calls.length);
    expect([first.calls.length, second.calls.length]).toEqual([1, 0]);
    first.answer(0, chatReply('first-chat', 'hello', {}, { headers: LIMITS }));
    await quiesce(() => first.calls.length + second.calls.length);
    expect([first.calls.length, second.calls.length]).toEqual([3, 0]);
    for (let i = 1; i < 3; i++) first.answer(i, chatReply('first-chat', 'hello', {}, { headers: LIMITS }));
    expect(await Promise.all(all)).toEqual(Array(3).fill('served'));

    // A request whose deadline is shorter than the probe's hold (10 s) moves on rather than risk its deadline.
    const fresh = manage({
      providers: {
        first: { baseURL: 'https://api.first.test/v1', keys: keyRing('c').keys, models: { chat: 'first-chat' } },
        second: { baseURL: 'https://api.second.test/v1', keys: keyRing('d').keys, models: { chat: 'second-chat' } },
      },
    }).client;
    const short = [0, 5_000].map((deadlineMs) =>
      outcome(fresh.chat.completions.create({ ...BODY, model: 'chat' }, deadlineMs === 0 ? undefined : keyplex.options({ deadlineMs }))),
    );
    await quiesce(() => first.calls.length + second.calls.length);
    expect([first.calls.length, second.calls.length]).toEqual([4, 1]);
    first.answer(3, chatReply('first-chat'));
    second.answer(0, chatReply('second-chat'));
    expect(await Promise.all(short)).toEqual(['served', 'served']);
  });

  test('a held request whose deadline comes first ends with deadline_exceeded, never sent', async () => {
    fakeClock();
    const up = heldUpstream();
    const { client } = manage({ providers: { gate: { baseURL: BASE, keys: keyRing('a').keys } } });
    const probe = outcome(client.chat.completions.create(BODY));
    const late = client.chat.completions.create(BODY, keyplex.options({ deadlineMs: 2_000 })).then(
      () => undefined,
      (error: unknown) => (error as { code?: string }).code,
    );
    await quiesce(() => up.calls.length);
    await vi.advanceTimersByTimeAsync(2_000);
    // As behind a half-open circuit's probe: the wait ends with the request's deadline.
    expect(await late).toBe('deadline_exceeded');
    expect(up.calls).toHaveLength(1);
    up.answer(0, chatReply('gpt-4.1'));
    expect(await probe).toBe('served');
  });

  /** An upstream at `base` whose every call waits until the test answers it (`answer(i, reply)`, by arrival order). */
  function heldUpstreamOn(base: string) {
    const held: ((reply: Response | 'reset') => void)[] = [];
    const calls = provider(base, () => new Promise<Response | 'reset'>((resolve) => held.push(resolve)));
    return { calls, answer: (i: number, reply: Response | 'reset') => held[i]!(reply) };
  }
});
