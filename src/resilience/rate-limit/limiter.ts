/**
 * Per-key rate limiting and pacing: per dimension (requests, tokens) windows
 * with a capacity and a period, from configuration, from the provider's
 * headers, or from AIMD on 429s, each a ledger of what was sent (see
 * {@link LedgerWindow}). Pure and deterministic: the clock is injected,
 * nothing sleeps, nothing is scheduled. Methods taking an optional last
 * argument `at`/`clockRead` take it as a reading of that clock the caller
 * just made (one per request, not one per call); without it they read it.
 */
import { ConfigError } from '../../errors';
import { parseRateLimitHeaders, restAfterRateLimit, type HeaderEntries, type RateLimitDimension, type RateLimitRest, type RateLimitSnapshot } from '../headers';
import { AimdEstimator } from './aimd';
import { LimiterClock } from './clock';
import { Dimension, NO_WINDOWS, UNLIMITED } from './dimension';
import { MINUTE_MS, resolveRateLimits } from './options';
import { closeTicket, Ticket } from './ticket';
import { LedgerWindow } from './window';
import { PROBE_HOLD_MS, type KeyLimiterOptions, type KeyLimits, type RateLimitSource, type Reservation, type ReserveResult } from './limits';

/** A shared store's levels, as its reservations answer them (the store's `SharedLevels`, kept apart: no import of the store's types here). */
type SharedLevels = Record<'requests' | 'tokens', number | undefined> & Partial<Record<'requestsFreeMs' | 'tokensFreeMs', number | undefined>>;

export { exhaustedDimensions } from '../headers';

export { PROBE_HOLD_MS, type KeyLimiterOptions, type KeyLimits, type RateLimitSource, type Reservation, type ReserveResult } from './limits';

const DIMENSIONS: readonly RateLimitDimension[] = ['requests', 'tokens'];
/** Unanswered reservations tracked one by one at most; beyond, the oldest is taken as counted (bounded memory). */
const MAX_OPEN = 1_024;
const RANK: Record<RateLimitSource, number> = { none: 0, adaptive: 1, headers: 2, config: 3 };
/** A limiter's flags: AIMD on; the cold-start probe on; no probe any more. */
const ADAPTIVE = 1;
const PROBING = 2;
const UNPROBED = 4;
/**
 * One key's (or one quota group's, or one key × model's) rate limiter.
 *
 * **Windows.** Per dimension, configured windows (`rpm`, `rpd`, `tpm`, `tpd`,
 * `{ limit, periodMs }`) and the window learnt from headers both hold (the
 * configured ones are what `limits` reports); without either, the AIMD
 * estimate (requests only, per minute). A learnt window's period
 * comes from the reset headers ({@link PeriodLearner}), a minute until they
 * tell. Every window is a ledger ({@link LedgerWindow}): at most `limit` sent
 * in any period, a request a debt until its reply.
 *
 * **Headers.** {@link observe} applies a reply's `remaining` as of the moment
 * the upstream counted *that* request: what was sent after it is subtracted.
 *
 * **AIMD** (on by default, while no requests limit is configured or learnt):
 * see {@link AimdEstimator}. A blip (a 429 with a wait of at most 1 s) rests
 * the key without lowering the estimate; the estimate never falls below what
 * the key served in the last minute. {@link forget} drops it.
 *
 * **Cost.** Reservations are O(windows); a wait is computed over at most a few
 * hundred ledger entries. Nothing waits: the caller sleeps `waitMs`.
 */
export class KeyLimiter extends LimiterClock {
  #seq = 0;
  /** {@link ADAPTIVE}, {@link PROBING}, {@link UNPROBED}: one field, not three (one limiter per key). */
  #flags: number;
  readonly #requests: Dimension;
  readonly #tokens: Dimension;
  /**
   * Made when AIMD may be in force (adaptive, no requests limit configured or
   * learnt) and a request is sent; dropped when a requests limit is learnt
   * (its estimate and tallies are not read again until {@link forget}).
   */
  #aimd: AimdEstimator | undefined;
  /** The AIMD window alone, made at AIMD's first estimate (an unlimited window records nothing), then kept in `all`. */
  #aimdOnly: readonly LedgerWindow[] = NO_WINDOWS;
  /** Reservations not yet answered nor settled, in send order (at most {@link MAX_OPEN}); made at the first. */
  #open: Ticket[] | undefined;
  /** The first request on a key of unknown limits, in flight: the others wait for its headers. */
  #probeSeq: number | undefined = undefined;
  /** Set with the first probe (no boxed number per limiter that never probes). */
  #probeUntil: number | undefined;

  #has(flag: number): boolean {
    return (this.#flags & flag) !== 0;
  }

  /** No probe any more while nothing is known: a reply stated no limits, or a probe outlived its hold. */
  get #unprobed(): boolean {
    return this.#has(UNPROBED);
  }

  set #unprobed(on: boolean) {
    this.#flags = on ? this.#flags | UNPROBED : this.#flags & ~UNPROBED;
  }

  /**
   * @param options Configured limits; see {@link KeyLimiterOptions}.
   * @param now The clock in ms (default `Date.now`). A clock that goes backwards a little is taken as standing still; one stepped back further, as going on (see {@link LimiterClock}).
   * @throws ConfigError naming the field when a limit is out of range.
   */
  constructor(options: KeyLimiterOptions = {}, now: () => number = Date.now) {
    super(now);
    const resolved = resolveRateLimits(options as Record<string, unknown>, '');
    if (options.adaptive !== undefined && typeof options.adaptive !== 'boolean') {
      throw new ConfigError('adaptive', `expected true or false; got ${typeof options.adaptive}`);
    }
    this.#flags = ((options.adaptive ?? true) ? ADAPTIVE : 0) | (options.probe === true ? PROBING : 0);
    this.#requests = new Dimension(resolved.requests);
    this.#tokens = new Dimension(resolved.tokens);
  }

  #dim(dimension: RateLimitDimension): Dimension {
    return dimension === 'requests' ? this.#requests : this.#tokens;
  }

  /** The windows in force in a dimension, and where they came from. */
  #active(dimension: RateLimitDimension): { windows: readonly LedgerWindow[]; source: RateLimitSource } {
    return { windows: this.#windows(dimension), source: this.#source(dimension) };
  }

  /** The windows in force in a dimension (arrays made once, never changed: this runs on every pick). */
  #windows(dimension: RateLimitDimension): readonly LedgerWindow[] {
    const dim = this.#dim(dimension);
    // What the upstream states holds too: a configured window does not let a key past the provider's own.
    if (dim.config.length > 0) return dim.learntLimit === undefined ? dim.config : dim.withLearnt;
    if (dim.learntLimit !== undefined) return dim.learntOnly;
    if (dimension === 'requests' && this.#has(ADAPTIVE) && this.#aimd?.estimate !== undefined) return this.#aimdOnly;
    return NO_WINDOWS;
  }

  /** Where the windows in force in a dimension come from. */
  #source(dimension: RateLimitDimension): RateLimitSource {
    const dim = this.#dim(dimension);
    if (dim.config.length > 0) return 'config';
    if (dim.learntLimit !== undefined) return 'headers';
    if (dimension === 'requests' && this.#has(ADAPTIVE) && this.#aimd?.estimate !== undefined) return 'adaptive';
    return 'none';
  }

  /** The limits in force (configured, learnt or estimated). */
  get limits(): KeyLimits {
    const requests = this.#active('requests');
    const tokens = this.#active('tokens');
    const source = RANK[requests.source] >= RANK[tokens.source] ? requests.source : tokens.source;
    const limits: KeyLimits = { rpm: requests.windows[0]?.limit, tpm: tokens.windows[0]?.limit, source };
    if (requests.windows.length > 0) limits.requestsPeriodMs = requests.windows[0]!.periodMs;
    if (tokens.windows.length > 0) limits.tokensPeriodMs = tokens.windows[0]!.periodMs;
    limits.windows = { requests: requests.windows.map((w) => w.spec), tokens: tokens.windows.map((w) => w.spec) };
    return limits;
  }

  /** Ms until 1 request and `tokens` tokens fit in every window in force (0: now); with `replyAt`, as if every request in flight were answered then. */
  #waitMs(tokens: number, now: number, replyAt?: number): number {
    // Indexed loops, no iterator: this runs on every reservation (~250 B of iterator results per request otherwise).
    const requests = this.#windows('requests');
    const tokenWindows = this.#windows('tokens');
    let wait = 0;
    for (let i = 0; i < requests.length; i++) wait = Math.max(wait, requests[i]!.waitMs(1, now, replyAt));
    for (let i = 0; i < tokenWindows.length; i++) wait = Math.max(wait, tokenWindows[i]!.waitMs(tokens, now, replyAt));
    // A 429's rest closes the learnt window even while nothing is known of its limit.
    const requestsBlocked = this.#requests.learnt.blockedUntil;
    if (requestsBlocked > now) wait = Math.max(wait, Math.ceil(requestsBlocked - now));
    const tokensBlocked = this.#tokens.learnt.blockedUntil;
    if (tokensBlocked > now && tokens > 0) wait = Math.max(wait, Math.ceil(tokensBlocked - now));
    return wait;
  }

  /**
   * Reserves 1 request and `tokens` estimated tokens if they fit now, else
   * says how long until they would, in whole ms (`Infinity`: never, the
   * tokens exceed a tokens limit). Never waits. A `tokens` that is negative or
   * not a number counts as 0.
   */
  tryReserve(tokens: number, clockRead?: number): ReserveResult {
    const now = this.now(clockRead);
    const amount = tokens >= 0 ? tokens : 0;
    const waitMs = this.#waitMs(amount, now);
    if (waitMs > 0) return { ok: false, waitMs };
    const probe = this.#has(PROBING) && !this.#unprobed && !this.#known();
    if (probe && this.#probeSeq !== undefined) {
      if (now < this.#probeUntil!) return { ok: false, waitMs: Math.ceil(this.#probeUntil! - now), probing: true };
      this.#unprobed = true;
    }
    const seq = ++this.#seq;
    if (probe && !this.#unprobed) {
      this.#probeSeq = seq;
      this.#probeUntil = now + PROBE_HOLD_MS;
    }
    // Exactly sized (a push grows an empty array to 17 numbers, on every reservation).
    const before = new Array<number>(this.#requests.all.length + this.#tokens.all.length);
    let at = 0;
    let counted = 0;
    let skipped = -1;
    for (const dimension of DIMENSIONS) {
      const dim = this.#dim(dimension);
      const units = dimension === 'requests' ? 1 : amount;
      for (const window of dim.all) {
        before[at] = window.taken;
        if (window.limited) window.take(seq, units, now);
        else if (window === dim.learnt) {
          // A placeholder (nothing learnt yet) holds no debt: a limit learnt later starts from the headers' remaining,
          // minus what was sent after the request they answer.
          window.count(units);
          counted |= dimension === 'requests' ? 1 : 2;
        } else skipped = at;
        at++;
      }
    }
    if (this.#aimdMayRule()) (this.#aimd ??= new AimdEstimator()).recordSend(now);
    const reservation = new Ticket(this, amount, now, seq, before, this.#requests.all.length, counted, skipped);
    const open = (this.#open ??= []);
    open.push(reservation);
    if (open.length > MAX_OPEN) open.shift();
    return { ok: true, reservation };
  }

  /** After a refusal: the soonest (ms) the request could fit, every request in flight answered now (no reply makes room sooner). */
  soonestMs(tokens: number, clockRead?: number): number {
    const now = this.now(clockRead);
    return this.#waitMs(tokens >= 0 ? tokens : 0, now, now);
  }

  /** After a refusal whose wait ends past `by` (a deadline): until when replies to the requests in flight would still make room by then ({@link Dimension.hopeUntil}); `-Infinity` when none would. */
  hopeUntil(tokens: number, by: number, clockRead?: number): number {
    const now = this.now(clockRead);
    // `by` and the answer are on the clock, which runs skew behind the limiter's time.
    const skew = this.skew;
    const until = Math.min(this.#requests.hopeUntil(this.#windows('requests'), 1, now, by + skew), this.#tokens.hopeUntil(this.#windows('tokens'), tokens >= 0 ? tokens : 0, now, by + skew));
    return until === Infinity ? -Infinity : until - skew;
  }

  /** Whether any limit is configured, learnt or estimated (what a probe would wait for). */
  #known(): boolean {
    const requests = this.#requests;
    const tokens = this.#tokens;
    if (requests.config.length > 0 || tokens.config.length > 0) return true;
    if (requests.learntLimit !== undefined || tokens.learntLimit !== undefined) return true;
    return this.#has(ADAPTIVE) && this.#aimd?.estimate !== undefined;
  }

  /**
   * The probe's attempt is over as far as the gate goes: its reply's headers
   * were observed (`ok`: whether it was a 2xx), or it ended without a reply
   * (`ok` undefined: a transport failure, a timeout, an abort, never sent).
   * A 2xx that stated no limit opens the limiter for good (the provider does
   * not state them; AIMD as without the gate); otherwise, while nothing is
   * known, the next request goes first.
   * @returns Whether `reservation` was the probe: the requests held behind it may go on.
   */
  endProbe(reservation: Reservation, ok?: boolean): boolean {
    if (this.#probeSeq !== reservation.seq) return false;
    this.#probeSeq = undefined;
    if (ok === true && !this.#known()) this.#unprobed = true;
    return true;
  }

  /** Share of capacity left at `now` (a clock reading a pick of many keys makes once; default: read here), 0..1; 1 when nothing is known. */
  headroom(at?: number): number {
    const now = this.now(at);
    const requests = this.#shareOf(this.#requests, this.#windows('requests'), now);
    return requests === 0 ? 0 : Math.min(requests, this.#shareOf(this.#tokens, this.#windows('tokens'), now));
  }

  /** A dimension's share left now (read on every pick, for every key judged: no iterator). */
  #shareOf(dim: Dimension, windows: readonly LedgerWindow[], now: number): number {
    if (dim.learnt.blockedUntil > now) return 0;
    let share = 1;
    for (let i = 0; i < windows.length; i++) share = Math.min(share, windows[i]!.share(now));
    return share;
  }

  /** The reservation's bookkeeping, once: `undefined` when settled already (or not ours). */
  #settle(reservation: Reservation): Ticket | undefined {
    const held = this.#heldOf(reservation);
    if (held === undefined || held.settled) return undefined;
    held.settled = true;
    if (this.#probeSeq === reservation.seq) this.#probeSeq = undefined;
    this.#close(reservation.seq);
    return held;
  }

  /**
   * Replaces the reservation's estimated tokens with the real count (the
   * difference is given back or charged, in the same windows and as of the
   * same moment). Once per reservation; an `actualTokens` that is not a
   * non-negative number leaves the estimate standing.
   * @returns Whether the count was applied.
   */
  reconcile(reservation: Reservation, actualTokens: number, at?: number): boolean {
    const held = this.#settle(reservation);
    if (held === undefined || typeof actualTokens !== 'number' || !Number.isFinite(actualTokens) || actualTokens < 0) return false;
    const delta = actualTokens - reservation.tokens;
    if (delta !== 0) this.#adjustTokens(held, reservation, delta, at);
    return true;
  }

  /**
   * The attempt failed before the provider could have counted it (connection
   * refused): gives the reservation's tokens back; the request still counts.
   * Once per reservation. @returns Whether it was given back.
   */
  refund(reservation: Reservation): boolean {
    const held = this.#settle(reservation);
    if (held === undefined) return false;
    this.#adjustTokens(held, reservation, -reservation.tokens);
    return true;
  }

  /** Changes the reservation's tokens by `delta` in the windows that recorded it. */
  #adjustTokens(held: Ticket, reservation: Reservation, delta: number, at?: number): void {
    const now = this.now(at);
    const tokens = this.#tokens;
    const windows = tokens.all;
    for (let at = 0; at < windows.length; at++) {
      const window = windows[at]!;
      const index = held.index(true, at);
      // A placeholder's count stays as estimated: a reconciliation never credits a limit learnt after the send.
      if (held.recorded(index) && !held.placeholder(index, window === tokens.learnt)) window.adjust(reservation.seq, reservation.at, delta, now);
    }
  }

  /** The reservation's request is sent now: a send later than its moment counts from now in every window (the upstream's count starts then). */
  sent(reservation: Reservation, at?: number): void {
    // Checked first: nearly every send is at its reservation's moment (no table lookup then).
    const now = this.now(at);
    if (now <= reservation.at) return;
    const held = this.#heldOf(reservation);
    if (held === undefined || held.settled) return;
    for (const dimension of DIMENSIONS) {
      const tokens = dimension === 'tokens';
      const windows = this.#dim(dimension).all;
      for (let at = 0; at < windows.length; at++) if (held.recorded(held.index(tokens, at))) windows[at]!.sent(reservation.seq, now);
    }
  }

  /** The reservation was never used (a shared store refused it): gives back its request and its tokens. */
  cancel(reservation: Reservation): void {
    if (this.#settle(reservation) === undefined) return;
    const now = this.now();
    for (const dimension of DIMENSIONS) for (const window of this.#dim(dimension).all) window.cancel(reservation.seq, now);
  }

  /**
   * Mirrors a shared store's levels (units left in the shared windows, now):
   * each caps this limiter's first window of its dimension
   * ({@link LedgerWindow.mirror}). `undefined` leaves a dimension alone.
   */
  mirror(shared: SharedLevels): void {
    const now = this.now();
    if (shared.requests !== undefined) this.#windows('requests')[0]?.mirror(shared.requests, shared.requestsFreeMs, now);
    if (shared.tokens !== undefined) this.#windows('tokens')[0]?.mirror(shared.tokens, shared.tokensFreeMs, now);
  }

  /**
   * Learns from any reply's headers (see `parseRateLimitHeaders`): a limit
   * becomes the learnt window's capacity (a learnt requests limit ends AIMD),
   * the reset and how `remaining` moves its period, and `remaining` caps what
   * is available, **as of the moment the upstream counted `reservation`**:
   * what was sent after it is subtracted. Without a reservation the snapshot
   * is taken as describing now. The reservation's debt is answered (it leaves
   * its windows a period from now at the latest).
   * @returns The parsed snapshot (`capped: true` when an upstream value was bounded).
   */
  observe(headers: Headers | HeaderEntries, reservation?: Reservation): RateLimitSnapshot {
    const now = this.now();
    const snapshot = parseRateLimitHeaders(headers, now - this.skew);
    this.#apply(snapshot, reservation, now);
    return snapshot;
  }

  #apply(snapshot: RateLimitSnapshot, reservation: Reservation | undefined, now: number): void {
    const held = reservation === undefined ? undefined : this.#heldOf(reservation);
    // Sent earlier and not answered yet: the upstream may not have counted it when it counted this one
    // (requests overtake each other on the way), so the snapshot is placed before the oldest of them.
    const oldest = this.#oldestOpen(reservation);
    if (held !== undefined && !held.answered) {
      held.answered = true;
      this.#close(reservation!.seq);
      for (const dimension of DIMENSIONS) for (const window of this.#dim(dimension).all) window.answer(reservation!.seq, now);
    }
    for (const dimension of DIMENSIONS) {
      const seen = snapshot[dimension];
      if (seen === undefined) continue;
      const dim = this.#dim(dimension);
      // The dimension learns its learnt window's period.
      dim.update(seen.limit ?? dim.learntLimit, seen.remaining, seen.resetMs, now, seen.periodMs);
      if (seen.limit !== undefined) {
        dim.learntLimit = seen.limit;
        if (dimension === 'requests') this.#aimd = undefined;
      }
      if (dim.learntLimit !== undefined) {
        // No spec object per reply while nothing changed.
        if (dim.learnt.limit !== dim.learntLimit || dim.learnt.periodMs !== dim.periodMs) dim.learnt.spec = { limit: dim.learntLimit, periodMs: dim.periodMs };
        dim.learnt.useBucket(dim.bucket, now);
      }
      if (seen.remaining === undefined) continue;
      // The provider's own window when it stated its limit: a configured one of the same period does not refill like its bucket.
      const window = dim.learntLimit !== undefined ? dim.learnt : this.#closest(dimension, dim.periodMs);
      if (window === undefined) continue;
      const at = dim.all.indexOf(window);
      const tokens = dimension === 'tokens';
      const through = Math.min(held?.through(held.index(tokens, at)) ?? window.taken, oldest?.before[oldest.index(tokens, at)] ?? Infinity);
      window.cap(seen.remaining, through, now + (seen.resetMs ?? window.periodMs), now);
    }
  }

  /** The oldest reservation sent before `reservation` and not answered nor settled yet (none without a reservation: a snapshot of "now"). */
  #oldestOpen(reservation: Reservation | undefined): Ticket | undefined {
    const first = reservation === undefined ? undefined : this.#open?.[0];
    return first !== undefined && first.seq < reservation!.seq ? first : undefined;
  }

  /** Reservation `seq` is no longer open; the list goes with the last one (an idle key holds none). */
  #close(seq: number): void {
    const open = this.#open;
    if (open !== undefined && closeTicket(open, seq) && open.length === 0) this.#open = undefined;
  }

  /** A reservation's bookkeeping when it is this limiter's. */
  #heldOf(reservation: Reservation): Ticket | undefined {
    return reservation instanceof Ticket && reservation.owner === this ? reservation : undefined;
  }

  /** The window in force whose period is nearest `periodMs` (a header describes one window). */
  #closest(dimension: RateLimitDimension, periodMs: number): LedgerWindow | undefined {
    let best: LedgerWindow | undefined;
    for (const window of this.#windows(dimension)) {
      if (!best || Math.abs(Math.log(window.periodMs / periodMs)) < Math.abs(Math.log(best.periodMs / periodMs))) best = window;
    }
    return best;
  }

  /**
   * A 429 for this key. Learns from its headers first ({@link observe}), then
   * closes the exhausted dimension(s) for the rest the answer asks for
   * (`restAfterRateLimit`: the explicit wait, else the reset, else
   * `bodyWaitMs`, else `fallbackMs`; at most an hour). With AIMD in force, the estimate is
   * decreased — not for a blip (an explicit wait of at most 1 s), and never
   * below what the key served in the last minute.
   * @returns The rest applied (`capped: true` when an upstream value was bounded).
   */
  rateLimited(headers: Headers, fallbackMs: number, reservation?: Reservation, bodyWaitMs?: number): RateLimitRest {
    const now = this.now();
    const snapshot = parseRateLimitHeaders(headers, now - this.skew);
    this.#apply(snapshot, reservation, now);
    const rest = restAfterRateLimit(snapshot, fallbackMs, bodyWaitMs);
    if (this.#has(ADAPTIVE) && RANK[this.#source('requests')] <= RANK.adaptive) {
      if ((this.#aimd ??= new AimdEstimator()).onRateLimited(now, now + rest.ms, snapshot.retryAfterMs ?? bodyWaitMs)) this.#syncAimd();
    }
    for (const dimension of rest.dimensions) {
      const ms = rest.perDimension[dimension] ?? rest.ms;
      const dim = this.#dim(dimension);
      for (const window of dim.all) window.block(ms, now);
    }
    return rest;
  }

  #syncAimd(): void {
    const estimate = this.#aimd?.estimate;
    if (estimate !== undefined && this.#aimdOnly.length === 0) {
      this.#aimdOnly = [new LedgerWindow(UNLIMITED)];
      this.#requests.all = this.#requests.withLearnt.concat(this.#aimdOnly);
    }
    const window = this.#aimdOnly[0];
    if (window !== undefined) window.spec = estimate === undefined ? UNLIMITED : { limit: estimate, periodMs: MINUTE_MS };
  }

  /** A success: counted as served; with AIMD in force, the additive increase. */
  succeeded(at?: number): void {
    const now = this.now(at);
    if (!this.#aimdMayRule()) return;
    const aimd = (this.#aimd ??= new AimdEstimator());
    aimd.recordSuccess(now);
    if (this.#source('requests') !== 'adaptive') return;
    if (aimd.onSuccess(now)) this.#syncAimd();
  }

  /** Whether the AIMD estimate may be in force, now or later (else its tallies are never read). */
  #aimdMayRule(): boolean {
    const requests = this.#requests;
    return this.#has(ADAPTIVE) && requests.config.length === 0 && requests.learntLimit === undefined;
  }

  /**
   * Forgets what was learnt — limits and periods from headers, the AIMD
   * estimate, rests and header caps — keeping configured limits and the
   * ledger of what was sent. `enableKey()` calls it.
   */
  forget(): void {
    this.#open = undefined;
    this.#probeSeq = undefined;
    this.#unprobed = false;
    this.#aimd = undefined;
    this.#syncAimd();
    for (const dimension of DIMENSIONS) {
      const dim = this.#dim(dimension);
      dim.learntLimit = undefined;
      dim.learnt.spec = UNLIMITED;
      dim.clear();
      for (const window of dim.all) window.clearHints();
    }
  }
}
