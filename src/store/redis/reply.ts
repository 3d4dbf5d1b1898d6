/** A reservation script's reply (scripts.ts, `RESERVE`), as a {@link StoreReservation}. */
import type { KeyDisabledReason } from '../../events';
import type { StoreReservation } from '../types';

/** The reply said Redis lost the shared state (the epoch marker: epoch.ts); nothing was taken. */
export const LOST: unique symbol = Symbol('lost');

/** A level from a script: '' = no limit. */
function level(raw: unknown): number | undefined {
  if (raw === '' || raw === null || raw === undefined) return undefined;
  const n = Number(raw);
  return Number.isFinite(n) ? n : undefined;
}

/** Whether an adjustment's reply says Redis lost the shared state. */
export function lostReply(reply: unknown): boolean {
  return Array.isArray(reply) && reply[1] === -3;
}

/** The reservation a reply gives, or {@link LOST}. Throws on a reply of another shape. */
export function reservationOf(reply: unknown): StoreReservation | typeof LOST {
  const [ok, waitMs, requests, tokensLeft, at, requestsFree, tokensFree] = reply as [number, number, string, string, string, string, string];
  if (waitMs === -3) return LOST;
  if (waitMs === -2) return { ok: false, waitMs: Infinity, requests: undefined, tokens: undefined, disabled: at as KeyDisabledReason };
  const levels = { requests: level(requests), tokens: level(tokensLeft), requestsFreeMs: level(requestsFree), tokensFreeMs: level(tokensFree) };
  if (ok === 1) return { ok: true, at: Number(at), ...levels };
  return { ok: false, waitMs: waitMs < 0 ? Infinity : waitMs, ...levels };
}
