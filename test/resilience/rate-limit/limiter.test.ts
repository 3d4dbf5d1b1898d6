import { describe, expect, test } from 'vitest';
import { ConfigError } from '../../../src/errors';
import { estimateTokens, KeyLimiter, parseRateLimitHeaders, type KeyLimiterOptions, type Reservation } from '../../../src/resilience/rate-limit';

/** A limiter on a hand-moved clock. */
function setup(options: KeyLimiterOptions = {}, start = 0) {
  const clock = { t: start };
  const limiter = new KeyLimiter(options, () => clock.t);
  return { clock, limiter };
}

/** Reserves and expects it to fit. */
function reserve(limiter: KeyLimiter, tokens = 0): Reservation {
  const result = limiter.tryReserve(tokens);
  if (!result.ok) throw new Error(`expected a reservation, got a wait of ${result.waitMs} ms`);
  return result.reservation;
}

/** Reserves `n` single requests and expects each to fit. */
function drain(limiter: KeyLimiter, n: number, tokens = 0): void {
  for (let i = 0; i < n; i++) reserve(limiter, tokens);
}

const h = (init: Record<string, string>) => new Headers(init);

// The limiter's windows, ledger, periods and AIMD: test/resilience/limiter.test.ts.

describe('KeyLimiter: options', () => {
  test.each([
    ['rpm', 0],
    ['rpm', -1],
    ['rpm', Number.NaN],
    ['rpm', Infinity],
    ['tpm', 0],
    ['tpm', '100'],
    ['adaptive', 'yes'],
  ])('%s: %j is rejected with a ConfigError naming the field', (field, value) => {
    const build = () => new KeyLimiter({ [field]: value } as KeyLimiterOptions);
    expect(build).toThrow(ConfigError);
    expect(build).toThrow(expect.objectContaining({ field }));
  });

  test('the default clock is Date.now', () => {
    const limiter = new KeyLimiter({});
    const result = limiter.tryReserve(0);
    expect(result.ok && Math.abs(result.reservation.at - Date.now()) < 1_000).toBe(true);
  });
});

describe('estimateTokens', () => {
  const text = (n: number) => 'x'.repeat(n);
  test.each<[string, Record<string, unknown> | undefined, number | undefined, number]>([
    ['no body: the default output', undefined, undefined, 256],
    ['no body with a custom default', undefined, 100, 100],
    ['chat messages + max_tokens', { messages: [{ role: 'user', content: text(40) }], max_tokens: 50 }, undefined, 60],
    ['characters round up', { messages: [{ role: 'user', content: text(41) }], max_tokens: 0 }, undefined, 11],
    [
      'content parts, images as data URLs skipped',
      {
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: text(20) },
              { type: 'image_url', image_url: { url: `data:image/png;base64,${text(10_000)}`, detail: 'high' } },
            ],
          },
        ],
        max_completion_tokens: 10,
      },
      undefined,
      15,
    ],
    ['the default output when no max is named', { messages: [{ role: 'system', content: text(8) }] }, undefined, 258],
    ['a custom default output', { messages: [{ role: 'system', content: text(8) }] }, 1_000, 1_002],
    ['completions prompt strings', { prompt: [text(4), text(8)], max_tokens: 1 }, undefined, 4],
    ['completions prompt token ids count one each', { prompt: [1, 2, 3, 4, 5], max_tokens: 0 }, undefined, 5],
    ['responses input + instructions + max_output_tokens', { instructions: text(12), input: text(8), max_output_tokens: 100 }, undefined, 105],
    [
      'responses input items',
      { input: [{ role: 'user', content: [{ type: 'input_text', text: text(16) }] }, { type: 'function_call_output', call_id: 'call_1', output: text(4) }], max_output_tokens: 0 },
      undefined,
      5,
    ],
    ['embeddings input', { input: [text(400), text(400)], model: 'text-embedding-3-small' }, undefined, 456],
    ['tools count as input', { messages: [], tools: [{ type: 'function', function: { name: text(4), description: text(8) } }], max_tokens: 0 }, undefined, 3],
    ['the largest max field wins', { messages: [], max_tokens: 10, max_completion_tokens: 30 }, undefined, 30],
    ['n choices multiply the output', { messages: [], max_tokens: 10, n: 3 }, undefined, 30],
    ['a garbage max field is ignored', { messages: [], max_tokens: 'lots' }, undefined, 256],
    ['other fields are not input', { model: text(400), metadata: { note: text(400) }, max_tokens: 1 }, undefined, 1],
  ])('%s', (_name, body, defaultOutput, tokens) => {
    expect(estimateTokens(body, defaultOutput)).toBe(tokens);
  });

  test('a deeply nested body does not overflow the stack', () => {
    let deep: unknown = 'x';
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(estimateTokens({ input: deep, max_tokens: 0 })).toBe(0);
  });
});


describe('KeyLimiter: the cold-start probe', () => {
  const stated = h({ 'x-ratelimit-limit-requests': '3', 'x-ratelimit-remaining-requests': '2', 'x-ratelimit-reset-requests': '20s' });

  test('while nothing is known one reservation goes; the next waits (probing) until its end, then the stated limit paces', () => {
    const { limiter } = setup({ probe: true, adaptive: false });
    const probe = reserve(limiter);
    expect(limiter.tryReserve(0)).toEqual({ ok: false, waitMs: 10_000, probing: true });
    limiter.observe(stated, probe);
    expect(limiter.endProbe(probe, true)).toBe(true);
    drain(limiter, 2);
    expect(limiter.tryReserve(0).ok).toBe(false);
  });

  test('a 2xx stating nothing opens it for good; an end without a reply lets the next go first; a hold past 10 s opens it', () => {
    const silent = setup({ probe: true });
    silent.limiter.endProbe(reserve(silent.limiter), true);
    drain(silent.limiter, 5);

    const failed = setup({ probe: true });
    expect(failed.limiter.endProbe(reserve(failed.limiter))).toBe(true);
    reserve(failed.limiter);
    expect(failed.limiter.tryReserve(0).ok).toBe(false);

    const slow = setup({ probe: true });
    reserve(slow.limiter);
    slow.clock.t = 9_999;
    expect(slow.limiter.tryReserve(0)).toMatchObject({ ok: false, waitMs: 1, probing: true });
    slow.clock.t = 10_000;
    drain(slow.limiter, 5);
  });

  test('never with a configured limit, nor without the option; forget() starts it again', () => {
    drain(setup({ probe: true, rpm: 100 }).limiter, 5);
    drain(setup().limiter, 5);
    const { limiter } = setup({ probe: true });
    limiter.endProbe(reserve(limiter), true);
    limiter.forget();
    reserve(limiter);
    expect(limiter.tryReserve(0).ok).toBe(false);
  });
});

describe('KeyLimiter: a send later than its reservation', () => {
  test('counts from the send: the window frees it a period after the send, not after the reservation', () => {
    const { clock, limiter } = setup({ rpm: 1 });
    const late = reserve(limiter);
    // Held 10 s (a hook, a loaded event loop) before it is sent: the upstream counts it from then.
    clock.t = 10_000;
    limiter.sent(late);
    clock.t = 10_100;
    limiter.observe(h({}), late);
    // A period after the reservation (+ the count lag) it would have left; the upstream still counts it.
    clock.t = 60_300;
    expect(limiter.tryReserve(0)).toEqual({ ok: false, waitMs: 9_800 });
    clock.t = 70_100;
    expect(limiter.tryReserve(0).ok).toBe(true);
  });

  test('unanswered, it leaves a period after its send + the count lag; a send on time changes nothing', () => {
    const { clock, limiter } = setup({ rpm: 2 });
    const onTime = reserve(limiter);
    limiter.sent(onTime);
    const late = reserve(limiter);
    clock.t = 5_000;
    limiter.sent(late);
    expect(limiter.tryReserve(0).ok).toBe(false);
    clock.t = 60_250;
    reserve(limiter); // the one sent on time left; the late one holds
    expect(limiter.tryReserve(0)).toEqual({ ok: false, waitMs: 5_000 });
    clock.t = 65_250;
    expect(limiter.tryReserve(0).ok).toBe(true);
  });
});

describe('KeyLimiter: headroom as of a given reading of its clock', () => {
  const stated = h({ 'x-ratelimit-limit-requests': '100', 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '10s' });

  test('headroom(now) judges the windows as of `now`, without reading the clock', () => {
    const { clock, limiter } = setup({}, 1_000);
    limiter.observe(stated);
    expect(limiter.headroom()).toBe(0);
    clock.t = Number.NaN; // a read of the clock would be taken as standing still, at 1000
    expect(limiter.headroom(11_000)).toBe(1);
  });

  test('tryReserve(tokens, clockRead) reserves as of the reading it is given, without reading the clock', () => {
    const { clock, limiter } = setup({ rpm: 1 }, 1_000);
    reserve(limiter);
    expect(limiter.tryReserve(0).ok).toBe(false);
    clock.t = Number.NaN;
    expect(limiter.tryReserve(0, 1_000 + 120_000).ok).toBe(true);
  });

  test('a `now` earlier than a time already seen is taken as that time, as the clock is', () => {
    const { clock, limiter } = setup({}, 1_000);
    limiter.observe(stated);
    clock.t = 11_000;
    expect(limiter.headroom()).toBe(1);
    expect(limiter.headroom(2_000)).toBe(1);
  });
});

describe('KeyLimiter: replies whose headers repeat', () => {
  const stated = (limit: string, remaining: string) =>
    h({ 'x-ratelimit-limit-requests': limit, 'x-ratelimit-remaining-requests': remaining, 'x-ratelimit-reset-requests': '1s' });

  test('a value that changes after replies with the same values is still learnt', () => {
    const { clock, limiter } = setup({}, 1_000);
    for (let i = 0; i < 3; i++) {
      limiter.observe(stated('100', '90'));
      clock.t += 1;
    }
    expect(limiter.limits.rpm).toBe(100);
    expect(limiter.headroom()).toBeCloseTo(0.9, 2);
    limiter.observe(stated('100', '10'));
    expect(limiter.headroom()).toBeCloseTo(0.1, 2);
    limiter.observe(stated('50', '10'));
    expect(limiter.limits.rpm).toBe(50);
  });

  test('a reply repeating the last values still caps the window, as of its own request, as a fresh read does', () => {
    const run = (afresh: boolean) => {
      const { clock, limiter } = setup({}, 1_000);
      const first = reserve(limiter);
      reserve(limiter);
      // 50 left as of the first request: the second, sent after it, is still to come off.
      limiter.observe(stated('100', '50'), first);
      const capped = limiter.headroom();
      // The cap runs out with its reset and the window refills.
      clock.t += 5_000;
      const refilled = limiter.headroom();
      const third = reserve(limiter);
      if (afresh) parseRateLimitHeaders(stated('7', '7'), clock.t); // another reply's values in between: no repeat
      limiter.observe(stated('100', '50'), third);
      return [capped, refilled, limiter.headroom()];
    };
    const repeated = run(false);
    expect(repeated[0]).toBeCloseTo(0.49, 2);
    expect(repeated[1]).toBe(1);
    expect(repeated[2]).toBeLessThanOrEqual(0.5);
    expect(repeated).toEqual(run(true));
  });
});

describe('KeyLimiter: a clock stepped back', () => {
  test('by an hour: a window of a minute frees what was sent a minute later, as measured on since the step', () => {
    const { clock, limiter } = setup({ rpm: 1 }, 10 * 3_600_000);
    reserve(limiter);
    clock.t -= 3_600_000;
    const refused = limiter.tryReserve(0);
    expect(refused.ok ? 0 : refused.waitMs).toBeLessThanOrEqual(60_000 + 250);
    clock.t += 60_000 + 250;
    expect(limiter.tryReserve(0).ok).toBe(true);
  });

  test('by less than a second (a reading made a moment before another): taken as standing still, nothing skipped', () => {
    const { clock, limiter } = setup({ rpm: 1 }, 1_000_000);
    reserve(limiter);
    clock.t = 1_000_000 - 900;
    clock.t += 60_000 + 250;
    // Had the 900 ms counted as a step, the window would free now: it frees at 1,060,250 in the clock's time.
    expect(limiter.tryReserve(0).ok).toBe(false);
    clock.t = 1_000_000 + 60_250;
    expect(limiter.tryReserve(0).ok).toBe(true);
  });

  test('a 429 whose rest runs out after the step: the window opens when the rest is over', () => {
    const { clock, limiter } = setup({}, 5 * 3_600_000);
    const first = reserve(limiter);
    limiter.rateLimited(h({ 'retry-after': '10' }), 1_000, first);
    clock.t -= 3_600_000;
    const refused = limiter.tryReserve(0);
    expect(refused.ok ? 0 : refused.waitMs).toBeLessThanOrEqual(10_000);
    clock.t += 10_000;
    expect(limiter.tryReserve(0).ok).toBe(true);
  });

  test('a rest a timer vouches for (reached), the step already found by a reading: the limiter does not run ahead of the clock', () => {
    const { clock, limiter } = setup({ rpm: 1 }, 10 * 3_600_000);
    const first = reserve(limiter);
    limiter.rateLimited(h({ 'retry-after': '10' }), 1_000, first);
    const restedUntil = limiter.time(clock.t) + 10_000;
    clock.t -= 3_600_000;
    limiter.headroom(); // stats() or another key of its quota group reads it: the step is found
    clock.t += 10_000;
    limiter.reached(restedUntil); // the key's cooldown timer ran
    // The request sent 10 s ago still holds the minute's one request: 50 s more, not an hour's head start.
    const refused = limiter.tryReserve(0);
    expect(refused.ok ? 0 : refused.waitMs).toBeGreaterThan(49_000);
  });

  test('a deadline on the clock is compared as such: hopeUntil answers on the clock too', () => {
    const { clock, limiter } = setup({ rpm: 1 }, 10 * 3_600_000);
    reserve(limiter);
    clock.t -= 3_600_000;
    // The request in flight, answered within 100 ms, frees its room a minute later: in time for a deadline 60.1 s away.
    expect(limiter.hopeUntil(0, clock.t + 60_100)).toBe(clock.t + 100);
  });
});
