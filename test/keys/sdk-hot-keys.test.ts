/**
 * Changing keys while requests run: addKey / removeKey / disableKey /
 * enableKey with ~50 requests in flight, through the real `openai` SDK.
 */
import { afterEach, describe, expect, test, vi } from 'vitest';
import { useManagers } from '../support/scaffold';
import { ConfigError, KeyManager} from '../../src/index';
import { fakeKey } from '../support/fake-keys';
import { chatReply, deferred, errorReply, keyRing, provider, upstreamFetch, type KeyRing, type UpstreamCall } from '../support/upstream';
import '../support/setup';
import { until, realSetImmediate } from '../support/time';
import { record } from '../support/events';

const ONE = 'https://api.one.test/v1';
const TWO = 'https://api.two.test/v1';
const BODY = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hi' }] };
const CONCURRENT = 50;

/**
 * Circuits off: 50 held calls failing at once would open them, which is not what these tests are about.
 * Cold start open: the held calls stand for slow replies, and on a key of unknown limits keyplex would
 * send one first and hold the others for its headers (docs/rate-limits.md); these tests want 50 in flight.
 */
const manage = useManagers({ circuitBreaker: false, rateLimiting: { coldStart: 'open' } });
const gates: (() => void)[] = [];
afterEach(() => {
  for (const open of gates.splice(0)) open();
});

/**
 * Keys a, b, c on one provider, answered through keyplex's `fetch` option
 * (upstreamFetch), not msw: its interception of ~100 calls was most of each
 * test's time. The first {@link CONCURRENT} upstream calls are
 * held until `release()`, then answer `held` (500 by default, so every request
 * makes a new attempt after the release); later calls answer 200 at once.
 */
async function underLoad(options: { held?: 'fail' | 'succeed'; before?: (manager: KeyManager) => void } = {}) {
  const ring = keyRing('a', 'b', 'c', 'd');
  const gate = deferred();
  gates.push(() => gate.resolve());
  const { fetch, seen: byProvider } = upstreamFetch({
    [ONE]: async (_call, index) => {
      if (index >= CONCURRENT) return chatReply('gpt-4.1');
      await gate.promise;
      return options.held === 'succeed' ? chatReply('gpt-4.1') : errorReply(500, 'server_error');
    },
  });
  const seen = byProvider[ONE]!;
  const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys: ring.keys.slice(0, 3) } }, retry: { baseDelayMs: 0 }, fetch });
  options.before?.(manager);
  const requests = Array.from({ length: CONCURRENT }, () => client.chat.completions.create(BODY));
  await until(() => seen.length === CONCURRENT, `${CONCURRENT} calls in flight`);
  return {
    ring,
    seen,
    manager,
    client,
    /** Lets the held calls answer; resolves when every request has settled. */
    async release() {
      gate.resolve();
      return Promise.allSettled(requests);
    },
  };
}

/** Key ids of the calls recorded after `mark`. */
function after(seen: readonly UpstreamCall[], mark: number, ring: KeyRing): string[] {
  return ring.ids(seen.slice(mark));
}

describe('removeKey under load', () => {
  test('a removed key gets no new attempt after the call', async () => {
    const { ring, seen, manager, release } = await underLoad();

    manager.removeKey('one', 'b');
    const mark = seen.length;
    const results = await release();

    expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
    expect(after(seen, mark, ring).length).toBeGreaterThanOrEqual(CONCURRENT);
    expect(after(seen, mark, ring)).not.toContain('b');
  });

  test('attempts already sent with the removed key still finish', async () => {
    const { ring, seen, manager, release } = await underLoad({ held: 'succeed' });
    const onB = ring.ids(seen).filter((id) => id === 'b').length;

    manager.removeKey('one', 'b');
    const results = await release();

    expect(onB).toBeGreaterThan(0);
    expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
    expect(seen).toHaveLength(CONCURRENT);
  });

  test('emits key:removed and drops the key from stats', async () => {
    const { manager, release } = await underLoad();
    const removed = record(manager, 'key:removed');

    manager.removeKey('one', 'b');
    await release();

    expect(removed).toEqual([{ provider: 'one', keyId: 'b' }]);
    expect(manager.stats().providers.one?.keys.map((k) => k.id)).toEqual(['a', 'c']);
  });
});

describe('disableKey under load', () => {
  test('a disabled key gets no new attempt after the call', async () => {
    const { ring, seen, manager, release } = await underLoad();

    manager.disableKey('one', 'b');
    const mark = seen.length;
    const results = await release();

    expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
    expect(after(seen, mark, ring).length).toBeGreaterThanOrEqual(CONCURRENT);
    expect(after(seen, mark, ring)).not.toContain('b');
  });

  test('emits key:disabled with reason manual, once', async () => {
    const { manager, release } = await underLoad();
    const disabled = record(manager, 'key:disabled');

    manager.disableKey('one', 'b');
    manager.disableKey('one', 'b');
    await release();

    expect(disabled).toEqual([{ provider: 'one', keyId: 'b', reason: 'manual' }]);
    expect(manager.stats().providers.one?.keys.find((k) => k.id === 'b')).toMatchObject({ status: 'disabled', disabledReason: 'manual' });
  });
});

describe('enableKey under load', () => {
  test('an enabled key starts receiving traffic after the call', async () => {
    const { ring, seen, manager, release } = await underLoad({ before: (m) => m.disableKey('one', 'b') });
    expect(ring.ids(seen)).not.toContain('b');

    manager.enableKey('one', 'b');
    const mark = seen.length;
    await release();

    expect(after(seen, mark, ring)).toContain('b');
  });

  test('emits key:recovered with reason manual', async () => {
    const { manager, release } = await underLoad({ before: (m) => m.disableKey('one', 'b') });
    const recovered = record(manager, 'key:recovered');

    manager.enableKey('one', 'b');
    await release();

    expect(recovered).toEqual([{ provider: 'one', keyId: 'b', reason: 'manual' }]);
    expect(manager.stats().providers.one?.keys.find((k) => k.id === 'b')?.status).toBe('active');
  });
});

describe('enableKey of a key behind an open circuit', () => {
  test('the key is back in use at once: its circuit closes with it', async () => {
    const ring = keyRing('a', 'b');
    let failing = true;
    const seen = provider(ONE, (call) => (failing && ring.idOf(call.key) === 'a' ? errorReply(500, 'server_error') : chatReply('gpt-4.1')));
    // Key circuits open at the first failure, for 30 s; deployment circuits off.
    const { manager, client } = manage({
      providers: { one: { baseURL: ONE, keys: ring.keys } },
      keySelection: 'round-robin',
      retry: { baseDelayMs: 0 },
      circuitBreaker: { key: { policy: { kind: 'consecutive', threshold: 1 } }, deployment: false },
    });
    const closed = record(manager, 'circuit:close');
    for (let i = 0; i < 2; i++) await client.chat.completions.create(BODY);
    expect(manager.stats().providers.one?.keys.find((k) => k.id === 'a')?.circuit).toBe('open');
    failing = false;

    manager.enableKey('one', 'a');
    const mark = seen.length;
    for (let i = 0; i < 4; i++) await client.chat.completions.create(BODY);

    expect(ring.ids(seen.slice(mark))).toContain('a');
    expect(manager.stats().providers.one?.keys.find((k) => k.id === 'a')?.circuit).toBe('closed');
    expect(closed).toMatchObject([{ scope: 'key', provider: 'one', keyId: 'a', reason: 'manual' }]);
  });
});

describe('addKey under load', () => {
  test('an added key starts receiving traffic', async () => {
    const { ring, seen, manager, release } = await underLoad();

    const id = manager.addKey('one', ring.keys[3]!);
    const mark = seen.length;
    const results = await release();

    expect(id).toBe('d');
    expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
    expect(after(seen, mark, ring)).toContain('d');
  });

  test('emits key:added', async () => {
    const { ring, manager, release } = await underLoad();
    const added = record(manager, 'key:added');

    manager.addKey('one', ring.keys[3]!);
    await release();

    expect(added).toEqual([{ provider: 'one', keyId: 'd' }]);
  });

  test('a key added as a bare string gets its fingerprint as id', async () => {
    const { manager, release } = await underLoad();

    const id = manager.addKey('one', fakeKey('bare'));
    await release();

    expect(id).toMatch(/^fp_[0-9a-f]{10}$/);
    expect(manager.stats().providers.one?.keys.map((k) => k.id)).toContain(id);
  });
});

describe('requests waiting for a rate-limited key', () => {
  /**
   * Key a answers the first call with a 429 asking for a minute's rest, so the
   * request waits for it (the deadline is 10 minutes). Key b is either not
   * configured yet or configured but disabled. The fake clock is never
   * advanced: a request that waits for the reset does not settle.
   */
  async function waiting(b: 'absent' | 'disabled') {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    const ring = keyRing('a', 'b');
    const seen = provider(ONE, (_call, index) => (index === 0 ? errorReply(429, 'rate_limit_exceeded', { 'retry-after-ms': '60000' }) : chatReply('gpt-4.1')));
    const keys = b === 'disabled' ? ring.keys.slice(0, 2) : ring.keys.slice(0, 1);
    const { manager, client } = manage({ providers: { one: { baseURL: ONE, keys } }, retry: { baseDelayMs: 0 } });
    if (b === 'disabled') manager.disableKey('one', 'b');
    const state = { done: false, error: undefined as unknown };
    client.chat.completions.create(BODY).then(
      () => (state.done = true),
      (error: unknown) => Object.assign(state, { done: true, error }),
    );
    await until(() => seen.length === 1 && manager.stats().providers.one?.keys[0]?.status === 'cooling', 'key a cooling');
    for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => realSetImmediate(resolve));
    expect(state.done).toBe(false);
    return { ring, seen, manager, state };
  }
  afterEach(() => {
    vi.useRealTimers();
  });

  test('are served at once by a key added while they wait', async () => {
    const { ring, seen, manager, state } = await waiting('absent');

    manager.addKey('one', ring.keys[1]!);
    await until(() => state.done, 'request served without waiting for the reset');

    expect(state.error).toBeUndefined();
    expect(ring.ids(seen)).toEqual(['a', 'b']);
  });

  test('are served at once by a key enabled while they wait', async () => {
    const { ring, seen, manager, state } = await waiting('disabled');

    manager.enableKey('one', 'b');
    await until(() => state.done, 'request served without waiting for the reset');

    expect(state.error).toBeUndefined();
    expect(ring.ids(seen)).toEqual(['a', 'b']);
  });
});

describe('runtime key calls refuse bad input with ConfigError', () => {
  function twoProviders() {
    const ring = keyRing('a', 'b', 'x');
    return {
      ring,
      ...manage({
        providers: {
          one: { baseURL: ONE, keys: ring.keys.slice(0, 2) },
          two: { baseURL: TWO, keys: ring.keys.slice(2) },
        },
      }),
    };
  }

  test.each([
    ['addKey', (m: KeyManager) => m.addKey('nope', fakeKey())],
    ['removeKey', (m: KeyManager) => m.removeKey('nope', 'a')],
    ['disableKey', (m: KeyManager) => m.disableKey('nope', 'a')],
    ['enableKey', (m: KeyManager) => m.enableKey('nope', 'a')],
  ])('%s with an unknown provider', (_name, call) => {
    const { manager } = twoProviders();

    expect(() => call(manager)).toThrow(ConfigError);
  });

  test.each([
    ['removeKey', (m: KeyManager) => m.removeKey('one', 'zzz')],
    ['disableKey', (m: KeyManager) => m.disableKey('one', 'zzz')],
    ['enableKey', (m: KeyManager) => m.enableKey('one', 'zzz')],
  ])('%s with an unknown key id', (_name, call) => {
    const { manager } = twoProviders();

    expect(() => call(manager)).toThrow(ConfigError);
  });

  test('addKey with an id the provider already has', () => {
    const { manager } = twoProviders();

    expect(() => manager.addKey('one', { key: fakeKey(), id: 'a' })).toThrow(ConfigError);
    expect(manager.stats().providers.one?.keys).toHaveLength(2);
  });

  test('addKey with a key already configured, without echoing the key', () => {
    const { ring, manager } = twoProviders();
    const existing = ring.keys[0]!.key;

    const error = (() => {
      try {
        manager.addKey('one', { key: existing, id: 'again' });
      } catch (e) {
        return e;
      }
      return undefined;
    })();

    expect(error).toBeInstanceOf(ConfigError);
    expect(String((error as Error).message)).not.toContain(existing);
    expect(manager.stats().providers.one?.keys).toHaveLength(2);
  });

  test("addKey with another provider's key", () => {
    const { ring, manager } = twoProviders();

    expect(() => manager.addKey('one', ring.keys[2]!.key)).toThrow(ConfigError);
  });

  test('addKey with a malformed key', () => {
    const { manager } = twoProviders();

    expect(() => manager.addKey('one', '')).toThrow(ConfigError);
    expect(() => manager.addKey('one', 'has space')).toThrow(ConfigError);
  });

  test('enableKey on a removed key', () => {
    const { manager } = twoProviders();
    manager.removeKey('one', 'b');

    expect(() => manager.enableKey('one', 'b')).toThrow(ConfigError);
  });
});
