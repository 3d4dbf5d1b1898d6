/**
 * Shared state: what other managers changed, carried by the state store —
 * key states, circuit snapshots and budget spend — taken on here; and the
 * full reload at start and after the store was away.
 */
import type { CircuitSnapshot } from '../resilience/breaker/index';
import type { StoreChange, StoreCircuitRef, StoreKeyRef, StoreKeyStatus, StoreSnapshot } from '../store/types';
import type { Core } from './core';

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

/** Loads what the store holds and takes it on (at start, and after the store was away). */
export async function resync(core: Core): Promise<void> {
  const budgets = [...(core.budgets?.sharedRefs() ?? []), ...(core.keyBudgets?.sharedRefs() ?? [])];
  let snapshot: StoreSnapshot;
  try {
    const answer = core.session.load(budgets);
    snapshot = answer instanceof Promise ? await answer : answer;
  } catch {
    return; // The store reported it (store:error) and will call again when it is back.
  }
  if (core.closed) return;
  for (const { key, status } of snapshot.keys) applyKeyStatus(core, key, status);
  for (const { circuit, snapshot: state } of snapshot.circuits) applyCircuit(core, circuit, state);
  for (const { budget, buckets } of snapshot.spend) {
    core.budgets?.replaceShared(budget, buckets);
    core.keyBudgets?.replaceShared(budget, buckets);
  }
}
