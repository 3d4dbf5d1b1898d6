/**
 * The Redis store's Lua scripts. Each runs atomically on the server, so a
 * check and a take on a key's windows are one step for every replica.
 *
 * A key's window is a hash of slots: `r<slot end>` and `t<slot end>`, the
 * requests and tokens counted in the slot ending then. The arithmetic is
 * shared-window.ts's (`SlidingSlots`, which `MemoryStore` runs): a
 * reservation at `now` is counted in the slot of `now + COUNT_LAG_MS` and
 * leaves a period after that slot's end; at most the limit in any sliding
 * period, whatever the upstream's window shape.
 *
 * ARGV shared by both scripts: [1] requests limit, [2] tokens limit (0 = no
 * limit), [3] the clock in ms ('' = the server's `TIME`), [4] the window's
 * time to live in ms, [5] the requests period in ms, [6] the tokens period in
 * ms (0 or '' = a minute). Adjustments are triples `at, requests, tokens`
 * (`at`: the reservation's moment, '' = now).
 */

import type { StoreKeyRef, StoreLimits } from './types';
import { keyField } from './fields';
import { COUNT_LAG_MS, EPSILON, SLOTS_PER_PERIOD } from './shared-window';

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

/** An adjustment of the reservation made at `at` (`undefined`: now) on a key's windows. */
export interface Adjustment {
  at: number | undefined;
  requests: number;
  tokens: number;
}

/** Adjustments as the scripts' ARGV triples. */
export function adjustmentArgs(adjustments: readonly Adjustment[]): (string | number)[] {
  return adjustments.flatMap((a) => [a.at ?? '', a.requests, a.tokens]);
}

interface Held {
  key: StoreKeyRef;
  limits: StoreLimits;
  /** Per reservation moment ('' = now): what to add. */
  byAt: Map<number | '', { requests: number; tokens: number }>;
}

/**
 * Adjustments (refunds, usage reconciliations) held until their key's next
 * reservation, which carries them in the same script call: one round trip
 * per attempt. What no reservation carries within {@link DEFER_FLUSH_MS} is
 * written by `write` (one adjust per key). Adjustments of one reservation add up.
 */
export class DeferredAdjustments {
  readonly #held = new Map<string, Held>();
  readonly #write: (key: StoreKeyRef, limits: StoreLimits, adjustments: Adjustment[]) => void;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(write: (key: StoreKeyRef, limits: StoreLimits, adjustments: Adjustment[]) => void) {
    this.#write = write;
  }

  /** Holds an adjustment of the key's reservation made at `at` (added to any already held for it). */
  add(key: StoreKeyRef, limits: StoreLimits, requests: number, tokens: number, at?: number): void {
    if (requests === 0 && tokens === 0) return;
    const field = keyField(key);
    let held = this.#held.get(field);
    if (held === undefined) {
      held = { key, limits, byAt: new Map() };
      this.#held.set(field, held);
    }
    held.limits = limits;
    const mark = at ?? '';
    const sum = held.byAt.get(mark);
    if (sum) {
      sum.requests += requests;
      sum.tokens += tokens;
    } else held.byAt.set(mark, { requests, tokens });
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.flush();
      }, DEFER_FLUSH_MS);
      this.#timer.unref?.();
    }
  }

  /** What is held for the key, handed to a reservation (and no longer held). */
  take(key: StoreKeyRef): Adjustment[] {
    const field = keyField(key);
    const held = this.#held.get(field);
    if (held === undefined) return [];
    this.#held.delete(field);
    return adjustmentsOf(held);
  }

  /** A reservation that carried `held` failed: held again. */
  restore(key: StoreKeyRef, limits: StoreLimits, held: readonly Adjustment[]): void {
    for (const a of held) this.add(key, limits, a.requests, a.tokens, a.at);
  }

  /** Writes everything held, one adjustment per key. */
  flush(): void {
    const all = [...this.#held.values()];
    this.#held.clear();
    for (const held of all) {
      const adjustments = adjustmentsOf(held);
      if (adjustments.length > 0) this.#write(held.key, held.limits, adjustments);
    }
  }

  /** Stops the flush timer (the store is closing). */
  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/** A key's held adjustments, those that add up to nothing left out. */
function adjustmentsOf(held: Held): Adjustment[] {
  const out: Adjustment[] = [];
  for (const [at, { requests, tokens }] of held.byAt) if (requests !== 0 || tokens !== 0) out.push({ at: at === '' ? undefined : at, requests, tokens });
  return out;
}

const PRELUDE = `
local now
if ARGV[3] ~= '' then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local function dim(prefix, cap, period)
  period = tonumber(period) or 0
  if period <= 0 then period = 60000 end
  return {p = prefix, cap = tonumber(cap) or 0, period = period, slots = {}, used = 0}
end
local dims = {dim('r', ARGV[1], ARGV[5]), dim('t', ARGV[2], ARGV[6])}
local writes = {}
local gone = {}
local raw = redis.call('HGETALL', KEYS[1])
for i = 1, #raw, 2 do
  local c = string.sub(raw[i], 1, 1)
  local d = nil
  if c == 'r' then d = dims[1] elseif c == 't' then d = dims[2] end
  local e = nil
  if d ~= nil then e = tonumber(string.sub(raw[i], 2)) end
  if e == nil or d.cap <= 0 or e + d.period <= now then
    table.insert(gone, raw[i])
  else
    local units = tonumber(raw[i + 1]) or 0
    d.slots[e] = units
    d.used = d.used + units
  end
end
local function slotEnd(at, period)
  local width = math.max(1, math.ceil(period / ${SLOTS_PER_PERIOD}))
  return (math.floor((at + ${COUNT_LAG_MS}) / width) + 1) * width
end
local function set(d, e, units)
  local field = d.p .. tostring(e)
  if units > 0 then
    d.slots[e] = units
    writes[field] = tostring(units)
  else
    d.slots[e] = nil
    writes[field] = false
  end
end
local function adjust(d, at, delta)
  if d.cap <= 0 or delta == 0 then return end
  local e = slotEnd(at, d.period)
  local live = e + d.period > now
  local held = nil
  if live then held = d.slots[e] end
  if delta < 0 then
    if held == nil then return end
    local left = math.max(0, held + delta)
    d.used = d.used - (held - left)
    set(d, e, left)
    return
  end
  if not live then e = slotEnd(now, d.period) end
  set(d, e, (d.slots[e] or 0) + delta)
  d.used = d.used + delta
end
local function adjustAll(first)
  for i = first, #ARGV - 2, 3 do
    local at = tonumber(ARGV[i]) or now
    adjust(dims[1], at, tonumber(ARGV[i + 1]) or 0)
    adjust(dims[2], at, tonumber(ARGV[i + 2]) or 0)
  end
end
local function save()
  local fields = {}
  for field, value in pairs(writes) do
    if value then
      table.insert(fields, field)
      table.insert(fields, value)
    else
      table.insert(gone, field)
    end
  end
  if #gone > 0 then redis.call('HDEL', KEYS[1], unpack(gone)) end
  if #fields > 0 then
    redis.call('HSET', KEYS[1], unpack(fields))
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
  end
end
`;

/**
 * Reserve: ARGV[7] tokens; ARGV[8..] adjustments held back since the last
 * call (refunds, usage reconciliations: triples, folded into this round
 * trip), applied first. Returns `{ ok (1|0), waitMs (-1 = never), requests
 * level, tokens level, now, requests free in ms, tokens free in ms }` (levels,
 * `now` and frees as strings, '' when the dimension has no limit or the
 * window holds nothing).
 */
export const RESERVE = `${PRELUDE}
local need = tonumber(ARGV[7]) or 0
if need < 0 then need = 0 end
adjustAll(8)
local function wait(d, amount)
  if d.cap <= 0 or amount <= 0 then return 0 end
  if amount > d.cap + ${EPSILON} then return -1 end
  local excess = d.used + amount - d.cap
  if excess <= ${EPSILON} then return 0 end
  local ends = {}
  for e in pairs(d.slots) do table.insert(ends, e) end
  table.sort(ends)
  for _, e in ipairs(ends) do
    excess = excess - d.slots[e]
    if excess <= ${EPSILON} then return math.ceil(e + d.period - now) end
  end
  return -1
end
local wr = wait(dims[1], 1)
local wt = wait(dims[2], need)
local w = math.max(wr, wt)
if wr < 0 or wt < 0 then w = -1 end
local ok = 0
if w == 0 then
  ok = 1
  for i, amount in ipairs({1, need}) do
    local d = dims[i]
    if d.cap > 0 and amount > 0 then
      local e = slotEnd(now, d.period)
      set(d, e, (d.slots[e] or 0) + amount)
      d.used = d.used + amount
    end
  end
end
save()
local function level(d)
  if d.cap <= 0 then return '' end
  return tostring(d.cap - d.used)
end
local function free(d)
  local oldest = nil
  for e in pairs(d.slots) do
    if oldest == nil or e < oldest then oldest = e end
  end
  if d.cap <= 0 or oldest == nil then return '' end
  return tostring(math.ceil(oldest + d.period - now))
end
return {ok, w, level(dims[1]), level(dims[2]), string.format('%.3f', now), free(dims[1]), free(dims[2])}
`;

/** Adjust: ARGV[7..] adjustments (triples; negative gives back). Returns nothing. */
export const ADJUST = `${PRELUDE}
adjustAll(7)
save()
return 0
`;
