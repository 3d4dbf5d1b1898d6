/**
 * Object affinity for ids named inside request bodies and replies: a file
 * used in a response's or a chat message's content, a fine-tuning job's
 * `training_file`, a vector store's `file_ids` and its own id (a Responses
 * `file_search` tool's `vector_store_ids`), the file an upload produces.
 * Each such object is known only to the project of the key that created it.
 *
 * The upstream below stands for one provider of three keys, every key a
 * project of its own: a request that names (in its path or anywhere in its
 * JSON body) an object another key created is answered 404, as OpenAI does.
 * Keys are picked round-robin, so without affinity the next request lands on
 * another key.
 */
import OpenAI, { toFile } from 'openai';
import { http, HttpResponse } from 'msw';
import { describe, expect, test } from 'vitest';
import { getKeyplexDetails, type KeyManagerOptions } from '../../src/index';
import { caught, failures } from '../support/caught';
import { threeKeys } from '../support/projects';
import { mswSuite } from '../support/suite';

const BASE = 'https://body-ids.keyplex.test/v1';
const MODEL = 'gpt-4.1';
const { server, cleanups } = mswSuite();

/** Every string in `value`, however deep. */
function strings(value: unknown, into: string[] = []): string[] {
  if (typeof value === 'string') into.push(value);
  else if (Array.isArray(value)) for (const item of value) strings(item, into);
  else if (typeof value === 'object' && value !== null) for (const item of Object.values(value)) strings(item, into);
  return into;
}

/** What the upstream answers a request that names none of another project's objects (`mint` creates one for this key). */
type Answer = (path: string, body: Record<string, unknown>, mint: (prefix: string) => string) => Record<string, unknown>;

/** The answers by method and path pattern (`:id` one segment). */
const ANSWERS: [string, RegExp, Answer][] = [
  ['POST', /^\/files$/, (_p, _b, mint) => ({ id: mint('file-'), object: 'file', purpose: 'assistants', bytes: 2, filename: 'a.pdf' })],
  ['GET', /^\/files\/[^/]+$/, (path) => ({ id: path.split('/')[2], object: 'file' })],
  ['POST', /^\/uploads$/, (_p, _b, mint) => ({ id: mint('upload_'), object: 'upload', status: 'pending' })],
  ['POST', /^\/uploads\/[^/]+\/complete$/, (path, _b, mint) => ({ id: path.split('/')[2], object: 'upload', status: 'completed', file: { id: mint('file-'), object: 'file' } })],
  ['POST', /^\/vector_stores$/, (_p, _b, mint) => ({ id: mint('vs_'), object: 'vector_store', status: 'completed' })],
  ['GET', /^\/vector_stores\/[^/]+$/, (path) => ({ id: path.split('/')[2], object: 'vector_store' })],
  ['GET', /^\/vector_stores\/[^/]+\/files$/, () => ({ object: 'list', data: [], has_more: false })],
  ['POST', /^\/vector_stores\/[^/]+\/files$/, (path, body) => ({ id: body.file_id, object: 'vector_store.file', vector_store_id: path.split('/')[2] })],
  ['POST', /^\/fine_tuning\/jobs$/, (_p, body, mint) => ({ id: mint('ftjob-'), object: 'fine_tuning.job', training_file: body.training_file, status: 'validating_files' })],
  ['GET', /^\/fine_tuning\/jobs\/[^/]+$/, (path) => ({ id: path.split('/')[3], object: 'fine_tuning.job' })],
  ['POST', /^\/responses$/, (_p, _b, mint) => ({ id: mint('resp_'), object: 'response', status: 'completed', model: MODEL, output: [], error: null })],
  ['POST', /^\/chat\/completions$/, () => ({ id: 'chatcmpl-1', object: 'chat.completion', model: MODEL, choices: [] })],
];

/** One provider's API where each key is its own project; `sent` counts the requests that reached it. */
function projects() {
  const owners = new Map<string, string>();
  const counter = { sent: 0, made: 0 };
  const handler = http.all(`${BASE}/*`, async ({ request }) => {
    counter.sent++;
    const key = request.headers.get('authorization') ?? '';
    const path = new URL(request.url).pathname.slice('/v1'.length);
    const body = request.headers.get('content-type')?.includes('json') ? ((await request.json()) as Record<string, unknown>) : {};
    const foreign = [...path.split('/'), ...strings(body)].find((id) => owners.has(id) && owners.get(id) !== key);
    if (foreign !== undefined) return HttpResponse.json({ error: { message: `No such object: '${foreign}'`, type: 'invalid_request_error', code: null } }, { status: 404 });
    const found = ANSWERS.find(([method, pattern]) => method === request.method && pattern.test(path));
    if (found === undefined) return HttpResponse.json({ error: { message: `no handler for ${request.method} ${path}` } }, { status: 500 });
    const mint = (prefix: string) => {
      const id = `${prefix}${++counter.made}`;
      owners.set(id, key);
      return id;
    };
    return HttpResponse.json(found[2](path, body, mint));
  });
  return { handler, counter };
}

/** One provider of three keys (`k0` … `k2`), round-robin: consecutive requests go to different keys. */
function setup(options: Partial<KeyManagerOptions> = {}) {
  const { handler, counter } = projects();
  server.use(handler);
  return { ...threeKeys(BASE, cleanups, options), counter };
}

/** `files.create` (multipart: never pinned itself; its id is remembered from the reply). */
async function upload(client: OpenAI) {
  return client.files.create({ file: await toFile(Buffer.from('%PDF'), 'a.pdf'), purpose: 'user_data' });
}

const NONE = { failed: 0, first: undefined };

describe('files named in content', () => {
  test('files.create, then responses.create with an input_file part naming it: 0 of 6 fail', async () => {
    const { client } = setup();
    const result = await failures(6, async () => {
      const file = await upload(client);
      await client.responses.create({ model: MODEL, input: [{ role: 'user', content: [{ type: 'input_text', text: 'summarize' }, { type: 'input_file', file_id: file.id }] }] });
    });
    expect(result).toEqual(NONE);
  });

  test('files.create, then responses.create with an input_image part naming it: 0 of 6 fail', async () => {
    const { client } = setup();
    const result = await failures(6, async () => {
      const file = await upload(client);
      await client.responses.create({ model: MODEL, input: [{ type: 'message', role: 'user', content: [{ type: 'input_image', file_id: file.id, detail: 'auto' }] }] });
    });
    expect(result).toEqual(NONE);
  });

  test('files.create, then chat.completions.create with a file part naming it: 0 of 6 fail', async () => {
    const { client } = setup();
    const result = await failures(6, async () => {
      const file = await upload(client);
      await client.chat.completions.create({
        model: MODEL,
        messages: [
          { role: 'system', content: 'be brief' },
          { role: 'user', content: [{ type: 'text', text: 'summarize' }, { type: 'file', file: { file_id: file.id } }] },
        ],
      });
    });
    expect(result).toEqual(NONE);
  });
});

describe('fine-tuning', () => {
  test('files.create, then fine_tuning.jobs.create({ training_file }) and jobs.retrieve: 0 of 6 fail', async () => {
    const { client } = setup();
    const result = await failures(6, async () => {
      const file = await upload(client);
      const job = await client.fineTuning.jobs.create({ model: 'gpt-4o-mini', training_file: file.id });
      await client.fineTuning.jobs.retrieve(job.id);
    });
    expect(result).toEqual(NONE);
  });
});

describe('vector stores', () => {
  test('vector_stores.create({ file_ids }), then vector_stores.files.list and vector_stores.retrieve: 0 of 6 fail', async () => {
    const { client } = setup();
    const result = await failures(6, async () => {
      const file = await upload(client);
      const store = await client.vectorStores.create({ name: 'docs', file_ids: [file.id] });
      await client.vectorStores.files.list(store.id);
      await client.vectorStores.retrieve(store.id);
    });
    expect(result).toEqual(NONE);
  });

  test('vector_stores.files.create(vsId, { file_id }) with a file of the store\'s key: 0 of 6 fail', async () => {
    const { client } = setup();
    const result = await failures(6, async () => {
      const file = await upload(client);
      const store = await client.vectorStores.create({ name: 'docs', file_ids: [file.id] });
      await client.vectorStores.files.create(store.id, { file_id: file.id });
    });
    expect(result).toEqual(NONE);
  });

  test('responses.create with a file_search tool naming the vector store: 0 of 6 fail', async () => {
    const { client } = setup();
    const result = await failures(6, async () => {
      const store = await client.vectorStores.create({ name: 'docs' });
      await client.responses.create({ model: MODEL, input: 'what do the docs say?', tools: [{ type: 'file_search', vector_store_ids: [store.id] }] });
    });
    expect(result).toEqual(NONE);
  });
});

describe('uploads', () => {
  test('uploads.complete, then files.retrieve of the file it produced: 0 of 6 fail', async () => {
    const { client } = setup();
    const result = await failures(6, async () => {
      const started = await client.uploads.create({ bytes: 4, filename: 'a.pdf', mime_type: 'application/pdf', purpose: 'user_data' });
      const done = await client.uploads.complete(started.id, { part_ids: [] });
      await client.files.retrieve(done.file!.id);
    });
    expect(result).toEqual(NONE);
  });
});

describe('objects of different keys in one request', () => {
  test('two files created with different keys in one responses.create: objects_on_different_keys, nothing sent', async () => {
    const { client, counter } = setup();
    const a = await upload(client);
    const b = await upload(client);
    const sent = counter.sent;
    const error = await caught(() =>
      client.responses.create({ model: MODEL, input: [{ role: 'user', content: [{ type: 'input_file', file_id: a.id }, { type: 'input_file', file_id: b.id }] }] }),
    );
    expect(counter.sent - sent).toBe(0);
    expect(getKeyplexDetails(error)?.code).toBe('objects_on_different_keys');
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect(error.message).toMatch(new RegExp(`file '${a.id}'.*file '${b.id}'`));
    expect(error.message).toMatch(/no one key/);
    expect(error.message).toMatch(/a request of their own/);
    expect(error.message).toMatch(/affinity: false/);
  });

  test('vector_stores.files.create naming a store and a file of different keys: objects_on_different_keys, nothing sent', async () => {
    const { client, counter } = setup();
    const store = await client.vectorStores.create({ name: 'docs' });
    const file = await upload(client);
    const sent = counter.sent;
    const error = await caught(() => client.vectorStores.files.create(store.id, { file_id: file.id }));
    expect(counter.sent - sent).toBe(0);
    expect(getKeyplexDetails(error)?.code).toBe('objects_on_different_keys');
    expect(error.message).toMatch(new RegExp(`vector store '${store.id}'.*file '${file.id}'`));
  });

  test('the key of a file named in a chat message removed: response_key_unavailable naming the file, nothing sent', async () => {
    const { client, manager, attempts, counter } = setup();
    const file = await upload(client);
    manager.removeKey('one', attempts[0]!.keyId);
    const sent = counter.sent;
    const error = await caught(() => client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: [{ type: 'file', file: { file_id: file.id } }] }] }));
    expect(counter.sent - sent).toBe(0);
    expect(getKeyplexDetails(error)?.code).toBe('response_key_unavailable');
    expect(error.message).toMatch(new RegExp(`file '${file.id}' was created with key '${attempts[0]!.keyId}' of 'one', which is removed`));
  });

  test('a chat completion after files were remembered, naming none, is routed as usual (round-robin over the 3 keys)', async () => {
    const { client, attempts } = setup();
    await upload(client);
    attempts.length = 0;
    for (let i = 0; i < 3; i++) await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }] });
    expect(new Set(attempts.map((a) => a.keyId)).size).toBe(3);
  });

  test('affinity: false: responses.create with an input_file after files.create goes to the next key and fails, 6 of 6', async () => {
    const { client } = setup({ affinity: false });
    const result = await failures(6, async () => {
      const file = await upload(client);
      await client.responses.create({ model: MODEL, input: [{ role: 'user', content: [{ type: 'input_file', file_id: file.id }] }] });
    });
    expect(result.failed).toBe(6);
  });
});
