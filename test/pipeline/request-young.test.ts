/**
 * A finished request's objects die young: listening to the caller's signal
 * keeps none of them through V8's young-generation collections. While the
 * request's abort state listened as an object (`handleEvent`), every
 * finished request through `manager.fetch` with a caller's signal (the SDK
 * always gives one) was kept through scavenges and promoted until the next
 * full collection. Counted, not timed: the old generation's growth across
 * two young collections after requests that have all ended.
 */
import { expect, test } from 'vitest';
import { KeyManager } from '../../src/index';
import { fakeKey } from '../support/fake-keys';
import { promotedBy } from '../support/young';

const REPLY = JSON.stringify({ id: 'c', object: 'chat.completion', created: 1, model: 'gpt-4.1', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }], usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 } });
const BODY = JSON.stringify({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] });

test("JSON requests with a caller's signal are not kept through young collections by listening to it", async () => {
  const manager = new KeyManager({
    providers: { one: { baseURL: 'https://one.test/v1', keys: [fakeKey('one')] } },
    fetch: async () => new Response(REPLY, { headers: { 'content-type': 'application/json' } }),
  });
  const request = async () => {
    const response = await manager.fetch('https://one.test/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: BODY, signal: new AbortController().signal });
    await response.text();
  };
  try {
    // With the abort state as the listener object, each request kept ~1.9 KB this way (~1.5 MB for 800); now ~0.45 KB.
    expect(await promotedBy(request, 200, 800)).toBeLessThan(0.8 * (1 << 20));
  } finally {
    await manager.close();
  }
});
