/**
 * Acquire: a deployment and key for the next attempt, as a {@link Lease}.
 * Requests that find nothing usable wait in line (first come, first served,
 * per set of deployments) for the earliest key to recover, within their
 * deadline; with a shared store, the pick's reservation is taken there too.
 */
import { KeyplexError, NoKeyAvailableError, StoreUnavailableError } from '../errors';
import { keyOfView, selectingFor } from '../keys/key';
import type { KeyView } from '../keys/selector';
import { NO_TICKET, type Circuit } from '../resilience/breaker/index';
import { MAX_COUNT_LAG_MS, type KeyLimiter, type ReserveResult } from '../resilience/rate-limit/index';
import type { Deployment } from '../routing/deployments';
import type { StoreReservation } from '../store/types';
import { budgetsAllow, holdBudgets } from './admit';
import { untilAborted, type RequestAbort } from './abort';
import type { RequestContext, ObjectPin } from './context';
import { deploymentCircuit, type Core, type LinePlace } from './core';
import { briefDuration, keyStates } from './explain';
import { keyGone, pinnedStates } from './affinity';
import { adjustLater, Lease } from './lease';
import { firstWaits, joinLine, leaveLine, LineRefusal, refusedAtJoin, waitForKey, waitForTurn } from './lines';
import { applyChange } from './store-sync';
import { endWithin } from '../wall-clock';

/** Keys judged per batch when picking from a large pool. */
const SAMPLE = 32;

/**
 * Shared reservations one acquire may see refused in a row (no wait for a key
 * between them) before it waits between tries: a store whose refusals do not
 * move the local windows cannot make it spin. A wait for a key starts the
 * count again: a request refused in round after round of a burst still takes
 * a key with room at once.
 */
const MAX_FREE_REFUSALS = 8;

/** Nothing usable now: when the first key is expected to be (Infinity: never, unless a probe is in flight). */
interface NotReady {
  readyAt: number;
  tooLarge: boolean;
  /**
   * A half-open circuit refused the request while its probe is in flight, or a
   * key of unknown limits while its first request is (its headers teach the
   * limits): the probe's end decides.
   */
  probing: boolean;
  /** Keys of the deployment just judged wait for their first reply's headers (at most their hold, within the deadline): the request waits for them rather than moving down the route. */
  learning: boolean;
  /**
   * A key whose rate-limit wait passes the deadline only as estimated (its
   * requests in flight taken as never answered): until when their replies
   * could still make room in time (-Infinity: no such key).
   */
  hopeUntil: number;
  /**
   * The soonest a rate-limit window of a key not usable now could take the
   * request, every request in flight taken as answered now (Infinity: none
   * told). `min(soonestAt, readyAt)` is the soonest any key could take it,
   * unless `probing`: nobody waiting behind this request can go before.
   */
  soonestAt: number;
}

/** One scratch answer, reused: `pick` is synchronous and its answer is read before the next pick. */
const NOT_READY: NotReady = { readyAt: Infinity, tooLarge: false, probing: false, learning: false, hopeUntil: -Infinity, soonestAt: Infinity };

/**
 * A lease for the next attempt. When every key that could serve the request
 * is cooling down, out of rate-limit room or behind an open circuit, the
 * request waits for the first to recover, within its deadline (woken early
 * when keys change); when none can by the deadline it fails with
 * `no_key_available` and `retryAfterMs` — at once, or, while only the
 * estimate says so (a request in flight taken as never answered), as soon as
 * no reply could make room in time. The usual case (nobody waits in line, no shared store, a
 * key usable now) answers at once, without a promise.
 *
 * @throws NoKeyAvailableError, a budget refusal, or StoreUnavailableError (a store that fails closed).
 */
export function acquire(core: Core, ctx: RequestContext, attempt: number, abort: RequestAbort): Lease | Promise<Lease> {
  if (core.lines.size !== 0 || core.session.shared) return acquireWaiting(core, ctx, attempt, abort, undefined, 0);
  const now = Date.now();
  const picked = pick(core, ctx, attempt, now);
  return picked instanceof Lease ? picked : acquireWaiting(core, ctx, attempt, abort, picked, now);
}

/**
 * Acquire's waiting part: in line behind requests that wait for the same
 * deployments, then pick after pick until a key is usable. `first`: what a
 * pick at `firstAt` found (nothing usable, and no line to join), so the loop
 * starts by waiting.
 */
async function acquireWaiting(core: Core, ctx: RequestContext, attempt: number, abort: RequestAbort, first: NotReady | undefined, firstAt: number): Promise<Lease> {
  const deployments = ctx.route.deployments;
  const signal = abort.signal;
  // The line's name is built only when some line exists (empty lines are deleted): not on the usual pick.
  let lineId = first !== undefined || core.lines.size === 0 ? undefined : lineOf(deployments, ctx.route.affinity);
  const line = lineId === undefined ? undefined : core.lines.get(lineId);
  let place: LinePlace | undefined;
  if (line !== undefined && line.length > 0) {
    // Nobody goes before the first in line: a deadline before it can go is refused now, not at the deadline.
    const priority = lanePriority(core, ctx);
    const refused = refusedAtJoin(core, lineId!, ctx.deadlineAt, priority);
    if (refused !== undefined) throw behindLine(ctx, refused);
    place = joinLine(core, lineId!, ctx.deadlineAt, priority);
    try {
      await waitForTurn(place, signal);
    } catch (error) {
      leaveLine(core, lineId!, place);
      throw error instanceof LineRefusal ? behindLine(ctx, error) : error;
    }
  }
  let refusals = 0;
  try {
    for (;;) {
      // The scratch answer of the pick before the call is read here, before anything is awaited.
      const now = first === undefined ? Date.now() : firstAt;
      // Ended while the store answered (caller, deadline, close()), or woken at its deadline before the
      // deadline's timer ran (timers due at one moment run one after another): nothing more is picked or waited for.
      if (abort.overdue(now)) throw signal.reason;
      const picked = first ?? pick(core, ctx, attempt, now);
      first = undefined;
      if (picked instanceof Lease) {
        if (!core.session.shared) return picked;
        const refused = await reserveShared(core, picked, signal);
        if (refused === undefined) return picked;
        // The local windows now mirror the shared ones, so the next pick looks elsewhere or waits.
        // A store whose answers do not move them (a custom one) must still not spin this loop.
        if (++refusals > MAX_FREE_REFUSALS) await waitForKey(core, Math.max(1, Math.min(refused, ctx.deadlineAt - now)), signal);
        continue;
      }
      const waitMs = noKeyWait(core, ctx, deployments, picked, now, abort.time(now));
      lineId ??= lineOf(deployments, ctx.route.affinity);
      place ??= joinLine(core, lineId, ctx.deadlineAt, lanePriority(core, ctx));
      // Behind a probe in flight nothing is known of when keys free up, and a request that waits only in hope may leave
      // unserved (room for a smaller request behind it may come sooner): no one behind is refused for them.
      const known = !picked.probing && picked.readyAt <= ctx.deadlineAt;
      firstWaits(core, lineId, place, known ? Math.min(picked.soonestAt, picked.readyAt) : now, picked.readyAt);
      // Slept the whole wait, with the clock now behind its end: it stepped back, and the waits the request holds end as long after they began.
      if (await waitForKey(core, waitMs, signal)) ctx.history.clockWentBack(now + waitMs - Date.now());
      refusals = 0;
    }
  } finally {
    if (place !== undefined) leaveLine(core, lineId!, place);
  }
}

/** `no_key_available` for the request: `why` no key is usable. */
function noKey(ctx: RequestContext, why: string, retryAfterMs?: number): NoKeyAvailableError {
  const model = ctx.request.model === undefined ? '' : ` for model '${ctx.request.model}'`;
  return new NoKeyAvailableError(`keyplex: no usable key${model}: ${why}`, { requestId: ctx.requestId, attempts: ctx.history.outcomes, retryAfterMs });
}

/** The request's deadline comes before the first in its line can go: refused (`retryAfterMs`: until the first expects to go). */
function behindLine(ctx: RequestContext, refusal: LineRefusal): NoKeyAvailableError {
  const now = Date.now();
  const ahead = refusal.ahead === 1 ? '1 request waits' : `${refusal.ahead} requests wait`;
  const soonest = briefDuration(Math.max(0, refusal.soonestAt - now));
  return noKey(ctx, `${ahead} ahead of this one for the same keys, and the first can go in ${soonest} at the soonest, after this request's deadline. Retry later or add keys.`, Math.max(1, Math.ceil(refusal.readyAt - now)));
}

/** The priority of the request's lane in a line for a key. */
function lanePriority(core: Core, ctx: RequestContext): number {
  return core.options.lanes[ctx.request.options.lane ?? core.options.defaultLane]?.priority ?? 1;
}

/**
 * The waiting line of a set of deployments, by name. A request pinned to its
 * object's key waits in a line of that key's: those behind it in the
 * deployments' line may take other keys meanwhile.
 */
function lineOf(deployments: readonly Deployment[], pin: ObjectPin | undefined): string {
  const line = deployments.map((d) => `${d.pool.id}\u0000${d.upstreamModel ?? ''}`).join('\u0001');
  return pin === undefined ? line : `${line}\u0002${pin.keyId}`;
}

/**
 * How long to wait for a key, or the error when waiting cannot help. Behind a
 * probe in flight (a half-open circuit's, or a key's first request while its
 * limits are unknown) the request waits, within its deadline, for the probe
 * to settle: its end wakes it. `now` is the clock's reading, as the keys'
 * moments are; `at` the request's time then (RequestAbort.time), as its
 * deadline is: a clock stepped forward does not refuse a wait that fits.
 */
function noKeyWait(core: Core, ctx: RequestContext, deployments: readonly Deployment[], picked: NotReady, now: number, at: number): number {
  const fail = (why: string, retryAfterMs?: number) => noKey(ctx, why, retryAfterMs);
  // A request pinned to its object's key: that key gone is final, and only that key's state is told.
  const pin = ctx.route.affinity;
  const gone = pin === undefined ? undefined : keyGone(pin, ctx.requestId, ctx.history.outcomes);
  if (gone !== undefined) throw gone;
  const states = () => (pin !== undefined ? pinnedStates(pin) : keyStates(core, deployments, now, ctx.history.budgetRefusal !== undefined, ctx.history.held));
  // Until the deadline at most (the request is not past it: acquire ends it as overdue first).
  if (picked.probing && picked.readyAt > ctx.deadlineAt) return ctx.deadlineAt - at;
  if (picked.readyAt === Infinity && ctx.history.budgetRefusal) throw ctx.history.budgetRefusal;
  if (picked.readyAt === Infinity) {
    const { text, advice } = states();
    if (picked.tooLarge) {
      throw fail(`${text}; the request (about ${ctx.tokens} tokens with its output) is larger than a tokens limit of theirs (\`tpm\`, \`tpd\` or a \`tokens\` window, configured or learnt from the provider's headers). Lower its max output tokens, or raise that limit.`);
    }
    throw fail(`${text}. ${advice}`);
  }
  if (picked.readyAt <= now) throw fail('the key selector chose none of the usable keys.');
  const waitMs = Math.ceil(picked.readyAt - now);
  if (at + waitMs > ctx.deadlineAt) {
    // Only the estimate passes the deadline: a reply ahead (it wakes this) may yet free room in time. Refused once none can.
    if (picked.hopeUntil >= now) return Math.floor(picked.hopeUntil - now) + 1;
    throw fail(`${states().text}; the first is usable again in ${briefDuration(waitMs)}, after this request's deadline. Retry later or add keys.`, waitMs);
  }
  return waitMs;
}

/**
 * First pass: deployments in order, skipping one whose circuit is open or
 * whose provider the retry policy sent to the back, and keys not yet tried
 * on the deployment in the request. Second pass (for a request that sent a
 * provider to the back): that provider's deployments, keys not yet tried on
 * them — a fallback model there before a deployment that failed already.
 * Last pass: any usable key, in deployment order. A key is
 * usable when it is enabled, not cooling down, its circuit lets a call
 * through, and its rate limits have room for the request's estimated tokens
 * (reserved here). A deployment whose keys wait for their first reply's
 * headers (limits unknown) ends the search: the request waits for them.
 */
function pick(core: Core, ctx: RequestContext, attempt: number, now: number): Lease | NotReady {
  const result = NOT_READY;
  result.readyAt = Infinity;
  result.tooLarge = false;
  result.probing = false;
  result.learning = false;
  result.hopeUntil = -Infinity;
  result.soonestAt = Infinity;
  const { avoided, held } = ctx.history;
  const excluded = ctx.route.excludedModels;
  for (let pass = 0; pass < 3; pass++) {
    if (pass === 1 && avoided === undefined) continue;
    const fresh = pass < 2;
    for (const deployment of ctx.route.deployments) {
      // The providers sent to the back wait for the second pass; it judges only theirs (the others' were judged just now).
      if (avoided !== undefined && pass < 2 && avoided.has(deployment.pool) === (pass === 0)) continue;
      // A provider that asked for a wait (retry-after on a transient failure) is not tried before it ends.
      const wait = held?.get(deployment.pool);
      if (wait !== undefined && wait.until > now) {
        result.readyAt = Math.min(result.readyAt, endWithin(wait.until, wait.ms, now));
        continue;
      }
      if (excluded !== undefined && excluded.has(deployment.model)) continue;
      const circuit = deploymentCircuit(core, deployment);
      if (circuit && !circuit.canPass()) {
        if (circuit.state === 'half-open') result.probing = true;
        result.readyAt = Math.min(result.readyAt, circuit.openEnd(now) ?? Infinity);
        continue;
      }
      if (circuit?.state === 'half-open' && !timeToProbe(ctx, deployment, now)) continue;
      const lease = pickOn(core, ctx, deployment, circuit, attempt, now, fresh, result);
      if (lease) return lease;
      // A cold start is not a failure: a cheaper or preferred deployment is not passed over while it learns its limits.
      if (result.learning) return result;
    }
  }
  return result;
}

/**
 * Whether the request has time to carry a half-open circuit's probe to
 * `deployment`: at least the deployment's median reply time (to the first
 * bytes, for a stream) left before its deadline; any request may while no
 * reply there was measured. A probe its request's deadline cuts gives the
 * circuit no verdict and hands the probe to the next request in line — the
 * next oldest, with the least time left — so under steady traffic a circuit
 * whose probes go with requests about to end would never close. A request
 * with too little time leaves the probe to a later one.
 */
function timeToProbe(ctx: RequestContext, deployment: Deployment, now: number): boolean {
  const timings = deployment.stats.timings();
  const typicalMs = (ctx.request.stream ? timings.ttftMs : timings.latencyMs).p50;
  return typicalMs === undefined || ctx.deadlineAt - now >= typicalMs;
}

/**
 * A key of `deployment`. A pool of up to SAMPLE keys is judged whole. A
 * larger one is judged SAMPLE usable keys at a time, starting after the key
 * picked last, so a pick costs the same at 10,000 keys as at 30 and every key
 * takes its turn; the next batch is judged only when none of this one can
 * take the request. Lowers `result.readyAt` for keys not usable now.
 */
function pickOn(
  core: Core,
  ctx: RequestContext,
  deployment: Deployment,
  circuit: Circuit | undefined,
  attempt: number,
  now: number,
  fresh: boolean,
  result: NotReady,
): Lease | undefined {
  const pool = deployment.pool;
  // A request that names an object (response, file…) is served by the key that created it alone.
  const keys = ctx.route.affinity?.keys ?? pool.keys;
  const n = keys.length;
  const offset = n > SAMPLE ? pool.nextScan % n : 0;
  let scanned = 0;
  while (scanned < n) {
    // Made at its largest size and trimmed to the keys found (a list grown key by key reserves room for 17).
    const candidates = new Array<KeyView>(Math.min(SAMPLE, n - scanned));
    let found = 0;
    // Where each candidate sits in the pool: needed only to resume a large pool's scan after the chosen one.
    const positions: number[] | undefined = n > SAMPLE ? [] : undefined;
    while (scanned < n && found < SAMPLE) {
      const position = (offset + scanned) % n;
      const key = keys[position]!;
      scanned++;
      if (key.disabled !== undefined || key.removed) continue;
      if (key.cooldownUntil > now) {
        result.readyAt = Math.min(result.readyAt, key.cooldownEnd(now));
        continue;
      }
      if (key.circuit && !key.circuit.canPass()) {
        if (key.circuit.state === 'half-open') result.probing = true;
        result.readyAt = Math.min(result.readyAt, key.circuit.openEnd(now) ?? Infinity);
        continue;
      }
      if (key.circuit?.state === 'half-open' && !timeToProbe(ctx, deployment, now)) continue;
      // Left for the last pass, which judges it like any other key: tried already in this request, or unable to use the model lately.
      if (fresh && (ctx.history.triedOnDeployment(key, deployment) || key.refuses(deployment.upstreamModel, now))) continue;
      candidates[found++] = key.view;
      positions?.push(position);
    }
    candidates.length = found;
    while (candidates.length > 0) {
      const chosen = selectingFor(deployment.upstreamModel, core.selector, candidates, { provider: pool.id, model: ctx.request.model, requestId: ctx.requestId, attempt }, now);
      const index = chosen === undefined ? -1 : candidates.indexOf(chosen);
      if (index === -1) {
        result.readyAt = Math.min(result.readyAt, now);
        break;
      }
      const key = keyOfView(candidates[index])!;
      if ((core.keyBudgets || ctx.budgetHold) && !budgetsAllow(core, ctx, deployment, key, !fresh)) {
        candidates.splice(index, 1);
        positions?.splice(index, 1);
        continue;
      }
      const window = key.windowFor(deployment.upstreamModel);
      const reserved = window.limiter.tryReserve(ctx.tokens, now);
      if (reserved.ok) {
        if (positions !== undefined) pool.nextScan = positions[index]! + 1;
        holdBudgets(core, ctx, deployment, key);
        // canPass() was true a moment ago on this same tick: these take the probe slots in half-open, places in the order while closed.
        const ticket = circuit?.pass() ?? NO_TICKET;
        return new Lease(core, ctx, deployment, key, window, reserved.reservation, circuit, ticket, key.circuit?.pass() ?? NO_TICKET);
      }
      noRoom(ctx, window.limiter, reserved, now, result);
      candidates.splice(index, 1);
      positions?.splice(index, 1);
    }
  }
  return undefined;
}

/** A key whose rate limits refused the request (`reserved`): when it may take it, into `result`. */
function noRoom(ctx: RequestContext, limiter: KeyLimiter, reserved: Extract<ReserveResult, { ok: false }>, now: number, result: NotReady): void {
  if (reserved.probing) {
    result.probing = true;
    // Waiting for the probe at worst (its hold) fits the deadline: better than a dearer or later deployment.
    if (now + reserved.waitMs <= ctx.deadlineAt) result.learning = true;
  } else if (reserved.waitMs === Infinity) result.tooLarge = true;
  else {
    if (now + reserved.waitMs > ctx.deadlineAt && result.readyAt > ctx.deadlineAt) {
      result.hopeUntil = Math.max(result.hopeUntil, limiter.hopeUntil(ctx.tokens, ctx.deadlineAt, now));
    }
    // A reply frees room at most the count lag sooner than the wait takes: a key that cannot beat the soonest so far is not judged again.
    if (now + reserved.waitMs - MAX_COUNT_LAG_MS < result.soonestAt) result.soonestAt = Math.min(result.soonestAt, now + limiter.soonestMs(ctx.tokens, now));
  }
  result.readyAt = Math.min(result.readyAt, now + reserved.waitMs);
}

/** What a reservation's wait is rejected with when the request ends first. */
const ENDED = Symbol('request ended');

/**
 * Takes the lease's reservation in the shared store too (one round trip).
 * Refused: the lease is undone, the key's local windows are lowered to the
 * shared levels (so the next pick sees what other managers took), and the
 * caller picks again. Refused because the store holds the key disabled
 * (another manager found it revoked): that is taken on here, as if heard
 * from the store, before the next pick. Granted to a key that went out of
 * use meanwhile (disabled, removed or cooling down; a change heard while the
 * store answered), or to a request that ended meanwhile: undone and given
 * back, and the caller picks again (or ends). Keys
 * with no known limit need no reservation.
 *
 * @returns `undefined` when the reservation holds, else the store's wait in ms.
 * @throws StoreUnavailableError when the store cannot answer and fails closed.
 */
async function reserveShared(core: Core, lease: Lease, signal: AbortSignal): Promise<number | undefined> {
  const { limiter, ref } = lease.window;
  const limits = limiter.limits;
  if (limits.rpm === undefined && limits.tpm === undefined) return undefined;
  const { key, reservation } = lease;
  const session = core.session;
  let verdict: StoreReservation;
  const askedAt = Date.now();
  const answer = session.reserve(ref, limits, reservation.tokens, key.ref);
  try {
    // A store that does not answer (a custom one without a time limit) holds the request no longer than it lasts.
    verdict = answer instanceof Promise ? await untilAborted(answer, signal, () => ENDED) : answer;
  } catch (error) {
    lease.settle('undone');
    if (error === ENDED) {
      // What the store grants after all is given back there.
      void (answer as Promise<StoreReservation>).then((late) => late.ok && late.degraded !== true && adjustLater(session, ref, limits, -1, -reservation.tokens, late.at), () => undefined);
      throw signal.reason;
    }
    throw KeyplexError.is(error) ? error : new StoreUnavailableError(`keyplex: the state store failed: ${error instanceof Error ? error.message : String(error)}.`, { cause: error });
  }
  if (verdict.ok) {
    const taken = verdict.degraded !== true;
    if (taken) {
      lease.shared = { rpm: limits.rpm, tpm: limits.tpm, requestsPeriodMs: limits.requestsPeriodMs, tokensPeriodMs: limits.tokensPeriodMs, at: verdict.at, askedAt };
      limiter.mirror(verdict);
    }
    if (key.usable(Date.now()) && !signal.aborted) return undefined;
    // Given back in the store too (the lease holds what was taken there).
    lease.settle('undone');
    return 0;
  }
  lease.settle('refused');
  if (verdict.disabled !== undefined) {
    applyChange(core, { kind: 'key', key: key.ref, status: { disabled: verdict.disabled, cooldownUntil: 0 } });
    return 0;
  }
  limiter.mirror(verdict);
  return verdict.waitMs;
}

/**
 * Whether the request's route still holds a key to move to after one said
 * it cannot use the model: enabled, not tried on its deployment in this
 * request, and not one that said so lately ({@link Key.refuseModel}). When
 * none is left, the upstream's answer is the request's.
 */
export function untriedKeys(ctx: RequestContext, now: number): boolean {
  const { route, history } = ctx;
  for (const deployment of route.deployments) {
    if (route.excludedModels?.has(deployment.model)) continue;
    for (const key of route.affinity?.keys ?? deployment.pool.keys) {
      if (key.disabled === undefined && !key.removed && !history.triedOnDeployment(key, deployment) && !key.refuses(deployment.upstreamModel, now)) return true;
    }
  }
  return false;
}
