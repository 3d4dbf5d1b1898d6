/**
 * The per-request context, in two parts: what intercept fixed (read-only for
 * every later stage) and what the attempts record as they go (`AttemptHistory`).
 * The route, the budget holds and the end-of-request hooks each have their
 * own small typed part, owned by the stage that sets them.
 */
import type { ObjectKind } from '../routing/affinity';
import type { AttemptOutcome, FailureKind, KeyplexError } from '../errors';
import type { RequestEventBase } from '../events';
import type { Key } from '../keys/key';
import type { ProviderPool } from '../keys/pool';
import type { InterceptedRequest } from '../request';
import type { Deployment } from '../routing/deployments';
import type { Hold } from '../usage/budget';
import { CLOCK_STEP_MS } from '../wall-clock';

/** A wait a provider asked for: until when (wall clock), and its length (a clock stepped back since does not lengthen it). */
export interface HeldWait {
  readonly until: number;
  readonly ms: number;
}

/** Fixed at intercept. */
export interface RequestFacts extends RequestEventBase {
  readonly request: InterceptedRequest;
  readonly startedAt: number;
  readonly deadlineAt: number;
  readonly deadlineMs: number;
  /** Estimated prompt tokens. */
  readonly inputTokens: number;
  /** Estimated output tokens (the max-tokens field, else the default). */
  readonly outputTokens: number;
  /** Estimated tokens (prompt + max output), reserved on the key before each attempt. */
  readonly tokens: number;
}

/** How a deployment came to be in a route: the strategy that placed it and its place (1 = first). */
export interface RouteRank {
  readonly strategy: string;
  readonly rank: number;
}

/** A route's ranks by deployment (a `Map` is one; route.ts answers from its list, with no table per request). */
export interface RankLookup {
  get(deployment: Deployment): RouteRank | undefined;
}

/** The deployments that may serve the request, set by route (a context fallback adds to it). */
export interface RoutePlan {
  /** Best first. */
  readonly deployments: Deployment[];
  /** How each deployment came to be in the route, for the `attempt` event. */
  readonly ranks: RankLookup;
  /** Set when deployments exist but none has a context window large enough. */
  contextTooLong: boolean;
  /** Models that answered `context_length_exceeded` in this request: not tried again (made on first use). */
  excludedModels: Set<string> | undefined;
  /** Set when the request names an object this manager created: only that object's key may serve it (src/pipeline/affinity.ts). */
  readonly affinity: ObjectPin | undefined;
}

/** A request pinned to the key that created the object (response, file, batch…) it names. */
export interface ObjectPin {
  /** The object id the request names. */
  readonly object: string;
  /** What it is: `response`, `file`, `batch`, `conversation`, `upload`, `vector_store` or `fine_tuning_job`. */
  readonly kind: ObjectKind;
  readonly provider: string;
  readonly keyId: string;
  /** That key alone (none once it was removed): the only key acquire judges for the request. */
  readonly keys: readonly Key[];
}

/** An upstream answer, buffered. */
export interface BufferedAnswer {
  response: Response;
  body: string;
}

/** What the attempts record as they go. Sets and maps are made on first use: most requests succeed at once. */
export class AttemptHistory {
  readonly outcomes: AttemptOutcome[] = [];
  /** The first attempt's key and deployment: most requests have one attempt, and need no set for it. */
  #firstKey: Key | undefined = undefined;
  #firstOn: Deployment | undefined = undefined;
  /** Keys tried in this request (made at the second attempt). */
  tried: Set<Key> | undefined;
  /** Keys tried per deployment (a key may serve a fallback model of the same provider; made at the second attempt). */
  triedOn: Map<Deployment, Set<Key>> | undefined;
  /** Transient failures per provider. */
  transient: Map<ProviderPool, number> | undefined;
  transientTotal = 0;
  /** Retries consumed (free rotations consume none). */
  retriesUsed = 0;
  /** Providers the retry policy sent to the back of the line. */
  avoided: Set<ProviderPool> | undefined;
  /** Providers that asked for a wait on a transient failure (`retry-after`), until when and how long: not tried again before it ends ({@link endWithin}), others meanwhile. */
  held: Map<ProviderPool, HeldWait> | undefined;
  last: { pool: ProviderPool; key: Key; kind: FailureKind } | undefined;
  /** The last upstream error answer, buffered. */
  lastAnswer: BufferedAnswer | undefined;
  /** Set when a provider or key budget ruled keys out: the request's error if none is left. */
  budgetRefusal: KeyplexError | undefined;

  /** Records that `key` is tried on `deployment`; true when the request had not tried the key before. */
  markTried(key: Key, deployment: Deployment): boolean {
    if (this.#firstKey === undefined) {
      this.#firstKey = key;
      this.#firstOn = deployment;
      return true;
    }
    if (this.tried === undefined) {
      this.tried = new Set([this.#firstKey]);
      this.triedOn = new Map([[this.#firstOn!, new Set([this.#firstKey])]]);
    }
    const tried = this.tried;
    const first = !tried.has(key);
    tried.add(key);
    const triedOn = this.triedOn!;
    let here = triedOn.get(deployment);
    if (!here) triedOn.set(deployment, (here = new Set()));
    here.add(key);
    return first;
  }

  /** The wall clock stepped back `ms` (a timer ran out that much sooner than the clock says): the waits asked for end as long after they began. */
  clockWentBack(ms: number): void {
    const held = this.held;
    if (held !== undefined && ms > CLOCK_STEP_MS) for (const [pool, wait] of held) held.set(pool, { until: wait.until - ms, ms: wait.ms });
  }

  triedOnDeployment(key: Key, deployment: Deployment): boolean {
    if (this.triedOn === undefined) return key === this.#firstKey && deployment === this.#firstOn;
    return this.triedOn.get(deployment)?.has(key) === true;
  }

  /** Counts a transient failure on `pool`; returns that provider's count so far. */
  transientOn(pool: ProviderPool): number {
    const transient = (this.transient ??= new Map());
    const count = (transient.get(pool) ?? 0) + 1;
    transient.set(pool, count);
    this.transientTotal++;
    return count;
  }
}

/** Holds the request has against budgets, settled when it (or its attempt) ends. */
export interface BudgetHolds {
  /** The request's estimated cost held against its request-level budgets. */
  budgetHold: Hold | undefined;
  /** The estimate `budgetHold` holds, USD: raised when an attempt goes to a dearer deployment. */
  budgetHeldUsd: number;
  /** The current attempt's estimated cost held against its provider and key budgets. */
  keyBudgetHold: Hold | undefined;
}

/** How the request's end is signalled when a streamed reply outlives the pipeline call. */
export interface RequestEnd {
  /** Frees the request's lane slot; called once the reply is complete (streams: when they end). */
  releaseLane: (() => void) | undefined;
  /** Set when the reply is a stream still being read: the lane slot is released when it ends. */
  streaming: boolean;
  /** Detaches the request from the caller's signal and from close(); for streams, called when they end. */
  finish: (() => void) | undefined;
}

/** One request in the pipeline: one flat object (its parts are typed apart, not allocated apart). */
export interface RequestContext extends RequestFacts, BudgetHolds, RequestEnd {
  route: RoutePlan;
  readonly history: AttemptHistory;
  /** Set by the response cache on a cacheable miss: where the answer is stored. */
  cacheKey?: string;
}
