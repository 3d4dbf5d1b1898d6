/**
 * MemoryStore's one option, checked as the manager's are: a ConfigError whose field names it.
 */
import { describe, expect, test } from 'vitest';
import { ConfigError, MemoryStore } from '../../src/index';

describe('MemoryStore options', () => {
  test('a `now` that is not a function throws a ConfigError (invalid_config) naming it', () => {
    expect(() => new MemoryStore({ now: 5 as never })).toThrow(ConfigError);
    expect(() => new MemoryStore({ now: 5 as never })).toThrow(expect.objectContaining({ code: 'invalid_config', field: 'now', message: expect.stringMatching(/function returning epoch ms/) }));
  });
});
