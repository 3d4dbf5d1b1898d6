/**
 * Issue 11 through the real `openai` SDK and the public API: bursts against a
 * sliding-window upstream, the 429 cooldown read like the limiter reads it, a
 * blip of 429s that must not park keys, and 402 "Insufficient Balance".
 * Deterministic: fake timers, counts only.
 */
import type OpenAI from 'openai';
import { describe, expect, test, vi } from 'vitest';
import { KeyManager, keyplex } from '../../../src/index';
import { fakeKey } from '../../support/fake-keys';
import { chatReply, errorReply, keyRing, provider } from '../../support/upstream';
import '../../support/setup';
import { managedClients } from '../../support/manage';
import { fakeClock, until } from '../../support/time';
import { record } from '../../support/events';

const BASE = 'https://api.burst.test/v1';
const BODY = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hi' }] };

const manage = managedClients();

/** A sliding-window upstream: at most `limit` per key in any `periodMs`; 429 above, with its headers. */
function slidingUpstream(ring: ReturnType<typeof keyRing>, limit: number, periodMs: number) {
  const log = new Map<string, number[]>();
  const rejected: string[] = [];
  const accepted: { key: string; at: number }[] = [];
  const calls = provider(BASE, (call) => {
    const id = ring.idOf(call.key);
    const now = Date.now();
    const mine = (log.get(id) ?? []).filter((at) => at > now - periodMs);
    const headers = (remaining: number) => ({
      'x-ratelimit-limit-requests': String(limit),
      'x-ratelimit-remaining-requests': String(remaining),
      'x-ratelimit-reset-requests': `${Math.max(0, (mine[0] ?? now) + periodMs - now)}ms`,
    });
    if (mine.length >= limit) {
      log.set(id, mine);
      rejected.push(id);
      return errorReply(429, 'rate_limit_exceeded', { ...headers(0), 'retry-after-ms': String((mine[0] ?? now) + periodMs - now) });
    }
    mine.push(now);
    log.set(id, mine);
    accepted.push({ key: id, at: now });
    return chatReply('gpt-4.1', 'hello', {}, { headers: headers(limit - mine.length) });
  });
  return { calls, rejected, accepted };
}

/** `n` requests at once (deadline 300 s), counting how they settle. */
function burst(client: OpenAI, n: number) {
  const tally = { ok: 0, failed: 0 };
  const all = Array.from({ length: n }, () =>
    client.chat.completions.create(BODY, keyplex.options({ deadlineMs: 300_000 })).then(
      () => void tally.ok++,
      () => void tally.failed++,
    ),
  );
  return { tally, all };
}

describe('bursts', () => {
  test('4× the capacity at once on 3 keys of 30 rpm against a sliding-window upstream: 0 upstream 429s, 0 app errors, the capacity used', async () => {
    fakeClock();
    const ring = keyRing('a', 'b', 'c');
    const upstream = slidingUpstream(ring, 30, 60_000);
    const { client } = manage({ providers: { burst: { baseURL: BASE, keys: ring.keys, rpm: 30 } } });
    const start = Date.now();
    const { tally, all } = burst(client, 120);
    // Real progress is awaited with the fake clock standing still, so load cannot move the figures.
    await until(() => upstream.calls.length >= 90 && tally.ok >= 90, 'the first 90 served');
    await vi.advanceTimersByTimeAsync(59_999);
    expect(upstream.calls).toHaveLength(90);
    // A minute after the first were counted (their replies; at the latest 250 ms after they were sent), the other 30.
    await vi.advanceTimersByTimeAsync(251);
    await until(() => tally.ok + tally.failed === 120, 'all settled');
    await Promise.all(all);

    expect({ ...tally, upstream429s: upstream.rejected.length }).toEqual({ ok: 120, failed: 0, upstream429s: 0 });
    expect(upstream.accepted.filter((a) => a.at === start)).toHaveLength(90);
  });
});

describe('bursts, limits only stated by headers', () => {
  /** 120 at once on 3 keys whose limit (30 per minute) is only in the headers; `warm`: one reply per key first. */
  async function headersOnlyBurst(warm: boolean) {
    fakeClock();
    const ring = keyRing('a', 'b', 'c');
    const upstream = slidingUpstream(ring, 30, 60_000);
    const { client } = manage({ providers: { burst: { baseURL: BASE, keys: ring.keys } }, keySelection: 'round-robin' });
    // Learning: one request per key tells its limit (nothing is configured).
    if (warm) for (let i = 0; i < 3; i++) await client.chat.completions.create(BODY);
    const start = Date.now();
    const { tally, all } = burst(client, 120);
    await until(() => tally.ok >= 90 - (warm ? 3 : 0), 'what is left of the first minute served');
    expect(upstream.calls).toHaveLength(90);
    for (let i = 0; i < 130 && tally.ok + tally.failed < 120; i++) await vi.advanceTimersByTimeAsync(1_000);
    await Promise.all(all);
    expect({ ...tally, upstream429s: upstream.rejected.length }).toEqual({ ok: 120, failed: 0, upstream429s: 0 });
    expect(upstream.accepted.filter((a) => a.at === start)).toHaveLength(90);
  }

  test('after one reply per key, 4× the capacity at once on 3 keys of 30 per minute (headers only): 0 upstream 429s, 0 app errors', () => headersOnlyBurst(true));

  // With rateLimiting.coldStart 'open' the whole burst goes out before any reply and meets 429s.
  test('cold: 4× the capacity at once on 3 fresh keys of 30 per minute (nothing learnt yet): one request per key first, then 29 each at once; 0 upstream 429s, 0 app errors', () =>
    headersOnlyBurst(false));
});

describe('429 cooldowns and the limiter read the same headers', () => {
  test('an anthropic-ratelimit reset 40 s ahead cools the key 40 s (not a default 5 s)', async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    provider(BASE, (call) =>
      ring.idOf(call.key) === 'a'
        ? errorReply(429, 'rate_limit_error', {
            'anthropic-ratelimit-requests-remaining': '0',
            'anthropic-ratelimit-requests-reset': new Date(Date.now() + 40_000).toISOString(),
          })
        : chatReply('gpt-4.1'),
    );
    const { manager, client } = manage({ providers: { one: { baseURL: BASE, keys: ring.keys } }, keySelection: 'round-robin' });
    const cooldowns = record(manager, 'key:cooldown');
    await client.chat.completions.create(BODY);
    expect(cooldowns.map((c) => c.retryAfterMs)).toEqual([40_000]);
  });

  test('retry-after: 1e12 cools the key for at most an hour', async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    provider(BASE, (call) => (ring.idOf(call.key) === 'a' ? errorReply(429, 'rate_limit_exceeded', { 'retry-after': '1e12' }) : chatReply('gpt-4.1')));
    const { manager, client } = manage({ providers: { one: { baseURL: BASE, keys: ring.keys } }, keySelection: 'round-robin' });
    const cooldowns = record(manager, 'key:cooldown');
    await client.chat.completions.create(BODY);
    expect(cooldowns.map((c) => c.retryAfterMs)).toEqual([3_600_000]);
    // The cap is reported: an upstream asking for more than an hour is news for the operator.
    expect(cooldowns.map((c) => c.capped)).toEqual([true]);
  });

  test('a 2xx stating a reset beyond a day: key:limits with capped: true, once until the headers are in bounds again', async () => {
    fakeClock();
    const ring = keyRing('a');
    let resetS = 3 * 86_400;
    provider(BASE, () =>
      chatReply('gpt-4.1', 'hello', {}, {
        headers: { 'x-ratelimit-limit-requests': '1000', 'x-ratelimit-remaining-requests': '999', 'x-ratelimit-reset-requests': `${resetS}s` },
      }),
    );
    const { manager, client } = manage({ providers: { one: { baseURL: BASE, keys: ring.keys } } });
    const capped = record(manager, 'key:limits');
    await client.chat.completions.create(BODY);
    await client.chat.completions.create(BODY);
    expect(capped).toEqual([{ provider: 'one', keyId: 'a', capped: true, limits: expect.objectContaining({ rpm: 1000, source: 'headers' }) }]);
    resetS = 60;
    await client.chat.completions.create(BODY);
    resetS = 3 * 86_400;
    await client.chat.completions.create(BODY);
    expect(capped).toHaveLength(2);
  });

  test('an uncapped cooldown carries no capped flag', async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    provider(BASE, (call) => (ring.idOf(call.key) === 'a' ? errorReply(429, 'rate_limit_exceeded', { 'retry-after': '7' }) : chatReply('gpt-4.1')));
    const { manager, client } = manage({ providers: { one: { baseURL: BASE, keys: ring.keys } }, keySelection: 'round-robin' });
    const cooldowns = record(manager, 'key:cooldown');
    await client.chat.completions.create(BODY);
    expect(cooldowns).toEqual([{ provider: 'one', keyId: 'a', retryAfterMs: 7_000, reason: 'rate_limit' }]);
  });
});

describe('a blip of 429s on a provider without rate-limit headers', () => {
  test('four 429s with retry-after-ms 100: the next 40 requests at 5 req/s all succeed within a 5 s deadline', async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    let blips = 4;
    const calls = provider(BASE, () => (blips-- > 0 ? errorReply(429, 'rate_limit_exceeded', { 'retry-after-ms': '100' }) : chatReply('gpt-4.1')));
    const { client } = manage({ providers: { one: { baseURL: BASE, keys: ring.keys } } });
    // Steady traffic before the blip, then the blip (absorbed by retries).
    for (let i = 0; i < 20; i++) {
      let done = false;
      const one = client.chat.completions.create(BODY).finally(() => (done = true));
      while (!done) await vi.advanceTimersByTimeAsync(50);
      await one;
      await vi.advanceTimersByTimeAsync(150);
    }
    let ok = 0;
    let failed = 0;
    const after = [];
    for (let i = 0; i < 40; i++) {
      const settled = ok + failed;
      after.push(client.chat.completions.create(BODY, keyplex.options({ deadlineMs: 5_000 })).then(() => ok++, () => failed++));
      // A healthy key serves at once: real progress only, the fake clock standing still (a parked key never settles here).
      await until(() => ok + failed > settled, `request ${i} served without waiting`).catch(() => undefined);
      await vi.advanceTimersByTimeAsync(200);
    }
    await vi.advanceTimersByTimeAsync(5_000);
    await Promise.all(after);
    expect({ ok, failed }).toEqual({ ok: 40, failed: 0 });
    expect(calls.length).toBe(64);
  });
});

describe('enableKey() forgets learnt estimates', () => {
  test('a key whose headers said 1 a minute, used up: waits; after enableKey() the next request goes at once', async () => {
    fakeClock();
    const ring = keyRing('a');
    const calls = provider(BASE, () =>
      chatReply('gpt-4.1', 'hello', {}, {
        headers: { 'x-ratelimit-limit-requests': '1', 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '60s' },
      }),
    );
    const { manager, client } = manage({ providers: { one: { baseURL: BASE, keys: ring.keys } } });
    await client.chat.completions.create(BODY);
    // Learnt: 1 a minute, none left. Within a 5 s deadline nothing can go.
    const waited = client.chat.completions.create(BODY, keyplex.options({ deadlineMs: 5_000 })).then(
      () => 'served',
      () => 'failed',
    );
    await vi.advanceTimersByTimeAsync(5_001);
    expect(await waited).toBe('failed');
    expect(calls).toHaveLength(1);

    manager.enableKey('one', 'a');
    const after = client.chat.completions.create(BODY, keyplex.options({ deadlineMs: 5_000 })).then(
      () => 'served',
      () => 'failed',
    );
    await until(() => calls.length === 2, 'the request after enableKey() sent at once');
    expect(await after).toBe('served');
  });
});

describe('per-model windows and quota groups', () => {
  const outcome = (p: Promise<unknown>) => p.then(() => 'served', () => 'failed');

  test('rateLimitScope model: rpm 1 holds per key × model (a second model has its own window)', async () => {
    fakeClock();
    const ring = keyRing('a');
    const calls = provider(BASE, (call) => chatReply(String((call.body as { model?: unknown } | undefined)?.model ?? 'm')));
    const { client } = manage({ providers: { one: { baseURL: BASE, keys: ring.keys, rpm: 1, rateLimitScope: 'model' } } });
    const short = keyplex.options({ deadlineMs: 5_000 });
    expect(await outcome(client.chat.completions.create({ ...BODY, model: 'm1' }, short))).toBe('served');
    expect(await outcome(client.chat.completions.create({ ...BODY, model: 'm2' }, short))).toBe('served');
    const again = outcome(client.chat.completions.create({ ...BODY, model: 'm1' }, short));
    await vi.advanceTimersByTimeAsync(5_001);
    expect(await again).toBe('failed');
    expect(calls).toHaveLength(2);
  });

  test('stats() under rateLimitScope model shows the windows per model, and the lowest headroom', async () => {
    fakeClock();
    const ring = keyRing('a');
    const limits: Record<string, [number, number]> = { m1: [10, 4], m2: [100, 99] };
    provider(BASE, (call) => {
      const model = String(call.body?.model);
      const [limit, remaining] = limits[model]!;
      return chatReply(model, 'hello', {}, {
        headers: { 'x-ratelimit-limit-requests': String(limit), 'x-ratelimit-remaining-requests': String(remaining), 'x-ratelimit-reset-requests': '60s' },
      });
    });
    const { manager, client } = manage({ providers: { one: { baseURL: BASE, keys: ring.keys, rateLimitScope: 'model' } } });
    for (const model of ['m1', 'm2']) await client.chat.completions.create({ ...BODY, model });
    const key = manager.stats().providers.one!.keys[0]!;
    expect(Object.keys(key.models ?? {})).toEqual(['m1', 'm2']);
    expect(key.models!.m1!.limits).toMatchObject({ rpm: 10, source: 'headers' });
    expect(key.models!.m2!.limits).toMatchObject({ rpm: 100, source: 'headers' });
    expect(key.models!.m1!.headroom).toBeCloseTo(0.4, 5);
    expect(key.headroom).toBe(key.models!.m1!.headroom);
    // Scope 'key': no per-model windows to show.
    const { manager: perKey, client: perKeyClient } = manage({ providers: { one: { baseURL: BASE, keys: keyRing('b').keys, rateLimitScope: 'key' } } });
    await perKeyClient.chat.completions.create({ ...BODY, model: 'm1' });
    expect(perKey.stats().providers.one!.keys[0]!.models).toBeUndefined();
  });

  test('a quotaGroup shares one window between keys: rpm 2 on the group, not 2 per key', async () => {
    fakeClock();
    const ring = keyRing('a', 'b');
    const calls = provider(BASE, () => chatReply('gpt-4.1'));
    const keys = ring.keys.map((k) => ({ ...k, quotaGroup: 'acct-1' }));
    const { client } = manage({ providers: { one: { baseURL: BASE, keys, rpm: 2 } }, keySelection: 'round-robin' });
    const short = keyplex.options({ deadlineMs: 5_000 });
    expect(await outcome(client.chat.completions.create(BODY, short))).toBe('served');
    expect(await outcome(client.chat.completions.create(BODY, short))).toBe('served');
    const third = outcome(client.chat.completions.create(BODY, short));
    await vi.advanceTimersByTimeAsync(5_001);
    expect(await third).toBe('failed');
    expect(ring.ids(calls)).toEqual(['a', 'b']);
  });
});

describe('402 Insufficient Balance', () => {
  test('DeepSeek 402: the key is disabled (quota) and the request is served by another key', async () => {
    const ring = keyRing('a', 'b');
    const seen = provider(BASE, (call) =>
      ring.idOf(call.key) === 'a'
        ? new Response(JSON.stringify({ error: { message: 'Insufficient Balance', type: 'unknown_error', param: null, code: 'invalid_request_error' } }), {
            status: 402,
            headers: { 'content-type': 'application/json' },
          })
        : chatReply('deepseek-chat'),
    );
    const { manager, client } = manage({ providers: { deepseek: { baseURL: BASE, keys: ring.keys } }, keySelection: 'round-robin' });
    const disabled = record(manager, 'key:disabled');
    const reply = await client.chat.completions.create({ ...BODY, model: 'deepseek-chat' });
    expect(reply.choices[0]?.message.content).toBe('hello');
    expect(ring.ids(seen)).toEqual(['a', 'b']);
    expect(disabled).toEqual([{ provider: 'deepseek', keyId: 'a', reason: 'quota' }]);
  });
});

test('requests waiting for a configured window go as the replies ahead of them come, not 250 ms after each (the latest count time)', async () => {
  fakeClock();
  const sentAt: number[] = [];
  const manager = new KeyManager({
    providers: { one: { baseURL: 'https://window.test/v1', keys: [fakeKey('window')], models: ['gpt-4.1'], requests: { limit: 1, periodMs: 100 } } },
    fetch: async () => {
      sentAt.push(Date.now());
      return new Response(JSON.stringify({ id: 'c', object: 'chat.completion', created: 1, model: 'gpt-4.1', choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }), { headers: { 'content-type': 'application/json' } });
    },
  });
  try {
    const start = Date.now();
    const body = JSON.stringify({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] });
    const all = Promise.all(Array.from({ length: 4 }, () => manager.fetch('https://window.test/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body })));
    await vi.advanceTimersByTimeAsync(2_000);
    expect((await all).map((r) => r.status)).toEqual([200, 200, 200, 200]);
    // One per period from each reply (answered at once): 0, 100, 200, 300 ms. Each used to wait to its predecessor's send + 250 ms + the period.
    expect(sentAt.map((t) => t - start)).toEqual([0, 100, 200, 300]);
  } finally {
    await manager.close();
  }
});
