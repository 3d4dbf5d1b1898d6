/**
 * Key selection: each built-in selector by name, a custom selector object,
 * and what a selector is offered — all through the real `openai` SDK.
 */
import OpenAI from 'openai';
import { describe, expect, test, vi } from 'vitest';
import { useManagers } from '../support/scaffold';
import { getKeyplexDetails, RandomSelector, type KeySelector, type KeyView, type SelectContext } from '../../src/index';
import { chatReply, deferred, errorReply, keyRing, provider, type Deferred } from '../support/upstream';
import '../support/setup';

const BASE = 'https://api.one.test/v1';
const MESSAGES = [{ role: 'user' as const, content: 'hi' }];

const manage = useManagers({});

/** Sends `n` requests one after the other. */
async function sequential(client: OpenAI, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await client.chat.completions.create({ model: 'gpt-4.1', messages: MESSAGES });
}

function count(ids: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const id of ids) counts[id] = (counts[id] ?? 0) + 1;
  return counts;
}

describe("keySelection: 'round-robin'", () => {
  test('takes the three keys in turn, in configuration order', async () => {
    const ring = keyRing('a', 'b', 'c');
    const seen = provider(BASE, () => chatReply('gpt-4.1'));
    const { client } = manage({ providers: { one: { baseURL: BASE, keys: ring.keys } }, keySelection: 'round-robin' });

    await sequential(client, 6);

    expect(ring.ids(seen)).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
  });
});

describe("keySelection: 'least-used'", () => {
  test('sends the next request to the key with the fewest requests in flight', async () => {
    const ring = keyRing('a', 'b', 'c');
    const holds: Deferred<void>[] = [];
    const seen = provider(BASE, async (_call, index) => {
      const hold = deferred();
      holds[index] = hold;
      await hold.promise;
      return chatReply('gpt-4.1');
    });
    const { client } = manage({ providers: { one: { baseURL: BASE, keys: ring.keys } }, keySelection: 'least-used' });
    const send = () => client.chat.completions.create({ model: 'gpt-4.1', messages: MESSAGES });

    // One request held open on each key.
    const first = [send()];
    await vi.waitFor(() => expect(seen).toHaveLength(1));
    first.push(send());
    await vi.waitFor(() => expect(seen).toHaveLength(2));
    first.push(send());
    await vi.waitFor(() => expect(seen).toHaveLength(3));
    expect(ring.ids(seen)).toEqual(['a', 'b', 'c']);

    // Key c finishes; a and b still have one request each in flight.
    holds[2]!.resolve();
    await first[2];
    const next = send();
    await vi.waitFor(() => expect(seen).toHaveLength(4));

    expect(ring.idOf(seen[3]!.key)).toBe('c');
    for (const hold of holds) hold.resolve();
    await Promise.all([...first, next]);
  });

  test('breaks a tie in requests in flight by the fewest requests overall', async () => {
    const ring = keyRing('a', 'b', 'c');
    const seen = provider(BASE, () => chatReply('gpt-4.1'));
    const { client } = manage({ providers: { one: { baseURL: BASE, keys: ring.keys } }, keySelection: 'least-used' });

    // Sequential requests: nothing is in flight at selection, so use spreads evenly.
    await sequential(client, 6);

    expect(ring.ids(seen)).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
  });
});

describe("keySelection: 'weighted'", () => {
  test('weights 3:1 give 6:2 over 8 sequential requests', async () => {
    const ring = keyRing('heavy', 'light');
    const seen = provider(BASE, () => chatReply('gpt-4.1'));
    const { client } = manage({
      providers: { one: { baseURL: BASE, keys: [{ ...ring.keys[0]!, weight: 3 }, { ...ring.keys[1]!, weight: 1 }] } },
      keySelection: 'weighted',
    });

    await sequential(client, 8);

    expect(count(ring.ids(seen))).toEqual({ heavy: 6, light: 2 });
  });

  test('spreads the heavy key out rather than bunching it', async () => {
    const ring = keyRing('heavy', 'light');
    const seen = provider(BASE, () => chatReply('gpt-4.1'));
    const { client } = manage({
      providers: { one: { baseURL: BASE, keys: [{ ...ring.keys[0]!, weight: 3 }, { ...ring.keys[1]!, weight: 1 }] } },
      keySelection: 'weighted',
    });

    await sequential(client, 8);

    // Smooth weighted round-robin: the light key comes once in every four.
    const ids = ring.ids(seen);
    expect(ids.slice(0, 4).filter((id) => id === 'light')).toHaveLength(1);
    expect(ids.slice(4, 8).filter((id) => id === 'light')).toHaveLength(1);
  });
});

describe("keySelection: 'random'", () => {
  test('a RandomSelector picks the key its number source points at', async () => {
    const ring = keyRing('a', 'b', 'c');
    const seen = provider(BASE, () => chatReply('gpt-4.1'));
    const script = [0.9, 0.1, 0.5, 0.4, 0.0, 0.99];
    const random = vi.fn(() => script.shift() ?? 0);
    const { client } = manage({ providers: { one: { baseURL: BASE, keys: ring.keys } }, keySelection: new RandomSelector(random) });

    await sequential(client, 6);

    // floor(r · 3): 2, 0, 1, 1, 0, 2
    expect(ring.ids(seen)).toEqual(['c', 'a', 'b', 'b', 'a', 'c']);
    expect(random).toHaveBeenCalledTimes(6);
  });

  test("by name, it draws from Math.random", async () => {
    const ring = keyRing('a', 'b', 'c');
    const seen = provider(BASE, () => chatReply('gpt-4.1'));
    // Spied before construction: the built-in takes Math.random when it is created.
    const random = vi.spyOn(Math, 'random');
    const { client } = manage({ providers: { one: { baseURL: BASE, keys: ring.keys } }, keySelection: 'random' });

    // The SDK also draws from Math.random (its log ids), so each request sees one fixed value.
    for (const value of [0.99, 0.0, 0.5, 0.7, 0.2]) {
      random.mockReturnValue(value);
      await client.chat.completions.create({ model: 'gpt-4.1', messages: MESSAGES });
    }

    expect(ring.ids(seen)).toEqual(['c', 'a', 'b', 'c', 'a']);
  });
});

describe('a custom selector object', () => {
  test('decides which key serves each request', async () => {
    const ring = keyRing('a', 'b', 'c');
    const seen = provider(BASE, () => chatReply('gpt-4.1'));
    const selector: KeySelector = { select: (keys) => keys.find((k) => k.id === 'b') };
    const { client } = manage({ providers: { one: { baseURL: BASE, keys: ring.keys } }, keySelection: selector });

    await sequential(client, 4);

    expect(ring.ids(seen)).toEqual(['b', 'b', 'b', 'b']);
  });

  test('is told the provider, model, request id and attempt number, and sees no secrets', async () => {
    const ring = keyRing('a', 'b');
    provider(BASE, () => chatReply('gpt-4.1'));
    const offered: { keys: readonly KeyView[]; ctx: SelectContext }[] = [];
    const selector: KeySelector = {
      select(keys, ctx) {
        offered.push({ keys: [...keys], ctx: { ...ctx } });
        return keys[0];
      },
    };
    const { client } = manage({ providers: { one: { baseURL: BASE, keys: ring.keys } }, keySelection: selector, replyHeaders: true });

    const response = await client.chat.completions.create({ model: 'gpt-4.1', messages: MESSAGES }).asResponse();

    expect(offered).toHaveLength(1);
    expect(offered[0]!.ctx).toEqual({ provider: 'one', model: 'gpt-4.1', requestId: response.headers.get('x-keyplex-request-id'), attempt: 1 });
    expect(offered[0]!.keys.map((k) => k.id)).toEqual(['a', 'b']);
    const text = JSON.stringify(offered);
    for (const { key } of ring.keys) expect(text).not.toContain(key);
  });

  test('that declines every key ends the request with no_key_available instead of spinning', async () => {
    const ring = keyRing('a');
    const seen = provider(BASE, () => chatReply('gpt-4.1'));
    let calls = 0;
    // Declines; after 1000 selections (a spinning pipeline) it gives in so the test cannot hang.
    const selector: KeySelector = { select: (keys) => (++calls > 1000 ? keys[0] : undefined) };
    const { client } = manage({ providers: { one: { baseURL: BASE, keys: ring.keys } }, keySelection: selector, retry: { baseDelayMs: 0 } });

    const error = await client.chat.completions.create({ model: 'gpt-4.1', messages: MESSAGES }).catch((e: unknown) => e);

    expect(calls).toBeLessThanOrEqual(10);
    expect(seen).toHaveLength(0);
    expect(getKeyplexDetails(error)?.code).toBe('no_key_available');
  });
});

describe('what a selector is offered', () => {
  test('only keys that are enabled and not cooling down', async () => {
    const ring = keyRing('a', 'b', 'c', 'd');
    const seen = provider(BASE, (call) =>
      ring.idOf(call.key) === 'c' ? errorReply(429, 'rate_limit_exceeded', { 'retry-after-ms': '60000' }) : chatReply('gpt-4.1'),
    );
    const offered: string[][] = [];
    // Prefers c, to walk into its rate limit; otherwise the first key offered.
    const selector: KeySelector = {
      select(keys) {
        offered.push(keys.map((k) => k.id));
        return keys.find((k) => k.id === 'c') ?? keys[0];
      },
    };
    const { manager, client } = manage({ providers: { one: { baseURL: BASE, keys: ring.keys } }, keySelection: selector, retry: { baseDelayMs: 0 } });
    manager.disableKey('one', 'b');

    await sequential(client, 3);

    expect(ring.ids(seen)).toEqual(['c', 'a', 'a', 'a']);
    // b (disabled) is never offered; c only until its 429.
    expect(offered).toEqual([['a', 'c', 'd'], ['a', 'd'], ['a', 'd'], ['a', 'd']]);
  });
});
