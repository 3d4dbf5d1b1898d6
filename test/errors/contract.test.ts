/**
 * The error contract, from the app's side (README "Errors"): for every way a
 * request can fail in keyplex, through the real SDK — the class the app
 * catches, the `code` it tests, and a message it can log that says what
 * happened. One row per path; the README's table is this table
 * (`SHOW_ERRORS=1 npx vitest run test/errors` prints each row's class, code and message).
 */
import OpenAI, { toFile } from 'openai';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { useManagers } from '../support/scaffold';
import { ConfigError, getKeyplexDetails, isKeyplexError, KeyManager, KeyplexError, keyplex, MissingPeerError, RequestOptionsError, type KeyManagerOptions, type KeyplexErrorCode } from '../../src/index';
import { instrument } from '../../src/otel/index';
import { replacePeerRequire } from '../../src/peer';
import * as publicApi from '../../src/index';
import { HttpResponse } from 'msw';
import { chatReply, deferred, errorReply, keyRing, provider, responseObject, type Deferred } from '../support/upstream';
import '../support/setup';
import { fakeClock, until } from '../support/time';
import { caught } from '../support/caught';

const ONE = 'https://api.one.test/v1';
const TWO = 'https://api.two.test/v1';
const MODEL = 'gpt-4.1';
const BODY = { model: MODEL, messages: [{ role: 'user' as const, content: 'hi' }] };

const managed = useManagers();
const holds: Deferred<'reset'>[] = [];

function manage(options: Partial<KeyManagerOptions>, ids: string[] = ['a', 'b']) {
  const ring = keyRing(...ids);
  return { ring, ...managed({ providers: { one: { baseURL: ONE, keys: ring.keys } }, ...options }) };
}

afterEach(() => {
  for (const hold of holds.splice(0)) hold.resolve('reset');
});

function hang(): Promise<'reset'> {
  const hold = deferred<'reset'>();
  holds.push(hold);
  return hold.promise;
}

interface Row {
  path: string;
  /** The class the app catches. */
  catches: abstract new (...args: never[]) => Error;
  code: KeyplexErrorCode;
  /** What the message must say (each pattern). */
  says: RegExp[];
  run: () => Promise<Error>;
}

const rows: Row[] = [
  {
    path: 'every key revoked (401)',
    catches: OpenAI.AuthenticationError,
    code: 'no_key_available',
    says: [/^401 keyplex:/, /'one'/, /tried 2 keys/, /401/, /disabled/, /enableKey|addKey/, /Incorrect API key provided/],
    run: async () => {
      provider(ONE, () => errorReply(401, 'invalid_api_key', {}, 'Incorrect API key provided: ***'));
      const { client } = manage({});
      return caught(() => client.chat.completions.create(BODY));
    },
  },
  {
    path: 'every key cooling down past the deadline',
    catches: OpenAI.RateLimitError,
    code: 'no_key_available',
    says: [/^429 keyplex:/, /'one'/, /2 keys cooling down/, /60 s/, /deadline/],
    run: async () => {
      fakeClock();
      provider(ONE, () => errorReply(429, 'rate_limit_exceeded', { 'retry-after-ms': '60000' }, 'Rate limit reached'));
      const { client } = manage({ deadlineMs: 5_000 });
      return caught(() => client.chat.completions.create(BODY));
    },
  },
  {
    path: 'every key disabled before the request',
    catches: OpenAI.InternalServerError,
    code: 'no_key_available',
    says: [/^503 keyplex:/, /'one'/, /2 keys disabled \(manual\)/, /enableKey|addKey/],
    run: async () => {
      provider(ONE, () => chatReply(MODEL));
      const { client, manager } = manage({});
      manager.disableKey('one', 'a');
      manager.disableKey('one', 'b');
      return caught(() => client.chat.completions.create(BODY));
    },
  },
  {
    path: 'a request larger than every key’s tokens-per-day limit (no tpm configured)',
    catches: OpenAI.InternalServerError,
    code: 'no_key_available',
    says: [/^503 keyplex:/, /larger than a tokens limit of theirs \(`tpm`, `tpd` or a `tokens` window/],
    run: async () => {
      const seen = provider(ONE, () => chatReply(MODEL));
      const { client } = managed({ providers: { one: { baseURL: ONE, keys: keyRing('a').keys, tpd: 100 } } });
      const error = await caught(() => client.chat.completions.create({ ...BODY, max_tokens: 1_000 }));
      expect(seen).toHaveLength(0);
      expect(getKeyplexDetails(error)?.message).not.toMatch(/tokens-per-minute|raise `tpm`/);
      return error;
    },
  },
  {
    path: 'a request larger than every key’s tokens-per-minute limit',
    catches: OpenAI.InternalServerError,
    code: 'no_key_available',
    says: [/^503 keyplex:/, /'one'/, /larger than a tokens limit of theirs \(`tpm`, `tpd` or a `tokens` window/, /raise that limit/],
    run: async () => {
      const seen = provider(ONE, () => chatReply(MODEL));
      const ring = keyRing('a');
      const { client } = managed({ providers: { one: { baseURL: ONE, keys: ring.keys, tpm: 100 } } });
      const error = await caught(() => client.chat.completions.create({ ...BODY, max_tokens: 1_000 }));
      expect(seen).toHaveLength(0);
      return error;
    },
  },
  {
    path: 'every attempt answered 5xx',
    catches: OpenAI.InternalServerError,
    code: 'upstream_error',
    says: [/^503 keyplex:/, /tried 2 keys of 'one' in 3 attempts \(3 × 503 server_error\)/, /Last upstream answer: overloaded/],
    run: async () => {
      provider(ONE, () => errorReply(503, 'service_unavailable', {}, 'overloaded'));
      const { client } = manage({ retry: { maxAttempts: 3, baseDelayMs: 0 } });
      return caught(() => client.chat.completions.create(BODY));
    },
  },
  {
    path: "no key's project may use the model (403 model_not_found from every key)",
    catches: OpenAI.PermissionDeniedError,
    code: 'upstream_error',
    says: [/^403 keyplex:/, /tried 2 keys of 'one' in 2 attempts \(2 × 403 not_found\)/, /Last upstream answer: Project `proj_fake0001` does not have access to model `gpt-4.1`/],
    run: async () => {
      provider(ONE, () => errorReply(403, 'model_not_found', {}, 'Project `proj_fake0001` does not have access to model `gpt-4.1`'));
      const { client } = manage({});
      return caught(() => client.chat.completions.create(BODY));
    },
  },
  {
    path: 'the upstream unreachable on every attempt',
    catches: OpenAI.InternalServerError,
    code: 'upstream_error',
    says: [/^502 keyplex:/, /connection failed/, /'one'/, /connection\)/],
    run: async () => {
      provider(ONE, () => 'reset');
      const { client } = manage({ retry: { maxAttempts: 2, baseDelayMs: 0 } });
      return caught(() => client.chat.completions.create(BODY));
    },
  },
  {
    path: 'a caller error (400) passes through as the upstream said it',
    catches: OpenAI.BadRequestError,
    code: 'upstream_error',
    says: [/^400 Invalid 'messages'/],
    run: async () => {
      provider(ONE, () => errorReply(400, 'invalid_request_error', {}, "Invalid 'messages'"));
      const { client } = manage({});
      return caught(() => client.chat.completions.create(BODY));
    },
  },
  {
    path: 'the request deadline passed',
    catches: OpenAI.InternalServerError,
    code: 'deadline_exceeded',
    says: [/^504 keyplex:/, /deadline of 1000 ms/, /'one'/, /no answer/, /deadlineMs/],
    run: async () => {
      fakeClock();
      provider(ONE, () => hang());
      const { client } = manage({ attemptTimeoutMs: 60_000 });
      const pending = caught(() => client.chat.completions.create(BODY, keyplex.options({ deadlineMs: 1_000 })));
      await vi.advanceTimersByTimeAsync(1_000);
      return pending;
    },
  },
  {
    path: 'the lane is full',
    catches: OpenAI.RateLimitError,
    code: 'lane_full',
    says: [/^429 keyplex:/, /lane 'standard' is full/, /maxQueue/],
    run: async () => {
      const seen = provider(ONE, () => hang());
      const { client } = manage({ lanes: { standard: { concurrency: 1, maxQueue: 0 } } });
      void client.chat.completions.create(BODY).catch(() => {});
      await until(() => seen.length === 1, 'first request sent');
      return caught(() => client.chat.completions.create(BODY));
    },
  },
  {
    path: 'the request waited in its lane past queueTimeoutMs',
    catches: OpenAI.InternalServerError,
    code: 'queue_timeout',
    says: [/^503 keyplex:/, /lane 'standard'/, /queueTimeoutMs/],
    run: async () => {
      fakeClock();
      const seen = provider(ONE, () => hang());
      const { client } = manage({ lanes: { standard: { concurrency: 1, maxQueue: 5, queueTimeoutMs: 1_000 } } });
      void client.chat.completions.create(BODY).catch(() => {});
      await until(() => seen.length === 1, 'first request sent');
      const pending = caught(() => client.chat.completions.create(BODY));
      await vi.advanceTimersByTimeAsync(1_000);
      return pending;
    },
  },
  {
    path: 'an unknown lane',
    catches: OpenAI.BadRequestError,
    code: 'unknown_lane',
    says: [/^400 keyplex:/, /unknown lane 'nope'/, /'standard'/],
    run: async () => {
      provider(ONE, () => chatReply(MODEL));
      const { client } = manage({});
      return caught(() => client.chat.completions.create(BODY, keyplex.options({ lane: 'nope' })));
    },
  },
  {
    path: 'another library gives manager.fetch a base URL with a path prefix of its own',
    catches: OpenAI.BadRequestError,
    code: 'unknown_base_url',
    says: [/^400 keyplex:/, /https:\/\/gateway\.test\/api\/v1\/chat\/completions/, /KEYPLEX_BASE_URL/, /nothing was sent/],
    run: async () => {
      provider(ONE, () => chatReply(MODEL));
      const { manager } = manage({});
      const other = new OpenAI({ apiKey: 'managed-by-keyplex', baseURL: 'https://gateway.test/api/v1', fetch: manager.fetch, maxRetries: 0 });
      return caught(() => other.chat.completions.create(BODY));
    },
  },
  {
    path: 'a budget cap is reached',
    catches: OpenAI.RateLimitError,
    code: 'budget_exceeded',
    says: [/^429 keyplex:/, /budget '.*' would be exceeded/, /limitUsd/],
    run: async () => {
      provider(ONE, () => chatReply(MODEL, 'hello', { prompt: 1_000_000, completion: 1_000_000 }));
      const { client } = manage({ budgets: [{ scope: { overall: true }, limitUsd: 1, window: 'day' }] });
      await client.chat.completions.create(BODY);
      return caught(() => client.chat.completions.create(BODY));
    },
  },
  {
    path: "a budget cap is reached by a first request's own estimate",
    catches: OpenAI.RateLimitError,
    code: 'budget_exceeded',
    says: [/^429 keyplex:/, /this request's estimated \$0\.00\d\d on top of \$0\.0000 spent of its \$0\.0010 per-day cap/, /the request alone is estimated above the cap, so waiting will not help/],
    run: async () => {
      provider(ONE, () => chatReply(MODEL));
      const { client } = manage({ budgets: [{ scope: { overall: true }, limitUsd: 0.001, window: 'day' }] });
      return caught(() => client.chat.completions.create(BODY));
    },
  },
  {
    path: 'the manager was closed',
    catches: OpenAI.InternalServerError,
    code: 'manager_closed',
    says: [/^503 keyplex:/, /KeyManager was closed/],
    run: async () => {
      provider(ONE, () => chatReply(MODEL));
      const { client, manager } = manage({});
      await manager.close();
      return caught(() => client.chat.completions.create(BODY));
    },
  },
  {
    path: 'the manager was closed while the request was under way',
    catches: OpenAI.InternalServerError,
    code: 'manager_closed',
    says: [/^503 keyplex:/, /close\(\) ended this request while it was under way/, /close\(\{ drain: true \}\)/],
    run: async () => {
      let arrived!: () => void;
      const sent = new Promise<void>((resolve) => (arrived = resolve));
      provider(ONE, () => (arrived(), new Promise<Response>(() => undefined)));
      const { client, manager } = manage({});
      const pending = caught(() => client.chat.completions.create(BODY));
      await sent;
      await manager.close();
      return pending;
    },
  },
  {
    path: 'a malformed request option',
    catches: RequestOptionsError,
    code: 'invalid_request_options',
    says: [/`deadlineMs`/],
    run: async () => {
      provider(ONE, () => chatReply(MODEL));
      const { client } = manage({});
      return caught(async () => client.chat.completions.create(BODY, keyplex.options({ deadlineMs: -1 })));
    },
  },
  {
    path: 'an unknown provider in the request options',
    catches: OpenAI.BadRequestError,
    code: 'invalid_request_options',
    says: [/^400 /, /`provider`/, /nope/, /'one'/, /Nothing was sent/],
    run: async () => {
      const seen = provider(ONE, () => chatReply(MODEL));
      const { client } = manage({});
      const error = await caught(() => client.chat.completions.create(BODY, keyplex.options({ provider: 'nope' })));
      expect(seen).toHaveLength(0);
      return error;
    },
  },
  {
    path: 'a request hook threw',
    catches: OpenAI.InternalServerError,
    code: 'hook_failed',
    says: [/^500 keyplex:/, /beforeAttempt\[0\] hook threw/, /nothing was sent/, /blocked: contains a card number/, /Fix the hook/],
    run: async () => {
      const seen = provider(ONE, () => chatReply(MODEL));
      const { client } = manage({ hooks: { beforeAttempt: () => { throw new Error('blocked: contains a card number'); } } });
      const error = await caught(() => client.chat.completions.create(BODY));
      expect(seen).toHaveLength(0);
      return error;
    },
  },
  {
    path: 'a custom routing strategy threw (or gave back other than the deployments it was given)',
    catches: OpenAI.InternalServerError,
    code: 'hook_failed',
    says: [/^500 keyplex:/, /routing strategy for model 'gpt-4\.1' failed/, /request is not sent/, /RoutingStrategy\.order threw: ranking service down/, /each once, best first/],
    run: async () => {
      const seen = [provider(ONE, () => chatReply(MODEL)), provider(TWO, () => chatReply(MODEL))];
      const ring = keyRing('a', 'b');
      const strategy = { order: () => { throw new Error('ranking service down'); } };
      const { client } = managed({ providers: { one: { baseURL: ONE, keys: [ring.keys[0]!] }, two: { baseURL: TWO, keys: [ring.keys[1]!] } }, routing: { strategy } });
      const error = await caught(() => client.chat.completions.create(BODY));
      expect(seen.flat()).toHaveLength(0);
      return error;
    },
  },
  {
    path: 'no provider serves the model',
    catches: OpenAI.NotFoundError,
    code: 'model_not_served',
    says: [/^404 keyplex:/, /'gpt-9'/],
    run: async () => {
      const ring = keyRing('a');
      const { client } = managed({ providers: { one: { baseURL: ONE, keys: ring.keys, models: [MODEL] } } });
      return caught(() => client.chat.completions.create({ ...BODY, model: 'gpt-9' }));
    },
  },
  {
    path: "the request is larger than every deployment's contextWindow",
    catches: OpenAI.BadRequestError,
    code: 'context_length_exceeded',
    says: [/^400 keyplex:/, /fits no deployment of 'gpt-4\.1'/, /larger context window or shorten it/, /routing\.contextFallbacks/],
    run: async () => {
      const seen = provider(ONE, () => chatReply(MODEL));
      const { client } = managed({ providers: { one: { baseURL: ONE, keys: keyRing('a').keys, models: { [MODEL]: { contextWindow: 100 } } } } });
      const error = await caught(() => client.chat.completions.create({ ...BODY, messages: [{ role: 'user', content: 'word '.repeat(2_000) }] }));
      expect(seen).toHaveLength(0);
      return error;
    },
  },
  {
    // The model is served, only not by the provider the request is pinned to: the message must not say nobody serves it.
    path: 'the pinned provider does not serve the model',
    catches: OpenAI.NotFoundError,
    code: 'model_not_served',
    says: [/^404 keyplex:/, /provider 'two'/, /`provider` request option/, /'gpt-4\.1'/, /served by 'one'/, /Nothing was sent/],
    run: async () => {
      const seen = provider(ONE, () => chatReply(MODEL));
      const { client } = managed({
        providers: { one: { baseURL: ONE, keys: keyRing('a').keys, models: [MODEL] }, two: { baseURL: 'https://api.two.test/v1', keys: keyRing('b').keys, models: ['deepseek-chat'] } },
      });
      const error = await caught(() => client.chat.completions.create(BODY, keyplex.options({ provider: 'two' })));
      expect(seen).toHaveLength(0);
      expect(error.message).not.toMatch(/no provider serves/);
      return error;
    },
  },
  {
    // A Responses API object is known only to the project of the key that created it: no other key is tried.
    path: 'the key that created the response a request continues (previous_response_id) was removed',
    catches: OpenAI.NotFoundError,
    code: 'response_key_unavailable',
    says: [/^404 keyplex:/, /response 'resp_test'/, /key 'a' of 'one'/, /removed/, /not sent to another key/, /new conversation/, /full input/],
    run: async () => {
      const seen = provider(ONE, () => HttpResponse.json(responseObject(MODEL, 'hello', 'completed', {})));
      const { client, manager } = manage({});
      const first = await client.responses.create({ model: MODEL, input: 'hi' });
      manager.removeKey('one', 'a');
      const error = await caught(() => client.responses.create({ model: MODEL, input: 'more', previous_response_id: first.id }));
      expect(seen).toHaveLength(1);
      return error;
    },
  },
  {
    // Each object is known only to its own key's project: no one key can serve a request that names files of two keys.
    path: 'a request names files created with different keys',
    catches: OpenAI.BadRequestError,
    code: 'objects_on_different_keys',
    says: [/^400 keyplex:/, /different keys/, /file 'file-1' \(key '[ab]' of 'one'\), file 'file-2' \(key '[ab]' of 'one'\)/, /nothing was sent/, /a request of their own/, /affinity: false/],
    run: async () => {
      let made = 0;
      const seen = provider(ONE, () => HttpResponse.json({ id: `file-${++made}`, object: 'file', purpose: 'user_data' }));
      const { client } = manage({ keySelection: 'round-robin' });
      const upload = async () => (await client.files.create({ file: await toFile(Buffer.from('%PDF'), 'a.pdf'), purpose: 'user_data' })).id;
      const [a, b] = [await upload(), await upload()];
      const error = await caught(() => client.responses.create({ model: MODEL, input: [{ role: 'user', content: [{ type: 'input_file', file_id: a }, { type: 'input_file', file_id: b }] }] }));
      expect(seen).toHaveLength(2);
      return error;
    },
  },
  {
    // Each entry's own case, built and run without its peer: test/peers/missing-peers.test.ts.
    path: "an entry's optional peer is not installed",
    catches: MissingPeerError,
    code: 'missing_peer',
    says: [/^keyplex\/otel: instrument\(\) needs the optional peer dependency '@opentelemetry\/api', which is not installed/, /Run `npm install @opentelemetry\/api`/],
    run: async () => {
      const { manager } = manage({});
      replacePeerRequire((id) => {
        throw Object.assign(new Error(`Cannot find module '${id}'`), { code: 'MODULE_NOT_FOUND' });
      });
      try {
        return await caught(async () => instrument(manager));
      } finally {
        replacePeerRequire(undefined);
      }
    },
  },
];

describe('what the app catches, tests and logs', () => {
  test.each(rows)('$path', async (row) => {
    const error = await row.run();
    if (process.env.SHOW_ERRORS) console.log(`${row.path} | ${error.constructor.name} | ${getKeyplexDetails(error)?.code} | ${error.message}`);
    expect(error).toBeInstanceOf(row.catches);
    expect(getKeyplexDetails(error)?.code).toBe(row.code);
    expect(isKeyplexError(error)).toBe(true);
    expect(isKeyplexError(error, row.code)).toBe(true);
    for (const pattern of row.says) expect(error.message).toMatch(pattern);
  });
});

describe('the exported error classes are the ones an app can catch', () => {
  test('only the classes an app can catch are exported: thrown at the call, or in a stream loop after its first bytes, `ManagerClosedError` (a key call or wrap() on a closed manager), `StoreUnavailableError` (RedisStore.ready() given up on), and their base', () => {
    const classes = Object.entries(publicApi)
      .filter(([, value]) => typeof value === 'function' && value.prototype instanceof Error)
      .map(([name]) => name)
      .sort();
    expect(classes).toEqual(['ConfigError', 'DeadlineExceededError', 'KeyplexError', 'ManagerClosedError', 'MissingPeerError', 'RequestOptionsError', 'StoreUnavailableError', 'StreamInterruptedError', 'StreamStalledError']);
  });

  test('a bad manager option throws ConfigError at construction', () => {
    const error = (() => {
      try {
        new KeyManager({ providers: {} });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(KeyplexError.is(error)).toBe(true);
    expect(isKeyplexError(error, 'invalid_config')).toBe(true);
  });

  test('isKeyplexError is false for errors that did not come through keyplex', () => {
    expect(isKeyplexError(new Error('x'))).toBe(false);
    expect(isKeyplexError(undefined)).toBe(false);
  });
});
