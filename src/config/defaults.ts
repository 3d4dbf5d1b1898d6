/**
 * The one set of defaults of every option. Modules that apply an option
 * (circuits, lanes, budgets, the auto strategy) read their default from here,
 * so a default is written once. No imports: anything may depend on this file.
 */

/** Defaults of the optional `new KeyManager()` options; `resolveOptions` fills them in. */
export const DEFAULTS = {
  keySelection: 'headroom',
  routingStrategy: 'ordered',
  retry: { maxAttempts: 4, baseDelayMs: 250, maxDelayMs: 8000, jitter: 0.25 },
  attemptTimeoutMs: 300_000,
  deadlineMs: 600_000,
  cooldownMs: 5_000,
  streamUsage: true,
  redactReplies: true,
  replyHeaders: false,
  maxDynamicModels: 2_000,
  streamIdleTimeoutMs: 60_000,
  streamDeadline: 'whole',
  defaultLane: 'standard',
  circuit: { policy: { kind: 'consecutive', threshold: 5 }, openMs: 30_000, maxOpenMs: 300_000, halfOpenProbes: 1 },
  rateLimiting: { adaptive: true, defaultOutputTokens: 256, coldStart: 'probe' },
  budget: { mode: 'calendar', onExceeded: 'reject' },
  autoThresholds: { shortBelow: 500, longAbove: 4000 },
  affinity: { maxIds: 10_000, ttlMs: 30 * 24 * 3_600_000 },
} as const;

/**
 * The lanes every manager has unless its options change them. `critical` is
 * for interactive work that must not wait behind anything, `standard` is the
 * default lane, `batch` takes floods of background work. A lane the options
 * add takes what it leaves out from `standard`.
 */
export const DEFAULT_LANES = Object.freeze({
  critical: Object.freeze({ concurrency: 128, maxQueue: 1_000, queueTimeoutMs: 10_000, priority: 0 }),
  standard: Object.freeze({ concurrency: 256, maxQueue: 10_000, queueTimeoutMs: 60_000, priority: 1 }),
  batch: Object.freeze({ concurrency: 16, maxQueue: 100_000, queueTimeoutMs: 600_000, priority: 2 }),
});
