/**
 * Model names not known from configuration (user-chosen names passed to a
 * provider that serves any model) keep their per-model state in a bounded
 * LRU (`maxDynamicModels`): memory does not grow with the number of
 * distinct names, and `stats({ reset: true })` releases them (issue 12 item 5).
 */
import OpenAI from 'openai';
import { afterEach, describe, expect, test } from 'vitest';
import { KeyManager, type KeyManagerOptions } from '../../src/index';
import { stateSizes } from '../../src/key-manager';
import { fakeKey } from '../support/fake-keys';

const CHAT = JSON.stringify({
  id: 'chatcmpl-x',
  object: 'chat.completion',
  created: 1,
  model: 'm',
  choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
});

/** A fetch that answers at once, but for the names `holds` picks: those wait until `release()`; `arrived(n)` resolves once `n` of them reached it. */
function gatedFetch(holds: (model: string) => boolean = () => false) {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const waiters: { count: number; resolve: () => void }[] = [];
  let arrivals = 0;
  const fetch = async (_url: string | URL | Request, init?: RequestInit) => {
    const body = init?.body;
    const text = typeof body === 'string' ? body : body instanceof Uint8Array || body instanceof ArrayBuffer ? new TextDecoder().decode(body) : '{}';
    if (!holds((JSON.parse(text) as { model: string }).model)) return new Response(CHAT, { headers: { 'content-type': 'application/json' } });
    arrivals++;
    for (const w of waiters.filter((w) => arrivals >= w.count)) w.resolve();
    await gate;
    return new Response(CHAT, { headers: { 'content-type': 'application/json' } });
  };
  const arrived = (count: number) => new Promise<void>((resolve) => (arrivals >= count ? resolve() : waiters.push({ count, resolve })));
  return { fetch: fetch as typeof globalThis.fetch, release, arrived };
}

const managers: KeyManager[] = [];
afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.close()));
});

function setUp(options: Partial<KeyManagerOptions> = {}, holds?: (model: string) => boolean) {
  const { fetch, release, arrived } = gatedFetch(holds);
  const manager = new KeyManager({
    providers: {
      listed: { baseURL: 'https://listed.test/v1', keys: [fakeKey('listed')], models: ['gpt-4.1'] },
      open: { baseURL: 'https://open.test/v1', keys: [fakeKey('open')] },
    },
    fetch,
    maxDynamicModels: 50,
    ...options,
  });
  managers.push(manager);
  const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
  const chat = (model: string) => client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] });
  return { manager, chat, release, arrived };
}

/** The names with their own entry in `stats().models`. */
function namesWithState(manager: KeyManager): string[] {
  return Object.keys(manager.stats().models).filter((name) => name !== '(other)');
}

async function distinctNames(chat: (model: string) => Promise<unknown>, count: number, prefix = 'user-model-'): Promise<void> {
  for (let i = 0; i < count; i += 50) await Promise.all(Array.from({ length: Math.min(50, count - i) }, (_, j) => chat(`${prefix}${i + j}`)));
}

describe('per-model state of names not known from configuration is bounded', () => {
  test('2,000 distinct names keep at most maxDynamicModels deployments, circuits and model stats', async () => {
    const { manager, chat } = setUp();

    await distinctNames(chat, 2_000);

    const sizes = stateSizes(manager);
    expect(sizes.dynamicModels).toBe(50);
    expect(sizes.modelStats).toBeLessThanOrEqual(51); // 50 names and '(other)'
    expect(sizes.deployments).toBeLessThanOrEqual(50);
    expect(sizes.deploymentCircuits).toBeLessThanOrEqual(50);
  });

  test("stats() counts the requests of names that gave their place up in models['(other)']", async () => {
    const { manager, chat } = setUp();

    await distinctNames(chat, 2_000);

    const models = manager.stats().models;
    expect(models['(other)']!.requests).toBe(1_950);
    expect(Object.values(models).reduce((sum, m) => sum + m.requests, 0)).toBe(2_000);
    expect(manager.stats().totals.requests).toBe(2_000);
  });

  test('stats({ reset: true }) releases the per-model state of such names', async () => {
    const { manager, chat } = setUp();
    await distinctNames(chat, 200);

    manager.stats({ reset: true });

    expect(stateSizes(manager)).toEqual({ dynamicModels: 0, modelStats: 0, deployments: 0, deploymentCircuits: 0 });
  });

  test('stats({ reset: true }) zeroes, and keeps, the entries of names known from configuration', async () => {
    const { manager, chat } = setUp();
    await chat('gpt-4.1');

    manager.stats({ reset: true });

    expect(manager.stats().models['gpt-4.1']?.requests).toBe(0);
    const deployments = manager.stats().deployments;
    expect(deployments.length).toBeGreaterThan(0);
    expect(deployments.filter((d) => d.model !== 'gpt-4.1' || d.requests !== 0)).toEqual([]);
  });

  test('a name with a request in flight keeps its state while other names come and go', async () => {
    // coldStart 'open': the held request is not the key's first-reply probe, which the other names would wait behind (10 s).
    const { manager, chat, release } = setUp({ rateLimiting: { coldStart: 'open' } }, (model) => model === 'held-model');
    const held = chat('held-model');
    await new Promise((resolve) => setTimeout(resolve, 10));

    await distinctNames(chat, 500);
    const during = manager.stats().deployments.find((d) => d.model === 'held-model');
    release();
    await held;

    expect(during?.inFlight).toBe(1);
    expect(manager.stats().models['held-model']?.requests).toBe(1);
  });

  test('names known from configuration keep their stats whatever the churn of other names', async () => {
    const { manager, chat } = setUp();
    await chat('gpt-4.1');

    await distinctNames(chat, 500);

    expect(manager.stats().models['gpt-4.1']?.requests).toBe(1);
    expect(manager.stats().deployments.filter((d) => d.model === 'gpt-4.1').length).toBeGreaterThan(0);
  });

  test('a name that gave its place up and comes back starts afresh, its earlier requests still in (other)', async () => {
    const { manager, chat } = setUp();
    await chat('comeback');
    await distinctNames(chat, 100);

    await chat('comeback');

    expect(manager.stats().models.comeback?.requests).toBe(1);
    // 101 names for 50 places: 'comeback' and 50 others gave theirs up, then one more for 'comeback' again.
    expect(manager.stats().models['(other)']!.requests).toBe(52);
  });
});

describe('names over the bound because they were in flight give their places up when their requests end', () => {
  // coldStart 'open': every request is sent at once (no first probe holding the others back), so all are in flight together.
  const gated = (maxDynamicModels: number, holds: (model: string) => boolean = () => true) => setUp({ maxDynamicModels, rateLimiting: { coldStart: 'open' } }, holds);

  test('maxDynamicModels 1, three names in flight at once: one name keeps its state once they all end', async () => {
    const { manager, chat, release, arrived } = gated(1);
    const requests = ['name-a', 'name-b', 'name-c'].map((name) => chat(name));
    await arrived(3);
    const during = namesWithState(manager).length;

    release();
    await Promise.all(requests);

    expect(during).toBe(3); // none could go while its request was in flight
    expect(namesWithState(manager)).toHaveLength(1);
    expect(stateSizes(manager)).toEqual({ dynamicModels: 1, modelStats: 2, deployments: 1, deploymentCircuits: 1 });
    expect(manager.stats().deployments).toHaveLength(1);
    // Nothing lost: the requests of the names that went are counted in (other).
    expect(manager.stats().models['(other)']!.requests).toBe(2);
    expect(Object.values(manager.stats().models).reduce((sum, m) => sum + m.successes, 0)).toBe(3);
  });

  test('40 names in flight at once (more than are looked at for one that may go) with maxDynamicModels 4: four keep their state', async () => {
    const { manager, chat, release, arrived } = gated(4);
    const requests = Array.from({ length: 40 }, (_, i) => chat(`name-${i}`));
    await arrived(40);

    release();
    await Promise.all(requests);

    expect(namesWithState(manager)).toHaveLength(4);
    expect(stateSizes(manager).dynamicModels).toBe(4);
    expect(manager.stats().models['(other)']!.requests).toBe(36);
  });

  test('20 names held in flight do not keep the names that come and go after them from giving their places up', async () => {
    const { manager, chat, release, arrived } = gated(4, (model) => model.startsWith('long-'));
    const long = Array.from({ length: 20 }, (_, i) => chat(`long-${i}`));
    await arrived(20);

    for (let i = 0; i < 100; i++) await chat(`short-${i}`);
    const during = namesWithState(manager);
    release();
    await Promise.all(long);

    // The 20 in flight fill more than the bound: each short name gave its place up as its request ended.
    expect(during.sort()).toEqual(Array.from({ length: 20 }, (_, i) => `long-${i}`).sort());
    expect(namesWithState(manager)).toHaveLength(4);
    expect(stateSizes(manager).dynamicModels).toBe(4);
  });
});

describe('maxDynamicModels and redactReplies are validated', () => {
  test.each([0, 1.5, -1, 2_000_000, '100', Number.NaN])('maxDynamicModels: %s is refused, naming the field', (value) => {
    expect(() => new KeyManager({ providers: { a: { baseURL: 'https://a.test/v1', keys: [fakeKey()] } }, maxDynamicModels: value as number })).toThrow(
      /maxDynamicModels.*expected an integer \(model names\) >= 1 and <= 1000000/,
    );
  });

  test('redactReplies must be a boolean', () => {
    expect(() => new KeyManager({ providers: { a: { baseURL: 'https://a.test/v1', keys: [fakeKey()] } }, redactReplies: 'yes' as unknown as boolean })).toThrow(/redactReplies/);
  });
});

describe("models['(other)'] keeps the latencies of the names it took in", () => {
  test('its latency count is the number of requests it counts', async () => {
    const { manager, chat } = setUp();

    await distinctNames(chat, 120);

    const other = manager.stats().models['(other)']!;
    expect(other.requests).toBe(70);
    expect(other.latencyMs.count).toBe(70);
  });
});
