/**
 * Circuit breakers end to end (DESIGN.md §2 steps 3–6, §3 "circuit breaker"):
 * deployment circuits (provider × upstream model) and key circuits, driven
 * through the real `openai` SDK wrapped by `manager.wrap()`.
 */
import OpenAI from 'openai';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { useManagers } from '../../support/scaffold';
import { KeyManager, type KeyManagerOptions, type KeyplexEvents } from '../../../src/index';
import { chatReply, deferred, errorReply, keyRing, provider, type Deferred, type KeyRing, type UpstreamCall } from '../../support/upstream';
import '../../support/setup';
import { fakeClock, until, realSetImmediate } from '../../support/time';
import { record } from '../../support/events';

const A = 'https://api.a.test/v1';
const B = 'https://api.b.test/v1';
const MODEL = 'gpt-4.1';
const BODY = { model: MODEL, messages: [{ role: 'user' as const, content: 'hi' }] };
/** Small thresholds: three failures in a row open a circuit for 10 s. */
const DEPLOYMENT_CIRCUIT = { policy: { kind: 'consecutive' as const, threshold: 3 }, openMs: 10_000 };
const CIRCUIT_EVENTS = ['circuit:open', 'circuit:half-open', 'circuit:close'] as const;

const manage = useManagers();
const holds: Deferred<void>[] = [];

afterEach(() => {
  for (const hold of holds.splice(0)) hold.resolve();
});

/** Every circuit event, in order, as `[event name, payload]`. */
function recordCircuits(manager: KeyManager): [string, KeyplexEvents['circuit:open']][] {
  const seen: [string, KeyplexEvents['circuit:open']][] = [];
  for (const name of CIRCUIT_EVENTS) manager.on(name, (payload) => void seen.push([name, payload]));
  return seen;
}

function deploymentCircuit(manager: KeyManager, providerId: string): string | undefined {
  return manager.stats().deployments.find((d) => d.provider === providerId && d.upstreamModel === MODEL)?.circuit;
}

function keyCircuit(manager: KeyManager, providerId: string, keyId: string): string | undefined {
  return manager.stats().providers[providerId]?.keys.find((k) => k.id === keyId)?.circuit;
}

/**
 * Provider a (keys a1, a2, a3) and provider b (key b1), both listing the
 * model, a first. `a.mode` says how a answers: `outage` (503), `healthy`
 * (200), or `held` (200 once the test releases it).
 */
function outageSetup(options: { circuitBreaker?: KeyManagerOptions['circuitBreaker'] } = {}) {
  const ring = keyRing('a1', 'a2', 'a3', 'b1');
  const a = { mode: 'outage' as 'outage' | 'healthy' | 'held', gate: deferred() };
  holds.push(a.gate);
  const seenA = provider(A, async () => {
    if (a.mode === 'outage') return errorReply(503, 'service_unavailable', {}, 'The service is temporarily unavailable.');
    if (a.mode === 'held') await a.gate.promise;
    return chatReply(MODEL);
  });
  const seenB = provider(B, () => chatReply(MODEL));
  const { manager, client } = manage({
    providers: {
      a: { baseURL: A, keys: ring.keys.slice(0, 3), models: [MODEL] },
      b: { baseURL: B, keys: ring.keys.slice(3), models: [MODEL] },
    },
    circuitBreaker: options.circuitBreaker ?? { deployment: DEPLOYMENT_CIRCUIT },
  });
  const circuits = recordCircuits(manager);
  /** Sends one request; returns how many calls it made to a and to b. */
  async function send(): Promise<{ a: number; b: number; reply: OpenAI.ChatCompletion }> {
    const before = { a: seenA.length, b: seenB.length };
    const reply = await client.chat.completions.create(BODY);
    return { a: seenA.length - before.a, b: seenB.length - before.b, reply };
  }
  /** Sends requests until a's deployment circuit opens (at most 10). */
  async function trip(): Promise<void> {
    for (let i = 0; i < 10 && deploymentCircuit(manager, 'a') !== 'open'; i++) await send();
    expect(deploymentCircuit(manager, 'a')).toBe('open');
  }
  return { ring, a, seenA, seenB, manager, client, circuits, send, trip };
}

function ids(recorded: readonly UpstreamCall[], ring: KeyRing): string[] {
  return ring.ids(recorded);
}

describe('deployment circuit: a provider outage', () => {
  test('opens the provider’s deployment circuit (circuit:open, scope deployment, reason failures, openMs)', async () => {
    fakeClock();
    const { manager, circuits, trip } = outageSetup();

    await trip();

    expect(circuits).toEqual([
      [
        'circuit:open',
        { scope: 'deployment', provider: 'a', keyId: undefined, upstreamModel: MODEL, from: 'closed', to: 'open', reason: 'failures', openMs: 10_000 },
      ],
    ]);
    expect(deploymentCircuit(manager, 'b')).toBe('closed');
  });

  test('the request that meets the outage still succeeds, via the other provider', async () => {
    fakeClock();
    const { send } = outageSetup();

    // One request moves at most twice against a failing provider before it tries the next one.
    const first = await send();

    expect(first.reply.choices[0]?.message.content).toBe('hello');
    expect(first).toMatchObject({ a: 2, b: 1 });
  });

  test('the request whose failure trips the circuit moves to the other provider in that same request', async () => {
    fakeClock();
    const { manager, send } = outageSetup();
    await send(); // failures 1 and 2 on a, served by b

    const second = await send(); // failure 3 opens a's circuit

    expect(deploymentCircuit(manager, 'a')).toBe('open');
    expect(second).toMatchObject({ a: 1, b: 1 });
    expect(second.reply.choices[0]?.message.content).toBe('hello');
  });

  test('while it is open, requests go straight to the other provider with no attempt on the failing one', async () => {
    fakeClock();
    const { seenA, seenB, trip, send } = outageSetup();
    await trip();
    const [callsA, callsB] = [seenA.length, seenB.length];

    for (let i = 0; i < 5; i++) expect(await send()).toMatchObject({ a: 0, b: 1 });

    expect(seenA).toHaveLength(callsA);
    expect(seenB).toHaveLength(callsB + 5);
  });

  test('after openMs it half-opens (circuit:half-open, reason open_elapsed), not before', async () => {
    fakeClock();
    const { circuits, trip } = outageSetup();
    await trip();
    circuits.length = 0;

    await vi.advanceTimersByTimeAsync(9_999);
    expect(circuits).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);

    expect(circuits).toEqual([
      [
        'circuit:half-open',
        { scope: 'deployment', provider: 'a', keyId: undefined, upstreamModel: MODEL, from: 'open', to: 'half-open', reason: 'open_elapsed', openMs: undefined },
      ],
    ]);
  });

  test('half-open, exactly halfOpenProbes requests probe the provider; the others go elsewhere', async () => {
    fakeClock();
    const { a, seenA, seenB, client, trip } = outageSetup({ circuitBreaker: { deployment: { ...DEPLOYMENT_CIRCUIT, halfOpenProbes: 2 } } });
    await trip();
    await vi.advanceTimersByTimeAsync(10_000);
    a.mode = 'held';
    const [callsA, callsB] = [seenA.length, seenB.length];

    const requests = Array.from({ length: 5 }, () => client.chat.completions.create(BODY));
    await until(() => seenA.length - callsA === 2 && seenB.length - callsB === 3, '2 probes held on a, 3 requests served by b');
    // Nothing else reaches a while the two probes are out.
    for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => realSetImmediate(resolve));

    expect(seenA.length - callsA).toBe(2);
    expect(seenB.length - callsB).toBe(3);
    a.gate.resolve();
    await Promise.all(requests);
  });

  test('probes that succeed close the circuit (circuit:close, reason probe_succeeded) and the provider takes traffic again', async () => {
    fakeClock();
    const { a, manager, circuits, trip, send } = outageSetup();
    await trip();
    await vi.advanceTimersByTimeAsync(10_000);
    a.mode = 'healthy';
    circuits.length = 0;

    const probe = await send();

    expect(probe).toMatchObject({ a: 1, b: 0 });
    expect(circuits).toEqual([
      [
        'circuit:close',
        { scope: 'deployment', provider: 'a', keyId: undefined, upstreamModel: MODEL, from: 'half-open', to: 'closed', reason: 'probe_succeeded', openMs: undefined },
      ],
    ]);
    expect(deploymentCircuit(manager, 'a')).toBe('closed');
    for (let i = 0; i < 5; i++) expect(await send()).toMatchObject({ a: 1, b: 0 });
  });

  test('a failed probe re-opens the circuit for twice the open time (reason probe_failed), and the request is served elsewhere', async () => {
    fakeClock();
    const { circuits, trip, send } = outageSetup();
    await trip();
    await vi.advanceTimersByTimeAsync(10_000);
    circuits.length = 0;

    const probe = await send();

    expect(probe).toMatchObject({ a: 1, b: 1 });
    expect(probe.reply.choices[0]?.message.content).toBe('hello');
    expect(circuits).toEqual([
      [
        'circuit:open',
        { scope: 'deployment', provider: 'a', keyId: undefined, upstreamModel: MODEL, from: 'half-open', to: 'open', reason: 'probe_failed', openMs: 20_000 },
      ],
    ]);
  });

  test('the doubled open time is kept: no half-open after openMs, one after twice openMs; the next failed probe doubles again', async () => {
    fakeClock();
    const { circuits, trip, send } = outageSetup();
    await trip();
    await vi.advanceTimersByTimeAsync(10_000);
    await send(); // failed probe: open for 20 s
    circuits.length = 0;

    await vi.advanceTimersByTimeAsync(19_999);
    expect(circuits).toEqual([]);
    expect(await send()).toMatchObject({ a: 0, b: 1 });
    await vi.advanceTimersByTimeAsync(1);
    expect(circuits.map(([name]) => name)).toEqual(['circuit:half-open']);
    await send(); // failed probe again

    expect(circuits.map(([name, e]) => [name, e.reason, e.openMs])).toEqual([
      ['circuit:half-open', 'open_elapsed', undefined],
      ['circuit:open', 'probe_failed', 40_000],
    ]);
  });

  test('stats().deployments follows the circuit: closed, open, half-open, closed', async () => {
    fakeClock();
    const { a, manager, send, trip } = outageSetup();
    expect(manager.stats().deployments).toEqual([]);
    await send();
    expect(manager.stats().deployments).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ provider: 'a', upstreamModel: MODEL, circuit: 'closed' }),
        expect.objectContaining({ provider: 'b', upstreamModel: MODEL, circuit: 'closed' }),
      ]),
    );

    await trip();
    expect(deploymentCircuit(manager, 'a')).toBe('open');
    await vi.advanceTimersByTimeAsync(10_000);
    expect(deploymentCircuit(manager, 'a')).toBe('half-open');
    a.mode = 'healthy';
    await send();

    expect(deploymentCircuit(manager, 'a')).toBe('closed');
    expect(deploymentCircuit(manager, 'b')).toBe('closed');
  });
});

describe('what never opens a circuit', () => {
  test('twenty caller errors (400) in a row open no circuit', async () => {
    fakeClock();
    const ring = keyRing('a1', 'a2');
    const seen = provider(A, () => errorReply(400, 'invalid_value', {}, "Invalid 'temperature'"));
    const { manager, client } = manage({
      providers: { a: { baseURL: A, keys: ring.keys, models: [MODEL] } },
      circuitBreaker: { deployment: DEPLOYMENT_CIRCUIT, key: DEPLOYMENT_CIRCUIT },
    });
    const circuits = recordCircuits(manager);

    for (let i = 0; i < 20; i++) {
      await expect(client.chat.completions.create(BODY)).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    }

    expect(seen).toHaveLength(20);
    expect(circuits).toEqual([]);
    expect(deploymentCircuit(manager, 'a')).toBe('closed');
    expect(manager.stats().providers.a?.keys.map((k) => k.circuit)).toEqual(['closed', 'closed']);
  });

  test('429s cool keys down but open no circuit', async () => {
    fakeClock();
    const ring = keyRing('a1', 'a2', 'b1');
    const seenA = provider(A, () => errorReply(429, 'rate_limit_exceeded', { 'retry-after-ms': '1000' }, 'Rate limit reached'));
    provider(B, () => chatReply(MODEL));
    const { manager, client } = manage({
      providers: {
        a: { baseURL: A, keys: ring.keys.slice(0, 2), models: [MODEL] },
        b: { baseURL: B, keys: ring.keys.slice(2), models: [MODEL] },
      },
      circuitBreaker: { deployment: DEPLOYMENT_CIRCUIT, key: DEPLOYMENT_CIRCUIT },
      // No AIMD: each key comes back after its 1 s cooldown and meets another 429.
      rateLimiting: { adaptive: false },
    });
    const circuits = recordCircuits(manager);
    const cooldowns = record(manager, 'key:cooldown');

    for (let round = 0; round < 10; round++) {
      await client.chat.completions.create(BODY);
      await vi.advanceTimersByTimeAsync(1_000);
    }

    expect(seenA).toHaveLength(20);
    expect(cooldowns).toHaveLength(20);
    expect(circuits).toEqual([]);
    expect(deploymentCircuit(manager, 'a')).toBe('closed');
    expect(manager.stats().providers.a?.keys.map((k) => k.circuit)).toEqual(['closed', 'closed']);
  });
});

describe('key circuit', () => {
  /** One provider, keys a, b, c; key a answers 500, the others 200. */
  function badKeySetup(circuitBreaker: KeyManagerOptions['circuitBreaker']) {
    const ring = keyRing('a', 'b', 'c');
    const seen = provider(A, (call) => (ring.idOf(call.key) === 'a' ? errorReply(500, 'server_error') : chatReply(MODEL)));
    const { manager, client } = manage({ providers: { one: { baseURL: A, keys: ring.keys, models: [MODEL] } }, circuitBreaker });
    return { ring, seen, manager, client, circuits: recordCircuits(manager) };
  }
  const KEY_CIRCUIT = { policy: { kind: 'consecutive' as const, threshold: 3 }, openMs: 10_000 };

  test('a single bad key has its circuit opened (scope key) while its siblings keep serving every request', async () => {
    fakeClock();
    const { ring, seen, manager, client, circuits } = badKeySetup({ key: KEY_CIRCUIT });

    let sent = 0;
    while (keyCircuit(manager, 'one', 'a') !== 'open' && sent < 30) {
      await client.chat.completions.create(BODY);
      sent++;
    }

    expect(circuits).toEqual([
      ['circuit:open', { scope: 'key', provider: 'one', keyId: 'a', upstreamModel: undefined, from: 'closed', to: 'open', reason: 'failures', openMs: 10_000 }],
    ]);
    expect(ids(seen, ring).filter((id) => id === 'a')).toHaveLength(3);
    expect(manager.stats().providers.one?.keys.map((k) => [k.id, k.circuit])).toEqual([
      ['a', 'open'],
      ['b', 'closed'],
      ['c', 'closed'],
    ]);
    expect(deploymentCircuit(manager, 'one')).toBe('closed');
  });

  test('while a key’s circuit is open it gets no traffic and its siblings serve everything', async () => {
    fakeClock();
    const { ring, seen, manager, client } = badKeySetup({ key: KEY_CIRCUIT });
    for (let i = 0; i < 30 && keyCircuit(manager, 'one', 'a') !== 'open'; i++) await client.chat.completions.create(BODY);
    const mark = seen.length;

    const replies = [];
    for (let i = 0; i < 12; i++) replies.push(await client.chat.completions.create(BODY));

    expect(replies.every((r) => r.choices[0]?.message.content === 'hello')).toBe(true);
    expect(seen.length - mark).toBe(12);
    expect(new Set(ids(seen.slice(mark), ring))).toEqual(new Set(['b', 'c']));
  });

  test('circuitBreaker: false turns circuits off: no events, the failing provider and key keep being tried, stats show none', async () => {
    fakeClock();
    const ring = keyRing('a1', 'b1');
    const seenA = provider(A, () => errorReply(503, 'service_unavailable'));
    provider(B, () => chatReply(MODEL));
    const { manager, client } = manage({
      providers: {
        a: { baseURL: A, keys: ring.keys.slice(0, 1), models: [MODEL] },
        b: { baseURL: B, keys: ring.keys.slice(1), models: [MODEL] },
      },
      circuitBreaker: false,
    });
    const circuits = recordCircuits(manager);

    for (let i = 0; i < 12; i++) await client.chat.completions.create(BODY);

    expect(seenA).toHaveLength(12);
    expect(circuits).toEqual([]);
    expect(manager.stats().deployments.every((d) => d.circuit === undefined)).toBe(true);
    expect(manager.stats().providers.a?.keys[0]?.circuit).toBeUndefined();
  });
});
