/**
 * Builds the {@link Core} a manager's stages share from its resolved options:
 * pools and keys (with their limiters, circuits and lifecycle reports),
 * lanes, selector, routing strategies, budgets, prices and the state-store
 * session, each wired to report on the manager's events.
 */
import { ResponseCache } from '../cache/cache';
import { ObjectAffinity } from '../routing/affinity';
import type { ResolvedKey, ResolvedOptions } from '../config';
import type { Key, KeyChange, KeyChangeListener } from '../keys/key';
import { Key as KeyState } from '../keys/key';
import { createSelector } from '../keys/create-selector';
import { ProviderPool } from '../keys/pool';
import { Circuit, type CircuitChange } from '../resilience/breaker/index';
import { Bulkhead } from '../resilience/bulkhead';
import { LimiterRegistry } from '../resilience/rate-limit/index';
import { Deployment } from '../routing/deployments';
import { knownModels, ModelNames } from '../routing/model-names';
import { createRoutingStrategy } from '../routing/strategy';
import { MemoryStore } from '../store/memory';
import type { StateStore, StoreCircuitRef, StoreKeyRef, StoreSession } from '../store/types';
import { Budgets } from '../usage/budget';
import { PriceTable } from '../usage/pricing';
import { TimedCounterSet } from '../usage/stats';
import type { KeyplexErrorCode } from '../errors';
import { DEFAULTS } from '../config/defaults';
import { ActiveRequests } from './abort';
import { BackgroundRuns } from './background-runs';
import { budgetCrossed } from './admit';
import { keysChanged, otherModels, type Core, type NamedStrategy } from './core';
import { EventHub } from './hub';
import { applyChange, holdUntilLoaded, resync, track } from './store-sync';
import { keyWindows } from './windows';

/** Marks an event as carried from another manager by the state store. */
const REMOTE = { remote: true } as const;
/** Marks a cooldown whose rest was capped. */
const CAPPED = { capped: true } as const;

/** The shared state of a new manager. The resolved options give up their secrets to the keys. */
export function createCore(options: ResolvedOptions): Core {
  const hub = new EventHub();
  const named = (choice: ResolvedOptions['routing']['strategy']): NamedStrategy => ({
    name: typeof choice === 'string' ? choice : 'custom',
    strategy: createRoutingStrategy(choice),
  });
  const perModel = new Map<string, NamedStrategy>();
  for (const [model, choice] of Object.entries(options.routing.perModel)) perModel.set(model, named(choice));
  // Budgets of a provider or key are judged when a key is picked (when the request meets them); the others when it arrives.
  const perKey = options.budgets.filter((b) => 'provider' in b.scope);
  const perRequest = options.budgets.filter((b) => !('provider' in b.scope));
  const prices = new PriceTable(options.prices);
  const store: StateStore = options.store ?? new MemoryStore();
  // One listener for every key's lifecycle changes; one listener and one set of checked options for every key circuit.
  const onKeyChange: KeyChangeListener = (key, change) => keyChanged(core, key, change);
  const keyCircuit = options.circuitBreaker.key === false ? undefined : Circuit.family(options.circuitBreaker.key, keyCircuitListener(() => core));
  const core: Core = {
    options,
    pools: [],
    selector: createSelector(options.keySelection),
    prices,
    hub,
    bulkhead: new Bulkhead(options.lanes, (rejection) => {
      if (hub.wants('lane:rejected')) hub.emit('lane:rejected', { ...rejection });
    }),
    strategy: named(options.routing.strategy),
    perModel,
    budgets: perRequest.length === 0 ? undefined : new Budgets(perRequest, (event) => budgetCrossed(core, event)),
    keyBudgets: perKey.length === 0 ? undefined : new Budgets(perKey, (event) => budgetCrossed(core, event)),
    budgetAnnounced: new Map(),
    // Opened below, once the pools exist (a store may report at once).
    session: undefined as unknown as StoreSession,
    cache: options.cache === undefined ? undefined : new ResponseCache(options.cache, store),
    affinity: options.affinity === undefined ? undefined : new ObjectAffinity(options.affinity),
    // Bounded as object affinity is (its defaults when it is off).
    background: new BackgroundRuns((options.affinity ?? DEFAULTS.affinity).maxIds, (options.affinity ?? DEFAULTS.affinity).ttlMs),
    totals: new TimedCounterSet<KeyplexErrorCode>(),
    models: new Map(),
    deploymentCircuits: new Map(),
    modelNames: new ModelNames(knownModels(options), options.maxDynamicModels),
    otherModels: () => otherModels(core),
    lines: new Map(),
    keyWaiters: new Set(),
    active: new ActiveRequests(),
    idPrefix: `kp_${Math.random().toString(36).slice(2, 8)}_`,
    sequence: 0,
    inFlight: 0,
    closed: false,
    closedByAbort: false,
    storeDown: false,
    idleWaiters: [],
    limiters: new LimiterRegistry({ adaptive: options.rateLimiting.adaptive }),
    circuitOf: (pool, upstreamModel) => circuitOf(core, pool, upstreamModel),
    makeKey: (provider, resolved) => makeKey(core, provider, resolved, onKeyChange, keyCircuit),
    makeDeployment: (pool, model, upstream) => new Deployment(pool, model, upstream, prices.priceFor(upstream ?? model, model)),
  };
  (core as { pools: readonly ProviderPool[] }).pools = options.providers.map((provider) => new ProviderPool(provider, core.makeKey));
  // The resolved options held the secrets only until the key states took them.
  for (const provider of options.providers) provider.keys = [];
  for (const budgets of [core.budgets, core.keyBudgets]) {
    if (budgets) budgets.onRecorded = (refs, nanos, at) => core.session.addSpend({ budgets: refs, nanos, at });
  }
  openSession(core, store);
  return core;
}

/**
 * Opens the manager's session on its store (once the pools exist: a store
 * may report at once), its reports turned into events and reloads.
 */
function openSession(core: Core, store: StateStore): void {
  const hub = core.hub;
  // What other managers recorded before this one started (a store of its own holds nothing): requests wait for it.
  const loaded = core.options.store === undefined ? undefined : holdUntilLoaded(core);
  const reload = () => void resync(core).then((ok) => ok && loaded?.());
  (core as { session: StoreSession }).session = store.open({
    change: (change) => applyChange(core, change),
    error: (failure) => {
      loaded?.();
      core.storeDown = true;
      if (hub.wants('store:error')) hub.emit('store:error', { ...failure });
    },
    // Also called when a store that was not connected yet connects: a reload, but no recovery to report.
    recovered: (downMs) => {
      if (core.storeDown && hub.wants('store:recovered')) hub.emit('store:recovered', { downMs });
      core.storeDown = false;
      reload();
    },
    lost: (cause) => {
      if (hub.wants('store:lost')) hub.emit('store:lost', { cause });
    },
  });
  if (core.options.store !== undefined) reload();
}

/** One listener for every key circuit of a manager (a closure and a ref per key cost each key's heap); the key is the circuit's `owner` (its store ref, set in makeKey). */
function keyCircuitListener(core: () => Core): (change: CircuitChange, circuit: Circuit) => void {
  return (change, circuit) => {
    const key = circuit.owner as StoreKeyRef | undefined;
    if (key !== undefined) circuitChanged(core(), { scope: 'key', provider: key.provider, keyId: key.keyId }, change, circuit);
  };
}

/** A key's state with its rate limiter, circuit and lifecycle reports. */
function makeKey(core: Core, provider: string, resolved: ResolvedKey, onKeyChange: KeyChangeListener, makeCircuit: (() => Circuit) | undefined): Key {
  const { limiter, windows } = keyWindows(core, provider, resolved);
  const circuit = makeCircuit?.();
  const key = new KeyState(provider, resolved, limiter, circuit, onKeyChange, windows);
  if (circuit !== undefined) circuit.owner = key.ref;
  return key;
}

/** The circuit of a provider's upstream model, made on first use; undefined when deployment circuits are off. */
function circuitOf(core: Core, pool: ProviderPool, upstreamModel: string): Circuit | undefined {
  const options = core.options.circuitBreaker.deployment;
  if (options === false) return undefined;
  let circuit = pool.circuits.get(upstreamModel);
  if (!circuit) {
    // A name that lost its place while its request waited runs without a circuit rather than outside the bound.
    if (pool.models === undefined && !core.modelNames.holds(upstreamModel)) return undefined;
    const provider = pool.id;
    const ref: StoreCircuitRef = { scope: 'deployment', provider, upstreamModel };
    const made: Circuit = new Circuit(options, (change) => circuitChanged(core, ref, change, made));
    circuit = made;
    pool.circuits.set(upstreamModel, circuit);
    core.deploymentCircuits.set(circuit, { provider, upstreamModel });
  }
  return circuit;
}

function circuitChanged(core: Core, ref: StoreCircuitRef, change: CircuitChange, circuit: Circuit): void {
  const event = change.to === 'open' ? 'circuit:open' : change.to === 'half-open' ? 'circuit:half-open' : 'circuit:close';
  if (core.hub.wants(event)) {
    const keyId = ref.scope === 'key' ? ref.keyId : undefined;
    const upstreamModel = ref.scope === 'deployment' ? ref.upstreamModel : undefined;
    core.hub.emit(event, { scope: ref.scope, provider: ref.provider, keyId, upstreamModel, from: change.from, to: change.to, reason: change.reason, openMs: change.openMs });
  }
  // Opening and closing are news for other managers; half-opening each does on its own clock, and a restored state came from them.
  if (change.reason !== 'restored' && change.reason !== 'open_elapsed') track(core, core.session.setCircuit(ref, circuit.toJSON()));
  // Waiting requests judge again: a circuit that half-opens or closes may be what one needs,
  // and one that (re)opens may push its wait past a deadline, which should fail now, not then.
  keysChanged(core);
}

/** A key's state changed: published to the store (unless it came from there), announced, waiting requests woken. */
function keyChanged(core: Core, key: Key, change: KeyChange): void {
  const { hub, session } = core;
  const provider = key.provider;
  const keyId = key.id;
  switch (change.kind) {
    case 'cooldown':
      if (!change.remote) track(core, session.setKey(key.ref, { disabled: null, cooldownUntil: change.until }));
      if (hub.wants('key:cooldown')) {
        hub.emit('key:cooldown', { provider, keyId, retryAfterMs: change.ms, reason: 'rate_limit', ...(change.remote && REMOTE), ...(change.capped && CAPPED) });
      }
      return;
    case 'cooldown-ended':
      if (hub.wants('key:recovered')) hub.emit('key:recovered', { provider, keyId, reason: 'cooldown_ended' });
      return;
    case 'disabled':
      if (!change.remote) track(core, session.setKey(key.ref, { disabled: change.reason, cooldownUntil: 0 }));
      if (hub.wants('key:disabled')) hub.emit('key:disabled', { provider, keyId, reason: change.reason, ...(change.remote && REMOTE) });
      // Requests waiting for it judge again: with no key left they fail (or move on) now, not at their deadline.
      keysChanged(core);
      return;
    case 'enabled':
      if (!change.remote) session.setKey(key.ref, { disabled: null, cooldownUntil: 0 });
      if (change.wasOut) {
        if (hub.wants('key:recovered')) hub.emit('key:recovered', { provider, keyId, reason: 'manual', ...(change.remote && REMOTE) });
        keysChanged(core);
      }
      return;
    case 'removed':
      core.limiters.remove(provider, keyId);
      // What its attempts in flight still do to its circuit is nobody's news (a key added back under its id is another).
      if (key.circuit !== undefined) key.circuit.owner = undefined;
      if (hub.wants('key:removed')) hub.emit('key:removed', { provider, keyId });
      keysChanged(core);
      return;
  }
}
