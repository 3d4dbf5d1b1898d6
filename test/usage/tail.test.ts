import { describe, expect, it } from 'vitest';
import { tailUsage } from '../../src/usage/tail';

const usage = { prompt_tokens: 9, completion_tokens: 9, total_tokens: 18, prompt_tokens_details: { cached_tokens: 0 } };

describe('tailUsage: the top-level usage read from the end of a JSON reply', () => {
  it.each([
    ['usage last', JSON.stringify({ id: 'x', choices: [{ message: { content: 'hi' } }], usage })],
    ['members after usage (OpenAI order)', JSON.stringify({ id: 'x', choices: [], usage, service_tier: 'default', system_fingerprint: 'fp' })],
    ['pretty-printed', JSON.stringify({ id: 'x', usage, tail: [1, { a: '}' }] }, null, 2)],
    ['braces and escaped quotes in strings', JSON.stringify({ id: '{"', usage: { ...usage, note: 'a } \\" {' }, x: '"usage":{}' }).replace('"x"', '"y"')],
  ])('%s: the same object a full parse gives', (_, text) => {
    expect(tailUsage(text)).toEqual({ usage: (JSON.parse(text) as { usage: unknown }).usage });
  });

  it.each([
    ['no usage', JSON.stringify({ id: 'x', choices: [] })],
    ['usage nested deeper, last', JSON.stringify({ id: 'x', usage, meta: { usage: { total_tokens: 1 } } })],
    ['usage nested, not closing the body', JSON.stringify({ a: { usage } , b: 1 })],
    ['usage not an object', JSON.stringify({ id: 'x', usage: 5 })],
    ['inside a string value', '{"id":"x","content":"the \\"usage\\": {\\"total_tokens\\": 1}"}'],
    ['not an object', `[${JSON.stringify({ usage })}]`],
    ['truncated after usage', `${JSON.stringify({ id: 'x', usage, service_tier: 'default' }).slice(0, -5)}`],
    ['garbage after usage', `${JSON.stringify({ id: 'x', usage }).slice(0, -1)},}`],
    ['text after the body', `${JSON.stringify({ id: 'x', usage })} x`],
    ['malformed usage', '{"id":"x","usage":{"total_tokens":}}'],
    ['usageMetadata (another key)', JSON.stringify({ usageMetadata: { totalTokenCount: 3 } })],
    ['empty', ''],
  ])('%s: undefined (the caller parses the body whole)', (_, text) => {
    expect(tailUsage(text)).toBeUndefined();
  });
});
