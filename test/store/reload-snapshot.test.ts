/**
 * A reload's answer with what was written or heard while it was on its way
 * put over it (src/store/redis/snapshot.ts): each such status or circuit is
 * at least as new as Redis's answer. The end-to-end case (a key disabled
 * meanwhile) is in redis-reload.test.ts; here every kind, on plain data.
 * And the spend writes a load waits for before its answer is merged.
 */
import { describe, expect, test } from 'vitest';
import { changeField, LoadWatch, newerThan } from '../../src/store/redis/snapshot';
import type { StoreChange, StoreSnapshot } from '../../src/store/types';

const closed = { state: 'closed', reopens: 0, probesSucceeded: 0 } as never;
const open = { state: 'open', reopens: 1, probesSucceeded: 0, openedAt: 1 } as never;

function answer(): StoreSnapshot {
  return {
    keys: [
      { key: { provider: 'p', keyId: 'a' }, status: { disabled: null, cooldownUntil: 0 } },
      { key: { provider: 'p', keyId: 'b' }, status: { disabled: null, cooldownUntil: 0 } },
    ],
    circuits: [{ circuit: { scope: 'deployment', provider: 'p', upstreamModel: 'm' }, snapshot: closed }],
    spend: [],
  };
}

const since = (...changes: StoreChange[]) => new Map(changes.map((c) => [changeField(c)!, c]));

describe('newerThan: a reload answer with the changes made meanwhile', () => {
  test('a key status heard meanwhile replaces the answer’s; the others stay', () => {
    const snapshot = answer();
    newerThan(snapshot, since({ kind: 'key', key: { provider: 'p', keyId: 'a' }, status: { disabled: 'manual', cooldownUntil: 0 } }));
    expect(snapshot.keys).toHaveLength(2);
    expect(snapshot.keys.find((k) => k.key.keyId === 'a')?.status.disabled).toBe('manual');
    expect(snapshot.keys.find((k) => k.key.keyId === 'b')?.status.disabled).toBeNull();
  });

  test('a circuit changed meanwhile replaces the answer’s, and one the answer lacks is added', () => {
    const snapshot = answer();
    newerThan(
      snapshot,
      since(
        { kind: 'circuit', circuit: { scope: 'deployment', provider: 'p', upstreamModel: 'm' }, snapshot: open },
        { kind: 'circuit', circuit: { scope: 'key', provider: 'p', keyId: 'b' }, snapshot: open },
      ),
    );
    expect(snapshot.circuits).toHaveLength(2);
    expect(snapshot.circuits.every((c) => c.snapshot === open)).toBe(true);
  });

  test('a key and a circuit with the same names are told apart; spend has no field', () => {
    const key: StoreChange = { kind: 'key', key: { provider: 'p', keyId: 'a' }, status: { disabled: null, cooldownUntil: 0 } };
    const circuit: StoreChange = { kind: 'circuit', circuit: { scope: 'key', provider: 'p', keyId: 'a' }, snapshot: open };
    expect(changeField(key)).not.toBe(changeField(circuit));
    expect(changeField({ kind: 'spend', budgets: ['b'], nanos: 1, at: 0 })).toBeUndefined();
  });
});

describe('LoadWatch: the spend writes a load waits for', () => {
  const later = () => {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    return { promise, resolve };
  };

  test('one sent while the others were awaited is awaited too', async () => {
    const watch = new LoadWatch();
    const first = later();
    const second = later();
    watch.wrote(first.promise);
    let answered = false;
    const waiting = watch.spendsAnswered().then(() => void (answered = true));
    watch.wrote(second.promise);
    first.resolve();
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(answered).toBe(false);
    second.resolve();
    await waiting;
    expect(answered).toBe(true);
  });

  test('none sent: answered at once; statuses heard are kept by field, spend is not', async () => {
    const watch = new LoadWatch();
    await watch.spendsAnswered();
    watch.heard({ kind: 'spend', budgets: ['b'], nanos: 1, at: 0 });
    watch.heard({ kind: 'key', key: { provider: 'p', keyId: 'a' }, status: { disabled: 'manual', cooldownUntil: 0 } });
    expect([...watch.since.keys()]).toEqual([changeField({ kind: 'key', key: { provider: 'p', keyId: 'a' }, status: { disabled: null, cooldownUntil: 0 } })]);
  });
});
