/**
 * A provider `baseURL` without a path (`https://api.openai.com`) is most
 * likely missing its version segment: keyplex warns once (a process warning
 * with code KEYPLEX_BASEURL_WITHOUT_PATH) and accepts it, since some gateways
 * do serve at their root. A baseURL that is an endpoint's own URL
 * (`…/v1/chat/completions`) is refused: requests would repeat the path.
 */
import { expect, test, vi } from 'vitest';
import { KeyManager } from '../../src/index';
import { fakeKey } from '../support/fake-keys';
import { closeAfterEach } from '../support/scaffold';

const managers = closeAfterEach();

function make(baseURL: string): void {
  managers.push(new KeyManager({ providers: { openai: { baseURL, keys: [fakeKey()] } } }));
}

function warnings(spy: { mock: { calls: unknown[][] } }): { message: string; code: unknown }[] {
  return spy.mock.calls.map(([message, options]) => ({ message: String(message), code: (options as { code?: unknown } | undefined)?.code }));
}

test('a baseURL without a path warns once, naming the field and the likely fix', () => {
  const spy = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
  make('https://api.openai-nopath.test');
  make('https://api.openai-nopath.test/');

  const seen = warnings(spy);
  expect(seen).toHaveLength(1);
  expect(seen[0]!.code).toBe('KEYPLEX_BASEURL_WITHOUT_PATH');
  expect(seen[0]!.message).toMatch(/providers\.openai\.baseURL/);
  expect(seen[0]!.message).toMatch(/\/v1/);
});

test('a baseURL with a path does not warn', () => {
  const spy = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
  make('https://api.openai-path.test/v1');
  make('https://gateway-path.test/openai');

  expect(warnings(spy)).toEqual([]);
});

test.each([
  ['https://api.openai-endpoint.test/v1/chat/completions', '"/chat/completions"'],
  ['https://api.openai-endpoint.test/v1/responses/', '"/responses"'],
  ['https://gateway-endpoint.test/openai/v1/embeddings', '"/embeddings"'],
])('a baseURL that is an endpoint URL (%s) is refused, naming the path to leave out', (baseURL, path) => {
  expect(() => make(baseURL)).toThrow(expect.objectContaining({ code: 'invalid_config', field: 'providers.openai.baseURL' }));
  expect(() => make(baseURL)).toThrow(`got a URL ending in the endpoint path ${path}, which requests would repeat. Leave it out`);
});

test('a base whose last segment only contains an endpoint name is accepted', () => {
  make('https://gateway-endpoint.test/my-completions-proxy/v1');
  make('https://gateway-endpoint.test/responses-api');
});
