/**
 * What failure messages say: the attempts a request made ("tried 2 keys of
 * 'one' in 2 attempts (2 × 401 unauthorized)") and the state of every key it
 * could have used ("'one': 2 keys disabled (unauthorized), 1 cooling down for
 * up to 12 s"), with what to do about it. Messages name providers, key
 * counts and reasons, never a key or its id.
 */
import type { AttemptOutcome } from '../errors';
import type { ProviderPool } from '../keys/pool';
import type { Deployment } from '../routing/deployments';
import type { Core } from './core';
import { deploymentCircuit } from './core';
import type { HeldWait } from './context';
import { endWithin } from '../wall-clock';

/** `1 key` / `3 keys`. */
function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** `850 ms`, `12 s`, `4 min`. */
export function briefDuration(ms: number): string {
  if (ms < 1_000) return `${Math.max(0, Math.ceil(ms))} ms`;
  const s = Math.ceil(ms / 1_000);
  return s < 120 ? `${s} s` : `${Math.ceil(s / 60)} min`;
}

/**
 * The attempts, per provider in the order tried:
 * `tried 2 keys of 'one' in 3 attempts (2 × 503 server_error, 1 × timeout)`.
 * Empty when there were none.
 */
export function attemptsSummary(attempts: readonly AttemptOutcome[]): string {
  const byProvider = new Map<string, { keys: Set<string>; attempts: number; outcomes: Map<string, number> }>();
  for (const attempt of attempts) {
    let entry = byProvider.get(attempt.provider);
    if (entry === undefined) byProvider.set(attempt.provider, (entry = { keys: new Set(), attempts: 0, outcomes: new Map() }));
    entry.keys.add(attempt.keyId);
    entry.attempts++;
    // An attempt cut off by the deadline or close() is recorded as aborted: it got no answer.
    const kind = attempt.kind === 'aborted' ? 'no answer' : attempt.kind;
    const outcome = attempt.status === undefined ? kind : `${attempt.status} ${kind}`;
    entry.outcomes.set(outcome, (entry.outcomes.get(outcome) ?? 0) + 1);
  }
  const parts: string[] = [];
  for (const [provider, entry] of byProvider) {
    const outcomes = [...entry.outcomes].map(([outcome, n]) => `${n} × ${outcome}`).join(', ');
    parts.push(`tried ${count(entry.keys.size, 'key')} of '${provider}' in ${count(entry.attempts, 'attempt')} (${outcomes})`);
  }
  return parts.join('; ');
}

/** What keeps a provider's keys out of use, counted by state. */
interface PoolStates {
  disabled: Map<string, number>;
  cooling: number;
  coolingMs: number;
  circuitOpen: number;
  circuitOpenMs: number;
  halfOpen: number;
  /** Not disabled, cooling nor behind a circuit: out of rate-limit room or held by a budget. */
  other: number;
}

function poolStates(pool: ProviderPool, now: number): PoolStates {
  const states: PoolStates = { disabled: new Map(), cooling: 0, coolingMs: 0, circuitOpen: 0, circuitOpenMs: 0, halfOpen: 0, other: 0 };
  for (const key of pool.keys) {
    if (key.disabled !== undefined) states.disabled.set(key.disabled, (states.disabled.get(key.disabled) ?? 0) + 1);
    else if (key.cooldownUntil > now) {
      states.cooling++;
      states.coolingMs = Math.max(states.coolingMs, key.cooldownEnd(now) - now);
    } else if (key.circuit?.state === 'open') {
      states.circuitOpen++;
      states.circuitOpenMs = Math.max(states.circuitOpenMs, (key.circuit.openEnd(now) ?? now) - now);
    } else if (key.circuit?.state === 'half-open') states.halfOpen++;
    else states.other++;
  }
  return states;
}

/** What a request that found no usable key is told, and what to do. */
export interface KeyStates {
  /** `'one': 2 keys disabled (unauthorized), 1 cooling down for up to 12 s; 'two': no keys (all removed)`. */
  text: string;
  /** Some key is disabled or a provider has none left: waiting cannot help. */
  disabledOrGone: boolean;
  /** What to do about it. */
  advice: string;
}

/** A half-open circuit whose probe this request has too little time left to carry (see acquire's `timeToProbe`). */
const PROBE_LEFT = 'its probe left to a request with time for a typical reply there';

/**
 * The state of every key of the providers of `deployments` (and of their
 * deployment circuits), for a request that found none it could use.
 * `overBudget`: a provider or key budget ruled keys out. `held`: providers
 * that asked this request to wait (retry-after on a transient failure), until when.
 */
export function keyStates(core: Core, deployments: readonly Deployment[], now: number, overBudget: boolean, held?: ReadonlyMap<ProviderPool, HeldWait>): KeyStates {
  const parts: string[] = [];
  const seen = new Set<ProviderPool>();
  let disabledOrGone = false;
  let waitable = false;
  // Keys of a provider whose deployment circuit refuses calls, or that asked for a wait, are not described as out of room.
  const blocked = new Set<ProviderPool>();
  for (const [pool, wait] of held ?? []) {
    if (wait.until <= now || !deployments.some((d) => d.pool === pool)) continue;
    parts.push(`'${pool.id}': asked for a wait of ${briefDuration(endWithin(wait.until, wait.ms, now) - now)} (retry-after on a server error)`);
    blocked.add(pool);
    waitable = true;
  }
  for (const deployment of deployments) {
    const circuit = deploymentCircuit(core, deployment);
    const model = deployment.upstreamModel ?? deployment.model;
    if (circuit?.state === 'open') {
      parts.push(`'${deployment.pool.id}' model '${model}': circuit open for ${briefDuration((circuit.openEnd(now) ?? now) - now)} more`);
      blocked.add(deployment.pool);
      waitable = true;
    } else if (circuit?.state === 'half-open') {
      parts.push(`'${deployment.pool.id}' model '${model}': circuit half-open, ${circuit.canPass() ? PROBE_LEFT : 'its probe in flight'}`);
      blocked.add(deployment.pool);
      waitable = true;
    }
  }
  for (const { pool } of deployments) {
    if (seen.has(pool)) continue;
    seen.add(pool);
    if (pool.keys.length === 0) {
      parts.push(`'${pool.id}': no keys (all removed)`);
      disabledOrGone = true;
      continue;
    }
    const states = poolStates(pool, now);
    const each: string[] = [];
    for (const [reason, n] of states.disabled) each.push(`${count(n, 'key')} disabled (${reason})`);
    if (states.disabled.size > 0) disabledOrGone = true;
    if (states.cooling > 0) each.push(`${count(states.cooling, 'key')} cooling down (rate-limited by the upstream) for up to ${briefDuration(states.coolingMs)}`);
    if (states.circuitOpen > 0) each.push(`${count(states.circuitOpen, 'key')} behind an open circuit for up to ${briefDuration(states.circuitOpenMs)}`);
    if (states.halfOpen > 0) each.push(`${count(states.halfOpen, 'key')} behind a half-open circuit, its probe in flight or ${PROBE_LEFT}`);
    if (states.other > 0 && !blocked.has(pool)) each.push(`${count(states.other, 'key')} ${overBudget ? 'over a budget or ' : ''}out of rate-limit room`);
    if (states.cooling + states.circuitOpen + states.halfOpen + states.other > 0) waitable = true;
    if (each.length > 0) parts.push(`'${pool.id}': ${each.join(', ')}`);
  }
  const advice = disabledOrGone
    ? waitable
      ? 'Check the disabled keys, then manager.enableKey() them or manager.addKey() new ones; or retry later.'
      : 'Check the keys, then manager.enableKey() them or manager.addKey() new ones.'
    : 'Retry later, or add keys (manager.addKey).';
  return { text: parts.join('; '), disabledOrGone, advice };
}
