/**
 * Response affinity: a Responses API object lives with the project of the key
 * that created it, so a later request naming it (`previous_response_id`, or
 * `/responses/{id}...`) must go to that key. The simulator stands for three
 * providers of three keys each, every key a project of its own: another key
 * answers 400 `previous_response_not_found` (or 404 for `GET /responses/{id}`).
 * Keys are picked round-robin and providers taken in turn, so without
 * affinity the next request of a conversation always lands on another key.
 */
import OpenAI from 'openai';
import { http, HttpResponse } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import { getKeyplexDetails, KeyManager, keyplex, type KeyManagerOptions } from '../../src/index';
import { ProviderSimulator } from '../../src/testing';
import { simulatorHandlers } from '../../src/testing/msw';
import type { RoutingStrategy } from '../../src/routing/strategy';
import { caught } from '../support/caught';
import { record } from '../support/events';
import { fakeKey } from '../support/fake-keys';

const MODEL = 'gpt-4.1';
const PROVIDERS = ['one', 'two', 'three'];
/** The simulator's clock: fixed, so no rate window refills. */
const T0 = 1_700_000_040_000;

const server = setupServer();
const managers: KeyManager[] = [];
beforeAll(() => server.listen({ onUnhandledFrame: 'error' }));
afterEach(async () => {
  server.resetHandlers();
  await Promise.all(managers.splice(0).map((m) => m.close()));
  vi.useRealTimers();
});
afterAll(() => server.close());

/** Each routed request's deployments rotated by one more place than the last: providers take turns, deterministically. */
function takingTurns(): RoutingStrategy {
  let turn = 0;
  return {
    order(deployments) {
      const at = turn++ % deployments.length;
      return [...deployments.slice(at), ...deployments.slice(0, at)];
    },
  };
}

/** What a call gave: its result, or the error it threw. */
async function settled<T>(run: () => Promise<T>): Promise<T | Error> {
  try {
    return await run();
  } catch (error) {
    return error as Error;
  }
}

/** Three providers of three keys (ids `one-0` … `three-2`), round-robin keys, providers in turn; `options` overlaid. */
function setup(options: Partial<KeyManagerOptions> = {}, rpm?: number) {
  const secrets = Object.fromEntries(PROVIDERS.map((id) => [id, [0, 1, 2].map(() => fakeKey(id))]));
  const sim = new ProviderSimulator({
    now: () => T0,
    providers: PROVIDERS.map((id) => ({ id, keys: secrets[id]!.map((key) => ({ key, rpm })), models: [MODEL] })),
  });
  server.use(...simulatorHandlers(sim));
  const manager = new KeyManager({
    providers: Object.fromEntries(PROVIDERS.map((id) => [id, { baseURL: sim.baseURL(id), keys: secrets[id]!.map((key, i) => ({ key, id: `${id}-${i}` })), models: [MODEL] }])),
    keySelection: 'round-robin',
    routing: { strategy: takingTurns() },
    retry: { baseDelayMs: 0 },
    ...options,
  });
  managers.push(manager);
  const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
  const attempts = record(manager, 'attempt');
  /** The keys the attempts went to, `provider/key`, from attempt `from` on. */
  const keysFrom = (from: number) => attempts.slice(from).map((a) => `${a.provider}/${a.keyId}`);
  return { sim, manager, client, attempts, keysFrom };
}

type Setup = ReturnType<typeof setup>;

/** A two-turn conversation, JSON: the second turn's outcome and the keys each turn went to. */
async function converse({ client, attempts, keysFrom }: Setup) {
  const before = attempts.length;
  const first = await client.responses.create({ model: MODEL, input: 'hello' });
  const firstKeys = keysFrom(before);
  const middle = attempts.length;
  const second = await settled(() => client.responses.create({ model: MODEL, input: 'and then?', previous_response_id: first.id }));
  return { first, second, firstKeys, secondKeys: keysFrom(middle) };
}

describe('a Responses conversation stays on the key that created it', () => {
  test('JSON: every second turn (12 conversations over 3 providers × 3 keys) goes to the first turn\'s key and succeeds', async () => {
    const setUp = setup();
    const outcomes = [];
    for (let i = 0; i < 12; i++) outcomes.push(await converse(setUp));
    const failed = outcomes.filter((o) => o.second instanceof Error);
    expect(failed.map((o) => (o.second as Error).message)).toEqual([]);
    for (const o of outcomes) expect(o.secondKeys).toEqual(o.firstKeys);
    // Turn one still rotates: the 12 first turns used all 9 keys.
    expect(new Set(outcomes.map((o) => o.firstKeys[0])).size).toBe(9);
  });
});

/** A streamed turn: its response id (from `response.completed`). */
async function streamed(client: OpenAI, body: { input: string; previous_response_id?: string }): Promise<string> {
  const stream = await client.responses.create({ model: MODEL, stream: true, ...body });
  let id: string | undefined;
  for await (const event of stream) if (event.type === 'response.completed') id = event.response.id;
  return id!;
}

describe('streamed and stored responses', () => {
  test('streaming: every second turn (6 conversations) goes to the first turn\'s key and succeeds', async () => {
    const { client, attempts, keysFrom } = setup();
    const failures: string[] = [];
    for (let i = 0; i < 6; i++) {
      const before = attempts.length;
      const id = await streamed(client, { input: 'hello' });
      const first = keysFrom(before);
      const middle = attempts.length;
      const second = await settled(() => streamed(client, { input: 'and then?', previous_response_id: id }));
      if (second instanceof Error) failures.push(second.message);
      else expect(keysFrom(middle)).toEqual(first);
    }
    expect(failures).toEqual([]);
  });

  test('a streamed response is pinned from its first event: retrieved while the stream is still open, from its key', async () => {
    const { client, attempts, keysFrom } = setup();
    await client.responses.create({ model: MODEL, input: 'warm-up' });
    const before = attempts.length;
    const stream = await client.responses.create({ model: MODEL, input: 'hello', stream: true });
    const events = stream[Symbol.asyncIterator]();
    const opening = (await events.next()).value as { type: string; response: { id: string } };
    expect(opening.type).toBe('response.created');
    const got = await settled(() => client.responses.retrieve(opening.response.id));
    expect(got).not.toBeInstanceOf(Error);
    expect(keysFrom(before)).toEqual([keysFrom(before)[0], keysFrom(before)[0]]);
    while (!(await events.next()).done);
  });

  test('GET and DELETE /responses/{id} go to the key that created the response (3 responses, one per provider)', async () => {
    const setUp = setup();
    const { client, attempts, keysFrom } = setUp;
    const problems: string[] = [];
    for (let i = 0; i < 3; i++) {
      const before = attempts.length;
      const created = await client.responses.create({ model: MODEL, input: 'hello' });
      const key = keysFrom(before);
      const middle = attempts.length;
      const got = await settled(() => client.responses.retrieve(created.id));
      const gone = await settled(() => client.responses.delete(created.id));
      if (got instanceof Error) problems.push(`retrieve: ${got.message}`);
      if (gone instanceof Error) problems.push(`delete: ${gone.message}`);
      expect(keysFrom(middle)).toEqual([...key, ...key]);
    }
    expect(problems).toEqual([]);
  });

  test('/responses/{id}/input_items and /responses/{id}/cancel are sent to the key that created the response', async () => {
    const { client, attempts, keysFrom } = setup();
    await client.responses.create({ model: MODEL, input: 'warm-up' });
    const before = attempts.length;
    const created = await client.responses.create({ model: MODEL, input: 'hello' });
    const key = keysFrom(before);
    const middle = attempts.length;
    // The simulator serves neither path (404): what matters is where they went.
    await settled(() => client.responses.inputItems.list(created.id));
    await settled(() => client.responses.cancel(created.id));
    expect(keysFrom(middle)).toEqual([...key, ...key]);
  });
});

describe('a pinned key that cannot serve', () => {
  test.each([
    ['removed', (manager: KeyManager, provider: string, keyId: string) => manager.removeKey(provider, keyId), /which is removed/],
    ['disabled', (manager: KeyManager, provider: string, keyId: string) => manager.disableKey(provider, keyId), /which is disabled \(manual\)/],
  ])('%s: the second turn fails with response_key_unavailable (404), nothing sent', async (_, takeOut, says) => {
    const { client, manager, sim, attempts } = setup();
    const first = await client.responses.create({ model: MODEL, input: 'hello' });
    const { provider, keyId } = attempts[0]!;
    takeOut(manager, provider, keyId);
    const sent = totalRequests(sim);
    const error = await caught(() => client.responses.create({ model: MODEL, input: 'more', previous_response_id: first.id }));
    expect(getKeyplexDetails(error)?.code).toBe('response_key_unavailable');
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect(error.message).toMatch(new RegExp(`response '${first.id}' was created with key '${keyId}' of '${provider}'`));
    expect(error.message).toMatch(says);
    expect(error.message).toMatch(/Start a new conversation, or send the full input/);
    expect(totalRequests(sim)).toBe(sent);
  });

  test('revoked upstream (401 on the second turn): response_key_unavailable after that one attempt, no other key tried', async () => {
    const { client, attempts } = setup();
    const first = await client.responses.create({ model: MODEL, input: 'hello' });
    const { provider } = attempts[0]!;
    server.use(http.all(`https://${provider}.sim.keyplex.test/v1/*`, () => HttpResponse.json({ error: { message: 'Incorrect API key provided', type: 'invalid_request_error', code: 'invalid_api_key' } }, { status: 401 })));
    const error = await caught(() => client.responses.create({ model: MODEL, input: 'more', previous_response_id: first.id }));
    expect(getKeyplexDetails(error)?.code).toBe('response_key_unavailable');
    expect(error.message).toMatch(/which is disabled \(unauthorized\)/);
    expect(attempts.slice(1).map((a) => a.keyId)).toEqual([attempts[0]!.keyId]);
  });

  test('rate-limited past the deadline: no_key_available with retryAfterMs, and no other key is tried', async () => {
    // One request a minute per key, and the simulator's clock stands still: the pinned key has no room left.
    const { client, sim, attempts } = setup({ deadlineMs: 2_000 }, 1);
    const first = await client.responses.create({ model: MODEL, input: 'hello' });
    const sent = totalRequests(sim);
    const error = await caught(() => client.responses.create({ model: MODEL, input: 'more', previous_response_id: first.id }));
    const detail = getKeyplexDetails(error);
    expect(detail?.code).toBe('no_key_available');
    expect(detail?.retryAfterMs).toBeGreaterThan(2_000);
    expect(error.message).toMatch(new RegExp(`pinned to key '${attempts[0]!.keyId}'`));
    expect(totalRequests(sim)).toBe(sent);
  });
});

/** Requests the simulator received, over every provider. */
function totalRequests(sim: ProviderSimulator): number {
  return Object.values(sim.tallies()).reduce((sum, p) => sum + p.requests, 0);
}

describe('what affinity leaves alone, and its bounds', () => {
  test('an id keyplex never saw is routed as usual: sent once, the provider\'s 400 surfaces', async () => {
    const { client, attempts } = setup();
    const error = await caught(() => client.responses.create({ model: MODEL, input: 'more', previous_response_id: 'resp_from_elsewhere' }));
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).code).toBe('previous_response_not_found');
    expect(attempts).toHaveLength(1);
  });

  test('a provider request option naming another provider wins over affinity: the request goes there', async () => {
    const { client, attempts } = setup();
    const first = await client.responses.create({ model: MODEL, input: 'hello' });
    expect(attempts[0]!.provider).toBe('one');
    await settled(() => client.responses.create({ model: MODEL, input: 'more', previous_response_id: first.id }, keyplex.options({ provider: 'three' })));
    expect(attempts[1]!.provider).toBe('three');
  });

  test('chat completions keep rotating keys between the turns of a conversation', async () => {
    const { client, keysFrom, attempts } = setup();
    const first = await client.responses.create({ model: MODEL, input: 'hello' });
    const chatFrom = attempts.length;
    for (let i = 0; i < 3; i++) await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
    await client.responses.create({ model: MODEL, input: 'more', previous_response_id: first.id });
    const chats = keysFrom(chatFrom).slice(0, 3);
    expect(new Set(chats).size).toBe(3);
  });

  test('maxIds bounds what is remembered: with room for 2 of 3 responses, the oldest is fetched from another key (404)', async () => {
    const { client } = setup({ responseAffinity: { maxIds: 2 } });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await client.responses.create({ model: MODEL, input: 'hello' })).id);
    // Retrieving creates nothing, so what is remembered stays the two newest.
    const got = [];
    for (const id of ids.reverse()) got.push(await settled(() => client.responses.retrieve(id)));
    expect(got.map((g) => (g instanceof OpenAI.NotFoundError ? 404 : g instanceof Error ? g.message : 'ok'))).toEqual(['ok', 'ok', 404]);
  });

  test('ttlMs: an id remembered longer ago than its time to live is routed as usual', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { client } = setup({ responseAffinity: { ttlMs: 60_000 } });
    const young = await client.responses.create({ model: MODEL, input: 'hello' });
    vi.setSystemTime(Date.now() + 30_000);
    expect(await settled(() => client.responses.create({ model: MODEL, input: 'more', previous_response_id: young.id }))).not.toBeInstanceOf(Error);
    const old = await client.responses.create({ model: MODEL, input: 'hello' });
    vi.setSystemTime(Date.now() + 60_001);
    const late = await settled(() => client.responses.create({ model: MODEL, input: 'more', previous_response_id: old.id }));
    expect((late as InstanceType<typeof OpenAI.BadRequestError>).code).toBe('previous_response_not_found');
  });

  test('responseAffinity: false turns it off: the second turn goes to the next key, as before', async () => {
    const setUp = setup({ responseAffinity: false });
    const { second, firstKeys, secondKeys } = await converse(setUp);
    expect((second as InstanceType<typeof OpenAI.BadRequestError>).code).toBe('previous_response_not_found');
    expect(secondKeys).not.toEqual(firstKeys);
  });

  test.each([
    [{ maxIds: 0 }, 'responseAffinity.maxIds'],
    [{ ttlMs: -1 }, 'responseAffinity.ttlMs'],
    [{ size: 3 }, 'responseAffinity.size'],
    ['on', 'responseAffinity'],
  ])('malformed responseAffinity %j is refused at construction, naming %s', (value, field) => {
    expect(() => new KeyManager({ providers: { one: { baseURL: 'https://one.test/v1', keys: [fakeKey()] } }, responseAffinity: value as never })).toThrow(
      expect.objectContaining({ code: 'invalid_config', field }),
    );
  });
});
