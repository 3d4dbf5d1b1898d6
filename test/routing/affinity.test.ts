/**
 * The object affinity map alone (src/routing/affinity.ts): its bound, its
 * time to live, and which requests name an object or create one.
 */
import { describe, expect, test } from 'vitest';
import { createsObject, namedObject, ObjectAffinity, objectCollection } from '../../src/routing/affinity';

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

describe('which requests name or create an object', () => {
  test.each([
    ['/responses', { previous_response_id: 'resp_1' }, 'resp_1'],
    ['/responses', { input: 'hi' }, undefined],
    ['/responses/resp_2', undefined, 'resp_2'],
    ['/responses/resp_2?include[]=x', undefined, 'resp_2'],
    ['/responses/resp_3/input_items?limit=5', undefined, 'resp_3'],
    ['/responses/resp_4/cancel', undefined, 'resp_4'],
    ['/responses/resp%2F5', undefined, 'resp/5'],
    ['/responses/%E0%A4%A', undefined, undefined],
    ['/responses/input_tokens', { previous_response_id: 'resp_6' }, 'resp_6'],
    ['/responses?x=1', undefined, undefined],
    ['/chat/completions', { previous_response_id: 'resp_7' }, undefined],
    ['/responsesx/resp_8', undefined, undefined],
    ['/responses', { conversation: 'conv_1' }, 'conv_1'],
    ['/responses', { conversation: { id: 'conv_2' } }, 'conv_2'],
    ['/responses', { conversation: null }, undefined],
    ['/files/file-1', undefined, 'file-1'],
    ['/files/file-2/content', undefined, 'file-2'],
    ['/files', undefined, undefined],
    ['/files?purpose=batch', undefined, undefined],
    ['/batches', { input_file_id: 'file-3' }, 'file-3'],
    ['/batches/batch_1/cancel', undefined, 'batch_1'],
    ['/conversations/conv_3/items?limit=2', undefined, 'conv_3'],
    ['/conversations/conv_4/items', { items: [] }, 'conv_4'],
    ['/uploads/upload_1/complete', { part_ids: [] }, 'upload_1'],
    ['/chat/completions', { input_file_id: 'file-4', conversation: 'conv_5' }, undefined],
    ['/filesx/file-5', undefined, undefined],
    ['/fine_tuning/jobs', { training_file: 'file-6' }, undefined],
  ])('%s with %j names %j', (path, json, named) => {
    const collection = objectCollection(path);
    expect(collection === undefined ? undefined : namedObject(path, collection, json as Record<string, unknown> | undefined)).toBe(named);
  });

  test.each([
    ['POST', '/responses', true],
    ['POST', '/responses?stream=true', true],
    ['GET', '/responses', false],
    ['POST', '/responses/resp_1/cancel', false],
    ['POST', '/responses/input_tokens', false],
    ['POST', '/chat/completions', false],
    ['POST', '/files', true],
    ['POST', '/batches', true],
    ['POST', '/batches/batch_1/cancel', false],
    ['POST', '/conversations', true],
    ['POST', '/conversations/conv_1/items', false],
    ['POST', '/uploads', true],
    ['POST', '/uploads/upload_1/parts', false],
    ['POST', '/embeddings', false],
  ])('%s %s creates an object: %s', (method, path, creates) => {
    expect(createsObject(method, path, objectCollection(path))).toBe(creates);
  });
});
