/**
 * The types a `KeyLimiter` is configured and answered with, apart from
 * its class (which re-exports them).
 */
import type { RateWindowOption } from './options';
import type { WindowSpec } from './window';

/** Options of one key's `KeyLimiter`. */
export interface KeyLimiterOptions {
  /** Requests per minute; `undefined` = unknown (learnt from headers, or adaptive). */
  rpm?: number | undefined;
  /** Requests per day. */
  rpd?: number | undefined;
  /** Tokens (input + output) per minute; `undefined` = unknown (learnt from headers). */
  tpm?: number | undefined;
  /** Tokens per day. */
  tpd?: number | undefined;
  /** More request windows `{ limit, periodMs }`. */
  requests?: RateWindowOption | RateWindowOption[] | undefined;
  /** More token windows `{ limit, periodMs }`. */
  tokens?: RateWindowOption | RateWindowOption[] | undefined;
  /** AIMD on 429s while no requests limit is known. Default `true`. */
  adaptive?: boolean | undefined;
  /**
   * While nothing is known of the limits, one request goes first and the
   * others are refused (`probing: true`) until `KeyLimiter.endProbe`
   * (at most {@link PROBE_HOLD_MS}). Default `false`: the caller must wake
   * the requests it holds when the probe ends (the manager does).
   */
  probe?: boolean | undefined;
}

/**
 * What `KeyLimiter.tryReserve` took: 1 request and `tokens` estimated
 * tokens at clock time `at`, the `seq`-th reservation of this limiter (send
 * order). Hand it to `KeyLimiter.observe` when the reply's headers
 * arrive, and to `KeyLimiter.reconcile`, `KeyLimiter.refund` or
 * `KeyLimiter.cancel` once.
 */
export interface Reservation {
  readonly tokens: number;
  readonly at: number;
  readonly seq: number;
}

/** The answer of `KeyLimiter.tryReserve`. */
export type ReserveResult = { ok: true; reservation: Reservation } | { ok: false; waitMs: number; probing?: true };

/**
 * How long a key of unknown limits holds its other requests behind its first
 * one at most; past it the key opens (a reply that slow says nothing soon).
 */
export const PROBE_HOLD_MS = 10_000;

/** Where the limits in force came from, strongest first. */
export type RateLimitSource = 'config' | 'headers' | 'adaptive' | 'none';

/** The limits a `KeyLimiter` enforces, for stats and the shared store. */
export interface KeyLimits {
  /** The capacity of the shortest requests window in force; `undefined` when none. */
  rpm: number | undefined;
  /** The capacity of the shortest tokens window in force; `undefined` when none. */
  tpm: number | undefined;
  /** The period of the `rpm` window, in ms (60 000 for a per-minute limit). */
  requestsPeriodMs?: number;
  /** The period of the `tpm` window, in ms. */
  tokensPeriodMs?: number;
  /** Every window in force, per dimension. */
  windows?: { requests: WindowSpec[]; tokens: WindowSpec[] };
  /** The strongest source among the two dimensions. */
  source: RateLimitSource;
}
