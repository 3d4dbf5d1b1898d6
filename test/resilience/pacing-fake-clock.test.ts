/**
 * The "twice the load" pacing scenario on a fake clock: 3 keys of 20 per 2 s
 * (a token-bucket upstream stating its limits in headers), keyplex configured
 * with the same rate (600 per minute), demand at twice the aggregate limit
 * for 4 s. Counts only: no upstream 429, no app error.
 */
import OpenAI from 'openai';
import { afterEach, expect, test, vi } from 'vitest';
import { KeyManager } from '../../src/index';
import { ProviderSimulator } from '../../src/testing';
import { simulatorHandlers } from '../../src/testing/msw';
import { fakeKey } from '../support/fake-keys';
import { server } from '../support/upstream';
import '../support/setup';
import { fakeClock } from '../support/time';

const MODEL = 'gpt-4.1';
const managers: KeyManager[] = [];
afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.close()));
  vi.useRealTimers();
});

test.each([
  ['configured and stated in headers', true],
  ['stated in headers only', false],
])('demand at twice the aggregate limit (%s): 0 upstream 429s, 0 app errors, the capacity used', async (_name, configured) => {
  fakeClock();
  const secrets = Array.from({ length: 3 }, (_, i) => fakeKey(`fake-pace${i}`));
  const sim = new ProviderSimulator({ now: () => Date.now(), rateWindowMs: 2_000, providers: [{ id: 'sim', keys: secrets.map((key) => ({ key, rpm: 20 })), models: [MODEL] }] });
  server.use(...simulatorHandlers(sim));
  const manager = new KeyManager({ providers: { sim: { baseURL: sim.baseURL('sim'), keys: secrets, models: [MODEL], ...(configured ? { rpm: 600 } : {}) } } });
  managers.push(manager);
  const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
  const startedAt = Date.now();
  const settled: Promise<boolean>[] = [];
  for (let t = 0; t < 80; t++) {
    for (let i = 0; i < 3; i++) {
      settled.push(client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 }, { timeout: 600_000 }).then(() => true, () => false));
    }
    await vi.advanceTimersByTimeAsync(50);
  }
  const atEnd = sim.tallies().sim!;
  const elapsed = Date.now() - startedAt;
  for (let i = 0; i < 400 && (await Promise.race([Promise.all(settled).then(() => true), Promise.resolve(false)])) === false; i++) await vi.advanceTimersByTimeAsync(100);
  const results = await Promise.all(settled);
  const after = sim.tallies().sim!;
  const capacity = 3 * (20 + (20 * elapsed) / 2_000);
  console.info(`fake-clock pacing (${_name}): accepted ${atEnd.successes} of capacity ${capacity} in ${elapsed} ms; 429s ${after.rateLimited}; failures ${results.filter((ok) => !ok).length}`);
  expect(after.rateLimited).toBe(0);
  expect(results.every(Boolean)).toBe(true);
  expect(atEnd.successes / capacity).toBeGreaterThanOrEqual(0.9);
});
