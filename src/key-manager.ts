/**
 * KeyManager: configuration, `wrap()`, and the request pipeline
 * (DESIGN.md §2): intercept → route → pick a key → send → classify →
 * retry / fail over → account.
 */
import { EventEmitter } from 'eventemitter3';
import pRetry, { AbortError } from 'p-retry';
import { resolveKey, resolveOptions, type KeyInput, type KeyManagerOptions, type ResolvedKey, type ResolvedOptions } from './config';
import { errorResponse, REQUEST_ID_HEADER, withDetail } from './details';
import {
  ConfigError,
  DeadlineExceededError,
  KeyplexError,
  ManagerClosedError,
  ModelNotServedError,
  NoKeyAvailableError,
  StoreUnavailableError,
  StreamInterruptedError,
  UpstreamError,
  type AttemptOutcome,
  type FailureKind,
  type KeyplexErrorCode,
  type KeyplexErrorDetail,
} from './errors';
import type { KeyDisabledReason, KeyplexEventName, KeyplexEvents, KeyplexListener, RequestEventBase } from './events';
import { createSelector } from './keys/create-selector';
import { KeyState, ProviderPool, secretOf } from './keys/key-state';
import type { KeySelector } from './keys/selector';
import { intercept, bodyFor, KEYPLEX_BASE_URL, type Body, type InterceptedRequest } from './request';
import { backoffDelay, sleep } from './resilience/backoff';
import { Circuit, type CircuitChange } from './resilience/breaker/index';
import { Bulkhead, type LaneStats } from './resilience/bulkhead';
import { classifyStatus, type Classification } from './resilience/classify';
import { estimateInputTokens, estimateOutputTokens, KeyLimiter, type Reservation } from './resilience/rate-limit/index';
import { rateLimitResetMs, retryAfterMs } from './resilience/headers';
import { contextFallbackChain, requestFeatures, resolveModel } from './routing/catalogue';
import { fitsContext } from './routing/context-window';
import { Deployment, route } from './routing/deployments';
import { estimatedCost } from './routing/cost';
import { createRoutingStrategy, type DeploymentView, type RoutingStrategy } from './routing/strategy';
import { budgetExceededError, Budgets, type BudgetExceededEvent, type Hold } from './usage/budget';
import { costAt, PriceTable } from './usage/pricing';
import { tapEventStream } from './usage/sse';
import { TimedCounterSet, type DeploymentStats, type KeyplexStats, type ModelStats, type ProviderStats } from './usage/stats';
import { usageFromBody, type Usage } from './usage/usage';
import { MemoryStore } from './store/memory';
import type { CircuitSnapshot } from './resilience/breaker/index';
import type { StateStore, StoreChange, StoreSnapshot, StoreCircuitRef, StoreKeyRef, StoreKeyStatus, StoreLimits, StoreReservation, StoreSession } from './store/types';

/** What `wrap()` needs of a client: the `openai` SDK's `withOptions`. */
export interface WrappableClient<C> {
  withOptions(options: { fetch: typeof globalThis.fetch; maxRetries: number; baseURL: string }): C;
}

type ReadResult = Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>['read']>>;
type EmitterEvents = { [E in KeyplexEventName]: [KeyplexEvents[E]] };

const EMPTY_TAGS: readonly string[] = Object.freeze([]);
const EMPTY_METADATA: Readonly<Record<string, string | number | boolean>> = Object.freeze({});

/** Keys judged per batch when picking from a large pool. */
const SAMPLE = 32;

/** Marks an attempt ended by its own timeout (not the caller, not the deadline). */
class AttemptTimeout extends Error {}

/** An attempt that did not succeed; carries what the next step needs. */
class AttemptFailure extends Error {
  constructor(
    readonly outcome: AttemptOutcome,
    readonly classification: Classification,
    /** The upstream answer, buffered, when there was one (to pass on if this is the last attempt). */
    readonly response: { response: Response; body: string } | undefined,
    /** The wait the upstream asked for, if any. */
    readonly retryAfterMs: number | undefined,
    /** True when this key had not been tried before in this request (a free rotation). */
    readonly firstTryOfKey: boolean,
    cause?: unknown,
  ) {
    super(`attempt ${outcome.attempt} failed: ${outcome.kind}`, cause === undefined ? undefined : { cause });
  }
}

/** A successful attempt, before accounting. */
interface AttemptSuccess {
  response: Response;
  deployment: Deployment;
  key: KeyState;
}

/** Per-request state of the pipeline. */
interface RequestState extends RequestEventBase {
  request: InterceptedRequest;
  startedAt: number;
  deadlineAt: number;
  deadlineMs: number;
  attempts: AttemptOutcome[];
  tried: Set<KeyState>;
  /** Keys tried per deployment in this request (a key may serve a fallback model of the same provider). */
  triedOn: Map<Deployment, Set<KeyState>>;
  /** Transient failures per provider in this request. */
  transient: Map<ProviderPool, number>;
  transientTotal: number;
  last: { pool: ProviderPool; key: KeyState; kind: FailureKind } | undefined;
  /** The last upstream error answer, buffered. */
  lastAnswer: { response: Response; body: string } | undefined;
  /** Estimated prompt tokens. */
  inputTokens: number;
  /** Estimated output tokens (the max-tokens field, else the default). */
  outputTokens: number;
  /** Estimated tokens (prompt + max output), reserved on the key before each attempt. */
  tokens: number;
  /** Frees the request's lane slot; called once the reply is complete (streams: when they end). */
  releaseLane: (() => void) | undefined;
  /** Set when the reply is a stream still being read: the lane slot is released when it ends. */
  streaming: boolean;
  /** Detaches the request from the caller's signal and from close(); for streams, called when they end. */
  finish: (() => void) | undefined;
  /** How each deployment came to be in the route, for the `attempt` event. */
  routes: Map<Deployment, { strategy: string; rank: number }>;
  /** Set when deployments exist but none has a context window large enough. */
  contextTooLong: boolean;
  /** The request's route (grows when a context fallback is added). */
  deployments: Deployment[];
  /** Models that answered `context_length_exceeded` in this request: not tried again. */
  excludedModels: Set<string>;
  /** The request's estimated cost held against its budgets, settled when it ends. */
  budgetHold: Hold | undefined;
  /** The current attempt's estimated cost held against its provider and key budgets. */
  keyBudgetHold: Hold | undefined;
  /** Set when a provider or key budget ruled keys out: the request's error if none is left. */
  budgetRefusal: KeyplexError | undefined;
}

/** A request's place in a line of requests waiting for a key; `turn` is set while it waits for its turn. */
interface LinePlace {
  turn: (() => void) | undefined;
}

/** Shared reservations one acquire may see refused before it waits between tries. */
const MAX_FREE_REFUSALS = 8;

/** Marks an event as carried from another manager by the state store. */
const REMOTE = { remote: true } as const;

/** A key picked for an attempt, with what it holds. */
interface Pick {
  deployment: Deployment;
  key: KeyState;
  reservation: Reservation;
  /** The deployment's circuit, when deployment circuits are on. */
  circuit: Circuit | undefined;
  /** The limits the reservation was also taken under in the shared store; undefined when it was not. */
  shared: StoreLimits | undefined;
}

/**
 * Many keys across many OpenAI-compatible providers as one client.
 *
 * ```ts
 * const manager = new KeyManager({ providers: { openai: { baseURL: 'https://api.openai.com/v1', keys: [k1, k2] } } });
 * const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
 * ```
 */
export class KeyManager {
  readonly #options: ResolvedOptions;
  #pools: ProviderPool[];
  readonly #selector: KeySelector;
  readonly #prices: PriceTable;
  readonly #emitter = new EventEmitter<EmitterEvents>();
  readonly #guards = new WeakMap<(payload: never) => void, (payload: never) => void>();
  readonly #totals = new TimedCounterSet<KeyplexErrorCode>();
  /** Requests by the public model asked for. */
  readonly #models = new Map<string, TimedCounterSet<KeyplexErrorCode>>();
  #inFlight = 0;
  /** Controllers of requests in flight, aborted by close(). */
  readonly #active = new Set<AbortController>();
  #closedByAbort = false;
  #closed = false;
  #idleWaiters: (() => void)[] = [];
  readonly #keyWaiters = new Set<() => void>();
  /** Requests waiting for a usable key, in arrival order, by set of deployments. */
  readonly #lines = new Map<string, LinePlace[]>();
  readonly #idPrefix = `kp_${Math.random().toString(36).slice(2, 8)}_`;
  readonly #bulkhead: Bulkhead;
  readonly #strategy: { name: string; strategy: RoutingStrategy };
  readonly #perModel = new Map<string, { name: string; strategy: RoutingStrategy }>();
  readonly #budgets: Budgets | undefined;
  readonly #keyBudgets: Budgets | undefined;
  /** Budgets whose crossing was announced, until their window resets. */
  readonly #budgetAnnounced = new Map<string, number>();
  /** Every deployment circuit made so far, for stats and close(). */
  readonly #deploymentCircuits: { provider: string; upstreamModel: string; circuit: Circuit }[] = [];
  #sequence = 0;
  #warnedListenerError = false;
  /** This manager's session on its state store (default: a MemoryStore of its own). */
  readonly #session: StoreSession;
  /** Set by store:error until the store recovers. */
  #storeDown = false;

  /** @throws ConfigError naming the offending option. */
  constructor(options: KeyManagerOptions) {
    this.#options = resolveOptions(options);
    this.#pools = this.#options.providers.map((provider) => new ProviderPool(provider, (id, key) => this.#makeKey(id, key)));
    this.#bulkhead = new Bulkhead(this.#options.lanes, (rejection) => {
      if (this.#wants('lane:rejected')) this.#emit('lane:rejected', { ...rejection });
    });
    // The resolved options held the secrets only until the key states took them.
    for (const provider of this.#options.providers) provider.keys = [];
    this.#selector = createSelector(this.#options.keySelection);
    const named = (choice: ResolvedOptions['routing']['strategy']) => ({
      name: typeof choice === 'string' ? choice : 'custom',
      strategy: createRoutingStrategy(choice),
    });
    this.#strategy = named(this.#options.routing.strategy);
    // Budgets of a provider or key are judged when a key is picked (that is
    // when the request meets them); the others when the request arrives.
    const perKey = this.#options.budgets.filter((b) => 'provider' in b.scope);
    const perRequest = this.#options.budgets.filter((b) => !('provider' in b.scope));
    this.#budgets = perRequest.length === 0 ? undefined : new Budgets(perRequest, (event) => this.#budgetCrossed(event));
    this.#keyBudgets = perKey.length === 0 ? undefined : new Budgets(perKey, (event) => this.#budgetCrossed(event));
    for (const [model, choice] of Object.entries(this.#options.routing.perModel)) this.#perModel.set(model, named(choice));
    this.#prices = new PriceTable(this.#options.prices);
    const store: StateStore = this.#options.store ?? new MemoryStore();
    this.#session = store.open({
      change: (change) => this.#applyChange(change),
      error: (failure) => {
        this.#storeDown = true;
        if (this.#wants('store:error')) this.#emit('store:error', { ...failure });
      },
      // Also called when a store that was not connected yet connects: a reload, but no recovery to report.
      recovered: (downMs) => {
        if (this.#storeDown && this.#wants('store:recovered')) this.#emit('store:recovered', { downMs });
        this.#storeDown = false;
        void this.#resync();
      },
    });
    for (const budgets of [this.#budgets, this.#keyBudgets]) {
      if (budgets) budgets.onRecorded = (refs, nanos, at) => this.#session.addSpend({ budgets: refs, nanos, at });
    }
    // What other managers recorded before this one started (a store of its own holds nothing).
    if (this.#options.store !== undefined) void this.#resync();
  }

  /**
   * The `fetch` every request goes through. `wrap()` installs it; it can also
   * be given to a client directly (`new OpenAI({ fetch: manager.fetch, maxRetries: 0, baseURL: KEYPLEX_BASE_URL })`).
   */
  readonly fetch = (input: string | URL | Request, init?: RequestInit): Promise<Response> => this.#handle(input, init);

  /**
   * The same SDK client with every request routed through keyplex: its
   * `fetch` is the manager's, its own retries are off (keyplex retries, switching
   * keys between attempts), and its base URL is a placeholder that keyplex
   * replaces with the chosen provider's.
   */
  wrap<C extends WrappableClient<C>>(client: C): C {
    return client.withOptions({ fetch: this.fetch, maxRetries: 0, baseURL: KEYPLEX_BASE_URL });
  }

  /** A key's state with its rate limiter and circuit. */
  #makeKey(provider: string, resolved: ResolvedKey): KeyState {
    const limiter = new KeyLimiter({ rpm: resolved.rpm, tpm: resolved.tpm, adaptive: this.#options.rateLimiting.adaptive });
    const options = this.#options.circuitBreaker.key;
    const ref: StoreCircuitRef = { scope: 'key', provider, keyId: resolved.id };
    const circuit: Circuit | undefined =
      options === false ? undefined : new Circuit(options, (change) => this.#circuitChanged(ref, change, circuit!));
    return new KeyState(provider, resolved, limiter, circuit);
  }

  /** The circuit of a deployment, made on first use; undefined when deployment circuits are off. */
  #deploymentCircuit(deployment: Deployment): Circuit | undefined {
    return this.#circuitOf(deployment.pool, deployment.upstreamModel ?? '');
  }

  /** The circuit of a provider's upstream model, made on first use; undefined when deployment circuits are off. */
  #circuitOf(pool: ProviderPool, upstreamModel: string): Circuit | undefined {
    const options = this.#options.circuitBreaker.deployment;
    if (options === false) return undefined;
    let circuit = pool.circuits.get(upstreamModel);
    if (!circuit) {
      const provider = pool.id;
      const ref: StoreCircuitRef = { scope: 'deployment', provider, upstreamModel };
      const made: Circuit = new Circuit(options, (change) => this.#circuitChanged(ref, change, made));
      circuit = made;
      pool.circuits.set(upstreamModel, circuit);
      this.#deploymentCircuits.push({ provider, upstreamModel, circuit });
    }
    return circuit;
  }

  #circuitChanged(ref: StoreCircuitRef, change: CircuitChange, circuit: Circuit): void {
    const event = change.to === 'open' ? 'circuit:open' : change.to === 'half-open' ? 'circuit:half-open' : 'circuit:close';
    if (this.#wants(event)) {
      const keyId = ref.scope === 'key' ? ref.keyId : undefined;
      const upstreamModel = ref.scope === 'deployment' ? ref.upstreamModel : undefined;
      this.#emit(event, { scope: ref.scope, provider: ref.provider, keyId, upstreamModel, from: change.from, to: change.to, reason: change.reason, openMs: change.openMs });
    }
    // Opening and closing are news for other managers; half-opening each does on its own clock, and a restored state came from them.
    if (change.reason !== 'restored' && change.reason !== 'open_elapsed') this.#session.setCircuit(ref, circuit.toJSON());
    // A circuit that half-opens or closes may be what a waiting request needs.
    if (change.to !== 'open') this.#keysChanged();
  }

  // ---------------------------------------------------------------- events

  /** Adds a listener. A listener that throws never breaks a request. */
  on<E extends KeyplexEventName>(event: E, listener: KeyplexListener<E>): this {
    this.#emitter.on(event, this.#guard(listener) as never);
    return this;
  }

  /** Adds a listener called at most once. */
  once<E extends KeyplexEventName>(event: E, listener: KeyplexListener<E>): this {
    this.#emitter.once(event, this.#guard(listener) as never);
    return this;
  }

  /** Removes a listener added with `on` or `once`. */
  off<E extends KeyplexEventName>(event: E, listener: KeyplexListener<E>): this {
    const guard = this.#guards.get(listener as (payload: never) => void);
    if (guard) this.#emitter.off(event, guard as never);
    return this;
  }

  #guard<E extends KeyplexEventName>(listener: KeyplexListener<E>): (payload: KeyplexEvents[E]) => void {
    const key = listener as (payload: never) => void;
    let guard = this.#guards.get(key);
    if (!guard) {
      guard = ((payload: KeyplexEvents[E]) => {
        try {
          const result: unknown = listener(payload);
          if (result instanceof Promise) result.catch((error: unknown) => this.#listenerFailed(error));
        } catch (error) {
          this.#listenerFailed(error);
        }
      }) as (payload: never) => void;
      this.#guards.set(key, guard);
    }
    return guard as (payload: KeyplexEvents[E]) => void;
  }

  #listenerFailed(error: unknown): void {
    if (this.#warnedListenerError) return;
    this.#warnedListenerError = true;
    const message = error instanceof Error ? error.message : String(error);
    process.emitWarning(`a keyplex event listener threw; the request went on (reported once): ${message}`, {
      code: 'KEYPLEX_LISTENER_ERROR',
    });
  }

  #wants(event: KeyplexEventName): boolean {
    return this.#emitter.listenerCount(event) > 0;
  }

  #emit<E extends KeyplexEventName>(event: E, payload: KeyplexEvents[E]): void {
    (this.#emitter.emit as (event: E, payload: KeyplexEvents[E]) => boolean)(event, payload);
  }

  // ---------------------------------------------------------------- the pipeline

  async #handle(input: string | URL | Request, init: RequestInit | undefined): Promise<Response> {
    if (this.#closed) throw new ManagerClosedError();
    const startedAt = Date.now();
    const request = intercept(input, init);
    const requestId = this.#idPrefix + (++this.#sequence).toString(36);
    const deadlineMs = request.options.deadlineMs ?? this.#options.deadlineMs;
    const state: RequestState = {
      requestId,
      tags: request.options.tags ?? EMPTY_TAGS,
      metadata: request.options.metadata ?? EMPTY_METADATA,
      request,
      startedAt,
      deadlineAt: startedAt + deadlineMs,
      deadlineMs,
      attempts: [],
      tried: new Set(),
      triedOn: new Map(),
      transient: new Map(),
      transientTotal: 0,
      last: undefined,
      lastAnswer: undefined,
      inputTokens: request.json ? estimateInputTokens(request.json) : 0,
      outputTokens: request.json ? estimateOutputTokens(request.json, this.#options.rateLimiting.defaultOutputTokens) : 0,
      tokens: 0,
      releaseLane: undefined,
      streaming: false,
      finish: undefined,
      routes: new Map(),
      contextTooLong: false,
      deployments: [],
      excludedModels: new Set(),
      budgetHold: undefined,
      keyBudgetHold: undefined,
      budgetRefusal: undefined,
    };
    state.tokens = state.inputTokens + state.outputTokens;
    this.#totals.requests++;
    const modelStats = this.#modelStats(request.model);
    if (modelStats) modelStats.requests++;
    this.#inFlight++;
    if (this.#wants('request')) {
      this.#emit('request', {
        requestId,
        tags: state.tags,
        metadata: state.metadata,
        method: request.method,
        path: request.path,
        model: request.model,
        stream: request.stream,
      });
    }

    // One controller per request: the deadline, the caller's signal and close() abort it.
    const control = new AbortController();
    const signal = control.signal;
    const deadlineTimer = setTimeout(() => control.abort(new AttemptTimeout('deadline')), deadlineMs);
    const caller = request.signal;
    const onCallerAbort = () => control.abort(caller?.reason);
    if (caller?.aborted) onCallerAbort();
    else caller?.addEventListener('abort', onCallerAbort, { once: true });
    this.#active.add(control);
    try {
      const deployments = this.#route(state);
      state.deployments = deployments;
      if (deployments.length === 0) {
        const error =
          request.options.provider !== undefined && !this.#pools.some((p) => p.id === request.options.provider)
            ? new KeyplexError('invalid_request_options', `keyplex: request option \`provider\` names '${request.options.provider}', which is not configured.`, { requestId, status: 400 })
            : state.contextTooLong
              ? new KeyplexError(
                  'context_length_exceeded',
                  `keyplex: the request (about ${state.tokens} tokens with its output) fits no deployment of '${request.model}'; use a model with a larger context window or shorten it.`,
                  { requestId, status: 400 },
                )
              : new ModelNotServedError(request.model ?? '', requestId);
        this.#failed(state, error.toDetail());
        return errorResponse(error, error.status ?? 400);
      }
      if (this.#budgets) {
        const refused = this.#admitBudget(state, deployments);
        if (refused) {
          this.#failed(state, refused.toDetail());
          return errorResponse(refused, refused.status ?? 429);
        }
      }
      state.releaseLane = await this.#bulkhead.acquire(request.options.lane ?? this.#options.defaultLane, signal);
      const success = await this.#attemptAll(state, deployments, signal);
      return success.response;
    } catch (error) {
      return this.#finishFailure(state, error, signal, request);
    } finally {
      if (!state.streaming) state.releaseLane?.();
      clearTimeout(deadlineTimer);
      // A stream still being read stays abortable (caller, close()) until it ends.
      state.finish = () => {
        this.#active.delete(control);
        caller?.removeEventListener('abort', onCallerAbort);
      };
      if (!state.streaming) state.finish();
      this.#inFlight--;
      if (this.#inFlight === 0 && this.#idleWaiters.length > 0) {
        for (const resolve of this.#idleWaiters.splice(0)) resolve();
      }
    }
  }

  /**
   * The deployments that may serve the request, best first: the model (or its
   * alias group, or what `auto` chose) ordered by its routing strategy, then
   * each fallback tier in turn. Deployments whose context window cannot hold
   * the request are left out. Records each one's strategy and rank for the
   * `attempt` event.
   */
  #route(state: RequestState): Deployment[] {
    const { request } = state;
    const make = (pool: ProviderPool, model: string, upstream: string | undefined) =>
      new Deployment(pool, model, upstream, this.#prices.lookup(upstream ?? model) ?? this.#prices.lookup(model));
    const pinned = request.options.provider;
    if (request.model === undefined) return route(this.#pools, undefined, pinned, make);
    const catalogue = this.#options.routing.catalogue;
    const hasCatalogue = catalogue.aliases !== undefined || catalogue.fallbacks !== undefined || catalogue.auto !== undefined;
    const tooLongModels: string[] = [];
    const { inputTokens, outputTokens } = state;
    const tiers = hasCatalogue ? resolveModel(request.model, catalogue, requestFeatures(request.json, inputTokens)).tiers : [[request.model]];
    const ordered: Deployment[] = [];
    let tooLong = false;
    for (const tier of tiers) {
      const candidates: Deployment[] = [];
      for (const model of tier) {
        for (const deployment of route(this.#pools, model, pinned, make)) {
          if (fitsContext(deployment as DeploymentView, inputTokens, outputTokens)) candidates.push(deployment);
          else {
            tooLong = true;
            if (!tooLongModels.includes(model)) tooLongModels.push(model);
          }
        }
      }
      if (candidates.length === 0) continue;
      const chosen = (tier.length === 1 ? this.#perModel.get(tier[0]!) : undefined) ?? this.#perModel.get(request.model) ?? this.#strategy;
      const sorted =
        candidates.length === 1
          ? candidates
          : (chosen.strategy.order(candidates as DeploymentView[], {
              model: request.model,
              inputTokens,
              outputTokens,
              stream: request.stream,
              requestId: state.requestId,
            }) as Deployment[]);
      for (const deployment of sorted) {
        state.routes.set(deployment, { strategy: chosen.name, rank: ordered.length + 1 });
        ordered.push(deployment);
      }
    }
    // Models too small for this request hand it to their context fallbacks (after everything else).
    if (catalogue.contextFallbacks !== undefined) {
      for (const small of tooLongModels) {
        for (const model of contextFallbackChain(small, catalogue)) {
          for (const deployment of route(this.#pools, model, pinned, make)) {
            if (ordered.includes(deployment) || !fitsContext(deployment as DeploymentView, inputTokens, outputTokens)) continue;
            state.routes.set(deployment, { strategy: 'context-fallback', rank: ordered.length + 1 });
            ordered.push(deployment);
          }
        }
      }
    }
    if (ordered.length === 0 && tooLong) state.contextTooLong = true;
    return ordered;
  }

  /**
   * Budgets: the request's cost is estimated at its first deployment's price
   * (its token estimate × price). Over a cap with `onExceeded: 'reject'` it is
   * refused; over a cap with `'cheaper'` its route is re-ordered cheapest
   * first. Otherwise the estimate is held until the request ends, so
   * concurrent requests see each other's spend before it is known.
   */
  #admitBudget(state: RequestState, deployments: Deployment[]): KeyplexError | undefined {
    const budgets = this.#budgets!;
    const { request } = state;
    const tokens = { inputTokens: state.inputTokens, outputTokens: state.outputTokens };
    const first = deployments[0];
    const costOf = (d: Deployment) => {
      const cost = estimatedCost(d as DeploymentView, tokens);
      return Number.isFinite(cost) ? cost : 0;
    };
    let estimate = first ? costOf(first) : 0;
    const info = { model: request.model, tags: state.tags };
    let check = budgets.check(info, estimate);
    if (check.exceeded.some((crossing) => crossing.onExceeded === 'cheaper')) {
      // A 'cheaper' cap is crossed: cheapest deployments first (stable: ties keep
      // their order), and every cap judged again at the cheaper price.
      const sortKey = (d: Deployment) => estimatedCost(d as DeploymentView, tokens); // unknown prices last
      deployments.sort((a, b) => sortKey(a) - sortKey(b));
      estimate = deployments[0] ? costOf(deployments[0]) : 0;
      for (const crossing of check.exceeded) this.#budgetCrossed(crossing);
      check = budgets.check(info, estimate);
    }
    for (const crossing of check.exceeded) this.#budgetCrossed(crossing);
    if (!check.ok) {
      const refused = budgetExceededError(check, { requestId: state.requestId });
      if (refused) return refused;
    }
    state.budgetHold = budgets.hold(info, estimate);
    return undefined;
  }

  /**
   * `budget:exceeded`, once per budget and window: when a request is refused or
   * re-routed by a cap, or spend and holds reach it, whichever comes first.
   */
  #budgetCrossed(crossing: { id?: string; budget?: string; limitUsd: number; spentUsd: number; heldUsd: number; window: BudgetExceededEvent['window']; mode: BudgetExceededEvent['mode']; onExceeded: 'reject' | 'cheaper'; resetsInMs: number; scope?: BudgetExceededEvent['scope'] }): void {
    const id = crossing.budget ?? crossing.id!;
    const now = Date.now();
    const until = this.#budgetAnnounced.get(id);
    if (until !== undefined && now < until) return;
    this.#budgetAnnounced.set(id, now + Math.max(crossing.resetsInMs, 1));
    if (!this.#wants('budget:exceeded')) return;
    const scope = crossing.scope ?? [...(this.#budgets?.stats() ?? []), ...(this.#keyBudgets?.stats() ?? [])].find((b) => b.id === id)?.scope;
    if (!scope) return;
    this.#emit('budget:exceeded', {
      budget: id,
      scope,
      limitUsd: crossing.limitUsd,
      spentUsd: crossing.spentUsd,
      heldUsd: crossing.heldUsd,
      window: crossing.window,
      mode: crossing.mode,
      onExceeded: crossing.onExceeded,
      resetsInMs: crossing.resetsInMs,
    });
  }

  #keyBudgetInfo(state: RequestState, deployment: Deployment, key: KeyState) {
    return { provider: deployment.pool.id, keyId: key.id, model: state.request.model, tags: state.tags };
  }

  /** The request's estimated cost on `deployment` (0 when its price is unknown). */
  #estimateAt(state: RequestState, deployment: Deployment): number {
    const cost = estimatedCost(deployment as DeploymentView, { inputTokens: state.inputTokens, outputTokens: state.outputTokens });
    return Number.isFinite(cost) ? cost : 0;
  }

  /**
   * Whether a provider or key budget lets this key take the request. A crossed
   * 'reject' cap rules the key out (remembered, to refuse the request when no
   * key is left); a crossed 'cheaper' cap rules it out in the first pass only,
   * so other keys and providers go first.
   */
  #keyBudgetAllows(state: RequestState, deployment: Deployment, key: KeyState, lastPass: boolean): boolean {
    const check = this.#keyBudgets!.check(this.#keyBudgetInfo(state, deployment, key), this.#estimateAt(state, deployment));
    for (const crossing of check.exceeded) this.#budgetCrossed(crossing);
    if (!check.ok) {
      state.budgetRefusal ??= budgetExceededError(check, { requestId: state.requestId });
      return false;
    }
    return lastPass || check.exceeded.length === 0;
  }

  /** Settles the attempt's provider/key budget hold (0 when it failed). */
  #settleKeyBudget(state: RequestState, deployment: Deployment, key: KeyState, costUsd: number): void {
    const hold = state.keyBudgetHold;
    if (!hold || !this.#keyBudgets) return;
    state.keyBudgetHold = undefined;
    this.#keyBudgets.settle(hold, this.#keyBudgetInfo(state, deployment, key), costUsd);
  }

  /** Settles the request's budget hold with what it really cost (0 when it failed). */
  #settleBudget(state: RequestState, provider: string | undefined, keyId: string | undefined, costUsd: number): void {
    const hold = state.budgetHold;
    if (!hold || !this.#budgets) return;
    state.budgetHold = undefined;
    this.#budgets.settle(hold, { provider, keyId, model: state.request.model, tags: state.tags }, costUsd);
  }

  /**
   * After a `context_length_exceeded` answer from `failed`: leaves that model
   * out of the rest of the request and adds the deployments of its next
   * context fallback not yet in the route. False when there is none.
   */
  #addContextFallback(state: RequestState, failed: Deployment): boolean {
    const catalogue = this.#options.routing.catalogue;
    if (catalogue.contextFallbacks === undefined || failed.model === '') return false;
    state.excludedModels.add(failed.model);
    const make = (pool: ProviderPool, model: string, upstream: string | undefined) =>
      new Deployment(pool, model, upstream, this.#prices.lookup(upstream ?? model) ?? this.#prices.lookup(model));
    for (const model of contextFallbackChain(failed.model, catalogue)) {
      if (state.excludedModels.has(model)) continue;
      const added = route(this.#pools, model, state.request.options.provider, make).filter((d) => !state.deployments.includes(d));
      if (added.length === 0) continue;
      for (const deployment of added) {
        state.routes.set(deployment, { strategy: 'context-fallback', rank: state.deployments.length + 1 });
        state.deployments.push(deployment);
      }
      return true;
    }
    return false;
  }

  /** The stats of a public model, made on first use; none for requests that name no model. */
  #modelStats(model: string | undefined): TimedCounterSet<KeyplexErrorCode> | undefined {
    if (model === undefined) return undefined;
    let stats = this.#models.get(model);
    if (!stats) {
      stats = new TimedCounterSet<KeyplexErrorCode>();
      this.#models.set(model, stats);
    }
    return stats;
  }

  /** Runs attempts with p-retry until one succeeds or the policy gives up. */
  async #attemptAll(state: RequestState, deployments: Deployment[], signal: AbortSignal): Promise<AttemptSuccess> {
    // The first attempt runs on its own: most requests succeed on it, and they
    // need none of p-retry's set-up. A failure is handed to p-retry as its own
    // attempt 1, so it goes through the same decisions as any later one.
    let first: unknown;
    try {
      return await this.#attempt(state, deployments, 1, signal);
    } catch (error) {
      first = error;
    }
    const retry = this.#options.retry;
    return pRetry(
      async (attempt: number) => {
        if (attempt === 1) throw first;
        return this.#attempt(state, deployments, attempt, signal);
      },
      {
        retries: state.request.replayable ? retry.maxAttempts - 1 : 0,
        minTimeout: 0,
        signal,
        // Moving away from a key the provider rate-limited or rejected is free
        // the first time per key: it says nothing about the request.
        shouldConsumeRetry: ({ error }) => !(error instanceof AttemptFailure && error.classification.action === 'rotate' && error.firstTryOfKey),
        onFailedAttempt: async ({ error, retriesLeft }) => {
          if (!(error instanceof AttemptFailure) || retriesLeft <= 0) return;
          const delayMs = this.#retryDelay(state, error);
          if (Date.now() + delayMs >= state.deadlineAt) throw error;
          if (this.#wants('retry')) {
            this.#emit('retry', {
              requestId: state.requestId,
              tags: state.tags,
              metadata: state.metadata,
              attempt: error.outcome.attempt,
              provider: error.outcome.provider,
              keyId: error.outcome.keyId,
              reason: error.classification.kind,
              status: error.outcome.status,
              delayMs,
            });
          }
          await sleep(delayMs, signal);
        },
        shouldRetry: ({ error }) => error instanceof AttemptFailure,
      },
    );
  }

  /** One attempt: a key, a fail-over event when it changes provider, the send. */
  async #attempt(state: RequestState, deployments: Deployment[], attempt: number, signal: AbortSignal): Promise<AttemptSuccess> {
    const pick = await this.#acquire(state, deployments, attempt, signal);
    const { deployment, key } = pick;
    const last = state.last;
    if (last && last.pool !== deployment.pool) {
      this.#totals.failovers++;
      const model = this.#modelStats(state.request.model);
      if (model) model.failovers++;
      deployment.pool.counters.failovers++;
      deployment.stats.failovers++;
      if (this.#wants('failover')) {
        this.#emit('failover', {
          requestId: state.requestId,
          tags: state.tags,
          metadata: state.metadata,
          attempt,
          from: { provider: last.pool.id, keyId: last.key.id },
          to: { provider: deployment.pool.id, keyId: key.id },
          reason: last.kind,
        });
      }
    }
    if (attempt > 1) {
      this.#totals.retries++;
      const model = this.#modelStats(state.request.model);
      if (model) model.retries++;
      key.counters.retries++;
      deployment.pool.counters.retries++;
      deployment.stats.retries++;
    }
    return this.#send(state, pick, attempt, signal);
  }

  /** How long to wait before the attempt after `failure`. */
  #retryDelay(state: RequestState, failure: AttemptFailure): number {
    if (failure.classification.action === 'rotate') return 0;
    if (failure.retryAfterMs !== undefined) return failure.retryAfterMs;
    return backoffDelay(state.transientTotal, this.#options.retry);
  }

  /**
   * A deployment and key for the next attempt. When every key that could serve
   * the request is cooling down, out of rate-limit room or behind an open
   * circuit, the request waits for the first to recover, within its deadline
   * (woken early when keys change); past the deadline it fails with
   * `no_key_available` and `retryAfterMs`.
   */
  async #acquire(state: RequestState, deployments: Deployment[], attempt: number, signal: AbortSignal): Promise<Pick> {
    // Requests that found nothing usable wait in line, first come first served,
    // per set of deployments: a newcomer does not take a refilled slot from a
    // request that has waited longer.
    const lineId = deployments.map((d) => `${d.pool.id}\u0000${d.upstreamModel ?? ''}`).join('\u0001');
    let line = this.#lines.get(lineId);
    let place: LinePlace | undefined;
    if (line !== undefined && line.length > 0) {
      place = this.#joinLine(lineId);
      try {
        await this.#waitForTurn(place, signal);
      } catch (error) {
        this.#leaveLine(lineId, place);
        throw error;
      }
    }
    let refusals = 0;
    try {
      for (;;) {
        const now = Date.now();
        const picked = this.#pick(state, deployments, attempt, now);
        if ('key' in picked) {
          if (!this.#session.shared) return picked;
          const refused = await this.#reserveShared(state, picked);
          if (refused === undefined) return picked;
          // The local windows now mirror the shared ones, so the next pick looks elsewhere or waits.
          // A store whose answers do not move them (a custom one) must still not spin this loop.
          if (++refusals > MAX_FREE_REFUSALS) await this.#waitForKey(Math.max(1, Math.min(refused, state.deadlineAt - now)), signal);
          continue;
        }
        const model = state.request.model === undefined ? '' : ` for model '${state.request.model}'`;
        const fail = (why: string, retryAfterMs?: number) =>
          new AbortError(new NoKeyAvailableError(`keyplex: no usable key${model}: ${why}`, { requestId: state.requestId, attempts: state.attempts, retryAfterMs }));
        if (picked.readyAt === Infinity && state.budgetRefusal) throw new AbortError(state.budgetRefusal);
        if (picked.readyAt === Infinity) {
          throw fail(
            `every key of ${deployments.map((d) => `'${d.pool.id}'`).join(', ')} is disabled${picked.tooLarge ? ' or cannot fit the request in its tokens-per-minute limit' : ''}. Enable or add keys (manager.enableKey / addKey).`,
          );
        }
        if (picked.readyAt <= now) throw fail('the key selector chose none of the usable keys.');
        const waitMs = Math.ceil(picked.readyAt - now);
        if (now + waitMs > state.deadlineAt) {
          throw fail(
            `every key is cooling down, out of rate-limit room or behind an open circuit; the first is usable again in ${waitMs} ms, after this request's deadline. Retry later or add keys.`,
            waitMs,
          );
        }
        place ??= this.#joinLine(lineId);
        await this.#waitForKey(waitMs, signal);
      }
    } finally {
      if (place !== undefined) this.#leaveLine(lineId, place);
    }
  }

  /**
   * Takes the pick's reservation in the shared store too (one round trip).
   * Refused: the pick is undone, the key's local windows are lowered to the
   * shared levels (so the next pick sees what other managers took), and the
   * caller picks again. Keys with no known limit need no reservation.
   *
   * @returns `undefined` when the reservation holds, else the store's wait in ms.
   * @throws AbortError(StoreUnavailableError) when the store cannot answer and fails closed.
   */
  async #reserveShared(state: RequestState, pick: Pick): Promise<number | undefined> {
    const { key } = pick;
    const limits = key.limiter.limits;
    if (limits.rpm === undefined && limits.tpm === undefined) return undefined;
    let verdict: StoreReservation;
    try {
      const answer = this.#session.reserve(key.ref, limits, pick.reservation.tokens);
      verdict = answer instanceof Promise ? await answer : answer;
    } catch (error) {
      this.#undoPick(state, pick);
      const refusal = KeyplexError.is(error) ? error : new StoreUnavailableError(`keyplex: the state store failed: ${error instanceof Error ? error.message : String(error)}.`, { cause: error });
      throw new AbortError(refusal);
    }
    if (verdict.ok) {
      if (verdict.degraded !== true) {
        pick.shared = { rpm: limits.rpm, tpm: limits.tpm };
        key.limiter.mirror(verdict.requests, verdict.tokens);
      }
      return undefined;
    }
    this.#undoPick(state, pick);
    key.limiter.mirror(verdict.requests, verdict.tokens);
    return verdict.waitMs;
  }

  /** Gives back what a pick took: its reservation, probe slots and key-budget hold. */
  #undoPick(state: RequestState, pick: Pick): void {
    pick.key.limiter.cancel(pick.reservation);
    pick.circuit?.release();
    pick.key.circuit?.release();
    this.#settleKeyBudget(state, pick.deployment, pick.key, 0);
  }

  /** The attempt failed before the provider could count it: gives its tokens back, here and in the shared store. */
  #refund(pick: Pick): void {
    // Only the tokens window changes: nothing to tell a store whose window has no tokens limit.
    if (pick.key.limiter.refund(pick.reservation) && pick.shared?.tpm !== undefined && pick.reservation.tokens !== 0) {
      this.#session.adjust(pick.key.ref, pick.shared, 0, -pick.reservation.tokens);
    }
  }

  /** Replaces the pick's estimated tokens with the real count, here and in the shared store. */
  #reconcile(pick: Pick, actualTokens: number): void {
    const difference = actualTokens - pick.reservation.tokens;
    if (pick.key.limiter.reconcile(pick.reservation, actualTokens) && pick.shared?.tpm !== undefined && difference !== 0) {
      this.#session.adjust(pick.key.ref, pick.shared, 0, difference);
    }
  }

  #joinLine(lineId: string): LinePlace {
    let line = this.#lines.get(lineId);
    if (line === undefined) {
      line = [];
      this.#lines.set(lineId, line);
    }
    const place: LinePlace = { turn: undefined };
    line.push(place);
    return place;
  }

  /** Leaves the line; the next in line (now first) gets its turn. */
  #leaveLine(lineId: string, place: LinePlace): void {
    const line = this.#lines.get(lineId);
    if (line === undefined) return;
    const index = line.indexOf(place);
    if (index !== -1) line.splice(index, 1);
    if (line.length === 0) this.#lines.delete(lineId);
    else if (index === 0) line[0]!.turn?.();
  }

  /** Resolves when `place` is first in its line. */
  #waitForTurn(place: LinePlace, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        place.turn = undefined;
        reject(signal.reason);
      };
      place.turn = () => {
        place.turn = undefined;
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
  }


  /** Sleeps `ms`, or less when a key is added or enabled meanwhile. */
  #waitForKey(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.#keyWaiters.delete(done);
        resolve();
      };
      const onAbort = () => {
        clearTimeout(timer);
        this.#keyWaiters.delete(done);
        reject(signal.reason);
      };
      const timer = setTimeout(done, ms);
      this.#keyWaiters.add(done);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Wakes requests waiting for a usable key. */
  #keysChanged(): void {
    for (const wake of [...this.#keyWaiters]) wake();
  }

  /**
   * First pass: deployments in order, skipping one whose circuit is open or
   * that failed transiently twice in this request, and keys not yet tried in
   * it. Second pass: any usable key, in deployment order. A key is usable when
   * it is enabled, not cooling down, its circuit lets a call through, and its
   * rate limits have room for the request's estimated tokens (reserved here).
   * With nothing usable: when the first key is expected to be (`readyAt`,
   * Infinity for never).
   */
  #pick(state: RequestState, deployments: Deployment[], attempt: number, now: number): Pick | { readyAt: number; tooLarge: boolean } {
    let readyAt = Infinity;
    let tooLarge = false;
    const tokens = state.tokens;
    for (let pass = 0; pass < 2; pass++) {
      const fresh = pass === 0;
      for (const deployment of deployments) {
        if (fresh && (state.transient.get(deployment.pool) ?? 0) >= 2) continue;
        if (state.excludedModels.size > 0 && state.excludedModels.has(deployment.model)) continue;
        const circuit = this.#deploymentCircuit(deployment);
        if (circuit && !circuit.canPass()) {
          readyAt = Math.min(readyAt, circuit.openUntil ?? Infinity);
          continue;
        }
        // A pool of up to SAMPLE keys is judged whole. A larger one is judged
        // SAMPLE usable keys at a time, starting after the key picked last, so
        // a pick costs the same at 10,000 keys as at 30 and every key takes its
        // turn; the next batch is judged only when none of this one can take
        // the request.
        const keys = deployment.pool.keys;
        const n = keys.length;
        const offset = n > SAMPLE ? deployment.pool.nextScan % n : 0;
        let scanned = 0;
        while (scanned < n) {
          const candidates: KeyState[] = [];
          const positions: number[] = [];
          while (scanned < n && candidates.length < SAMPLE) {
            const position = (offset + scanned) % n;
            const key = keys[position]!;
            scanned++;
            if (key.disabled !== undefined || key.removed) continue;
            if (key.cooldownUntil > now) {
              readyAt = Math.min(readyAt, key.cooldownUntil);
              continue;
            }
            if (key.circuit && !key.circuit.canPass()) {
              readyAt = Math.min(readyAt, key.circuit.openUntil ?? Infinity);
              continue;
            }
            // Left for the second pass, which judges it like any other key.
            if (fresh && state.triedOn.get(deployment)?.has(key)) continue;
            candidates.push(key);
            positions.push(position);
          }
          while (candidates.length > 0) {
            const chosen = this.#selector.select(candidates, {
              provider: deployment.pool.id,
              model: state.request.model,
              requestId: state.requestId,
              attempt,
            });
            const index = chosen === undefined ? -1 : candidates.indexOf(chosen as KeyState);
            if (index === -1) {
              readyAt = Math.min(readyAt, now);
              break;
            }
            const key = candidates[index]!;
            if (this.#keyBudgets && !this.#keyBudgetAllows(state, deployment, key, pass === 1)) {
              candidates.splice(index, 1);
              positions.splice(index, 1);
              continue;
            }
            const reserved = key.limiter.tryReserve(tokens);
            if (reserved.ok) {
              if (n > SAMPLE) deployment.pool.nextScan = positions[index]! + 1;
              if (this.#keyBudgets) {
                state.keyBudgetHold = this.#keyBudgets.hold(this.#keyBudgetInfo(state, deployment, key), this.#estimateAt(state, deployment));
              }
              // canPass() was true a moment ago on this same tick: these take the probe slots in half-open.
              circuit?.tryPass();
              key.circuit?.tryPass();
              return { deployment, key, reservation: reserved.reservation, circuit, shared: undefined };
            }
            if (reserved.waitMs === Infinity) tooLarge = true;
            readyAt = Math.min(readyAt, now + reserved.waitMs);
            candidates.splice(index, 1);
            positions.splice(index, 1);
          }
        }
      }
    }
    return { readyAt, tooLarge };
  }

  /** One attempt: send, then classify what came back. */
  async #send(state: RequestState, pick: Pick, attempt: number, signal: AbortSignal): Promise<AttemptSuccess> {
    const { request } = state;
    const { deployment, key, reservation, circuit } = pick;
    const pool = deployment.pool;
    /** What the outcome says about the key's and the deployment's health. */
    const verdict = (health: 'success' | 'failure' | 'release') => {
      circuit?.[health]();
      key.circuit?.[health]();
    };
    const sentAt = Date.now();
    const firstTryOfKey = !state.tried.has(key);
    state.tried.add(key);
    let triedHere = state.triedOn.get(deployment);
    if (!triedHere) state.triedOn.set(deployment, (triedHere = new Set()));
    triedHere.add(key);

    const headers: Record<string, string> = { ...request.headers, ...pool.headers, authorization: `Bearer ${secretOf(key)}` };
    const injectUsage = this.#options.streamUsage && request.stream && request.streamUsagePath && !request.callerAskedUsage;
    const body = bodyFor(request, deployment.upstreamModel, injectUsage);

    const control = new AbortController();
    const attemptTimer = setTimeout(() => control.abort(new AttemptTimeout('attempt')), this.#options.attemptTimeoutMs);
    const forward = () => control.abort(signal.reason);
    if (signal.aborted) forward();
    else signal.addEventListener('abort', forward, { once: true });
    const detach = () => signal.removeEventListener('abort', forward);

    key.inFlight++;
    deployment.inFlight++;
    key.counters.requests++;
    pool.counters.requests++;
    deployment.stats.requests++;
    if (this.#wants('attempt')) {
      const route = state.routes.get(deployment);
      this.#emit('attempt', {
        requestId: state.requestId,
        tags: state.tags,
        metadata: state.metadata,
        attempt,
        provider: pool.id,
        keyId: key.id,
        model: request.model,
        deploymentModel: deployment.model === '' ? undefined : deployment.model,
        upstreamModel: deployment.upstreamModel,
        strategy: route?.strategy ?? 'ordered',
        rank: route?.rank ?? 1,
      });
    }

    const outcome = (status: number | undefined, kind: FailureKind | 'success'): AttemptOutcome => {
      const result: AttemptOutcome = {
        attempt,
        provider: pool.id,
        keyId: key.id,
        upstreamModel: deployment.upstreamModel,
        status,
        kind,
        latencyMs: Date.now() - sentAt,
      };
      state.attempts.push(result);
      return result;
    };
    const fail = (status: number | undefined, classification: Classification, response?: { response: Response; body: string }, wait?: number, cause?: unknown) => {
      // A caller error means the provider answered (healthy); a rejected key says nothing about it.
      verdict(classification.action === 'retry' ? 'failure' : classification.action === 'surface' ? 'success' : 'release');
      this.#settleKeyBudget(state, deployment, key, 0);
      key.inFlight--;
      deployment.inFlight--;
      // A slow failure counts as slow: latency routing must not keep choosing a deployment that only fails.
      if (classification.action === 'retry') deployment.latency.update(Date.now() - sentAt, Date.now());
      key.counters.fail(classification.kind);
      pool.counters.fail(classification.kind);
      deployment.stats.fail(classification.kind);
      if (classification.action === 'retry') {
        state.transient.set(pool, (state.transient.get(pool) ?? 0) + 1);
        state.transientTotal++;
      }
      state.last = { pool, key, kind: classification.kind };
      if (response) state.lastAnswer = response;
      const failure = new AttemptFailure(outcome(status, classification.kind), classification, response, wait, firstTryOfKey, cause);
      return classification.action === 'surface' ? new AbortError(failure) : failure;
    };
    /** A transport failure: our attempt timeout, the request ending, or the connection. */
    const transportFailure = (cause: unknown) => {
      if (signal.aborted) {
        verdict('release');
        this.#settleKeyBudget(state, deployment, key, 0);
        this.#refund(pick);
        key.inFlight--;
        deployment.inFlight--;
        outcome(undefined, 'aborted');
        return signal.reason as unknown;
      }
      const timedOut = control.signal.aborted && control.signal.reason instanceof AttemptTimeout;
      // A connection that failed was most likely not counted by the provider; a timed-out one may have been.
      if (!timedOut) this.#refund(pick);
      return fail(undefined, { kind: timedOut ? 'timeout' : 'connection', action: 'retry' }, undefined, undefined, cause);
    };

    let response: Response;
    try {
      const fetchImpl = this.#options.fetch ?? globalThis.fetch;
      // Redirects are not followed: a redirect to another origin would carry the
      // body and the provider's headers there.
      const init: RequestInit & { duplex?: 'half' } = { method: request.method, headers, body, signal: control.signal, redirect: 'manual' };
      if (body instanceof ReadableStream) init.duplex = 'half';
      response = await fetchImpl(pool.baseURL + request.path, init);
    } catch (error) {
      clearTimeout(attemptTimer);
      detach();
      throw transportFailure(error);
    }

    /** The whole body as text, the attempt then finished; a body that fails mid-way is a transport failure. */
    const readText = async (): Promise<string> => {
      let text: string;
      try {
        text = await response.text();
      } catch (error) {
        clearTimeout(attemptTimer);
        detach();
        throw transportFailure(error);
      }
      clearTimeout(attemptTimer);
      detach();
      return text;
    };

    key.limiter.learn(response.headers);
    if (!response.ok) {
      const text = (await readText()).replaceAll(secretOf(key), `[key ${key.id}]`);
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      const now = Date.now();
      let classification = classifyStatus(response.status, response.headers, parsed);
      // Too long for this model: move, at no cost, to its larger-context fallback when one is configured.
      if (classification.kind === 'context_length' && this.#addContextFallback(state, deployment)) {
        classification = { kind: 'context_length', action: 'rotate' };
      }
      let wait = retryAfterMs(response.headers, now);
      if (classification.disable) this.#disable(key, classification.disable);
      if (classification.cooldown) {
        wait = rateLimitResetMs(response.headers, now) ?? this.#options.cooldownMs;
        key.limiter.rateLimited(response.headers, wait);
        this.#cool(key, wait);
      }
      throw fail(response.status, classification, { response, body: text }, wait);
    }

    const contentType = response.headers.get('content-type') ?? '';
    if (contentType.includes('text/event-stream') && response.body) {
      const reader = response.body.getReader();
      let first: ReadResult;
      try {
        first = await reader.read();
      } catch (error) {
        clearTimeout(attemptTimer);
        detach();
        throw transportFailure(error);
      }
      clearTimeout(attemptTimer);
      const ttftMs = Date.now() - state.startedAt;
      deployment.ttft.update(Date.now() - sentAt, Date.now());
      deployment.stats.ttft.record(Date.now() - sentAt);
      pool.counters.ttft.record(Date.now() - sentAt);
      key.counters.ttft.record(Date.now() - sentAt);
      outcome(response.status, 'success');
      verdict('success');
      key.limiter.succeeded();
      return { response: this.#streamReply(state, pick, response, reader, first, ttftMs, detach), deployment, key };
    }

    if (contentType.includes('json')) {
      const text = await readText();
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        throw fail(response.status, { kind: 'invalid_response', action: 'retry' }, { response, body: text });
      }
      outcome(response.status, 'success');
      verdict('success');
      key.limiter.succeeded();
      key.inFlight--;
      deployment.inFlight--;
      deployment.latency.update(Date.now() - sentAt, Date.now());
      deployment.stats.latency.record(Date.now() - sentAt);
      pool.counters.latency.record(Date.now() - sentAt);
      key.counters.latency.record(Date.now() - sentAt);
      const usage = usageFromBody(parsed) ?? null;
      if (usage) this.#reconcile(pick, usage.totalTokens);
      const replyModel = (parsed as { model?: unknown } | null)?.model;
      this.#account(state, deployment, key, usage, undefined, false, typeof replyModel === 'string' ? replyModel : undefined);
      return { response: this.#reply(state, key, pool, response, text), deployment, key };
    }

    // Binary and other bodies (audio, file contents) pass through untouched.
    clearTimeout(attemptTimer);
    outcome(response.status, 'success');
    verdict('success');
    key.limiter.succeeded();
    key.inFlight--;
    deployment.inFlight--;
    deployment.latency.update(Date.now() - sentAt, Date.now());
    this.#account(state, deployment, key, null, undefined, false, undefined);
    return { response: this.#reply(state, key, pool, response, response.body), deployment, key };
  }

  /** The Response handed to the SDK: the upstream answer plus keyplex's headers. */
  #reply(state: RequestState, key: KeyState, pool: ProviderPool, upstream: Response, body: Body | null): Response {
    const reply = new Response(body, { status: upstream.status, statusText: upstream.statusText, headers: upstream.headers });
    const headers = reply.headers;
    if (typeof body === 'string' || body instanceof ReadableStream) {
      // The body is no longer the bytes these described (fetch decoded it; keyplex may have re-framed it).
      headers.delete('content-length');
      headers.delete('content-encoding');
    }
    headers.set(REQUEST_ID_HEADER, state.requestId);
    headers.set('x-keyplex-provider', pool.id);
    headers.set('x-keyplex-key-id', key.id);
    headers.set('x-keyplex-attempts', String(state.attempts.length));
    return reply;
  }


  /** A streamed reply: tapped for usage; success or failure is reported when it ends. */
  #streamReply(
    state: RequestState,
    pick: Pick,
    upstream: Response,
    reader: ReadableStreamDefaultReader<Uint8Array>,
    first: ReadResult,
    ttftMs: number,
    detach: () => void,
  ): Response {
    const { request } = state;
    const { deployment, key, reservation } = pick;
    const strip = request.streamUsagePath && !request.callerAskedUsage;
    let done = false;
    state.streaming = !first.done;
    const end = (usage: Usage | undefined) => {
      if (done) return;
      done = true;
      detach();
      key.inFlight--;
      deployment.inFlight--;
      if (usage) this.#reconcile(pick, usage.totalTokens);
      if (state.streaming) {
        state.releaseLane?.();
        state.finish?.();
      }
      this.#account(state, deployment, key, usage ?? null, ttftMs, true, undefined);
    };
    const tapped = first.done
      ? (end(undefined), new ReadableStream<Uint8Array>({ start: (c) => c.close() }))
      : tapEventStream(first.value, reader, {
          stripUsageChunk: strip,
          onEnd: end,
          onCancel: end,
          onError: (error, usage) => {
            // The caller went away (left the loop, aborted): that ends the stream, it is not a failure.
            if (request.signal?.aborted) {
              end(usage);
              return error;
            }
            if (!done) {
              done = true;
              detach();
              key.inFlight--;
              deployment.inFlight--;
              this.#settleKeyBudget(state, deployment, key, 0);
              state.releaseLane?.();
              state.finish?.();
              pick.circuit?.failure();
              key.circuit?.failure();
              key.counters.fail('stream_interrupted');
              deployment.pool.counters.fail('stream_interrupted');
              deployment.stats.fail('stream_interrupted');
              this.#failed(state, new StreamInterruptedError({ requestId: state.requestId, attempts: state.attempts, cause: error }).toDetail());
            }
            return new StreamInterruptedError({ requestId: state.requestId, attempts: state.attempts, cause: error });
          },
        });
    return this.#reply(state, key, deployment.pool, upstream, tapped);
  }

  /** Records a successful reply's usage and cost, and emits `success`. */
  #account(
    state: RequestState,
    deployment: Deployment,
    key: KeyState,
    usage: Usage | null,
    ttftMs: number | undefined,
    stream: boolean,
    replyModel: string | undefined,
  ): void {
    const model = state.request.model ?? replyModel;
    let costUsd: number | null = null;
    if (usage) {
      const configured = deployment.pool.deploymentOptions.get(deployment.model)?.price;
      if (configured) costUsd = costAt(configured, usage);
      else {
        const priced = deployment.upstreamModel ?? model;
        costUsd = priced === undefined ? null : this.#prices.cost(priced, usage);
        if (costUsd === null && model !== undefined && model !== priced) costUsd = this.#prices.cost(model, usage);
      }
    }
    this.#settleBudget(state, deployment.pool.id, key.id, costUsd ?? 0);
    this.#settleKeyBudget(state, deployment, key, costUsd ?? 0);
    key.counters.succeed(usage, costUsd);
    deployment.pool.counters.succeed(usage, costUsd);
    deployment.stats.succeed(usage, costUsd);
    const latencyMs = Date.now() - state.startedAt;
    for (const scope of [this.#totals, this.#modelStats(state.request.model)]) {
      if (!scope) continue;
      scope.succeed(usage, costUsd);
      scope.latency.record(latencyMs);
      if (ttftMs !== undefined) scope.ttft.record(ttftMs);
    }
    if (this.#wants('success')) {
      this.#emit('success', {
        requestId: state.requestId,
        tags: state.tags,
        metadata: state.metadata,
        provider: deployment.pool.id,
        keyId: key.id,
        model,
        upstreamModel: deployment.upstreamModel ?? replyModel,
        attempts: state.attempts.length,
        latencyMs,
        ttftMs,
        usage,
        costUsd,
        stream,
      });
    }
  }

  /** Turns whatever ended the attempts into what the SDK should see. */
  #finishFailure(state: RequestState, error: unknown, signal: AbortSignal, request: InterceptedRequest): Response {
    const { requestId, attempts } = state;
    if (signal.aborted) {
      const reason: unknown = signal.reason;
      if (request.signal?.aborted) {
        this.#failed(state, new KeyplexError('aborted', 'keyplex: the caller aborted the request.', { requestId, attempts }).toDetail());
        throw request.signal.reason;
      }
      if (this.#closedByAbort) {
        const closed = new ManagerClosedError();
        this.#failed(state, { ...closed.toDetail(), requestId, attempts });
        throw closed;
      }
      if (reason instanceof AttemptTimeout) {
        const timeout = new DeadlineExceededError(state.deadlineMs, { requestId, attempts, cause: error });
        this.#failed(state, timeout.toDetail());
        throw timeout;
      }
      throw reason;
    }
    // The last upstream answer is what the caller sees, with keyplex's detail.
    const lastAnswer = error instanceof AttemptFailure ? error.response : undefined;
    if (error instanceof AttemptFailure && lastAnswer) {
      const detail: KeyplexErrorDetail = {
        code: 'upstream_error',
        message: `keyplex: the upstream answered ${lastAnswer.response.status} (${error.classification.kind}) on attempt ${attempts.length}.`,
        requestId,
        attempts,
        status: lastAnswer.response.status,
      };
      this.#failed(state, detail);
      return withDetail(lastAnswer.response, lastAnswer.body, detail);
    }
    if (error instanceof AttemptFailure) {
      const kind = error.classification.kind;
      const upstream = new UpstreamError(
        kind === 'timeout'
          ? `keyplex: the upstream request timed out on attempt ${attempts.length} (attempt timeout ${this.#options.attemptTimeoutMs} ms).`
          : `keyplex: the upstream connection failed on attempt ${attempts.length} (${kind}).`,
        { requestId, attempts, cause: error.cause },
      );
      this.#failed(state, upstream.toDetail());
      throw upstream;
    }
    if (error instanceof NoKeyAvailableError) {
      // After upstream answers, the last one is the most useful thing to show.
      const previous = state.lastAnswer;
      if (previous) {
        const detail: KeyplexErrorDetail = { ...error.toDetail(), status: previous.response.status };
        this.#failed(state, detail);
        return withDetail(previous.response, previous.body, detail);
      }
      this.#failed(state, error.toDetail());
      return errorResponse(error, error.status ?? 503);
    }
    if (KeyplexError.is(error) && error.status !== undefined) {
      // Refused by keyplex itself (lane full, queue timeout, unknown lane): an HTTP-shaped answer.
      const detail = { ...error.toDetail(), requestId, attempts };
      this.#failed(state, detail);
      return errorResponse(error, error.status);
    }
    if (KeyplexError.is(error)) {
      this.#failed(state, error.toDetail());
      throw error;
    }
    this.#failed(state, new KeyplexError('upstream_error', 'keyplex: internal error while sending the request.', { requestId, attempts, cause: error }).toDetail());
    throw error;
  }

  #failed(state: RequestState, error: KeyplexErrorDetail): void {
    this.#settleBudget(state, state.last?.pool.id, state.last?.key.id, 0);
    this.#totals.fail(error.code);
    this.#modelStats(state.request.model)?.fail(error.code);
    if (this.#wants('failure')) {
      this.#emit('failure', {
        requestId: state.requestId,
        tags: state.tags,
        metadata: state.metadata,
        model: state.request.model,
        attempts: state.attempts.length,
        error,
        latencyMs: Date.now() - state.startedAt,
      });
    }
  }

  // ---------------------------------------------------------------- key state

  /** Cools a key down for `ms`; `remote` when another manager did (the store carried it): not published again. */
  #cool(key: KeyState, ms: number, remote = false): void {
    key.cooldownUntil = Date.now() + ms;
    if (!remote) this.#session.setKey(key.ref, { disabled: null, cooldownUntil: key.cooldownUntil });
    if (key.cooldownTimer) clearTimeout(key.cooldownTimer);
    key.cooldownTimer = setTimeout(() => {
      key.cooldownTimer = undefined;
      if (key.usable(Date.now()) && this.#wants('key:recovered')) {
        this.#emit('key:recovered', { provider: key.provider, keyId: key.id, reason: 'cooldown_ended' });
      }
    }, ms);
    key.cooldownTimer.unref?.();
    if (this.#wants('key:cooldown')) {
      this.#emit('key:cooldown', { provider: key.provider, keyId: key.id, retryAfterMs: ms, reason: 'rate_limit', ...(remote && REMOTE) });
    }
  }

  /** Takes a key out of use; `remote` when another manager did (the store carried it): not published again. */
  #disable(key: KeyState, reason: KeyDisabledReason, remote = false): void {
    if (key.disabled !== undefined) return;
    key.disabled = reason;
    if (key.cooldownTimer) clearTimeout(key.cooldownTimer);
    key.cooldownTimer = undefined;
    if (!remote) this.#session.setKey(key.ref, { disabled: reason, cooldownUntil: 0 });
    if (this.#wants('key:disabled')) this.#emit('key:disabled', { provider: key.provider, keyId: key.id, reason, ...(remote && REMOTE) });
  }

  /** Puts a key back in use; `remote` when another manager did (the store carried it): not published again. */
  #enable(key: KeyState, remote: boolean): void {
    const wasOut = key.disabled !== undefined || key.cooldownUntil > Date.now();
    key.disabled = undefined;
    key.cooldownUntil = 0;
    if (key.cooldownTimer) clearTimeout(key.cooldownTimer);
    key.cooldownTimer = undefined;
    if (!remote) this.#session.setKey(key.ref, { disabled: null, cooldownUntil: 0 });
    if (wasOut) {
      if (this.#wants('key:recovered')) this.#emit('key:recovered', { provider: key.provider, keyId: key.id, reason: 'manual', ...(remote && REMOTE) });
      this.#keysChanged();
    }
  }

  // ---------------------------------------------------------------- shared state

  /** A change another manager made, carried by the store. */
  #applyChange(change: StoreChange): void {
    if (this.#closed) return;
    switch (change.kind) {
      case 'key':
        this.#applyKeyStatus(change.key, change.status);
        return;
      case 'circuit':
        this.#applyCircuit(change.circuit, change.snapshot);
        return;
      case 'spend':
        this.#budgets?.addShared(change.budgets, change.nanos);
        this.#keyBudgets?.addShared(change.budgets, change.nanos);
        return;
    }
  }

  #applyKeyStatus(ref: StoreKeyRef, status: StoreKeyStatus): void {
    const key = this.#pools.find((pool) => pool.id === ref.provider)?.find(ref.keyId);
    if (key === undefined || typeof status !== 'object' || status === null) return;
    const reason = status.disabled;
    if (reason === 'unauthorized' || reason === 'forbidden' || reason === 'quota' || reason === 'manual') {
      this.#disable(key, reason, true);
      return;
    }
    const now = Date.now();
    const until = typeof status.cooldownUntil === 'number' && Number.isFinite(status.cooldownUntil) ? status.cooldownUntil : 0;
    if (until > now) {
      if (key.disabled !== undefined) this.#enable(key, true);
      if (until > key.cooldownUntil) this.#cool(key, until - now, true);
      return;
    }
    // Enabled by hand elsewhere (or its cooldown is over): back in use here too.
    if (key.disabled !== undefined || key.cooldownUntil > now) this.#enable(key, true);
  }

  #applyCircuit(ref: StoreCircuitRef, snapshot: CircuitSnapshot): void {
    const pool = this.#pools.find((p) => p.id === ref.provider);
    if (pool === undefined) return;
    const circuit = ref.scope === 'key' ? pool.find(ref.keyId)?.circuit : this.#circuitOf(pool, ref.upstreamModel);
    try {
      circuit?.restore(snapshot);
    } catch {
      // A snapshot of another shape (another version, other options): this manager keeps its own state.
    }
  }

  /** Loads what the store holds and takes it on (at start, and after the store was away). */
  async #resync(): Promise<void> {
    const budgets = [...(this.#budgets?.sharedRefs() ?? []), ...(this.#keyBudgets?.sharedRefs() ?? [])];
    let snapshot: StoreSnapshot;
    try {
      const answer = this.#session.load(budgets);
      snapshot = answer instanceof Promise ? await answer : answer;
    } catch {
      return; // The store reported it (store:error) and will call again when it is back.
    }
    if (this.#closed) return;
    for (const { key, status } of snapshot.keys) this.#applyKeyStatus(key, status);
    for (const { circuit, snapshot: state } of snapshot.circuits) this.#applyCircuit(circuit, state);
    for (const { budget, buckets } of snapshot.spend) {
      this.#budgets?.replaceShared(budget, buckets);
      this.#keyBudgets?.replaceShared(budget, buckets);
    }
  }

  #pool(provider: string): ProviderPool {
    const pool = this.#pools.find((p) => p.id === provider);
    if (!pool) throw new ConfigError('provider', `'${provider}' is not a configured provider (configured: ${this.#pools.map((p) => p.id).join(', ')})`);
    return pool;
  }

  #key(provider: string, keyId: string): KeyState {
    const key = this.#pool(provider).find(keyId);
    if (!key) throw new ConfigError('keyId', `provider '${provider}' has no key '${keyId}'`);
    return key;
  }

  /**
   * Adds a key to a provider while requests run; it is used from the next
   * selection on. Returns its id.
   * @throws ConfigError for a malformed key, a duplicate id, or a key already configured.
   */
  addKey(provider: string, key: KeyInput): string {
    const pool = this.#pool(provider);
    const resolved = resolveKey(provider, key, 'key');
    if (pool.find(resolved.id)) throw new ConfigError('key.id', `provider '${provider}' already has a key with id '${resolved.id}'`);
    for (const other of this.#pools) {
      if (other.keys.some((k) => k.holds(resolved.key))) {
        throw new ConfigError('key', `this key is already configured for provider '${other.id}'`);
      }
    }
    pool.keys = [...pool.keys, this.#makeKey(provider, resolved)];
    if (this.#wants('key:added')) this.#emit('key:added', { provider, keyId: resolved.id });
    this.#keysChanged();
    return resolved.id;
  }

  /** Removes a key: attempts already sent with it finish; no new one starts. */
  removeKey(provider: string, keyId: string): void {
    const pool = this.#pool(provider);
    const key = this.#key(provider, keyId);
    key.removed = true;
    if (key.cooldownTimer) clearTimeout(key.cooldownTimer);
    key.cooldownTimer = undefined;
    pool.keys = pool.keys.filter((k) => k !== key);
    if (this.#wants('key:removed')) this.#emit('key:removed', { provider, keyId });
  }

  /** Takes a key out of use until `enableKey`. Emits `key:disabled` with reason `manual`. */
  disableKey(provider: string, keyId: string): void {
    this.#disable(this.#key(provider, keyId), 'manual');
  }

  /** Puts a disabled or cooling key back in use. Emits `key:recovered` with reason `manual`. */
  enableKey(provider: string, keyId: string): void {
    this.#enable(this.#key(provider, keyId), false);
  }

  // ---------------------------------------------------------------- stats and lifecycle

  /**
   * A snapshot of counters per key, provider, deployment, model and in total,
   * with latency and time-to-first-token percentiles (p50, p95, p99). Keys
   * appear by id only. With `{ reset: true }` every counter and histogram
   * starts again from zero after the snapshot is taken (interval reporting);
   * what is in flight, key states and circuits are not reset.
   */
  stats(options: { reset?: boolean } = {}): KeyplexStats {
    const now = Date.now();
    const providers: Record<string, ProviderStats> = {};
    const deployments: DeploymentStats[] = [];
    for (const pool of this.#pools) {
      providers[pool.id] = { id: pool.id, ...pool.counters.snapshot(), ...pool.counters.timings(), keys: pool.keys.map((key) => key.stats(now)) };
      for (const deployment of pool.deployments.values()) {
        if (deployment.upstreamModel === undefined) continue;
        deployments.push({
          provider: pool.id,
          model: deployment.model,
          upstreamModel: deployment.upstreamModel,
          circuit: pool.circuits.get(deployment.upstreamModel)?.state,
          inFlight: deployment.inFlight,
          ...deployment.stats.snapshot(),
          ...deployment.stats.timings(),
        });
      }
    }
    const models: Record<string, ModelStats> = {};
    for (const [model, stats] of this.#models) models[model] = { model, ...stats.snapshot(), ...stats.timings() };
    const snapshot: KeyplexStats = {
      totals: { ...this.#totals.snapshot(), ...this.#totals.timings(), inFlight: this.#inFlight },
      providers,
      deployments,
      models,
      lanes: this.#bulkhead.stats(),
      budgets: [...(this.#budgets?.stats() ?? []), ...(this.#keyBudgets?.stats() ?? [])],
    };
    if (options.reset) {
      this.#totals.reset();
      for (const stats of this.#models.values()) stats.reset();
      for (const pool of this.#pools) {
        pool.counters.reset();
        for (const key of pool.keys) key.counters.reset();
        for (const deployment of pool.deployments.values()) deployment.stats.reset();
      }
    }
    return snapshot;
  }

  /** Running and queued requests per bulkhead lane, with the lanes' capacities. */
  get lanes(): Record<string, LaneStats> {
    return this.#bulkhead.stats();
  }

  /** Resolves when no request is running or queued in any lane. */
  onIdle(): Promise<void> {
    return this.#bulkhead.onIdle();
  }

  /**
   * Stops the manager: new requests are refused with a `manager_closed` error
   * and timers are released. By default queued and in-flight requests end with
   * that error too; with `{ drain: true }` they finish first (each within its
   * deadline). Resolves when no request is left.
   */
  async close(options: { drain?: boolean } = {}): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      if (options.drain) await this.#bulkhead.close('drain');
      else {
        this.#closedByAbort = true;
        for (const control of this.#active) control.abort(new ManagerClosedError());
        this.#active.clear();
        void this.#bulkhead.close('reject', new ManagerClosedError());
      }
      for (const pool of this.#pools) {
        for (const key of pool.keys) {
          if (key.cooldownTimer) clearTimeout(key.cooldownTimer);
          key.cooldownTimer = undefined;
          key.circuit?.dispose();
        }
      }
      for (const { circuit } of this.#deploymentCircuits) circuit.dispose();
    }
    if (this.#inFlight > 0) await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
    await this.#session.close();
  }

  /** Safe to log: providers and key ids, never keys. */
  toJSON(): { providers: { id: string; baseURL: string; keys: string[] }[]; closed: boolean } {
    return { providers: this.#pools.map((p) => p.toJSON()), closed: this.#closed };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `KeyManager ${JSON.stringify(this.toJSON())}`;
  }
}
