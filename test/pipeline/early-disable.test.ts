/**
 * A key rejected by its status (401, 402) is disabled, and the disable
 * handed to the state store, as soon as the answer's status is in: before
 * its body is read (a slow error body must not delay what other replicas
 * are told; issue 11, "Replicas share discoveries first"). A 403 waits for
 * its body, which says whether the key is refused or only its use of one
 * model (`model_not_found`, test/resilience/sdk-model-access.test.ts).
 */
import OpenAI from 'openai';
import { afterEach, expect, test } from 'vitest';
import { KeyManager, MemoryStore, type StateStore, type StoreKeyStatus } from '../../src/index';
import { fakeKey } from '../support/fake-keys';
import { chatReply } from '../support/upstream';

const BASE = 'https://one.test/v1';
const BODY = { model: 'gpt-4.1', messages: [{ role: 'user' as const, content: 'hi' }] };
const managers: KeyManager[] = [];
afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.close()));
});

test.each([
  [401, 'unauthorized'],
  [402, 'quota'],
] as const)('%i: key:disabled and the store write come before the error body is read', async (status, reason) => {
  const [bad, good] = [fakeKey('bad'), fakeKey('good')];
  const written: StoreKeyStatus[] = [];
  const inner = new MemoryStore();
  // A store that records key statuses as they are written.
  const store: StateStore = {
    open(listener) {
      const s = inner.open(listener);
      return {
        shared: s.shared,
        reserve: (key, limits, tokens) => s.reserve(key, limits, tokens),
        adjust: (key, limits, requests, tokens) => s.adjust(key, limits, requests, tokens),
        setKey: (key, value) => {
          written.push(value);
          return s.setKey(key, value);
        },
        setCircuit: (circuit, snapshot) => s.setCircuit(circuit, snapshot),
        addSpend: (spend) => s.addSpend(spend),
        load: (budgets) => s.load(budgets),
        close: () => s.close(),
      };
    },
  };
  const seenAtRead: { events: number; writes: number }[] = [];
  const manager = new KeyManager({
    providers: { one: { baseURL: BASE, keys: [{ key: bad, id: 'bad' }, { key: good, id: 'good' }] } },
    keySelection: { select: (keys) => keys[0] },
    retry: { baseDelayMs: 0 },
    store,
    fetch: async (_input, init) => {
      if (new Headers(init?.headers).get('authorization') !== `Bearer ${bad}`) return chatReply('gpt-4.1', 'ok', { prompt: 1, completion: 1 });
      // Pulled only when read (no read-ahead).
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          seenAtRead.push({ events: disabled.length, writes: written.length });
          controller.enqueue(new TextEncoder().encode(JSON.stringify({ error: { message: 'no', type: 'invalid_request_error', code: null } })));
          controller.close();
        },
      }, { highWaterMark: 0 });
      return new Response(body, { status, headers: { 'content-type': 'application/json' } });
    },
  });
  managers.push(manager);
  const disabled: unknown[] = [];
  manager.on('key:disabled', (e) => void disabled.push(e));
  const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
  await client.chat.completions.create(BODY);
  expect(disabled).toEqual([expect.objectContaining({ keyId: 'bad', reason })]);
  expect(written).toEqual([{ disabled: reason, cooldownUntil: 0 }]);
  expect(seenAtRead.length).toBeGreaterThan(0);
  expect(seenAtRead[0]).toEqual({ events: 1, writes: 1 });
});
