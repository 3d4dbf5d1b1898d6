/**
 * Per-request bookkeeping kept cheap on the hot path: the keys a request tried
 * (no set until a second attempt) and the list of requests in flight that
 * close() aborts (threaded through the requests, no set entry per request).
 */
import { describe, expect, test } from 'vitest';
import { ActiveRequests, RequestAbort } from '../../src/pipeline/abort';
import { AttemptHistory } from '../../src/pipeline/context';
import type { Key } from '../../src/keys/key';
import type { Deployment } from '../../src/routing/deployments';

const key = (id: string) => ({ id }) as unknown as Key;
const deployment = (model: string) => ({ model }) as unknown as Deployment;

describe('AttemptHistory: keys tried', () => {
  test('the first try of a key is told apart from a second, per request and per deployment', () => {
    const [a, b] = [key('a'), key('b')];
    const [mini, large] = [deployment('mini'), deployment('large')];
    const history = new AttemptHistory();
    expect(history.triedOnDeployment(a, mini)).toBe(false);
    expect(history.markTried(a, mini)).toBe(true);
    expect(history.triedOnDeployment(a, mini)).toBe(true);
    expect(history.triedOnDeployment(a, large)).toBe(false);
    expect(history.triedOnDeployment(b, mini)).toBe(false);
    // The same key on another deployment: tried on this one now, but not the key's first try.
    expect(history.markTried(a, large)).toBe(false);
    expect(history.triedOnDeployment(a, large)).toBe(true);
    expect(history.triedOnDeployment(a, mini)).toBe(true);
    expect(history.markTried(b, mini)).toBe(true);
    expect(history.markTried(b, mini)).toBe(false);
    expect(history.triedOnDeployment(b, mini)).toBe(true);
    expect(history.triedOnDeployment(b, large)).toBe(false);
  });

  test('a second attempt on the same key and deployment is not a first try', () => {
    const history = new AttemptHistory();
    const [a, d] = [key('a'), deployment('mini')];
    expect(history.markTried(a, d)).toBe(true);
    expect(history.markTried(a, d)).toBe(false);
    expect(history.triedOnDeployment(a, d)).toBe(true);
  });
});

describe('ActiveRequests', () => {
  const abort = () => new RequestAbort(0, 60_000, 60_000, undefined);

  test('requests join and leave in any order; abortAll ends those still listed, once', () => {
    const active = new ActiveRequests();
    const [r1, r2, r3, r4] = [abort(), abort(), abort(), abort()];
    for (const r of [r1, r2, r3, r4]) active.add(r);
    expect(active.size).toBe(4);
    active.delete(r2); // middle
    active.delete(r4); // first
    active.delete(r4); // not listed any more: nothing
    expect(active.size).toBe(2);
    const reason = new Error('closed');
    active.abortAll(reason);
    expect(active.size).toBe(0);
    expect([r1.ended, r2.ended, r3.ended, r4.ended]).toEqual([true, false, true, false]);
    expect(r1.signal.reason).toBe(reason);
    // After abortAll nothing is listed: leaving is harmless, and a new request starts a new list.
    active.delete(r1);
    const r5 = abort();
    active.add(r5);
    active.delete(r3);
    expect(active.size).toBe(1);
    for (const r of [r1, r2, r3, r4, r5]) r.detach();
  });
});
