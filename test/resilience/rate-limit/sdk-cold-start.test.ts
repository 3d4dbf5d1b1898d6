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
import { chatReply, keyRing, server } from '../../support/upstream';
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
