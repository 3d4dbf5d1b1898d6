/**
 * How replicas tell that Redis lost the shared state while they stayed
 * connected: a `FLUSHALL` or `FLUSHDB`, a failover to a replica that had not
 * caught up, a restart quicker than the reconnect, a `maxmemory` eviction. No
 * connection drops, so nothing else says so.
 *
 * The first write-back of a store (at its start and after every outage) sets
 * a marker key, `<prefix>epoch`, to a fresh random epoch unless it exists, and
 * learns the epoch it holds. The calls that write shared state on the request
 * path — the reservation and spend scripts — check in the same script (one
 * `GET`, no round trip of its own) that the marker still holds that epoch,
 * and write nothing when it does not; the store then writes back what it
 * knows (spend merged, statuses restored: known.ts) and its managers reload.
 * A store that finds the marker missing sets a new epoch and announces it on
 * the channel, so that replicas which send nothing hear of it and write back
 * too. Spend whose bucket comes back lower than a total seen before it was
 * sent (an evicted hash, the marker still there) counts as a loss as well:
 * that store renews the epoch, which makes the others write back in turn.
 * Each store writes back once per epoch it finds.
 */

/** The marker's key. */
export function epochKey(prefix: string): string {
  return `${prefix}epoch`;
}

/**
 * The head of the notice a store publishes when it set a new epoch (the
 * marker was missing, or it renewed it after an eviction): `kind: 'lost'` and
 * the new epoch, which the script appends. Never delivered to managers: a
 * store that hears an epoch other than its own writes back what it knows.
 */
export function lostMessageHead(origin: string): string {
  return `${JSON.stringify({ o: origin, c: { kind: 'lost' } }).slice(0, -2)},"epoch":"`;
}

/**
 * Sets the marker to a new epoch when it is missing, or when it still holds
 * the epoch to renew (a store found part of the state evicted), announcing
 * the new epoch; returns the epoch the marker holds.
 *
 * KEYS[1]: the marker. ARGV: [1] a new epoch, [2] channel, [3] the notice's
 * head ({@link lostMessageHead}), [4] the epoch to renew ('' = none).
 */
export const EPOCH = `
local held = redis.call('GET', KEYS[1])
if held and (ARGV[4] == '' or held ~= ARGV[4]) then return held end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3] .. ARGV[1] .. '"}}')
return ARGV[1]
`;
