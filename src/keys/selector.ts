/**
 * Key selection: among a provider's usable keys, which one serves the next
 * attempt. A selector is a small object; built-ins are chosen by name.
 */

/** What a selector sees of a key. Never the secret. */
export interface KeyView {
  /** The key's label (configured `id` or fingerprint). */
  readonly id: string;
  readonly provider: string;
  /** Configured weight, default 1. */
  readonly weight: number;
  /** Requests on this key that have not finished yet. */
  readonly inFlight: number;
  /** Attempts ever sent with this key. */
  readonly requests: number;
  /** Share of the key's rate-limit windows still free now, 0..1 (1 when no limit is known). */
  readonly headroom: number;
}

/** Context of one selection. */
export interface SelectContext {
  /** Provider whose keys are offered. */
  provider: string;
  /** Public model name of the request, when it has one. */
  model: string | undefined;
  /** The request's id. */
  requestId: string;
  /** 1-based attempt number. */
  attempt: number;
}

/**
 * Picks the key that serves the next attempt: one of `keys` (never empty:
 * only keys that are enabled, not cooling down, with a closed circuit are
 * offered), or `undefined` to use none of them (the request then waits or
 * fails over as when no key is usable). Called once per attempt on the hot
 * path: keep it O(keys) and free of I/O. A selector may keep state (turns,
 * counters); one instance serves every provider, so key it by `ctx.provider`.
 *
 * ```ts
 * const firstById: KeySelector = {
 *   select: (keys) => [...keys].sort((a, b) => a.id.localeCompare(b.id))[0],
 * };
 * new KeyManager({ providers, keySelection: firstById });
 * ```
 */
export interface KeySelector {
  select(keys: readonly KeyView[], ctx: SelectContext): KeyView | undefined;
}
