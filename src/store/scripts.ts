/**
 * The Redis store's Lua scripts. Each runs atomically on the server, so a
 * check and a take on a key's windows are one step for every replica.
 *
 * A window is a hash `{ r, t, at }`: the requests and tokens levels and the
 * time they were last brought up to date. The buckets are the ones
 * `TokenBucket` implements in-process: capacity = the limit per period,
 * continuous refill at limit / period per ms, starting full, a level between
 * −capacity and capacity, waits in whole ms rounded up.
 *
 * ARGV shared by both scripts: [1] requests limit, [2] tokens limit (0 = no
 * limit), [3] the clock in ms ('' = the server's `TIME`), [4] the window's
 * time to live in ms, [5] the requests period in ms, [6] the tokens period in
 * ms (0 or '' = a minute).
 *
 * Like `TokenBucket` with a start lag, a take from a full window starts its
 * refill {@link START_LAG_MS} later (`at` in the future): the provider's
 * bucket starts when our first request arrives, after we took it.
 */

import type { StoreKeyRef, StoreLimits } from './types';
import { keyField } from './fields';

/** How much later a shared window starts refilling after a take from full. */
export const START_LAG_MS = 250;

/** A window's hash lives at least this long after its last use (and at least twice its longest period). */
const MIN_WINDOW_TTL_MS = 120_000;

/** A usable period, else 0 (the scripts read it as a minute). */
function period(ms: number | undefined): number {
  return ms !== undefined && Number.isFinite(ms) && ms > 0 ? ms : 0;
}

/** The ARGV the scripts share: [limits, clock, TTL, periods] (see above). */
export function windowArgs(limits: StoreLimits, clock: string): (string | number)[] {
  const requestsPeriod = period(limits.requestsPeriodMs);
  const tokensPeriod = period(limits.tokensPeriodMs);
  const ttl = Math.ceil(Math.max(MIN_WINDOW_TTL_MS, 2 * requestsPeriod, 2 * tokensPeriod));
  return [limits.rpm ?? 0, limits.tpm ?? 0, clock, ttl, requestsPeriod, tokensPeriod];
}

/** How long an adjustment waits for its key's next reservation before it is written on its own. */
export const DEFER_FLUSH_MS = 1_000;

interface Held {
  key: StoreKeyRef;
  limits: StoreLimits;
  requests: number;
  tokens: number;
}

/**
 * Adjustments (refunds, usage reconciliations) held until their key's next
 * reservation, which carries them in the same script call: one round trip
 * per attempt. What no reservation carries within {@link DEFER_FLUSH_MS} is
 * written by `write` (one adjust per key).
 */
export class DeferredAdjustments {
  readonly #held = new Map<string, Held>();
  readonly #write: (key: StoreKeyRef, limits: StoreLimits, requests: number, tokens: number) => void;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(write: (key: StoreKeyRef, limits: StoreLimits, requests: number, tokens: number) => void) {
    this.#write = write;
  }

  /** Holds an adjustment for the key (added to any already held). */
  add(key: StoreKeyRef, limits: StoreLimits, requests: number, tokens: number): void {
    const field = keyField(key);
    const held = this.#held.get(field);
    if (held) {
      held.requests += requests;
      held.tokens += tokens;
      held.limits = limits;
    } else {
      this.#held.set(field, { key, limits, requests, tokens });
    }
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.flush();
      }, DEFER_FLUSH_MS);
      this.#timer.unref?.();
    }
  }

  /** What is held for the key, handed to a reservation (and no longer held). */
  take(key: StoreKeyRef): { requests: number; tokens: number } {
    const field = keyField(key);
    const held = this.#held.get(field);
    if (held === undefined) return { requests: 0, tokens: 0 };
    this.#held.delete(field);
    return { requests: held.requests, tokens: held.tokens };
  }

  /** A reservation that carried `held` failed: held again. */
  restore(key: StoreKeyRef, limits: StoreLimits, held: { requests: number; tokens: number }): void {
    if (held.requests !== 0 || held.tokens !== 0) this.add(key, limits, held.requests, held.tokens);
  }

  /** Writes everything held, one adjustment per key. */
  flush(): void {
    const all = [...this.#held.values()];
    this.#held.clear();
    for (const { key, limits, requests, tokens } of all) if (requests !== 0 || tokens !== 0) this.#write(key, limits, requests, tokens);
  }

  /** Stops the flush timer (the store is closing). */
  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

const PRELUDE = `
local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local rperiod = tonumber(ARGV[5]) or 0
if rperiod <= 0 then rperiod = 60000 end
local tperiod = tonumber(ARGV[6]) or 0
if tperiod <= 0 then tperiod = 60000 end
local now
if ARGV[3] ~= '' then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local state = redis.call('HMGET', KEYS[1], 'r', 't', 'at')
local at = tonumber(state[3])
local dt = 0
if at ~= nil and now > at then dt = now - at end
-- ms until refilling starts (after a start lag), else 0
local lag = 0
if at ~= nil and at > now then lag = at - now end
local function refill(level, cap, period)
  if cap <= 0 then return nil end
  if level == nil then return cap end
  level = level + dt * cap / period
  if level > cap then level = cap end
  if level < -cap then level = -cap end
  return level
end
local r = refill(tonumber(state[1]), rpm, rperiod)
local t = refill(tonumber(state[2]), tpm, tperiod)
local function take(level, cap, amount)
  if level == nil then return nil end
  level = level - amount
  if level > cap then level = cap end
  if level < -cap then level = -cap end
  return level
end
local function save(started)
  local origin = now
  if at ~= nil and at > now then origin = at end
  if started then origin = now + ${START_LAG_MS} end
  local fields = {'at', tostring(origin)}
  if r ~= nil then table.insert(fields, 'r'); table.insert(fields, tostring(r)) end
  if t ~= nil then table.insert(fields, 't'); table.insert(fields, tostring(t)) end
  redis.call('HSET', KEYS[1], unpack(fields))
  if r == nil then redis.call('HDEL', KEYS[1], 'r') end
  if t == nil then redis.call('HDEL', KEYS[1], 't') end
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
local function show(level)
  if level == nil then return '' end
  return tostring(level)
end
`;

/**
 * The reservation's first step, when KEYS[2] (the key statuses hash) is
 * given: the attempt's key (its field, the last ARGV) held disabled there —
 * another replica found it revoked, this one has not heard yet — is refused
 * at once, windows untouched: `{ 0, -2, '', '', reason }`.
 */
const REFUSE_DISABLED = `
if KEYS[2] ~= nil then
  local status = redis.call('HGET', KEYS[2], ARGV[#ARGV])
  local reason = status and string.match(status, '"disabled":"([^"]+)"')
  if reason then return {0, -2, '', '', reason} end
end
`;

/**
 * Reserve: ARGV[7] tokens; ARGV[8] requests and ARGV[9] tokens of adjustments
 * held back since the last call (a refund or a usage reconciliation, folded
 * into this round trip), applied first. Returns `{ ok (1|0), waitMs (-1 =
 * never), requests level, tokens level }` (levels as strings, '' when the
 * dimension has no limit); first {@link REFUSE_DISABLED}.
 */
export const RESERVE = `${REFUSE_DISABLED}${PRELUDE}
local need = tonumber(ARGV[7])
if need < 0 then need = 0 end
local pr = tonumber(ARGV[8]) or 0
local pt = tonumber(ARGV[9]) or 0
local adjusted = pr ~= 0 or pt ~= 0
r = take(r, rpm, pr)
t = take(t, tpm, pt)
local eps = 0.000001
local function wait(level, cap, amount, period)
  if level == nil or amount <= 0 then return 0 end
  if amount > cap + eps then return -1 end
  if level + eps >= amount then return 0 end
  local rate = cap / period
  return math.ceil(lag + (amount - level) / rate - eps / (2 * rate))
end
local wr = wait(r, rpm, 1, rperiod)
local wt = wait(t, tpm, need, tperiod)
if wr < 0 or wt < 0 then
  if adjusted then save(false) end
  return {0, -1, show(r), show(t)}
end
local w = math.max(wr, wt)
if w > 0 then
  if adjusted then save(false) end
  return {0, w, show(r), show(t)}
end
local started = (r ~= nil and r >= rpm) or (t ~= nil and t >= tpm and need > 0)
if r ~= nil then r = r - 1 end
if t ~= nil then t = t - need end
save(started)
return {1, 0, show(r), show(t)}
`;

/** Adjust: ARGV[7] requests, ARGV[8] tokens to take (negative gives back). Returns nothing. */
export const ADJUST = `${PRELUDE}
local dr = tonumber(ARGV[7])
local dtk = tonumber(ARGV[8])
r = take(r, rpm, dr)
t = take(t, tpm, dtk)
save(false)
return 0
`;
