/**
 * What every stage shares: the manager-wide state, in one typed object made
 * by `createCore` (./wiring.ts) and handed to each stage. It holds data and a
 * few lookups, no pipeline logic; this module imports no stage, so stages can
 * all import it without a cycle.
 */
import type { ResponseCache } from '../cache/cache';
import type { ResolvedKey, ResolvedOptions } from '../config';
import type { KeyplexErrorCode } from '../errors';
import type { Key } from '../keys/key';
import type { ProviderPool } from '../keys/pool';
import type { KeySelector } from '../keys/selector';
import type { Circuit } from '../resilience/breaker/index';
import type { Bulkhead } from '../resilience/bulkhead';
import type { LimiterRegistry } from '../resilience/rate-limit/index';
import type { ObjectAffinity } from '../routing/affinity';
import type { Deployment } from '../routing/deployments';
import { OTHER_MODELS, type ModelNames } from '../routing/model-names';
import type { RoutingStrategy } from '../routing/strategy';
import type { StoreSession } from '../store/types';
import type { Budgets } from '../usage/budget';
import type { PriceTable } from '../usage/pricing';
import { TimedCounterSet } from '../usage/stats';
import type { ActiveRequests } from './abort';
import type { BackgroundRuns } from './background-runs';
import type { EventHub } from './hub';

/** A request's place in a line of requests waiting for a key. */
export interface LinePlace {
  /** Set while it waits for its turn: gives it. */
  turn: (() => void) | undefined;
  /** Set while it waits for its turn: refuses it (the first in line can go only after its deadline). */
  refuse: ((why: unknown) => void) | undefined;
  /** Its request's deadline. */
  readonly deadlineAt: number;
  /** Its lane's priority: lower goes first (after the first in line). */
  readonly priority: number;
  /** First in line, waiting for a key: the soonest it could go (unset until known), and when it expects to. */
  soonestAt: number | undefined;
  readyAt: number;
}

/** A routing strategy with the name events and stats show. */
export interface NamedStrategy {
  name: string;
  strategy: RoutingStrategy;
}

/** Manager-wide state the stages share. */
export interface Core {
  readonly options: ResolvedOptions;
  readonly pools: readonly ProviderPool[];
  readonly selector: KeySelector;
  readonly prices: PriceTable;
  readonly hub: EventHub;
  readonly bulkhead: Bulkhead;
  readonly strategy: NamedStrategy;
  readonly perModel: ReadonlyMap<string, NamedStrategy>;
  /** Budgets judged when a request arrives (undefined when none is configured). */
  readonly budgets: Budgets | undefined;
  /** Budgets of a provider or key, judged when a key is picked. */
  readonly keyBudgets: Budgets | undefined;
  /** Budgets whose crossing was announced, until their window resets. */
  readonly budgetAnnounced: Map<string, number>;
  /** This manager's session on its state store. */
  readonly session: StoreSession;
  /** The response cache; undefined when off. */
  readonly cache: ResponseCache | undefined;
  /** Which key created each response, file, batch… (`affinity`); undefined when off. */
  readonly affinity: ObjectAffinity | undefined;
  /** The background responses this manager created and has not seen end (background.ts). */
  readonly background: BackgroundRuns;
  /** Request counters in total. */
  readonly totals: TimedCounterSet<KeyplexErrorCode>;
  /** Request counters by the public model asked for. */
  readonly models: Map<string, TimedCounterSet<KeyplexErrorCode>>;
  /** Every deployment circuit in use, for close(). */
  readonly deploymentCircuits: Map<Circuit, { provider: string; upstreamModel: string }>;
  /** Model names not known from configuration that keep per-model state (a bounded set). */
  readonly modelNames: ModelNames;
  /** The `stats().models['(other)']` bucket: names that gave their place up. */
  otherModels(): TimedCounterSet<KeyplexErrorCode>;
  /** Requests waiting for a usable key, in arrival order, by set of deployments. */
  readonly lines: Map<string, LinePlace[]>;
  /** Wakes of requests sleeping until a key may be usable. */
  readonly keyWaiters: Set<() => void>;
  /** Controllers of requests in flight, aborted by close(). */
  readonly active: ActiveRequests;
  readonly idPrefix: string;
  sequence: number;
  inFlight: number;
  closed: boolean;
  closedByAbort: boolean;
  storeDown: boolean;
  /** Resolved when no request is left in flight. */
  idleWaiters: (() => void)[];
  /** Rate-limit windows per key × upstream model and per quota group (a key's own are on the key). */
  readonly limiters: LimiterRegistry;
  /** The circuit of a provider's upstream model, made on first use; undefined when deployment circuits are off. */
  circuitOf(pool: ProviderPool, upstreamModel: string): Circuit | undefined;
  /** A new key's state, wired to its limiter, circuit and lifecycle reports. */
  makeKey: (provider: string, resolved: ResolvedKey) => Key;
  /** A deployment of `pool`, priced from the table. */
  makeDeployment: (pool: ProviderPool, model: string, upstreamModel: string | undefined) => Deployment;
}

/** The `(other)` bucket of `core.models`, made on first use. */
export function otherModels(core: Core): TimedCounterSet<KeyplexErrorCode> {
  let stats = core.models.get(OTHER_MODELS);
  if (!stats) {
    stats = new TimedCounterSet<KeyplexErrorCode>();
    core.models.set(OTHER_MODELS, stats);
  }
  return stats;
}

/** Wakes requests waiting for a usable key. */
export function keysChanged(core: Core): void {
  if (core.keyWaiters.size === 0) return;
  for (const wake of [...core.keyWaiters]) wake();
}

/** The circuit of a deployment; undefined when deployment circuits are off. */
export function deploymentCircuit(core: Core, deployment: Deployment): Circuit | undefined {
  return core.circuitOf(deployment.pool, deployment.upstreamModel ?? '');
}

/**
 * The counters of a public model, made on first use; none for requests that
 * name no model. A name without a place among the model names (see
 * src/routing/model-names.ts) counts in `(other)`.
 */
export function modelStats(core: Core, model: string | undefined): TimedCounterSet<KeyplexErrorCode> | undefined {
  if (model === undefined) return undefined;
  let stats = core.models.get(model);
  if (!stats) {
    if (!core.modelNames.holds(model)) return core.otherModels();
    stats = new TimedCounterSet<KeyplexErrorCode>();
    core.models.set(model, stats);
  }
  return stats;
}
