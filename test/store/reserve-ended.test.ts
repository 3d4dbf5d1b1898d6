/**
 * A request that ends (its caller aborts, close(), its deadline) while the
 * shared store answers its reservation ends at once: it is not sent, waits
 * for no key, and gives a granted reservation back. It used to go on as if
 * nothing happened: refused, it slept the store's wait (30 s here) and
 * close() waited for it; granted, it counted and announced an attempt it
 * never sent and kept the store's request count. A reservation granted to
 * an attempt that a hook then fails is given back too.
 *
 * Deterministic: a custom store whose answers the test gives, on the fake clock.
 */
import OpenAI from 'openai';
import { expect, test, vi } from 'vitest';
import { getKeyplexDetails, KeyManager, keyplex, type KeyManagerOptions, type StoreReservation } from '../../src/index';
import { reservingStore } from '../support/custom-store';
import { record } from '../support/events';
import { closeAfterEach } from '../support/scaffold';
import '../support/setup';
import { fakeClock, quiesce, until } from '../support/time';
import { chatReply, deferred, keyRing, provider, type Deferred } from '../support/upstream';

const BASE = 'https://api.reserve-ended.test/v1';
const BODY = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hi' }] };

const managers = closeAfterEach();

const REFUSED: StoreReservation = { ok: false, waitMs: 30_000, requests: 10, tokens: undefined, requestsFreeMs: 30_000 };
const granted = (): StoreReservation => ({ ok: true, at: Date.now(), requests: 1, tokens: undefined });

/** One key behind a shared store that answers each reservation when the test says. */
function setup(options: Partial<KeyManagerOptions> = {}) {
  const seen = provider(BASE, () => chatReply('gpt-4.1'));
  const asked: Deferred<StoreReservation>[] = [];
  const adjusted: { requests: number; tokens: number }[] = [];
  const store = reservingStore(() => {
    const answer = deferred<StoreReservation>();
    asked.push(answer);
    return answer.promise;
  }, adjusted);
  const manager = new KeyManager({ providers: { s: { baseURL: BASE, keys: keyRing('a').keys, requests: { limit: 10, periodMs: 60_000 } } }, store, ...options });
  managers.push(manager);
  const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
  return { seen, asked, adjusted, manager, client, attempts: record(manager, 'attempt'), failures: record(manager, 'failure') };
}

type Ending = 'caller' | 'close' | 'deadline';
const endings: Ending[] = ['caller', 'close', 'deadline'];

/** Sends a request and ends it the `ending` way while its reservation is asked; the store then answers `answer`. */
async function endWhileReserving(s: ReturnType<typeof setup>, ending: Ending, answer: StoreReservation) {
  const caller = new AbortController();
  let outcome: unknown = 'pending';
  let closed = false;
  s.client.chat.completions.create(BODY, keyplex.options({ deadlineMs: 5_000 }, { signal: caller.signal })).then(
    () => (outcome = 'ok'),
    (error: unknown) => (outcome = error),
  );
  await until(() => s.asked.length === 1, 'reservation asked');
  if (ending === 'caller') caller.abort();
  else if (ending === 'close') void s.manager.close().then(() => (closed = true));
  else await vi.advanceTimersByTimeAsync(5_000);
  s.asked[0]!.resolve(answer);
  // The clock stands still: a request sleeping through the store's wait would not settle.
  await quiesce(() => s.asked.length + s.seen.length + (outcome === 'pending' ? 0 : 1) + (closed ? 1 : 0));
  return { outcome, closed: () => closed };
}

const expectedError: Record<Ending, [unknown, string]> = {
  caller: [OpenAI.APIUserAbortError, 'aborted'],
  close: [OpenAI.InternalServerError, 'manager_closed'],
  deadline: [OpenAI.InternalServerError, 'deadline_exceeded'],
};

test.each(endings)('refused after the request ended (%s): it ends at once, waits for no key, asks no more', async (ending) => {
  fakeClock();
  const s = setup();
  const { outcome, closed } = await endWhileReserving(s, ending, REFUSED);

  expect(outcome).toBeInstanceOf(expectedError[ending][0]);
  expect(s.failures.map((f) => f.error.code)).toEqual([expectedError[ending][1]]);
  expect(s.asked).toHaveLength(1);
  expect(s.seen).toHaveLength(0);
  expect(s.manager.stats().totals.inFlight).toBe(0);
  expect(vi.getTimerCount()).toBe(0);
  if (ending === 'close') expect(closed()).toBe(true);
});

test.each(endings)('granted after the request ended (%s): nothing sent or announced, the reservation given back', async (ending) => {
  fakeClock();
  const s = setup();
  const { outcome } = await endWhileReserving(s, ending, granted());

  expect(outcome).toBeInstanceOf(expectedError[ending][0]);
  expect(s.failures.map((f) => f.error.code)).toEqual([expectedError[ending][1]]);
  expect(s.attempts).toEqual([]);
  expect(s.seen).toHaveLength(0);
  expect(s.adjusted).toEqual([{ requests: -1, tokens: expect.any(Number) }]);
  expect(s.adjusted[0]!.tokens).toBeLessThan(0);
  const stats = s.manager.stats();
  expect(stats.providers.s!.keys[0]).toMatchObject({ requests: 0, inFlight: 0 });
  expect(stats.totals.inFlight).toBe(0);
});

test('a reservation granted to an attempt a beforeAttempt hook then fails is given back', async () => {
  const s = setup({ hooks: { beforeAttempt: () => Promise.reject(new Error('no tenant')) } });
  const pending = s.client.chat.completions.create(BODY).catch((e: unknown) => e);
  await until(() => s.asked.length === 1, 'reservation asked');
  s.asked[0]!.resolve(granted());

  expect(getKeyplexDetails(await pending)?.code).toBe('hook_failed');
  expect(s.seen).toHaveLength(0);
  expect(s.adjusted).toEqual([{ requests: -1, tokens: expect.any(Number) }]);
});
