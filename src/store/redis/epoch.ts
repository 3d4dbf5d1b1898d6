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
 * A store that finds the marker missing announces the loss on the channel,
 * so that replicas which send nothing hear of it and write back too. Spend
 * whose bucket comes back lower than a total already seen (an evicted hash)
 * counts as a loss as well.
 */

/** The marker's key. */
export function epochKey(prefix: string): string {
  return `${prefix}epoch`;
}

/** What a store that found the marker missing publishes (`kind: 'lost'`, never delivered to managers). */
export function lostMessage(origin: string): string {
  return JSON.stringify({ o: origin, c: { kind: 'lost' } });
}

/**
 * Sets the marker to a new epoch when it is missing, announcing the loss,
 * and returns the epoch it holds.
 *
 * KEYS[1]: the marker. ARGV: [1] a new epoch, [2] channel, [3] the message.
 */
export const EPOCH = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return ARGV[1]
end
return redis.call('GET', KEYS[1])
`;
