/**
 * The object affinity map alone (src/routing/affinity.ts): its bound, its
 * time to live, and which requests name an object or create one.
 */
import { describe, expect, test } from 'vitest';
import { CHAT, creation, isChat, NAMED, namedObjects, ObjectAffinity, objectCollection } from '../../src/routing/affinity';

const T0 = 1_700_000_000_000;

describe('ObjectAffinity', () => {
  test('holds at most maxIds ids: 10,000 remembered with room for 100 leave the newest 100', () => {
    const affinity = new ObjectAffinity({ maxIds: 100, ttlMs: 60_000 });
    for (let i = 0; i < 10_000; i++) affinity.remember(`resp_${i}`, 'one', `k${i % 7}`, T0);
    expect(affinity.size).toBe(100);
    expect(affinity.home('resp_9899', T0)).toBeUndefined();
    expect(affinity.home('resp_9900', T0)).toEqual({ provider: 'one', keyId: `k${9900 % 7}`, kind: 'response' });
  });

  test('an id looked up is the most recently used: it outlives ids remembered after it', () => {
    const affinity = new ObjectAffinity({ maxIds: 2, ttlMs: 60_000 });
    affinity.remember('resp_a', 'one', 'a', T0);
    affinity.remember('resp_b', 'one', 'b', T0);
    affinity.home('resp_a', T0);
    affinity.remember('resp_c', 'one', 'c', T0);
    expect([affinity.home('resp_a', T0)?.keyId, affinity.home('resp_b', T0), affinity.home('resp_c', T0)?.keyId]).toEqual(['a', undefined, 'c']);
  });

  test('an id is forgotten ttlMs after it was remembered', () => {
    const affinity = new ObjectAffinity({ maxIds: 10, ttlMs: 1_000 });
    affinity.remember('resp_a', 'two', 'x', T0);
    expect(affinity.home('resp_a', T0 + 999)).toEqual({ provider: 'two', keyId: 'x', kind: 'response' });
    expect(affinity.home('resp_a', T0 + 1_000)).toBeUndefined();
  });

  test.each([undefined, null, 42, ''])('an id that is no non-empty string (%j) is not remembered', (id) => {
    const affinity = new ObjectAffinity({ maxIds: 10, ttlMs: 1_000 });
    affinity.remember(id, 'one', 'a', T0);
    expect(affinity.size).toBe(0);
  });
});

/** The ids namedObjects found, as a list of their own. */
function namedIds(...args: Parameters<typeof namedObjects>): string[] {
  return NAMED.slice(0, namedObjects(...args));
}

describe('which requests name or create an object', () => {
  test.each([
    ['/responses', { previous_response_id: 'resp_1' }, ['resp_1']],
    ['/responses', { input: 'hi' }, []],
    ['/responses/resp_2', undefined, ['resp_2']],
    ['/responses/resp_2?include[]=x', undefined, ['resp_2']],
    ['/responses/resp_3/input_items?limit=5', undefined, ['resp_3']],
    ['/responses/resp_4/cancel', undefined, ['resp_4']],
    ['/responses/resp%2F5', undefined, ['resp/5']],
    ['/responses/%E0%A4%A', undefined, []],
    // `input_tokens` is looked up and not found: the request follows resp_6.
    ['/responses/input_tokens', { previous_response_id: 'resp_6' }, ['input_tokens', 'resp_6']],
    ['/responses?x=1', undefined, []],
    ['/chat/completions', { previous_response_id: 'resp_7' }, undefined],
    ['/responsesx/resp_8', undefined, undefined],
    ['/responses', { conversation: 'conv_1' }, ['conv_1']],
    ['/responses', { conversation: { id: 'conv_2' } }, ['conv_2']],
    ['/responses', { conversation: null }, []],
    ['/files/file-1', undefined, ['file-1']],
    ['/files/file-2/content', undefined, ['file-2']],
    ['/files', undefined, []],
    ['/files?purpose=batch', undefined, []],
    ['/batches', { input_file_id: 'file-3' }, ['file-3']],
    ['/batches/batch_1/cancel', undefined, ['batch_1']],
    ['/conversations/conv_3/items?limit=2', undefined, ['conv_3']],
    ['/conversations/conv_4/items', { items: [] }, ['conv_4']],
    ['/uploads/upload_1/complete', { part_ids: [] }, ['upload_1']],
    ['/chat/completions', { input_file_id: 'file-4', conversation: 'conv_5' }, undefined],
    ['/filesx/file-5', undefined, undefined],
    ['/fine_tuning/jobs', { training_file: 'file-6', validation_file: 'file-7' }, ['file-6', 'file-7']],
    ['/fine_tuning/jobs/ftjob-1/events', undefined, ['ftjob-1']],
    ['/fine_tuning/checkpoints/x/permissions', undefined, undefined],
    ['/vector_stores', { file_ids: ['file-8', 'file-9'] }, ['file-8', 'file-9']],
    ['/vector_stores/vs_1/files', { file_id: 'file-10' }, ['vs_1', 'file-10']],
    ['/vector_stores/vs_2/file_batches', { files: [{ file_id: 'file-11' }, null] }, ['vs_2', 'file-11']],
    ['/vector_stores/vs_3/files/file-12', undefined, ['vs_3']],
    ['/v', undefined, undefined],
    ['', undefined, undefined],
  ])('%s with %j names %j', (path, json, named) => {
    const collection = objectCollection(path);
    expect(collection === undefined ? undefined : namedIds(path, collection, json as Record<string, unknown> | undefined, true)).toEqual(named);
  });

  const message = (content: unknown) => ({ role: 'user', content });
  test.each([
    ['a response\'s input_file and input_image parts', '/responses', { input: [message([{ type: 'input_text', text: 'x' }, { type: 'input_file', file_id: 'file-a' }]), { type: 'message', role: 'user', content: [{ type: 'input_image', file_id: 'file-b' }] }] }, ['file-a', 'file-b']],
    ['a function call output\'s file', '/responses', { input: [{ type: 'function_call_output', call_id: 'c', output: [{ type: 'input_file', file_id: 'file-c' }] }] }, ['file-c']],
    ['file_search and code_interpreter tools', '/responses', { input: 'x', tools: [{ type: 'file_search', vector_store_ids: ['vs_a'] }, { type: 'code_interpreter', container: { type: 'auto', file_ids: ['file-d'] } }, { type: 'code_interpreter', container: 'cntr_1' }] }, ['vs_a', 'file-d']],
    ['chat file parts (text and image parts, plain strings skipped)', CHAT, { messages: [message('hi'), message([{ type: 'text', text: 'x' }, { type: 'file', file: { file_id: 'file-e' } }, { type: 'file', file: { file_data: 'data:' } }]), null] }, ['file-e']],
    ['a conversation\'s items', '/conversations', { items: [message([{ type: 'input_file', file_id: 'file-f' }])] }, ['file-f']],
  ])('with content: %s', (_what, collection, json, named) => {
    expect(namedIds(collection, collection, json as Record<string, unknown>, true)).toEqual(named);
  });

  test('without content (no file or vector store remembered), input, messages and tools are not looked into', () => {
    const json = { previous_response_id: 'resp_1', input: [message([{ type: 'input_file', file_id: 'file-a' }])], tools: [{ type: 'file_search', vector_store_ids: ['vs_a'] }] };
    expect(namedIds('/responses', '/responses', json, false)).toEqual(['resp_1']);
  });

  test.each([
    ['POST', '/chat/completions', true],
    ['POST', '/chat/completions?x=1', true],
    ['GET', '/chat/completions', false],
    ['POST', '/chat/completions/chatcmpl-1', false],
    ['POST', '/chat/completionsx', false],
  ])('%s %s is a chat completion whose messages may name files: %s', (method, path, chat) => {
    expect(isChat(method, path)).toBe(chat);
  });

  test.each([
    ['POST', '/responses', 'response'],
    ['POST', '/responses?stream=true', 'response'],
    ['GET', '/responses', undefined],
    ['POST', '/responses/resp_1/cancel', undefined],
    ['POST', '/responses/input_tokens', undefined],
    ['POST', '/chat/completions', undefined],
    ['POST', '/files', 'file'],
    ['POST', '/batches', 'batch'],
    ['POST', '/batches/batch_1/cancel', undefined],
    ['POST', '/conversations', 'conversation'],
    ['POST', '/conversations/conv_1/items', undefined],
    ['POST', '/uploads', 'upload'],
    ['POST', '/uploads/upload_1/parts', undefined],
    ['POST', '/uploads/upload_1/complete', 'file (the reply\'s file)'],
    ['POST', '/uploads/upload_1/complete?x=1', 'file (the reply\'s file)'],
    ['POST', '/vector_stores', 'vector_store'],
    ['POST', '/vector_stores/vs_1/files', undefined],
    ['POST', '/fine_tuning/jobs', 'fine_tuning_job'],
    ['POST', '/fine_tuning/jobs/ftjob-1/cancel', undefined],
    ['POST', '/embeddings', undefined],
  ])('%s %s creates: %s', (method, path, created) => {
    const made = creation(method, path, objectCollection(path));
    expect(made === undefined ? undefined : made.inFile ? `${made.kind} (the reply's file)` : made.kind).toBe(created);
  });
});
