/**
 * Shared state: what other managers changed, carried by the state store —
 * key states, circuit snapshots and budget spend — taken on here; and the
 * full reload at start and after the store was away.
 */
import type { CircuitSnapshot } from '../resilience/breaker/index';
import type { StoreChange, StoreCircuitRef, StoreKeyRef, StoreKeyStatus, StoreSnapshot } from '../store/types';
import type { Key } from '../keys/key';
import type { Core } from './core';
import { answerWithin } from '../blocked-loop';

/** A change another manager made, carried by the store. */
export function applyChange(core: Core, change: StoreChange): void {
  if (core.closed) return;
  switch (change.kind) {
    case 'key':
      applyKeyStatus(core, change.key, change.status);
      return;
    case 'circuit':
      applyCircuit(core, change.circuit, change.snapshot);
      return;
    case 'spend':
      core.budgets?.addShared(change.budgets, change.nanos);
      core.keyBudgets?.addShared(change.budgets, change.nanos);
      return;
  }
}

function applyKeyStatus(core: Core, ref: StoreKeyRef, status: StoreKeyStatus): void {
  const key = core.pools.find((pool) => pool.id === ref.provider)?.find(ref.keyId);
  if (key === undefined || typeof status !== 'object' || status === null) return;
  const reason = status.disabled;
  if (reason === 'unauthorized' || reason === 'forbidden' || reason === 'quota' || reason === 'manual') {
    key.disable(reason, true);
    return;
  }
  const now = Date.now();
  const until = typeof status.cooldownUntil === 'number' && Number.isFinite(status.cooldownUntil) ? status.cooldownUntil : 0;
  if (until > now) {
    if (key.disabled !== undefined) key.enable(now, true);
    if (until > key.cooldownUntil) key.cool(until - now, now, true);
    return;
  }
  // Enabled by hand elsewhere (or its cooldown is over): back in use here too.
  if (key.disabled !== undefined || key.cooldownUntil > now) key.enable(now, true);
}

/**
 * A key added at run time takes on what the store holds of it (another manager
 * found it revoked, or cooling, or opened its circuit), as a manager that
 * starts does with its keys. A store that answers at once (`MemoryStore`) is
 * taken on before `addKey` returns; one that answers later (Redis), when it does.
 */
export function loadAdded(core: Core, key: Key): void {
  if (!core.session.shared) return;
  const take = (snapshot: StoreSnapshot): void => {
    if (core.closed || key.removed) return;
    for (const { key: ref, status } of snapshot.keys) if (ref.provider === key.provider && ref.keyId === key.id) applyKeyStatus(core, ref, status);
    for (const { circuit, snapshot: state } of snapshot.circuits) {
      if (circuit.scope === 'key' && circuit.provider === key.provider && circuit.keyId === key.id) applyCircuit(core, circuit, state);
    }
  };
  try {
    const answer = core.session.load([]);
    if (answer instanceof Promise) void answer.then(take, () => undefined);
    else take(answer);
  } catch {
    // The store reported it (store:error); it reloads everything when it is back.
  }
}

function applyCircuit(core: Core, ref: StoreCircuitRef, snapshot: CircuitSnapshot): void {
  const pool = core.pools.find((p) => p.id === ref.provider);
  if (pool === undefined) return;
  const circuit = ref.scope === 'key' ? pool.find(ref.keyId)?.circuit : core.circuitOf(pool, ref.upstreamModel);
  try {
    circuit?.restore(snapshot);
  } catch {
    // A snapshot of another shape (another version, other options): this manager keeps its own state.
  }
}

/** Loads what the store holds and takes it on (at start, and after the store was away); false when the store could not answer. */
export async function resync(core: Core): Promise<boolean> {
  const budgets = [...(core.budgets?.sharedRefs() ?? []), ...(core.keyBudgets?.sharedRefs() ?? [])];
  let snapshot: StoreSnapshot;
  try {
    const answer = core.session.load(budgets);
    snapshot = answer instanceof Promise ? await answer : answer;
  } catch {
    return false; // The store reported it (store:error) and will call again when it is back.
  }
  if (core.closed) return false;
  for (const { key, status } of snapshot.keys) applyKeyStatus(core, key, status);
  for (const { circuit, snapshot: state } of snapshot.circuits) applyCircuit(core, circuit, state);
  for (const { budget, buckets } of snapshot.spend) {
    core.budgets?.replaceShared(budget, buckets);
    core.keyBudgets?.replaceShared(budget, buckets);
  }
  return true;
}

/** How long a request that found something (a revoked key, a 429) waits for the store to publish it before it moves on. */
export const PUBLISH_WAIT_MS = 250;

/** How long the first requests of a manager wait for its first load from a shared store. */
export const FIRST_LOAD_WAIT_MS = 1_000;

/** Per manager: publishes not answered yet, and the first load while it is awaited. */
const publishing = new WeakMap<Core, Set<Promise<void>>>();
const firstLoads = new WeakMap<Core, Promise<void>>();

/** A write to the store that other managers should hear of before this one moves on. */
export function track(core: Core, write: void | Promise<void>): void {
  if (!(write instanceof Promise)) return;
  let pending = publishing.get(core);
  if (pending === undefined) publishing.set(core, (pending = new Set()));
  const set = pending;
  const done = write.then(
    () => void set.delete(done),
    () => void set.delete(done),
  );
  set.add(done);
}

/**
 * Resolves once the store has published what this manager found so far, or
 * after {@link PUBLISH_WAIT_MS}: the attempt loop waits for it before the
 * retry on another key, so other replicas stop using a revoked key before
 * this request goes on.
 */
export function published(core: Core): Promise<void> | undefined {
  const pending = publishing.get(core);
  if (pending === undefined || pending.size === 0) return undefined;
  return within(Promise.all(pending).then(() => undefined), PUBLISH_WAIT_MS);
}

/**
 * Holds requests until the first load from a shared store (at most
 * {@link FIRST_LOAD_WAIT_MS}), so that a process started after a key was
 * revoked elsewhere never sends with it. Returns what lets them go: call it
 * once loaded, or when the store reports an error (requests then go on, on local state).
 */
export function holdUntilLoaded(core: Core): () => void {
  let open!: () => void;
  const loaded = new Promise<void>((resolve) => (open = resolve));
  const gate = within(loaded, FIRST_LOAD_WAIT_MS).then(() => void firstLoads.delete(core));
  firstLoads.set(core, gate);
  return open;
}

/** The first load, while requests must wait for it. */
export function whenLoaded(core: Core): Promise<void> | undefined {
  return firstLoads.get(core);
}

/**
 * Once `promise` settles, or after `ms` of this process's own time: a wait
 * whose timer ran late because the event loop was blocked (start-up, for the
 * first load) starts again, and an answer that came meanwhile is read before
 * deciding (answerWithin, as the Redis store's own waits).
 */
function within(promise: Promise<void>, ms: number): Promise<void> {
  return answerWithin(promise, ms).then(() => undefined);
}
