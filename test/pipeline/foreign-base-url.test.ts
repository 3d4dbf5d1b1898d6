/**
 * `manager.fetch` given to another library whose base URL is not
 * `KEYPLEX_BASE_URL` but has a path prefix of its own (OpenRouter's
 * `https://openrouter.ai/api/v1`): a configured provider's base URL is
 * routed as keyplex's own; any other base with a version segment in its
 * path is refused unsent with a keyplex error that says to use
 * `KEYPLEX_BASE_URL`, instead of the upstream's bare 404.
 */
import { expect, test } from 'vitest';
import { KEYPLEX_BASE_URL } from '../../src/index';
import { NO_BACKOFF, useManagers } from '../support/scaffold';
import { fakeKey } from '../support/fake-keys';
import { chatReply, errorReply, provider } from '../support/upstream';
import '../support/setup';

const ROUTER = 'https://router.test/api/v1';
const manage = useManagers({ ...NO_BACKOFF, providers: { router: { baseURL: ROUTER, keys: [fakeKey('router')] } } });
const body = JSON.stringify({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] });
const post = { method: 'POST', headers: { 'content-type': 'application/json' }, body };

/** The router answers its own endpoints only, as a real one does. */
function router() {
  return provider(ROUTER, (call) => (call.path === '/chat/completions' ? chatReply('gpt-4.1') : errorReply(404, null, {}, 'Not Found')));
}

test('a call on a configured provider\'s base URL (with its path prefix) is routed as one on KEYPLEX_BASE_URL', async () => {
  const seen = router();
  const { manager } = manage();
  const reply = await manager.fetch(`${ROUTER}/chat/completions`, post);
  expect(reply.status).toBe(200);
  expect(seen.map((c) => c.path)).toEqual(['/chat/completions']);
});

test('a call on another base URL with a version segment in its path is refused unsent, saying to use KEYPLEX_BASE_URL', async () => {
  const seen = router();
  const { manager } = manage();
  const reply = await manager.fetch('https://gateway.test/api/v1/chat/completions?key=secret-query', post);
  const error = ((await reply.json()) as { error: { code: string; message: string } }).error;
  expect({ status: reply.status, code: error.code, sent: seen.length }).toEqual({ status: 400, code: 'unknown_base_url', sent: 0 });
  expect(error.message).toContain('KEYPLEX_BASE_URL');
  expect(error.message).toContain(KEYPLEX_BASE_URL);
  expect(error.message).not.toContain('secret-query');
});

test('a call on KEYPLEX_BASE_URL and one on a plain /v1 base route as before', async () => {
  const seen = router();
  const { manager } = manage();
  expect((await manager.fetch(`${KEYPLEX_BASE_URL}/chat/completions`, post)).status).toBe(200);
  expect((await manager.fetch('https://api.other.test/v1/chat/completions', post)).status).toBe(200);
  expect(seen.map((c) => c.path)).toEqual(['/chat/completions', '/chat/completions']);
});
