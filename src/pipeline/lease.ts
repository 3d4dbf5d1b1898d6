/**
 * A key lease: one attempt's hold on a deployment and key — its rate-limit
 * reservation, circuit probe slots, budget hold, in-flight counts and the
 * attempt's timeout (on the request's one timer). `settle(outcome)` is the one
 * place an attempt's outcome reaches in-flight counts, circuits, budget
 * holds, refunds, latency and the key / provider / deployment stats.
 */
import type { AttemptOutcome, FailureKind } from '../errors';
import type { HeaderEntries } from '../header-list';
import type { Key, KeyWindow } from '../keys/key';
import { JUDGED, NO_TICKET, type Circuit } from '../resilience/breaker/index';
import { healthVerdict, type Classification } from '../resilience/classify';
import type { KeyLimiter, Reservation } from '../resilience/rate-limit/index';
import type { Deployment } from '../routing/deployments';
import { periodOf, slotEnd } from '../store/shared-window';
import type { StoreKeyRef, StoreLimits, StoreSession } from '../store/types';
import type { Usage } from '../usage/usage';
import { settleDroppedAnswer, settleKeyBudget } from './admit';
import type { RequestContext } from './context';
import type { RequestAbort } from './abort';
import { keysChanged, type Core } from './core';
import { elapsedMs } from '../wall-clock';


/**
 * How an attempt ended, for {@link Lease.settle}:
 * - `undone`: picked but never sent (a hook failed, the request ended first,
 *   the shared store granted it to a key gone out of use): the room it held
 *   goes to the requests waiting for it;
 * - `refused`: picked, and the shared store refused it: undone, nobody woken
 *   (the store has no room for them either);
 * - `aborted`: the request ended (caller, deadline, close) while it ran: no penalty;
 * - `dropped`: the upstream answered, but keyplex dropped the answer (an
 *   `afterResponse` hook threw): no penalty, the tokens it counted stay
 *   counted, and a 2xx (billed, its usage unread) spends the request's and
 *   the attempt's budgets at the estimate (read from the answer `record`ed);
 * - `failed`: the upstream or the transport failed it (classified);
 * - `first-byte`: a stream's first bytes arrived: healthy, still in flight;
 * - `succeeded`: the reply is complete (a stream: it ended) with its usage and cost;
 * - `stream-failed`: a stream broke after its first bytes.
 */
export type LeaseOutcome = 'undone' | 'refused' | 'aborted' | 'dropped' | 'failed' | 'first-byte' | 'succeeded' | 'stream-failed';

/** Windows whose last successful reply stated an out-of-bounds limit (reported once per episode). */
const cappedWindows = new WeakSet<KeyLimiter>();

export class Lease {
  /**
   * The limits the reservation was also taken under in the shared store, its
   * moment there (`at`, the store's clock) and when it was asked for
   * (`askedAt`, `Date.now()`); undefined when it was not.
   */
  shared: (StoreLimits & { at?: number | undefined; askedAt?: number }) | undefined = undefined;
  /** When the attempt was sent (`Date.now()`). */
  sentAt = 0;
  /** What the attempt's fetch listens to (set by {@link start}): the request's signal, or the attempt's own. */
  signal: AbortSignal | undefined = undefined;
  /** The request's abort state, which also times this attempt out. */
  #abort: RequestAbort | undefined;
  /** The reply's headers as {@link observe} got them, and their entries as read then. */
  #observed: Headers | undefined = undefined;
  #entries: HeaderEntries | undefined = undefined;
  #inFlight = false;
  /** The attempt's places in its circuits' order, given back with its first verdict. */
  #ticket: number;
  #keyTicket: number;

  constructor(
    readonly core: Core,
    readonly ctx: RequestContext,
    readonly deployment: Deployment,
    readonly key: Key,
    /** The rate-limit windows the attempt draws on (the key's own, per model, or its quota group's). */
    readonly window: KeyWindow,
    readonly reservation: Reservation,
    /** The deployment's circuit, when deployment circuits are on. */
    readonly circuit: Circuit | undefined,
    /** The attempt's place in the order the deployment's circuit judges outcomes in (`Circuit.pass`). */
    ticket = NO_TICKET,
    /** Its place in the order of the key's circuit. */
    keyTicket = NO_TICKET,
  ) {
    this.#ticket = ticket;
    this.#keyTicket = keyTicket;
  }

  /**
   * The attempt is sent: counts it in flight and as a request, and arms its
   * timeout on the request's one timer and sets {@link signal}. True when
   * the request had not tried this key before (a free rotation away from it).
   */
  start(abort: RequestAbort, now: number): boolean {
    const { key, deployment } = this;
    const firstTryOfKey = this.ctx.history.markTried(key, deployment);
    this.sentAt = now;
    this.window.limiter.sent(this.reservation, now);
    this.#sentLate(now);
    this.#abort = abort;
    // Its own controller only when hooks hold the request's signal (its timeout must not abort theirs).
    this.signal = abort.startAttempt(now, this.core.options.attemptTimeoutMs, this.core.options.hooks !== undefined);
    this.#inFlight = true;
    key.attemptStarted();
    deployment.inFlight++;
    key.counters.requests++;
    deployment.pool.counters.requests++;
    deployment.stats.requests++;
    return firstTryOfKey;
  }

  /**
   * A send later than the shared reservation's slot allows (its moment + the
   * count lag): the reservation moves to the slot of its send, as measured
   * here (the time since it was asked for, added to its moment in the store's
   * clock), so that it counts until a period after the upstream counts it.
   * The move rides with the next reservation on these windows.
   */
  #sentLate(now: number): void {
    const shared = this.shared;
    if (shared?.at === undefined || shared.askedAt === undefined || now <= shared.askedAt) return;
    const from = shared.at;
    const to = from + (now - shared.askedAt);
    const { tokens } = this.reservation;
    const later = (limit: number | undefined, periodMs: number | undefined) => limit !== undefined && slotEnd(to, periodOf(periodMs)) > slotEnd(from, periodOf(periodMs));
    if (!later(shared.rpm, shared.requestsPeriodMs) && !(tokens > 0 && later(shared.tpm, shared.tokensPeriodMs))) return;
    const session = this.core.session;
    adjustLater(session, this.window.ref, shared, -1, -tokens, from);
    adjustLater(session, this.window.ref, shared, 1, tokens, to);
    shared.at = to;
  }

  /** Records the attempt's outcome in the request's history. */
  record(attempt: number, status: number | undefined, kind: FailureKind | 'success', now: number): void {
    const outcome: AttemptOutcome = {
      attempt,
      provider: this.deployment.pool.id,
      keyId: this.key.id,
      upstreamModel: this.deployment.upstreamModel,
      status,
      kind,
      latencyMs: elapsedMs(this.sentAt, now),
    };
    this.ctx.history.outcomes.push(outcome);
  }

  /**
   * The reply's headers are in: the limiter learns from them, as of when the
   * upstream counted this request. On a key of unknown limits this attempt
   * may be the probe the key's other requests wait for: they go on now, at
   * its headers (a stream does not hold them for its whole length).
   */
  observe(response: Response, entries: HeaderEntries): void {
    this.#observed = response.headers;
    this.#entries = entries;
    const limiter = this.window.limiter;
    const { capped } = limiter.observe(entries, this.reservation);
    // Answered, the request leaves its windows a period from now, not from its latest count time (sent + 250 ms):
    // requests waiting for room look again (nothing to do when none waits).
    limiter.endProbe(this.reservation, response.ok);
    keysChanged(this.core);
    // A 429's cap is reported on key:cooldown; a success's once per window until the headers are in bounds again.
    if (response.ok && (capped === true) !== cappedWindows.has(limiter)) this.#capped(capped === true);
  }

  /**
   * The entries {@link observe} read, when they still describe `headers`: the
   * same object (not a redacted copy), and no `afterResponse` hook had it
   * (read-only to hooks, but a custom fetch's headers could be changed).
   */
  entriesOf(headers: Headers): HeaderEntries | undefined {
    return headers === this.#observed && this.core.options.hooks?.afterResponse === undefined ? this.#entries : undefined;
  }

  #capped(capped: boolean): void {
    const { core, key, deployment, window } = this;
    if (!capped) {
      cappedWindows.delete(window.limiter);
      return;
    }
    cappedWindows.add(window.limiter);
    if (!core.hub.wants('key:limits')) return;
    const upstreamModel = window.limiter === key.limiter ? undefined : deployment.upstreamModel;
    core.hub.emit('key:limits', { provider: key.provider, keyId: key.id, ...(upstreamModel !== undefined && { upstreamModel }), limits: window.limiter.limits, capped: true });
  }

  /** Ends the attempt's probe without a reply (failed, aborted, never sent): the next request on the key goes first. */
  #probeEnded(): void {
    if (this.window.limiter.endProbe(this.reservation)) keysChanged(this.core);
  }

  /** The attempt timeout no longer applies (headers or first bytes are in). */
  stopTimer(): void {
    this.#abort?.endAttempt();
  }

  /** True when the attempt ended by its own timeout. */
  get timedOut(): boolean {
    return this.#abort?.attemptTimedOut === true;
  }

  settle(outcome: 'undone' | 'refused' | 'aborted' | 'dropped'): void;
  /** `upstreamFault` false: the stream was ended on the caller's side (not read, its deadline, `close()`): no verdict on the provider. */
  /** `kind`: what the stats count the attempt as (an error the stream reported may name a rate limit or a quota). */
  settle(outcome: 'stream-failed', now: number, usage: Usage | null, costUsd: number | null, upstreamFault: boolean, kind?: FailureKind): void;
  settle(outcome: 'first-byte', now: number): void;
  settle(outcome: 'failed', now: number, classification: Classification, refund: boolean): void;
  settle(outcome: 'succeeded', now: number, usage: Usage | null, costUsd: number | null, streamed: boolean): void;
  settle(outcome: LeaseOutcome, now = 0, detail?: Classification | Usage | null, extra?: boolean | number | null, flag = false, kind: FailureKind = 'stream_interrupted'): void {
    const wasInFlight = this.#inFlight;
    this.#settle(outcome, now, detail, extra, flag, kind);
    // The deployment's last attempt in flight ended: names over their bound may give their places up now, the settling done.
    const deployment = this.deployment;
    if (wasInFlight && !this.#inFlight && deployment.inFlight === 0 && deployment.pool.models === undefined) this.core.modelNames.idled(this.core);
  }

  /** `flag`: `streamed` for `succeeded`, `upstreamFault` for `stream-failed`. */
  #settle(outcome: LeaseOutcome, now: number, detail: Classification | Usage | null | undefined, extra: boolean | number | null | undefined, flag: boolean, kind: FailureKind): void {
    const { core, ctx, key, deployment } = this;
    const pool = deployment.pool;
    if (outcome !== 'first-byte' && outcome !== 'succeeded' && outcome !== 'stream-failed') this.#probeEnded();
    switch (outcome) {
      case 'undone':
      case 'refused':
        this.#cancel();
        if (outcome === 'undone') keysChanged(core);
        this.#health('release');
        settleKeyBudget(core, ctx, deployment, key, 0);
        return;
      case 'aborted':
        this.#health('release');
        settleKeyBudget(core, ctx, deployment, key, 0);
        this.refund();
        this.#end();
        return;
      case 'dropped':
        this.#health('release');
        // Counted upstream: its reservation stands. A 2xx was billed, its usage unread: its budgets spend the estimate.
        if (billed(ctx)) settleDroppedAnswer(core, ctx, deployment, key);
        else settleKeyBudget(core, ctx, deployment, key, 0);
        this.#end();
        return;
      case 'failed': {
        const classification = detail as Classification;
        // A caller error means the provider answered (healthy); a rejected key says nothing about it.
        const verdict = healthVerdict(classification.kind);
        this.#health(verdict);
        settleKeyBudget(core, ctx, deployment, key, 0);
        this.#end();
        // A slow failure counts as slow, a fast one not as fast: latency routing must not keep choosing a deployment that fails.
        if (verdict === 'failure') deployment.failedAfter(elapsedMs(this.sentAt, now), now);
        key.counters.fail(classification.kind);
        pool.counters.fail(classification.kind);
        deployment.stats.fail(classification.kind);
        if (extra === true) this.refund();
        return;
      }
      case 'first-byte': {
        this.stopTimer();
        const ttft = elapsedMs(this.sentAt, now);
        deployment.ttft.update(ttft, now);
        deployment.stats.ttft.record(ttft);
        pool.counters.ttft.record(ttft);
        key.counters.ttft.record(ttft);
        this.#health('success', ttft);
        this.window.limiter.succeeded(now);
        return;
      }
      case 'succeeded': {
        const usage = detail as Usage | null;
        const costUsd = extra as number | null;
        const latency = elapsedMs(this.sentAt, now);
        if (!flag) {
          this.#health('success', latency);
          this.window.limiter.succeeded(now);
          // Latency routing averages whole replies; a stream's is its time to first token (settled at 'first-byte').
          deployment.latency.update(latency, now);
        }
        // Stats: every reply's attempt latency, to its last byte (JSON, binary and streams alike).
        deployment.stats.latency.record(latency);
        pool.counters.latency.record(latency);
        key.counters.latency.record(latency);
        this.#end();
        if (usage) this.reconcile(usage.totalTokens, now);
        settleKeyBudget(core, ctx, deployment, key, costUsd ?? 0);
        key.counters.succeed(usage, costUsd);
        pool.counters.succeed(usage, costUsd);
        deployment.stats.succeed(usage, costUsd);
        return;
      }
      case 'stream-failed':
        this.#streamFailed(detail as Usage | null, (extra as number | null | undefined) ?? null, flag, kind);
        return;
    }
  }

  /** A stream broke after its first bytes: what it streamed was generated, and billed, so its tokens and cost count. */
  #streamFailed(usage: Usage | null, costUsd: number | null, upstreamFault: boolean, kind: FailureKind): void {
    const { core, ctx, key, deployment } = this;
    this.#end();
    if (usage) this.reconcile(usage.totalTokens);
    settleKeyBudget(core, ctx, deployment, key, costUsd ?? 0);
    // Its first bytes already gave the circuits their verdict (and freed any probe slot): one ended on the caller's side adds none.
    if (upstreamFault) this.#health('failure');
    for (const counters of [key.counters, deployment.pool.counters, deployment.stats]) {
      counters.fail(kind);
      counters.spend(usage, costUsd);
    }
  }

  /**
   * An attempt that ended in an error of keyplex's own (not an upstream's
   * answer, nor the request's end) while in flight: recorded as a connection
   * failure and let go, so that no count, probe or reservation stays held.
   */
  abandon(attempt: number, now: number): void {
    if (!this.#inFlight) return;
    this.record(attempt, undefined, 'connection', now);
    this.settle('aborted');
  }

  /**
   * The reservation of an attempt never sent is cancelled: here, and in the
   * shared store when it was taken there.
   */
  #cancel(): void {
    const { window, reservation, shared } = this;
    window.limiter.cancel(reservation);
    this.shared = undefined;
    if (shared !== undefined) adjustLater(this.core.session, window.ref, shared, -1, -reservation.tokens, shared.at);
  }

  /** Ends the attempt's flight once: in-flight counts and its timeout. */
  #end(): void {
    this.stopTimer();
    if (!this.#inFlight) return;
    this.#inFlight = false;
    this.key.attemptEnded();
    this.deployment.inFlight--;
  }

  /**
   * What the outcome says about the key's and the deployment's health (a
   * success: `latencyMs` after it was sent). The first verdict takes the
   * attempt's places in the circuits' order with it; a later one (a stream
   * that broke after its first bytes) is judged as it comes while closed, and
   * decides nothing while half-open (it holds no probe slot).
   */
  #health(verdict: 'success' | 'failure' | 'release', latencyMs?: number): void {
    const ticket = this.#ticket;
    const keyTicket = this.#keyTicket;
    this.#ticket = this.#keyTicket = JUDGED;
    if (verdict === 'success') {
      this.circuit?.success(ticket, latencyMs);
      this.key.circuit?.success(keyTicket, latencyMs);
    } else {
      this.circuit?.[verdict](ticket);
      this.key.circuit?.[verdict](keyTicket);
    }
    // A freed probe slot changes no circuit state, so no change wakes the requests waiting behind it.
    if (verdict === 'release' && (this.circuit?.state === 'half-open' || this.key.circuit?.state === 'half-open')) keysChanged(this.core);
  }

  /**
   * The key was rate-limited: it rests (cools down) for what the answer asks,
   * `bodyWaitMs` where its headers state none; returns the rest in ms. The
   * one header parser: the rest the limiter applies is the cooldown the
   * store tells other replicas.
   */
  rest(headers: Headers, bodyWaitMs: number | undefined, now: number): number {
    const rested = this.window.limiter.rateLimited(headers, this.core.options.cooldownMs, this.reservation, bodyWaitMs);
    this.key.cool(rested.ms, now, false, rested.capped === true, this.window.limiter);
    return rested.ms;
  }

  /** The attempt failed before the provider could count it: gives its tokens back, here and in the shared store. */
  refund(): void {
    const { window, reservation } = this;
    if (window.limiter.refund(reservation)) this.#tokensChanged(-reservation.tokens);
  }

  /** Replaces the estimated tokens with the real count, here and in the shared store. */
  reconcile(actualTokens: number, now?: number): void {
    const { window, reservation } = this;
    if (window.limiter.reconcile(reservation, actualTokens, now)) this.#tokensChanged(actualTokens - reservation.tokens);
  }

  /**
   * The reservation's tokens changed by `tokens` (given back when negative):
   * in the shared store too, and tokens given back wake the requests waiting
   * for room (they would otherwise sleep until the estimate left the window).
   */
  #tokensChanged(tokens: number): void {
    this.#adjustShared(tokens);
    if (tokens < 0) keysChanged(this.core);
  }

  /**
   * Changes the shared tokens window by `tokens`; the change rides with the
   * next reservation on these windows (one round trip per attempt) where the
   * store can defer it. Only the tokens window changes: nothing to tell a
   * store whose window has no tokens limit.
   */
  #adjustShared(tokens: number): void {
    const { shared } = this;
    if (shared?.tpm === undefined || tokens === 0) return;
    adjustLater(this.core.session, this.window.ref, shared, 0, tokens, shared.at);
  }
}

/**
 * Changes a shared window by `requests` and `tokens` for the reservation made
 * at `at`: with the session's next reservation on it where the store can
 * defer (one round trip per attempt), else at once.
 */
export function adjustLater(session: StoreSession, ref: StoreKeyRef, limits: StoreLimits, requests: number, tokens: number, at: number | undefined): void {
  if (session.defer) session.defer(ref, limits, requests, tokens, at);
  else session.adjust(ref, limits, requests, tokens, at);
}

/** Whether the request's last recorded answer was a 2xx billed by the upstream (a new answer: see InterceptedRequest.bills). */
function billed(ctx: RequestContext): boolean {
  const status = ctx.history.outcomes[ctx.history.outcomes.length - 1]?.status;
  return status !== undefined && status >= 200 && status < 300 && ctx.request.bills;
}
