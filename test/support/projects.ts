/**
 * A provider's object API (files, batches, conversations, uploads,
 * responses, chat completions naming files, stored chat completions) on msw, where each key is a project of its own: an object is
 * found only with the key that created it, as OpenAI answers (404 otherwise).
 */
import { http, HttpResponse } from 'msw';
import OpenAI from 'openai';
import { KeyManager, type KeyManagerOptions } from '../../src/index';
import { record } from './events';
import { fakeKey } from './fake-keys';

/**
 * The API at `BASE` of one provider where each key is its own project:
 * objects by id, each with the key that created it; another key (or
 * provider) answers 404. Ids are `{prefix}{tag}{n}` (`tag` tells providers' ids apart).
 */
export function projects(BASE: string, tag = '') {
  const owners = new Map<string, string>();
  let made = 0;
  const keyOf = (request: Request) => request.headers.get('authorization') ?? '';
  const notFound = (id: string) => HttpResponse.json({ error: { message: `No such object: '${id}'`, type: 'invalid_request_error', code: null } }, { status: 404 });
  const create = (request: Request, prefix: string, object: Record<string, unknown>) => {
    const id = `${prefix}${tag}${++made}`;
    owners.set(id, keyOf(request));
    return HttpResponse.json({ id, ...object });
  };
  /** The answer for `id` when the request's key created it, else 404. */
  const owned = (request: Request, id: string, answer: () => Response) => (owners.get(id) === keyOf(request) ? answer() : notFound(id));
  const handlers = [
    http.post(`${BASE}/files`, ({ request }) => create(request, 'file-', { object: 'file', purpose: 'batch', bytes: 2, filename: 'in.jsonl' })),
    http.get(`${BASE}/files/:id`, ({ request, params }) => owned(request, params.id as string, () => HttpResponse.json({ id: params.id, object: 'file' }))),
    http.get(`${BASE}/files/:id/content`, ({ request, params }) => owned(request, params.id as string, () => new HttpResponse('{}', { headers: { 'content-type': 'application/octet-stream' } }))),
    http.delete(`${BASE}/files/:id`, ({ request, params }) => owned(request, params.id as string, () => HttpResponse.json({ id: params.id, object: 'file', deleted: true }))),
    http.post(`${BASE}/batches`, async ({ request }) => {
      const { input_file_id: file } = (await request.json()) as { input_file_id: string };
      return owned(request, file, () => create(request, 'batch_', { object: 'batch', input_file_id: file, status: 'validating' }));
    }),
    http.get(`${BASE}/batches/:id`, ({ request, params }) => owned(request, params.id as string, () => HttpResponse.json({ id: params.id, object: 'batch' }))),
    http.post(`${BASE}/batches/:id/cancel`, ({ request, params }) => owned(request, params.id as string, () => HttpResponse.json({ id: params.id, object: 'batch', status: 'cancelling' }))),
    http.post(`${BASE}/conversations`, ({ request }) => create(request, 'conv_', { object: 'conversation' })),
    http.get(`${BASE}/conversations/:id/items`, ({ request, params }) => owned(request, params.id as string, () => HttpResponse.json({ object: 'list', data: [], has_more: false }))),
    http.post(`${BASE}/uploads`, ({ request }) => create(request, 'upload_', { object: 'upload', status: 'pending' })),
    http.post(`${BASE}/uploads/:id/parts`, ({ request, params }) => owned(request, params.id as string, () => create(request, 'part_', { object: 'upload.part', upload_id: params.id }))),
    http.post(`${BASE}/uploads/:id/complete`, ({ request, params }) => owned(request, params.id as string, () => HttpResponse.json({ id: params.id, object: 'upload', status: 'completed' }))),
    // A chat completion whose messages name files ({ type: 'file', file: { file_id } }): each must be the key's.
    // With `store: true` it is kept (its id the key's, as a file's); streamed when asked.
    http.post(`${BASE}/chat/completions`, async ({ request }) => {
      const { messages, store, stream } = (await request.json()) as { messages: { content?: unknown }[]; store?: boolean; stream?: boolean };
      const files = messages.flatMap((m) => (Array.isArray(m.content) ? (m.content as { file?: { file_id?: string } }[]).map((part) => part.file?.file_id) : [])).filter((id) => id !== undefined);
      const missing = files.find((id) => owners.get(id) !== keyOf(request));
      if (missing !== undefined) return notFound(missing);
      const id = `chatcmpl-${tag}${++made}`;
      if (store === true) owners.set(id, keyOf(request));
      if (stream === true) {
        const chunk = (delta: Record<string, unknown>, finish: string | null) => `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created: 0, model: 'gpt-4.1', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
        return new HttpResponse(chunk({ role: 'assistant', content: 'read it' }, null) + chunk({}, 'stop') + 'data: [DONE]\n\n', { headers: { 'content-type': 'text/event-stream' } });
      }
      return HttpResponse.json({ id, object: 'chat.completion', created: 0, model: 'gpt-4.1', choices: [{ index: 0, message: { role: 'assistant', content: 'read it', refusal: null }, finish_reason: 'stop', logprobs: null }], usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 } });
    }),
    // A stored chat completion: retrieved, its messages listed, updated, deleted with its key only.
    http.get(`${BASE}/chat/completions/:id`, ({ request, params }) => owned(request, params.id as string, () => HttpResponse.json({ id: params.id, object: 'chat.completion', created: 0, model: 'gpt-4.1', choices: [] }))),
    http.get(`${BASE}/chat/completions/:id/messages`, ({ request, params }) => owned(request, params.id as string, () => HttpResponse.json({ object: 'list', data: [], first_id: null, last_id: null, has_more: false }))),
    http.post(`${BASE}/chat/completions/:id`, ({ request, params }) => owned(request, params.id as string, () => HttpResponse.json({ id: params.id, object: 'chat.completion', created: 0, model: 'gpt-4.1', choices: [] }))),
    http.delete(`${BASE}/chat/completions/:id`, ({ request, params }) => owned(request, params.id as string, () => HttpResponse.json({ id: params.id, object: 'chat.completion.deleted', deleted: true }))),
    http.post(`${BASE}/responses`, async ({ request }) => {
      const { conversation } = (await request.json()) as { conversation?: string | { id: string } };
      const id = typeof conversation === 'string' ? conversation : conversation?.id;
      const answer = () => create(request, 'resp_', { object: 'response', status: 'completed', model: 'gpt-4.1', output: [], error: null });
      return id === undefined ? answer() : owned(request, id, answer);
    }),
  ];
  return { handlers, owners };
}

/**
 * A manager over one provider at `base` of three keys (`k0` … `k2`),
 * round-robin (consecutive requests go to different keys, each its own
 * project on {@link projects}), with its client and its `attempt` events;
 * closed by `cleanups`.
 */
export function threeKeys(base: string, cleanups: (() => unknown)[], options: Partial<KeyManagerOptions> = {}) {
  const manager = new KeyManager({
    providers: { one: { baseURL: base, keys: [0, 1, 2].map((i) => ({ key: fakeKey('proj'), id: `k${i}` })) } },
    keySelection: 'round-robin',
    retry: { baseDelayMs: 0 },
    ...options,
  });
  cleanups.push(() => manager.close());
  const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 }));
  return { manager, client, attempts: record(manager, 'attempt') };
}
