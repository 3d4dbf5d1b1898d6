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

/**
 * The hash of a key's window: per dimension (`r` requests, `t` tokens) its
 * slots `r:<end>` (units counted in the slot ending then) and a summary `r`:
 * "units in the window, oldest slot holding any, newest, slot width" — so a
 * call reads the summary and the slots that leave, never the whole window. A hash in another shape (a width
 * changed with the period, an older keyplex's bucket) is rebuilt from
 * HGETALL once, slots moved to the end of the new slot that holds them.
 *
 * The prelude's functions (Lua comments are left out: the script is shipped twice):
 * - `scan(d, from, visit)`: calls `visit(end, units)` on the slots holding
 *   units from `from` to the newest, oldest first, until it returns true, and
 *   returns that end; the newest slot's units are the summary's (`d.nu`,
 *   written by `save`), its field may be behind until then.
 * - `advance(d, from[, visit])`: the oldest slot holding units from `from` on,
 *   else the window is empty (and the newest slot's field, which may still
 *   hold what the summary took back, is deleted).
 * - `add(d, e, units)`: units to slot `e`; negative takes them back, never
 *   below 0; a give-back that empties the oldest slot moves the oldest on.
 * - `adjust(d, at, delta)`: the reservation made at `at` changes by `delta`:
 *   a give-back from its slot, a charge to it (or to now's once it left).
 * - Slots a period past their end leave at the start of every call; `wait`
 *   gives whole ms until an amount fits as the oldest slots leave (-1: above
 *   the limit; float noise in the sum: by the newest slot's end all has left).
 */
const PRELUDE = `
local now
if ARGV[3] ~= '' then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local key = KEYS[1]
local function dim(p, cap, period)
  period = tonumber(period) or 0
  if period <= 0 then period = 60000 end
  return {p = p, cap = tonumber(cap) or 0, period = period, w = math.max(1, math.ceil(period / ${SLOTS_PER_PERIOD})), sum = 0, nu = 0}
end
local dims = {dim('r', ARGV[1], ARGV[5]), dim('t', ARGV[2], ARGV[6])}
local function field(d, e) return d.p .. ':' .. string.format('%.0f', e) end
local function slotEnd(d, at) return (math.floor((at + ${COUNT_LAG_MS}) / d.w) + 1) * d.w end
local function scan(d, from, visit)
  local e, batch = from, 2
  while d.n ~= nil and e <= d.n do
    local ends, names = {}, {}
    batch = math.min(2 * batch, 32)
    while e <= d.n and #ends < batch do
      table.insert(ends, e)
      table.insert(names, field(d, e))
      e = e + d.w
    end
    local units = redis.call('HMGET', key, unpack(names))
    for i, u in ipairs(ends) do
      local held = tonumber(units[i])
      if u == d.n then held = d.nu end
      if held ~= nil and held > 0 and visit(u, held) then return u end
    end
  end
  return nil
end
local function advance(d, from, visit)
  d.o = scan(d, from, visit or function() return true end)
  if d.o == nil then
    if d.n ~= nil then redis.call('HDEL', key, field(d, d.n)) end
    d.n, d.sum, d.nu = nil, 0, 0
  end
end
local function rebuild()
  local raw = redis.call('HGETALL', key)
  local slots = {{}, {}}
  for _, d in ipairs(dims) do d.sum = 0; d.o = nil; d.n = nil; d.nu = 0 end
  for i = 1, #raw, 2 do
    local name, units = raw[i], tonumber(raw[i + 1]) or 0
    local which = ({['r:'] = 1, ['t:'] = 2})[string.sub(name, 1, 2)]
    local e = tonumber(string.sub(name, 3))
    redis.call('HDEL', key, name)
    local d = dims[which or 0]
    if d ~= nil and e ~= nil and d.cap > 0 and e + d.period > now and units > 0 then
      e = math.ceil(e / d.w) * d.w
      slots[which][e] = (slots[which][e] or 0) + units
      d.sum = d.sum + units
      if d.o == nil or e < d.o then d.o = e end
      if d.n == nil or e > d.n then d.n = e end
    end
  end
  for i, d in ipairs(dims) do
    for e, units in pairs(slots[i]) do redis.call('HSET', key, field(d, e), tostring(units)) end
    if d.n ~= nil then d.nu = slots[i][d.n] end
  end
end
local head = redis.call('HMGET', key, 'r', 't', 'at')
local regular = head[3] == false
for i, d in ipairs(dims) do
  d.had = head[i] ~= false
  if d.had then
    local sum, o, n, w, nu = string.match(head[i], '^(%S+) (%S+) (%S+) (%S+) (%S+)$')
    d.sum, d.o, d.n, d.nu = tonumber(sum) or 0, tonumber(o), tonumber(n), tonumber(nu) or 0
    if d.o == nil or d.n == nil or d.cap <= 0 or tonumber(w) ~= d.w or (d.n - d.o) / d.w > ${4 * SLOTS_PER_PERIOD + 8} then regular = false end
  end
end
if not regular then rebuild() end
for _, d in ipairs(dims) do
  if d.o ~= nil and d.o + d.period <= now then
    local gone = {}
    advance(d, d.o, function(e, units)
      if e + d.period > now then return true end
      d.sum = d.sum - units
      table.insert(gone, field(d, e))
      return false
    end)
    if #gone > 0 then redis.call('HDEL', key, unpack(gone)) end
  end
end
local function persist(d)
  if d.nu > 0 then redis.call('HSET', key, field(d, d.n), tostring(d.nu)) else redis.call('HDEL', key, field(d, d.n)) end
end
local function add(d, e, units)
  local change = units
  if d.o == nil then
    if units <= 0 then return end
    d.o, d.n, d.nu = e, e, units
  elseif e == d.n then
    change = math.max(units, -d.nu)
    d.nu = d.nu + change
  elseif e > d.n then
    if units <= 0 then return end
    persist(d)
    d.n, d.nu = e, units
  else
    local left = tonumber(redis.call('HINCRBYFLOAT', key, field(d, e), units))
    if left <= 0 then
      redis.call('HDEL', key, field(d, e))
      change = units - left
    elseif e < d.o then
      d.o = e
    end
  end
  d.sum = d.sum + change
  if change < 0 and e == d.o then advance(d, d.o) end
end
local function adjust(d, at, delta)
  if d.cap <= 0 or delta == 0 then return end
  local e = slotEnd(d, at)
  local live = e + d.period > now
  if delta > 0 then
    if not live then e = slotEnd(d, now) end
    add(d, e, delta)
  elseif live and d.o ~= nil and e >= d.o and e <= d.n then
    add(d, e, delta)
  end
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
  for _, d in ipairs(dims) do
    if d.o ~= nil then
      table.insert(fields, d.p)
      table.insert(fields, string.format('%s %.0f %.0f %d %s', tostring(d.sum), d.o, d.n, d.w, tostring(d.nu)))
      if d.nu > 0 then
        table.insert(fields, field(d, d.n))
        table.insert(fields, tostring(d.nu))
      else
        persist(d)
      end
    elseif d.had then
      redis.call('HDEL', key, d.p)
    end
  end
  if #fields > 0 then
    redis.call('HSET', key, unpack(fields))
    redis.call('PEXPIRE', key, ARGV[4])
  end
end
`;

/**
 * The reservation's first steps. When ARGV[9] gives the epoch the store knows
 * and KEYS[3] (the epoch marker, redis/epoch.ts) holds another or none, Redis
 * lost the shared state since: `{ 0, -3 }`, nothing touched. When ARGV[8]
 * names the attempt's key (its field in KEYS[2], the key statuses hash): a
 * key held disabled there — another replica found it revoked, this one has
 * not heard yet — is refused at once, windows untouched: `{ 0, -2, '', '', reason }`.
 * A field after a space (never in a field: fields are URI-encoded) says the
 * store knows a key disabled: a statuses hash that is gone (evicted, the
 * marker kept) is a loss too, `{ 0, -3 }`.
 */
const REFUSE_DISABLED = `
if ARGV[9] ~= '' and KEYS[3] ~= nil and redis.call('GET', KEYS[3]) ~= ARGV[9] then return {0, -3} end
if ARGV[8] ~= '' and KEYS[2] ~= nil then
  local owner = ARGV[8]
  if string.sub(owner, 1, 1) == ' ' then
    owner = string.sub(owner, 2)
    if redis.call('EXISTS', KEYS[2]) == 0 then return {0, -3} end
  end
  local status = redis.call('HGET', KEYS[2], owner)
  local reason = status and string.match(status, '"disabled":"([^"]+)"')
  if reason then return {0, -2, '', '', reason} end
end
`;

/**
 * Reserve: ARGV[7] tokens ('' = adjust only); ARGV[8] the attempt's key
 * field for {@link REFUSE_DISABLED} ('' = no check); ARGV[9] the epoch
 * ('' = no check); ARGV[10..] adjustments
 * held back since the last call (refunds, usage reconciliations: triples,
 * folded into this round trip), applied first. Returns `{ ok (1|0), waitMs
 * (-1 = never, -2 = the key is disabled, -3 = Redis lost the shared state),
 * requests level, tokens level, now,
 * requests free in ms, tokens free in ms }` (levels, `now` and frees as
 * strings, '' when the dimension has no limit or the window holds nothing).
 */
export const RESERVE = `${REFUSE_DISABLED}${PRELUDE}
adjustAll(10)
if ARGV[7] == '' then
  save()
  return 0
end
local need = tonumber(ARGV[7]) or 0
if need < 0 then need = 0 end
local function wait(d, amount)
  if d.cap <= 0 or amount <= 0 then return 0 end
  if amount > d.cap + ${EPSILON} then return -1 end
  local excess = d.sum + amount - d.cap
  if excess <= ${EPSILON} or d.o == nil then return 0 end
  local freed = scan(d, d.o, function(_, units)
    excess = excess - units
    return excess <= ${EPSILON}
  end)
  return math.ceil((freed or d.n) + d.period - now)
end
local wr = wait(dims[1], 1)
local wt = wait(dims[2], need)
local w = math.max(wr, wt)
if wr < 0 or wt < 0 then w = -1 end
local ok = 0
if w == 0 then
  ok = 1
  if dims[1].cap > 0 then add(dims[1], slotEnd(dims[1], now), 1) end
  if dims[2].cap > 0 and need > 0 then add(dims[2], slotEnd(dims[2], now), need) end
end
save()
local function level(d)
  if d.cap <= 0 then return '' end
  return tostring(d.cap - d.sum)
end
local function free(d)
  if d.cap <= 0 or d.o == nil then return '' end
  return tostring(math.ceil(d.o + d.period - now))
end
return {ok, w, level(dims[1]), level(dims[2]), string.format('%.3f', now), free(dims[1]), free(dims[2])}
`;

/** Adjust: the same script with ARGV[7] and ARGV[8] '' (no reservation, no status check): only the adjustments (ARGV[10..]). Returns 0, or `{ 0, -3 }` as a reservation. */
export const ADJUST = RESERVE;

/**
 * Raise: a window that Redis lost (redis/epoch.ts) is raised back to what a
 * replica's last reservation on it left taken — ARGV[8] requests and ARGV[9]
 * tokens — counted from that reservation's moment ARGV[7] (a slot of it, so
 * they leave no sooner than they would have). A window that holds as much
 * already is left as it is: replicas that knew the same take are not added up.
 */
export const RAISE = `${PRELUDE}
local at = tonumber(ARGV[7]) or now
for i, d in ipairs(dims) do
  local want = tonumber(ARGV[7 + i]) or 0
  if d.cap > 0 and want > d.sum + ${EPSILON} then adjust(d, at, want - d.sum) end
end
save()
return 1
`;
