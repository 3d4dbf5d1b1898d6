/**
 * A request refused by the shared store in several rounds (it waited for a
 * key between them, as every request does in a burst across replicas) still
 * takes another key that has room when the next refusal comes: the guard
 * against a store that refuses without end (it waits between tries after
 * MAX_FREE_REFUSALS refusals) counts refusals in a row, not over the whole
 * request. It used to count them over the whole request, so a request
 * refused a 9th time slept that key's wait (a whole period) with another
 * key free: test/store/redis-burst.test.ts finished a period late whenever
 * one request of the burst lost the race at Redis in enough rounds.
 *
 * Deterministic: a custom store answers from a script, on the fake clock.
 */
import { expect, test, vi } from 'vitest';
import { getKeyplexDetails, keyplex, type StateStore, type StoreReservation } from '../../src/index';
import { reservingStore } from '../support/custom-store';
import { managedClients } from '../support/manage';
import '../support/setup';
import { fakeClock, quiesce } from '../support/time';
import { chatReply, keyRing, provider } from '../support/upstream';

const manage = managedClients();
const BASE = 'https://api.refusal-rounds.test/v1';
const BODY = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hi' }] };
const ROUND_MS = 1_000;

/** A shared store that refuses every reservation while `refusing(keyId)` holds (the key's window full for `waitMs`), else grants. */
function scriptedStore(refusing: (keyId: string) => number | undefined, asked: string[]): StateStore {
  return reservingStore((ref): StoreReservation => {
    asked.push(`${ref.keyId}@${Date.now() - 1_700_000_000_000}`);
    const waitMs = refusing(ref.keyId);
    if (waitMs === undefined) return { ok: true, at: Date.now(), requests: undefined, tokens: undefined };
    return { ok: false, waitMs, requests: 0, tokens: undefined, requestsFreeMs: waitMs };
  });
}

test('a request refused in several rounds takes a free key at the next refusal instead of sleeping that key\'s wait', async () => {
  fakeClock();
  vi.setSystemTime(1_700_000_000_000);
  const start = Date.now();
  const ring = keyRing('a', 'b');
  const sent: number[] = [];
  provider(BASE, () => {
    sent.push(Date.now() - start);
    return chatReply('gpt-4.1');
  });
  // Four rounds of a second: both keys refused (8 refusals, each round ends in a wait for a key).
  // Then key a is refused for a long while (9th refusal) and key b has room.
  const refusing = (keyId: string): number | undefined => {
    const t = Date.now() - start;
    if (t < 4 * ROUND_MS) return ROUND_MS - (t % ROUND_MS);
    return keyId === 'a' ? 60_000 : undefined;
  };
  const asked: string[] = [];
  const { client } = manage({
    providers: { rounds: { baseURL: BASE, keys: ring.keys, requests: { limit: 10, periodMs: 60_000 } } },
    // Key a first in every round (the default selector takes turns): the 9th refusal is a's, with b free.
    keySelection: { select: (keys) => keys.find((k) => k.id === 'a') ?? keys[0] },
    store: scriptedStore(refusing, asked),
  });
  let outcome = 'pending';
  const pending = client.chat.completions.create(BODY, keyplex.options({ deadlineMs: 30_000 })).then(
    () => (outcome = 'ok'),
    (error: unknown) => (outcome = getKeyplexDetails(error)?.code ?? String(error)),
  );
  // Up to 10 s of the fake clock, a timer at a time (the request is served at 4 s).
  while (outcome === 'pending' && Date.now() - start <= 10_000) {
    await quiesce(() => asked.length + sent.length);
    if (outcome === 'pending') await vi.advanceTimersToNextTimerAsync();
  }
  // Refused 8 times in 4 rounds (a then b), then a refused once more: b, free, is taken at once.
  expect(asked).toEqual([
    'a@0', 'b@0',
    'a@1000', 'b@1000',
    'a@2000', 'b@2000',
    'a@3000', 'b@3000',
    'a@4000', 'b@4000',
  ]);
  expect(sent).toEqual([4 * ROUND_MS]);
  await pending;
  expect(outcome).toBe('ok');
});
