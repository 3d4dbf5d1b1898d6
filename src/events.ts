/**
 * The typed event map. `manager.on(name, listener)` is checked by the
 * compiler against it. Payloads carry key labels (`keyId`), never keys.
 */
import type { AttemptOutcome, FailureKind, KeyplexErrorDetail } from './errors';
import type { BudgetExceededEvent } from './usage/budget/types';
import type { KeyLimits } from './resilience/rate-limit/limiter';
import type { Usage } from './usage/usage';

export type { BudgetExceededEvent };

/** Fields every per-request event carries. */
export interface RequestEventBase {
  /** keyplex's id of the request (also in the `x-keyplex-request-id` response header). */
  requestId: string;
  /** Tags given through `keyplex.options({ tags })`. */
  tags: readonly string[];
  /** Metadata given through `keyplex.options({ metadata })`. */
  metadata: Readonly<Record<string, string | number | boolean>>;
}

/** A request entered keyplex. */
export interface RequestEvent extends RequestEventBase {
  method: string;
  /** Path relative to the API base, e.g. `/chat/completions`. */
  path: string;
  /** The public model asked for, when the request names one. */
  model: string | undefined;
  stream: boolean;
}

/** An attempt is about to be sent. */
export interface AttemptEvent extends RequestEventBase {
  attempt: number;
  provider: string;
  keyId: string;
  /** The public model asked for. */
  model: string | undefined;
  /** The public model this deployment serves (differs from `model` for aliases, `auto` and fallbacks). */
  deploymentModel: string | undefined;
  upstreamModel: string | undefined;
  /** The routing strategy that ordered this deployment (`ordered`, `cost`, `latency`, `least-busy`, `weighted`, `custom`). */
  strategy: string;
  /** Its place in the request's route, 1 = first choice. */
  rank: number;
}

/** An attempt failed and another will follow after `delayMs`. */
export interface RetryEvent extends RequestEventBase {
  /** The attempt that failed (1-based). */
  attempt: number;
  provider: string;
  keyId: string;
  reason: FailureKind;
  /** HTTP status of the failed attempt, when it had one. */
  status: number | undefined;
  delayMs: number;
}

/** The next attempt goes to another provider than the last one. */
export interface FailoverEvent extends RequestEventBase {
  attempt: number;
  from: { provider: string; keyId: string };
  to: { provider: string; keyId: string };
  reason: FailureKind;
}

/** A request succeeded (for streams: when the stream ended). */
export interface SuccessEvent extends RequestEventBase {
  provider: string;
  keyId: string;
  /** The public model asked for (or the reply's model when the request named none). */
  model: string | undefined;
  upstreamModel: string | undefined;
  attempts: number;
  /** From keyplex receiving the request to the last byte of the reply. */
  latencyMs: number;
  /** Streams only: from keyplex receiving the request to the first body bytes. */
  ttftMs?: number | undefined;
  /**
   * Normalised usage; `null` when the reply reported none, or is no new
   * answer (it read, changed or cancelled a response, stored chat completion
   * or batch made before, whose usage was counted when it was made).
   */
  usage: Usage | null;
  /** Cost in USD; `null` when the usage or the model's price is unknown. */
  costUsd: number | null;
  stream: boolean;
  /** Set when the caller left a stream before its end: `usage` (flagged `partial`) and `costUsd` are what was streamed so far. */
  partial?: true;
}

/** A request failed for good. */
export interface FailureEvent extends RequestEventBase {
  model: string | undefined;
  attempts: number;
  error: KeyplexErrorDetail;
  latencyMs: number;
  /**
   * A stream that failed after data had reached the caller: what it used so
   * far (the provider bills it). Absent for requests that failed before an answer.
   */
  usage?: Usage | null;
  /** Cost of `usage` in USD; `null` when the price is unknown. Absent with `usage`. */
  costUsd?: number | null;
  /** Set with `usage`: the figures are partial (see `Usage.partial`). */
  partial?: true;
}

/** Why a key stopped being used. */
export type KeyDisabledReason = 'unauthorized' | 'forbidden' | 'quota' | 'manual';

export interface KeyDisabledEvent {
  provider: string;
  keyId: string;
  reason: KeyDisabledReason;
  /** Set when another manager made the change and the state store carried it here. */
  remote?: true;
}

export interface KeyCooldownEvent {
  provider: string;
  keyId: string;
  retryAfterMs: number;
  reason: 'rate_limit';
  /** Set when another manager made the change and the state store carried it here. */
  remote?: true;
  /**
   * Set when a value of the 429 was out of the bounds keyplex accepts and was
   * capped (`RATE_LIMIT_CAPS`: a wait over an hour — `retryAfterMs` is then
   * the hour —, a reset over a day, a limit below 1).
   */
  capped?: true;
}

/**
 * A successful reply stated a rate limit out of the bounds keyplex accepts
 * (`RATE_LIMIT_CAPS`: a reset over a day, a limit below 1) and it was capped.
 * Once per key window until a reply's headers are within bounds again; a
 * 429's cap is on `key:cooldown`.
 */
export interface KeyLimitsEvent {
  provider: string;
  keyId: string;
  /** The upstream model of the window, when the key's windows are per model (`rateLimitScope: 'model'`). */
  upstreamModel?: string;
  /** The limits in force after the reply. */
  limits: KeyLimits;
  capped: true;
}

/** A key is usable again: its cooldown ended or it was enabled. */
export interface KeyRecoveredEvent {
  provider: string;
  keyId: string;
  reason: 'cooldown_ended' | 'manual';
  /** Set when another manager made the change and the state store carried it here. */
  remote?: true;
}

export interface KeyAddedEvent {
  provider: string;
  keyId: string;
}

export interface KeyRemovedEvent {
  provider: string;
  keyId: string;
}

/** A circuit changed state. */
export interface CircuitEvent {
  /** `key`: one key's circuit; `deployment`: a provider × upstream model. */
  scope: 'key' | 'deployment';
  provider: string;
  /** The key, for key circuits. */
  keyId: string | undefined;
  /** The upstream model, for deployment circuits. */
  upstreamModel: string | undefined;
  from: 'closed' | 'open' | 'half-open';
  to: 'closed' | 'open' | 'half-open';
  /** `failures`, `probe_failed`, `open_elapsed`, `probe_succeeded`, `restored` or `manual`. */
  reason: string;
  /** When opening: how long it stays open, in ms. */
  openMs: number | undefined;
}

/** A request was refused at its lane (load shedding) before anything was sent. */
export interface LaneRejectedEvent {
  lane: string;
  /** `full`: running and queued are at capacity; `closed`: the manager is closing. */
  reason: 'full' | 'closed';
  running: number;
  queued: number;
  concurrency: number;
  maxQueue: number;
}

/**
 * The state store failed (Redis down, or slower than its `timeoutMs`). Fired
 * once per outage; the store retries until it is back (`store:recovered`).
 */
export interface StoreErrorEvent {
  /** What the store was doing: `connect`, `reserve`, `adjust`, `write`, `load` or `subscribe`. */
  operation: 'connect' | 'reserve' | 'adjust' | 'write' | 'load' | 'subscribe';
  /** The client's message (never a key). */
  message: string;
  /** `open`: requests go on, on this process's own state; `closed`: requests that need the store are refused. */
  failMode: 'open' | 'closed';
}

/** The state store is back after `store:error`: what was kept was written and the shared state reloaded. */
export interface StoreRecoveredEvent {
  /** How long it was away, in ms. */
  downMs: number;
}

/**
 * The state store (Redis) lost keyplex's shared state while connected: a
 * `FLUSHALL`, a restart or a failover to an empty replica faster than the
 * connection noticed, or keys evicted under `maxmemory`. No outage is
 * reported for it (nothing was away); this manager's store wrote back what it
 * knew (key statuses, spend, rate windows) and the manager reloaded the
 * shared state. Between the loss and this event, budgets and shared windows
 * counted from what was left. Once per loss and store.
 */
export interface StoreLostEvent {
  /**
   * How this store learnt of it: `missing`, its marker was gone (the data
   * flushed, or a server without it); `evicted`, a spend total came back
   * lower than it knew (part of the data evicted); `notice`, another store
   * found the loss and said so.
   */
  cause: StoreLossCause;
}

/** How a store learnt that Redis lost the shared state ({@link StoreLostEvent}). */
export type StoreLossCause = 'missing' | 'evicted' | 'notice';

/** A cacheable request was not in the response cache (`cache` option): it goes upstream. */
export interface CacheMissEvent extends RequestEventBase {
  model: string | undefined;
  path: string;
}

/** A request was answered from the response cache: nothing was sent. */
export interface CacheHitEvent extends CacheMissEvent {
  /** The provider whose answer was cached. */
  provider: string;
  /** How long ago the answer was cached, ms. */
  ageMs: number;
  /** What the cached answer had cost, USD; `null` when unknown. */
  savedUsd: number | null;
}

/**
 * A background response (`responses.create({ background: true })`) this
 * manager created was read in a terminal status (`completed`, `incomplete`,
 * `failed`, `cancelled`) with its usage: by a poll (`responses.retrieve`), a
 * cancel, or a stream (the create's, or one resumed) that reached its end.
 * Its cost now counts in `stats()` and in the budgets of the create (its
 * model, tags, provider and key). Once per response; the request fields
 * (`requestId`, `tags`, `metadata`) are the create's, whose `success` event
 * reported `usage: null` (a create answered `queued`).
 */
export interface BackgroundSettledEvent extends RequestEventBase {
  /** The response's id. */
  responseId: string;
  /** Where it was created. */
  provider: string;
  keyId: string;
  /** The public model the create asked for. */
  model: string | undefined;
  upstreamModel: string | undefined;
  /**
   * What it used beyond what the create's `success` event reported: all of
   * it, unless the create was a stream left before its end (its `success`
   * then reported what was streamed so far, `partial`). Summed with the
   * `success` events, these make the totals `stats()` shows.
   */
  usage: Usage;
  /** Cost of `usage` in USD; `null` when the model's price is unknown. */
  costUsd: number | null;
}

/** Event name → payload. */
export interface KeyplexEvents {
  request: RequestEvent;
  attempt: AttemptEvent;
  retry: RetryEvent;
  failover: FailoverEvent;
  success: SuccessEvent;
  failure: FailureEvent;
  'key:cooldown': KeyCooldownEvent;
  'key:disabled': KeyDisabledEvent;
  'key:recovered': KeyRecoveredEvent;
  'key:limits': KeyLimitsEvent;
  'key:added': KeyAddedEvent;
  'key:removed': KeyRemovedEvent;
  'circuit:open': CircuitEvent;
  'circuit:half-open': CircuitEvent;
  'circuit:close': CircuitEvent;
  'lane:rejected': LaneRejectedEvent;
  'budget:exceeded': BudgetExceededEvent;
  'store:error': StoreErrorEvent;
  'store:recovered': StoreRecoveredEvent;
  'store:lost': StoreLostEvent;
  'cache:hit': CacheHitEvent;
  'cache:miss': CacheMissEvent;
  'background:settled': BackgroundSettledEvent;
}

export type KeyplexEventName = keyof KeyplexEvents;

/** A listener of one event. */
export type KeyplexListener<E extends KeyplexEventName> = (payload: KeyplexEvents[E]) => void;

export type { AttemptOutcome };
