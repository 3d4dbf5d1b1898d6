/**
 * The waits on a shared store that a request makes outside its attempts —
 * the first load of a manager's store, and a write other replicas must hear
 * of before the retry — end with the request: its caller's abort, close()
 * or its deadline. They used to be waited out (up to 1 s for the load,
 * 250 ms for the write) before the request noticed it had ended.
 *
 * Deterministic: a custom store whose answers never come, on the fake clock
 * (which the test does not move).
 */
import OpenAI from 'openai';
import { expect, test } from 'vitest';
import { getKeyplexDetails, KeyManager, keyplex, type StateStore, type StoreReservation, type StoreSession } from '../../src/index';
import { record } from '../support/events';
import { closeAfterEach } from '../support/scaffold';
import '../support/setup';
import { fakeClock, quiesce, until } from '../support/time';
import { chatReply, errorReply, keyRing, provider } from '../support/upstream';

const BASE = 'https://api.store-waits.test/v1';
const BODY = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hi' }] };

const managers = closeAfterEach();

const never = new Promise<never>(() => {});

/**
 * A shared store whose first load (`slow: 'load'`), key writes (`slow: 'setKey'`) or reservations
 * (`slow: 'reserve'`, answered only when `grant` is called) never answer; `adjusted` records its adjustments.
 */
function slowStore(slow: 'load' | 'setKey' | 'reserve', adjusted: number[] = []): StateStore & { grant: () => void } {
  let grant = () => {};
  const granted = new Promise<StoreReservation>((resolve) => (grant = () => resolve({ ok: true, at: Date.now(), requests: undefined, tokens: undefined })));
  const session: StoreSession = {
    shared: true,
    reserve: () => (slow === 'reserve' ? granted : { ok: true, at: Date.now(), requests: undefined, tokens: undefined }),
    adjust: (_key, _limits, requests) => void adjusted.push(requests),
    setKey: () => (slow === 'setKey' ? never : undefined),
    setCircuit: () => {},
    addSpend: () => {},
    load: () => (slow === 'load' ? never : { keys: [], circuits: [], spend: [] }),
    close: async () => {},
  };
  return { open: () => session, grant: () => grant() };
}

type Ending = 'caller' | 'close';

/** Ends the request the `ending` way; resolves once it settled without the clock moving (else fails). */
/** `manager` (closed after the test) with failures recorded, and one request sent through the SDK with `options`, its outcome kept. */
function sendOne(manager: KeyManager, options: (caller: AbortController) => OpenAI.RequestOptions = (caller) => ({ signal: caller.signal })) {
  managers.push(manager);
  const failures = record(manager, 'failure');
  const caller = new AbortController();
  let outcome: unknown;
  void manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' })).chat.completions.create(BODY, options(caller)).catch((e: unknown) => (outcome = e));
  return { failures, caller, outcome: () => outcome };
}

async function end(manager: KeyManager, caller: AbortController, ending: Ending, done: () => boolean): Promise<void> {
  let closed = false;
  if (ending === 'caller') caller.abort();
  else void manager.close().then(() => (closed = true));
  await quiesce(() => (done() ? 1 : 0) + (closed ? 1 : 0));
  expect(done()).toBe(true);
  if (ending === 'close') expect(closed).toBe(true);
}

test.each<Ending>(['caller', 'close'])("a request waiting for the store's first load ends at once when it is ended (%s)", async (ending) => {
  fakeClock();
  const seen = provider(BASE, () => chatReply('gpt-4.1'));
  const manager = new KeyManager({ providers: { s: { baseURL: BASE, keys: keyRing('a').keys } }, store: slowStore('load') });
  const { failures, caller, outcome } = sendOne(manager);
  await quiesce(() => failures.length);

  await end(manager, caller, ending, () => outcome() !== undefined);

  expect(failures.map((f) => f.error.code)).toEqual([ending === 'caller' ? 'aborted' : 'manager_closed']);
  expect(seen).toHaveLength(0);
});

test.each<Ending>(['caller', 'close'])('a request waiting for a revoked key to be published ends at once when it is ended (%s)', async (ending) => {
  fakeClock();
  const seen = provider(BASE, (_call, index) => (index === 0 ? errorReply(401, 'invalid_api_key') : chatReply('gpt-4.1')));
  const manager = new KeyManager({ providers: { s: { baseURL: BASE, keys: keyRing('a', 'b').keys } }, store: slowStore('setKey') });
  const retries = record(manager, 'retry');
  const { failures, caller, outcome } = sendOne(manager, (c) => keyplex.options({}, { signal: c.signal }));
  await until(() => retries.length === 1, 'the 401 is retried');

  await end(manager, caller, ending, () => outcome() !== undefined);

  expect(failures.map((f) => f.error.code)).toEqual([ending === 'caller' ? 'aborted' : 'manager_closed']);
  expect(getKeyplexDetails(outcome())?.code).toBe(ending === 'caller' ? undefined : 'manager_closed');
  expect(seen).toHaveLength(1);
});

test.each<Ending>(['caller', 'close'])("a request waiting for the store's answer to its reservation ends at once when it is ended (%s); a grant that comes later is given back", async (ending) => {
  fakeClock();
  const seen = provider(BASE, () => chatReply('gpt-4.1'));
  const adjusted: number[] = [];
  const store = slowStore('reserve', adjusted);
  // A known limit: the key's use is reserved in the shared store before each attempt.
  const manager = new KeyManager({ providers: { s: { baseURL: BASE, keys: keyRing('a').keys, rpm: 100 } }, store });
  const attempts = record(manager, 'attempt');
  const { failures, caller, outcome } = sendOne(manager);
  await quiesce(() => failures.length);

  await end(manager, caller, ending, () => outcome() !== undefined);
  store.grant();
  await quiesce(() => adjusted.length);

  expect(failures.map((f) => f.error.code)).toEqual([ending === 'caller' ? 'aborted' : 'manager_closed']);
  expect(attempts).toHaveLength(0);
  expect(seen).toHaveLength(0);
  expect(adjusted).toEqual([-1]);
});
