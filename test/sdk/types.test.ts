/**
 * Type-level tests: checked by `npm run typecheck`, and run as no-ops by vitest.
 */
import OpenAI from 'openai';
import { describe, expectTypeOf, test } from 'vitest';
import { KeyManager, keyplex, type FailureEvent, type KeyplexErrorDetail, type SuccessEvent, type Usage } from '../../src/index';

const manager = new KeyManager({ providers: { p: { baseURL: 'https://p.invalid/v1', keys: ['fake-types-key'] } } });

describe('public types', () => {
  test('wrap() returns the client type it was given', () => {
    expectTypeOf(manager.wrap(new OpenAI({ apiKey: 'x' }))).toEqualTypeOf<OpenAI>();
  });

  test('event listeners receive the payload of their event', () => {
    manager.on('success', (event) => {
      expectTypeOf(event).toEqualTypeOf<SuccessEvent>();
      expectTypeOf(event.usage).toEqualTypeOf<Usage | null>();
      expectTypeOf(event.costUsd).toEqualTypeOf<number | null>();
    });
    manager.on('failure', (event) => {
      expectTypeOf(event).toEqualTypeOf<FailureEvent>();
      expectTypeOf(event.error).toEqualTypeOf<KeyplexErrorDetail>();
    });
    manager.on('key:disabled', (event) => {
      expectTypeOf(event.reason).toEqualTypeOf<'unauthorized' | 'forbidden' | 'quota' | 'manual'>();
    });
  });

  test('an unknown event name does not compile', () => {
    // @ts-expect-error not an event keyplex emits
    manager.on('key:exploded', () => {});
  });

  test('keyplex.options() spreads into the SDK request options', () => {
    const options = keyplex.options({ tags: ['a'] }, { timeout: 1000 });
    expectTypeOf(options.timeout).toEqualTypeOf<number>();
    expectTypeOf(options).toMatchTypeOf<OpenAI.RequestOptions>();
  });
});
