/**
 * Object affinity beyond responses: a file, a batch or a conversation is
 * known only to the project of the key that created it, so a later request
 * naming it (`/files/{id}…`, `/batches/{id}…`, `/conversations/{id}…`, a
 * batch's `input_file_id`, a response's `conversation`) must go to that key.
 * The msw handlers below stand for one provider of three keys, every key a
 * project of its own: another key answers 404, as OpenAI does. Keys are
 * picked round-robin, so without affinity the next request lands on another
 * key.
 */
import OpenAI, { toFile } from 'openai';
import { describe, expect, test, vi } from 'vitest';
import { getKeyplexDetails, KeyManager, MemoryStore, type KeyManagerOptions, type StateStore } from '../../src/index';
import { caught, failures } from '../support/caught';
import { reservingStore } from '../support/custom-store';
import { fakeKey } from '../support/fake-keys';
import { fakeClock, quiesce, realSetImmediate, until } from '../support/time';
import { projects, threeKeys } from '../support/projects';
import { mswSuite } from '../support/suite';

const BASE = 'https://projects.keyplex.test/v1';
const { server, cleanups } = mswSuite();

/** One provider of three keys (`k0` … `k2`), round-robin: consecutive requests go to different keys. */
function setup(options: Partial<KeyManagerOptions> = {}) {
  server.use(...projects(BASE).handlers);
  return threeKeys(BASE, cleanups, options);
}

/** `files.create` (multipart: no JSON body, so never pinned; only remembered from the reply). */
async function upload(client: OpenAI) {
  return client.files.create({ file: await toFile(Buffer.from('{}'), 'in.jsonl'), purpose: 'batch' });
}

/** `files.create`, then `batches.create` naming the file. */
async function fileThenBatch(client: OpenAI) {
  const file = await upload(client);
  return client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
}

describe('files', () => {
  test('batches.create with the input_file_id of a file uploaded through keyplex goes to the file\'s key: 0 of 6 fail', async () => {
    const { client } = setup();
    const result = await failures(6, () => fileThenBatch(client));
    expect(result).toEqual({ failed: 0, first: undefined });
  });

  test('files.retrieve, files.content and files.delete go to the file\'s key: 0 of 6 fail', async () => {
    const { client } = setup();
    const result = await failures(6, async () => {
      const file = await upload(client);
      await client.files.retrieve(file.id);
      await (await client.files.content(file.id)).text();
      await client.files.delete(file.id);
    });
    expect(result).toEqual({ failed: 0, first: undefined });
  });
});

describe('batches', () => {
  test('batches.retrieve and batches.cancel go to the batch\'s key: 0 of 6 fail', async () => {
    const { client } = setup();
    const result = await failures(6, async () => {
      const batch = await fileThenBatch(client);
      await client.batches.retrieve(batch.id);
      await client.batches.cancel(batch.id);
    });
    expect(result).toEqual({ failed: 0, first: undefined });
  });
});

describe('conversations', () => {
  test('responses.create({ conversation: id }) goes to the conversation\'s key: 0 of 6 fail', async () => {
    const { client } = setup();
    const result = await failures(6, async () => {
      const conversation = await client.conversations.create();
      await client.responses.create({ model: 'gpt-4.1', input: 'hi', conversation: conversation.id });
    });
    expect(result).toEqual({ failed: 0, first: undefined });
  });

  test('responses.create({ conversation: { id } }) goes to the conversation\'s key: 0 of 6 fail', async () => {
    const { client } = setup();
    const result = await failures(6, async () => {
      const conversation = await client.conversations.create();
      await client.responses.create({ model: 'gpt-4.1', input: 'hi', conversation: { id: conversation.id } });
    });
    expect(result).toEqual({ failed: 0, first: undefined });
  });

  test('conversations.items.list goes to the conversation\'s key: 0 of 6 fail', async () => {
    const { client } = setup();
    const result = await failures(6, async () => {
      const conversation = await client.conversations.create();
      await client.conversations.items.list(conversation.id);
    });
    expect(result).toEqual({ failed: 0, first: undefined });
  });
});

describe('uploads', () => {
  test('uploads.parts.create and uploads.complete go to the upload\'s key: 0 of 6 fail', async () => {
    const { client } = setup();
    const result = await failures(6, async () => {
      const started = await client.uploads.create({ bytes: 2, filename: 'in.jsonl', mime_type: 'text/jsonl', purpose: 'batch' });
      const part = await client.uploads.parts.create(started.id, { data: await toFile(Buffer.from('{}'), 'part') });
      await client.uploads.complete(started.id, { part_ids: [part.id] });
    });
    expect(result).toEqual({ failed: 0, first: undefined });
  });
});

describe('stored chat completions (store: true)', () => {
  const ask = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hi' }], store: true };

  /** What each follow-up of a stored completion made by `make` gave: 'ok' or its status. */
  async function followUps(client: OpenAI, make: () => Promise<{ id: string }>) {
    const outcomes: string[] = [];
    for (let i = 0; i < 6; i++) {
      const { id } = await make();
      for (const call of [() => client.chat.completions.retrieve(id), () => client.chat.completions.messages.list(id), () => client.chat.completions.update(id, { metadata: { seen: 'yes' } }), () => client.chat.completions.delete(id)]) {
        outcomes.push(await call().then(() => 'ok', (error: { status?: number }) => String(error.status)));
      }
    }
    return outcomes;
  }

  test('retrieve, messages.list, update and delete go to the key that created it: 0 of 24 fail', async () => {
    const { client } = setup();
    const outcomes = await followUps(client, () => client.chat.completions.create(ask));
    expect(outcomes.filter((o) => o !== 'ok')).toEqual([]);
  });

  test('streamed: the id of its chunks is remembered: 0 of 24 fail', async () => {
    const { client } = setup();
    const streamed = async () => {
      let id = '';
      for await (const chunk of await client.chat.completions.create({ ...ask, stream: true })) id ||= chunk.id;
      return { id };
    };
    const outcomes = await followUps(client, streamed);
    expect(outcomes.filter((o) => o !== 'ok')).toEqual([]);
  });

  test('a chat completion without store: true is not remembered: no store write for it (one for a stored one)', async () => {
    const store = new MemoryStore();
    const remembered = vi.spyOn(store, 'rememberObject');
    const { client } = setup({ store });
    for (let i = 0; i < 3; i++) await client.chat.completions.create({ ...ask, store: false });
    await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] });
    expect(remembered).toHaveBeenCalledTimes(0);
    await client.chat.completions.create(ask);
    expect(remembered).toHaveBeenCalledTimes(1);
    // Streamed: written once, at its first chunk (not again at its end).
    for await (const _ of await client.chat.completions.create({ ...ask, stream: true })) void _;
    expect(remembered).toHaveBeenCalledTimes(2);
  });
});

describe('two managers on one MemoryStore', () => {
  test('batches.create on B naming a file uploaded on A goes to A\'s key (B lists the keys one place on): 0 of 6 fail', async () => {
    server.use(...projects(BASE).handlers);
    const store = new MemoryStore();
    const keys = [0, 1, 2].map((i) => ({ key: fakeKey('proj'), id: `k${i}` }));
    const [a, b] = [keys, [...keys.slice(1), keys[0]!]].map((listed) => {
      const manager = new KeyManager({ providers: { one: { baseURL: BASE, keys: listed } }, keySelection: 'round-robin', retry: { baseDelayMs: 0 }, store });
      cleanups.push(() => manager.close());
      return manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 }));
    });
    const result = await failures(6, async () => {
      const file = await upload(a!);
      await b!.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    });
    expect(result).toEqual({ failed: 0, first: undefined });
    // A stored chat completion made on A is found on B as well (its kind passes the store's check).
    const stored = await failures(6, async () => {
      const { id } = await a!.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }], store: true });
      await b!.chat.completions.retrieve(id);
    });
    expect(stored).toEqual({ failed: 0, first: undefined });
  });
});

/**
 * Two managers on one MemoryStore whose object-home writes land late (as
 * Redis may apply replica A's `SET` after replica B's `GET`): each write is
 * held, applied when `release()` is called or, with `laterTurns`, that many
 * turns of the event loop after it was asked for.
 */
function lateWrites(laterTurns?: number) {
  const memory = new MemoryStore();
  const held: (() => void)[] = [];
  let asked = 0;
  const store: StateStore = {
    open(listener) {
      const session = memory.open(listener);
      const rememberObject = (...args: Parameters<NonNullable<typeof session.rememberObject>>) =>
        new Promise<void>((resolve) => {
          asked++;
          held.push(() => {
            session.rememberObject!(...args);
            resolve();
          });
          if (laterTurns !== undefined) void turns(laterTurns).then(release);
        });
      // The session's own methods bound to it (they use its private fields); its write held.
      return new Proxy(session, {
        get: (target, name) => {
          if (name === 'rememberObject') return rememberObject;
          const value = Reflect.get(target, name) as unknown;
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
    },
  };
  const release = () => held.splice(0).forEach((apply) => apply());
  return { store, release, asked: () => asked };
}

/** `n` turns of the real event loop. */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((resolve) => realSetImmediate(resolve));
}

/** Managers A and B of the same three keys on `store`, B listing them one place on (round-robin: B's next key is never A's). */
function twoOn(store: StateStore) {
  server.use(...projects(BASE).handlers);
  const keys = [0, 1, 2].map((i) => ({ key: fakeKey('proj'), id: `k${i}` }));
  return [keys, [...keys.slice(1), keys[0]!]].map((listed) => {
    const manager = new KeyManager({ providers: { one: { baseURL: BASE, keys: listed } }, keySelection: 'round-robin', retry: { baseDelayMs: 0 }, store });
    cleanups.push(() => manager.close());
    return manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 }));
  }) as [OpenAI, OpenAI];
}

describe('a store whose writes land late', () => {
  test('files.create answers only once the store has the file\'s home', async () => {
    const { store, release, asked } = lateWrites();
    const { client } = setup({ store });
    let answered = false;
    const file = upload(client).then((f) => ((answered = true), f));
    await until(() => asked() === 1, 'the home written');
    await quiesce(() => (answered ? 1 : 0));
    expect(answered).toBe(false);
    release();
    expect((await file).id).toMatch(/^file-/);
  });

  test('a stored chat completion streamed: its first chunk reaches the caller only once the store has its home', async () => {
    const { store, release, asked } = lateWrites();
    const { client } = setup({ store });
    let chunks = 0;
    const read = (async () => {
      for await (const _ of await client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }], store: true, stream: true })) chunks++;
    })();
    await until(() => asked() === 1, 'the home written');
    await quiesce(() => chunks);
    expect(chunks).toBe(0);
    release();
    await read;
    expect(chunks).toBe(2);
  });

  test('batches.create on B right after files.create on A goes to A\'s key, the write landing a few turns late: 0 of 6 fail', async () => {
    const [a, b] = twoOn(lateWrites(3).store);
    const result = await failures(6, async () => {
      const file = await upload(a);
      await b.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    });
    expect(result).toEqual({ failed: 0, first: undefined });
  });

  test('a write that never settles holds the answer one second at most, and fails nothing', async () => {
    const { store, asked } = lateWrites();
    const { client } = setup({ store });
    fakeClock();
    try {
      let answered = false;
      const file = upload(client).then((f) => ((answered = true), f));
      await until(() => asked() === 1, 'the home written');
      await vi.advanceTimersByTimeAsync(999);
      await quiesce(() => (answered ? 1 : 0));
      expect(answered).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      expect((await file).id).toMatch(/^file-/);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('a store that fails at it', () => {
  test('rememberObject throwing and objectHome rejecting: no request fails for it, affinity as in one manager (0 of 6 fail)', async () => {
    let calls = 0;
    const shared = reservingStore(() => ({ ok: true, requests: undefined, tokens: undefined }));
    const store: StateStore = {
      open: (listener) => ({
        ...shared.open(listener),
        rememberObject: () => {
          calls++;
          throw new Error('down');
        },
        objectHome: () => {
          calls++;
          return Promise.reject(new Error('down'));
        },
      }),
    };
    const { client } = setup({ store });
    const result = await failures(6, async () => {
      await fileThenBatch(client);
      await client.files.retrieve('file-not-made-here').catch(() => undefined);
    });
    expect(result).toEqual({ failed: 0, first: undefined });
    // Per round: the file and the batch written (2), the unknown file read (1).
    expect(calls).toBe(18);
  });
});

describe('the pinned key gone, and affinity off', () => {
  test('the file\'s key removed: batches.create fails at once with response_key_unavailable naming the file, nothing sent', async () => {
    const { client, manager, attempts } = setup();
    const file = await upload(client);
    manager.removeKey('one', attempts[0]!.keyId);
    const error = await caught(() => client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' }));
    expect(getKeyplexDetails(error)?.code).toBe('response_key_unavailable');
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect(error.message).toMatch(new RegExp(`file '${file.id}' was created with key '${attempts[0]!.keyId}' of 'one', which is removed`));
    expect(error.message).toMatch(/Upload the file again/);
    expect(attempts).toHaveLength(1);
  });

  test('affinity: false: batches.create after files.create goes to the next key and fails, 6 of 6', async () => {
    const { client } = setup({ affinity: false });
    const result = await failures(6, () => fileThenBatch(client));
    expect(result.failed).toBe(6);
  });

  test.each([
    [{ affinity: { maxIds: 0 } }, 'affinity.maxIds'],
    [{ affinity: 'on' }, 'affinity'],
    [{ affinity: {}, responseAffinity: {} }, 'responseAffinity'],
  ])('malformed %j is refused at construction, naming %s', (options, field) => {
    expect(() => new KeyManager({ providers: { one: { baseURL: BASE, keys: [fakeKey()] } }, ...(options as object) })).toThrow(expect.objectContaining({ code: 'invalid_config', field }));
  });

  test('responseAffinity, the older name, is the same option: responseAffinity: false turns files off too (6 of 6 fail)', async () => {
    const { client } = setup({ responseAffinity: false });
    const result = await failures(6, () => fileThenBatch(client));
    expect(result.failed).toBe(6);
  });
});
