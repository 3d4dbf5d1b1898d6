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

/** A fetch that answers at once; `hold` names a model whose answer waits for `release()`. */
function instantFetch(hold?: string) {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const fetch = async (_url: string | URL | Request, init?: RequestInit) => {
    const body = init?.body;
    const text = typeof body === 'string' ? body : body instanceof Uint8Array || body instanceof ArrayBuffer ? new TextDecoder().decode(body) : '';
    if (hold !== undefined && text.includes(`"${hold}"`)) await held;
    return new Response(CHAT, { headers: { 'content-type': 'application/json' } });
  };
  return { fetch: fetch as typeof globalThis.fetch, release };
}

const managers: KeyManager[] = [];
afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.close()));
});

function setUp(options: Partial<KeyManagerOptions> = {}, hold?: string) {
  const { fetch, release } = instantFetch(hold);
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
  return { manager, chat, release };
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
    const { manager, chat, release } = setUp({}, 'held-model');
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
