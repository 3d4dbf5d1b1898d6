/**
 * An upstream that echoes the key it got — whole or in part, in headers,
 * status text, error bodies, 200 bodies and SSE events — must not get any
 * 8-character piece of it to the app, the events or `stats()` (DESIGN.md §6).
 */
import OpenAI from 'openai';
import { HttpResponse } from 'msw';
import util from 'node:util';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { getKeyplexDetails, KeyManager, type KeyplexEventName } from '../../src/index';
import { fakeKey } from '../support/fake-keys';
import { askedUsage, chatChunks, chatReply, errorReply, provider, rawSseReply, type UpstreamCall } from '../support/upstream';
import '../support/setup';

const ALPHA = 'https://api.alpha.test/v1';
const EVENT_NAMES: KeyplexEventName[] = ['request', 'attempt', 'retry', 'failover', 'success', 'failure', 'key:cooldown', 'key:disabled', 'key:recovered'];

const managers: KeyManager[] = [];
afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.close()));
});

/** The pieces of a key an upstream echoes. */
const PIECES: Record<string, (key: string) => string> = {
  'the whole key': (key) => key,
  'its last 10 characters': (key) => key.slice(-10),
  'its first 12 characters': (key) => key.slice(0, 12),
  'a middle 9 characters': (key) => key.slice(12, 21),
};

/** Every 8-character piece of `keys` found in `text`. */
function pieces8(text: string, keys: readonly string[]): string[] {
  const found = new Set<string>();
  for (const key of keys) for (let i = 0; i + 8 <= key.length; i++) if (text.includes(key.slice(i, i + 8))) found.add(key.slice(i, i + 8));
  return [...found];
}

function headersText(headers: unknown): string {
  return headers instanceof Headers ? JSON.stringify([...headers.entries()]) : (JSON.stringify(headers) ?? String(headers));
}

/** Every rendering of a caught error a user might log. */
function renderError(error: unknown): string[] {
  const e = error as { message?: unknown; stack?: unknown; headers?: unknown; error?: unknown; cause?: unknown };
  const out = [
    String(error),
    String(e.message),
    String(e.stack),
    JSON.stringify(error) ?? '',
    util.inspect(error, { depth: 10, showHidden: true }),
    headersText(e.headers),
    JSON.stringify(e.error) ?? '',
    JSON.stringify(getKeyplexDetails(error)) ?? '',
  ];
  for (let cause = e.cause, depth = 0; cause !== undefined && cause !== null && depth < 5; depth++) {
    const c = cause as { message?: unknown; stack?: unknown; cause?: unknown };
    out.push(String(c.message), String(c.stack));
    cause = c.cause;
  }
  return out;
}

type Echo = (call: UpstreamCall, piece: string) => Response;

/**
 * `piece` as a JSON string's text with every other character a `\u` escape
 * (`\u0066a\u006be…`): no two characters of the key side by side, yet
 * `JSON.parse` (the SDK's) gives the key back whole.
 */
function escaped(piece: string): string {
  return [...piece].map((c, i) => (i % 2 === 0 ? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}` : c)).join('');
}

/** `value` as JSON text, its `@echo@` replaced by the escaped piece (JSON.stringify would double the backslashes). */
function jsonWith(value: unknown, piece: string): string {
  return JSON.stringify(value).replace('@echo@', escaped(piece));
}

const JSON_TYPE = { 'content-type': 'application/json' };

/** An SSE body framed by hand, sent in 5-byte pieces so the echo straddles reads. */
function sliced(events: string[]): Response {
  return rawSseReply(events.map((e) => `${e}\n\n`).join(''), 5);
}

/** Where the upstream puts the echo, and whether the call streams. */
const PLACES: Record<string, { stream: boolean; echo: Echo }> = {
  'an error header': { stream: false, echo: (_, piece) => errorReply(400, 'invalid_request_error', { 'x-debug-auth': `Bearer ${piece}` }, 'bad request') },
  'an error body': { stream: false, echo: (_, piece) => errorReply(400, 'invalid_request_error', {}, `Bad request sent with key ${piece}.`) },
  'an error status text': {
    stream: false,
    echo: (_, piece) =>
      HttpResponse.json({ error: { message: 'bad request', type: 'invalid_request_error', code: null, param: null } }, { status: 400, statusText: `Bad key ${piece}` }),
  },
  'a 401 body, after which no key is left': { stream: false, echo: (_, piece) => errorReply(401, 'invalid_api_key', {}, `Incorrect API key provided: ${piece}.`) },
  'a 200 header': { stream: false, echo: (_, piece) => chatReply('gpt-4.1', 'ok', {}, { headers: { 'x-debug-auth': piece } }) },
  // The fake keys are lower-case: a name keeps its piece of the key once Headers lower-cases it.
  'a 200 header name': { stream: false, echo: (_, piece) => chatReply('gpt-4.1', 'ok', {}, { headers: { [`x-seen-${piece}`]: '1' } }) },
  'an error header name': { stream: false, echo: (_, piece) => errorReply(400, 'invalid_request_error', { [`x-seen-${piece}`]: '1' }, 'bad request') },
  'a 200 status text': { stream: false, echo: (_, piece) => chatReply('gpt-4.1', 'ok', {}, { statusText: `OK ${piece}` }) },
  'a 200 JSON body': { stream: false, echo: (_, piece) => chatReply('gpt-4.1', `Your key is ${piece}, and "${piece}" again`) },
  // OpenRouter answers 200 with an error object when the upstream model failed.
  'a 200 JSON body carrying an error': {
    stream: false,
    echo: (_, piece) => HttpResponse.json({ error: { message: `Upstream rejected key ${piece}`, code: 502 } }),
  },
  'a 200 text/plain body': { stream: false, echo: (_, piece) => new HttpResponse(`Your key is ${piece}.`, { headers: { 'content-type': 'text/plain' } }) },
  'an SSE data event': { stream: true, echo: (call, piece) => sliced(chatChunks('gpt-4.1', ['Your key: ', piece, '.'], askedUsage(call)).map((e) => `data: ${e}`)) },
  'an SSE error event': {
    stream: true,
    echo: (call, piece) =>
      sliced([
        `data: ${chatChunks('gpt-4.1', ['a'], askedUsage(call))[0]}`,
        `event: error\ndata: ${JSON.stringify({ error: { message: `The key ${piece} was revoked`, type: 'invalid_request_error', code: null } })}`,
      ]),
  },
  'an error body, written with JSON escapes': {
    stream: false,
    echo: (_, piece) => new HttpResponse(jsonWith({ error: { message: 'Bad request sent with key @echo@.', type: 'invalid_request_error', code: null, param: null } }, piece), { status: 400, headers: JSON_TYPE }),
  },
  'a 401 body written with JSON escapes, after which no key is left': {
    stream: false,
    echo: (_, piece) => new HttpResponse(jsonWith({ error: { message: 'Incorrect API key provided: @echo@.', type: 'invalid_request_error', code: 'invalid_api_key', param: null } }, piece), { status: 401, headers: JSON_TYPE }),
  },
  'a 200 JSON body written with JSON escapes': {
    stream: false,
    echo: (_, piece) =>
      new HttpResponse(
        jsonWith({ id: 'chatcmpl-test', object: 'chat.completion', created: 1_700_000_000, model: 'gpt-4.1', choices: [{ index: 0, message: { role: 'assistant', content: 'Your key is @echo@', refusal: null }, finish_reason: 'stop', logprobs: null }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } }, piece),
        { headers: JSON_TYPE },
      ),
  },
  'a 200 JSON body carrying an error written with JSON escapes': {
    stream: false,
    echo: (_, piece) => new HttpResponse(jsonWith({ error: { message: 'Upstream rejected key @echo@', code: 502 } }, piece), { headers: JSON_TYPE }),
  },
  'an SSE data event written with JSON escapes': {
    stream: true,
    echo: (call, piece) => sliced(chatChunks('gpt-4.1', ['Your key: ', '@echo@', '.'], askedUsage(call)).map((e) => `data: ${e.replace('@echo@', escaped(piece))}`)),
  },
  'an SSE error event written with JSON escapes': {
    stream: true,
    echo: (call, piece) =>
      sliced([
        `data: ${chatChunks('gpt-4.1', ['a'], askedUsage(call))[0]}`,
        `event: error\ndata: ${jsonWith({ error: { message: 'The key @echo@ was revoked', type: 'invalid_request_error', code: null } }, piece)}`,
      ]),
  },
  'an SSE data event carrying an error': {
    stream: true,
    echo: (_, piece) => sliced([`data: ${JSON.stringify({ error: { message: `Key ${piece} is over quota`, type: 'server_error', code: null } })}`]),
  },
};

/** Runs one request against an upstream that echoes `piece(key)` at `place`; returns everything observed and the key. */
async function observe(place: string, pieceName: string, redactReplies?: boolean): Promise<{ observed: string[]; keys: string[]; sawError: boolean }> {
  const keys = [fakeKey('echo'), fakeKey('echo')];
  const { stream, echo } = PLACES[place]!;
  provider(ALPHA, (call) => echo(call, PIECES[pieceName]!(call.key)));
  const manager = new KeyManager({ providers: { alpha: { baseURL: ALPHA, keys } }, retry: { baseDelayMs: 0 }, ...(redactReplies === undefined ? {} : { redactReplies }) });
  managers.push(manager);
  const observed: string[] = [];
  for (const name of EVENT_NAMES) manager.on(name, (payload: unknown) => observed.push(JSON.stringify(payload), util.inspect(payload, { depth: 10, showHidden: true })));
  const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
  const messages = [{ role: 'user' as const, content: 'hi' }];
  let sawError = false;
  try {
    if (stream) {
      for await (const chunk of await client.chat.completions.create({ model: 'gpt-4.1', messages, stream: true })) observed.push(JSON.stringify(chunk));
    } else {
      const { data, response } = await client.chat.completions.create({ model: 'gpt-4.1', messages }).withResponse();
      observed.push(JSON.stringify(data), util.inspect(data, { depth: 10 }), response.statusText, headersText(response.headers));
    }
  } catch (error) {
    sawError = true;
    observed.push(...renderError(error));
  }
  observed.push(JSON.stringify(manager.stats()), util.inspect(manager.stats(), { depth: 10, showHidden: true }));
  return { observed, keys, sawError };
}

describe('an upstream echoing the key used reaches the app, events and stats without any 8-character piece of it', () => {
  for (const place of Object.keys(PLACES)) {
    for (const pieceName of Object.keys(PIECES)) {
      test(`${pieceName} in ${place}`, async () => {
        const { observed, keys } = await observe(place, pieceName);

        expect(pieces8(observed.join('\n'), keys)).toEqual([]);
      });
    }
  }
});

describe('what the app gets is still the answer, with the echo replaced', () => {
  test('a 200 JSON body echoing the key parses, and names the key by its id instead', async () => {
    const { observed } = await observe('a 200 JSON body', 'the whole key');

    const reply = observed.find((o) => o.startsWith('{"id"'))!;
    expect(JSON.parse(reply).choices[0].message.content).toMatch(/^Your key is \[key fp_[0-9a-f]{10}\], and "\[key fp_[0-9a-f]{10}\]" again$/);
  });

  test('an SSE data event echoing the key, split across reads, reaches the app as whole chunks with the key replaced', async () => {
    const { observed, sawError } = await observe('an SSE data event', 'its last 10 characters');

    expect(sawError).toBe(false);
    const text = observed
      .filter((o) => o.startsWith('{"id"'))
      .map((o) => JSON.parse(o).choices[0]?.delta?.content ?? '')
      .join('');
    expect(text).toMatch(/^Your key: \[key fp_[0-9a-f]{10}\]\.$/);
  });

  test('an SSE error event echoing the key still surfaces as an SDK APIError', async () => {
    const { observed, sawError } = await observe('an SSE error event', 'the whole key');

    expect(sawError).toBe(true);
    expect(observed.some((o) => o.includes('The key [key fp_'))).toBe(true);
  });

  test('an error header echoing the key keeps its other headers and the status', async () => {
    const { observed } = await observe('an error header', 'the whole key');

    expect(observed.some((o) => o.startsWith('BadRequestError: 400'))).toBe(true);
    expect(observed.some((o) => o.includes('"x-debug-auth","Bearer [key fp_'))).toBe(true);
  });
});

describe('redactReplies: false (2xx bodies not scanned, for services that measured the cost)', () => {
  test('a 200 JSON body passes as the upstream sent it', async () => {
    const { observed, keys } = await observe('a 200 JSON body', 'the whole key', false);

    expect(pieces8(observed.join('\n'), keys).length).toBeGreaterThan(0);
  });

  for (const place of ['an SSE error event', 'an SSE data event carrying an error', 'a 200 JSON body carrying an error', 'an error body', 'an error header', 'a 200 header', 'a 200 status text']) {
    test(`${place} is still redacted`, async () => {
      const { observed, keys } = await observe(place, 'its last 10 characters', false);

      expect(pieces8(observed.join('\n'), keys)).toEqual([]);
    });
  }
});

describe('a key that shares digits with a reply (a key made from a timestamp)', () => {
  test('the reply whose `created` holds 10 of its digits is still replaced and judged broken; a warning says why, once, naming the key by id', async () => {
    const key = `fake-demo-1796187441${'x'.repeat(6)}`;
    provider(ALPHA, () => HttpResponse.json({ id: 'chatcmpl-1', object: 'chat.completion', created: 1796187441, model: 'gpt-4.1', choices: [{ index: 0, message: { role: 'assistant', content: 'hi', refusal: null }, finish_reason: 'stop', logprobs: null }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } }));
    const manager = new KeyManager({ providers: { alpha: { baseURL: ALPHA, keys: [{ key, id: 'demo' }], models: ['gpt-4.1'] } }, retry: { baseDelayMs: 0, maxAttempts: 1 } });
    managers.push(manager);
    const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 }));
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    try {
      const ask = () => client.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] });
      for (let i = 0; i < 2; i++) expect(getKeyplexDetails(await ask().catch((error: unknown) => error))?.code).toBe('malformed_response');
      const warned = warn.mock.calls.filter(([, options]) => (options as { code?: string } | undefined)?.code === 'KEYPLEX_KEY_PIECE_BROKE_REPLY');
      expect(warned).toHaveLength(1);
      expect(String(warned[0]![0])).toContain("key 'demo'");
      expect(String(warned[0]![0])).not.toContain('1796187441');
    } finally {
      warn.mockRestore();
    }
  });
});
