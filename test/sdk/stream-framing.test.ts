/**
 * Where a streamed event ends, as the SDK reads it: a blank line is any line
 * ending (`\n`, `\r\n`, or a `\r` not followed by `\n`) followed by another,
 * in any mix. keyplex finds the same ends: an event is handed on as soon as
 * its blank line has arrived (not held until more bytes come), and it is
 * judged as the SDK will read it (alone, not joined to the next).
 */
import OpenAI from 'openai';
import { describe, expect, test } from 'vitest';
import { getKeyplexDetails, StreamInterruptedError } from '../../src/index';
import { record } from '../support/events';
import { fakeKey } from '../support/fake-keys';
import { useManagers } from '../support/scaffold';
import { askedUsage, chatChunks, gate, inTwoParts, provider } from '../support/upstream';
import '../support/setup';

const ONE = 'https://api.one.test/v1';
const ask = [{ role: 'user' as const, content: 'hi' }];
const WORDS = ['Hel', 'lo', ' wor', 'ld'];

// One attempt, bounded: an event held back waiting for bytes that come only once the caller has read it fails the call.
const manage = useManagers({ retry: { maxAttempts: 1 }, attemptTimeoutMs: 2_000, providers: { one: { baseURL: ONE, keys: [fakeKey('one')] } } });

/** Reads a whole stream: its chunks and what its loop threw; `onChunk` hears each chunk's count. */
async function readAll(stream: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>, onChunk: (count: number) => void = () => undefined) {
  const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
  try {
    for await (const chunk of stream) onChunk(chunks.push(chunk));
    return { chunks, error: undefined };
  } catch (error) {
    return { chunks, error };
  }
}

/**
 * A stream whose events end with `blank`: its first event alone, then (once
 * keyplex has answered the call, having judged that event; `heldForNextByte`:
 * at once) the rest.
 */
async function readFramedBy(blank: string, heldForNextByte: boolean) {
  const read = gate();
  if (heldForNextByte) read.open();
  provider(ONE, (call) => {
    const events = [...chatChunks('gpt-4.1', WORDS, askedUsage(call), { prompt: 12, completion: 4 }), '[DONE]'].map((e) => `data: ${e}${blank}`);
    return inTwoParts(events[0]!, read.promise, events.slice(1).join(''));
  });
  const { client, manager } = manage();
  const success = record(manager, 'success');

  const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
  read.open();
  const { chunks, error } = await readAll(stream);

  expect(error).toBeUndefined();
  expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('Hello world');
  expect(chunks.filter((c) => c.choices.length === 0)).toEqual([]);
  expect(success.map((e) => e.usage)).toMatchObject([{ inputTokens: 12, outputTokens: 4 }]);
}

describe('blank lines of every form the SDK reads', () => {
  test.each([
    ['\\n\\n', '\n\n'],
    ['\\r\\n\\r\\n', '\r\n\r\n'],
    ['\\r\\r', '\r\r'],
    ['\\n\\r\\n (a line ended by \\n, a blank line by \\r\\n)', '\n\r\n'],
    ['\\r\\n\\n', '\r\n\n'],
    ['\\r\\r\\n', '\r\r\n'],
    ['\\n\\r (then the next event)', '\n\r'],
  ])('events ended by %s: the first is handed on before more bytes come, the usage chunk is removed and counted', async (_name, blank) => {
    await readFramedBy(blank, false);
  });

  // At the end of a read, `\r\n\r` is most likely `\r\n\r\n` split in two: its event waits for the next byte.
  test('events ended by \\r\\n\\r (then the next event): each is judged alone once the next byte came, the usage chunk is removed and counted', async () => {
    await readFramedBy('\r\n\r', true);
  });

  test('a `data` field without its colon after a blank line of \\n\\r is its own event, with empty data: a keyplex stream error (malformed_response) and a failure, as the SDK would fail to parse it', async () => {
    const [first, second] = chatChunks('gpt-4.1', WORDS, false);
    const read = gate();
    provider(ONE, () => inTwoParts(`data: ${first}\n\n`, read.promise, `data: ${second}\n\rdata\n\ndata: [DONE]\n\n`));
    const { client, manager } = manage();
    const success = record(manager, 'success');
    const failure = record(manager, 'failure');

    const stream = await client.chat.completions.create({ model: 'gpt-4.1', messages: ask, stream: true });
    const { error } = await readAll(stream, (count) => count === 1 && read.open());

    expect(error).toBeInstanceOf(StreamInterruptedError);
    expect(getKeyplexDetails(error)?.code).toBe('malformed_response');
    expect(failure.map((e) => e.error.code)).toEqual(['malformed_response']);
    expect(success).toEqual([]);
  });
});
