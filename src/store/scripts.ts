/**
 * The Redis store's Lua scripts. Each runs atomically on the server, so a
 * check and a take on a key's windows are one step for every replica.
 *
 * A window is a hash `{ r, t, at }`: the requests and tokens levels and the
 * time they were last brought up to date. The buckets are the ones
 * `TokenBucket` implements in-process: capacity = limit per minute, continuous
 * refill at limit / 60 000 per ms, starting full, a level between −capacity
 * and capacity, waits in whole ms rounded up.
 *
 * ARGV shared by both scripts: [1] rpm, [2] tpm (0 = no limit), [3] the clock
 * in ms ('' = the server's `TIME`), [4] the window's time to live in ms.
 *
 * Like `TokenBucket` with a start lag, a take from a full window starts its
 * refill {@link START_LAG_MS} later (`at` in the future): the provider's
 * bucket starts when our first request arrives, after we took it.
 */

/** How much later a shared window starts refilling after a take from full. */
export const START_LAG_MS = 250;

const PRELUDE = `
local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
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
local function refill(level, cap)
  if cap <= 0 then return nil end
  if level == nil then return cap end
  level = level + dt * cap / 60000
  if level > cap then level = cap end
  if level < -cap then level = -cap end
  return level
end
local r = refill(tonumber(state[1]), rpm)
local t = refill(tonumber(state[2]), tpm)
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
 * Reserve: ARGV[5] tokens. Returns `{ ok (1|0), waitMs (-1 = never), requests level, tokens level }`
 * (levels as strings, '' when the dimension has no limit).
 */
export const RESERVE = `${PRELUDE}
local need = tonumber(ARGV[5])
if need < 0 then need = 0 end
local eps = 0.000001
local function wait(level, cap, amount)
  if level == nil or amount <= 0 then return 0 end
  if amount > cap + eps then return -1 end
  if level + eps >= amount then return 0 end
  local rate = cap / 60000
  return math.ceil(lag + (amount - level) / rate - eps / (2 * rate))
end
local wr = wait(r, rpm, 1)
local wt = wait(t, tpm, need)
if wr < 0 or wt < 0 then
  return {0, -1, show(r), show(t)}
end
local w = math.max(wr, wt)
if w > 0 then
  return {0, w, show(r), show(t)}
end
local started = (r ~= nil and r >= rpm) or (t ~= nil and t >= tpm and need > 0)
if r ~= nil then r = r - 1 end
if t ~= nil then t = t - need end
save(started)
return {1, 0, show(r), show(t)}
`;

/** Adjust: ARGV[5] requests, ARGV[6] tokens to take (negative gives back). Returns nothing. */
export const ADJUST = `${PRELUDE}
local dr = tonumber(ARGV[5])
local dtk = tonumber(ARGV[6])
local function take(level, cap, amount)
  if level == nil then return nil end
  level = level - amount
  if level > cap then level = cap end
  if level < -cap then level = -cap end
  return level
end
r = take(r, rpm, dr)
t = take(t, tpm, dtk)
save(false)
return 0
`;
