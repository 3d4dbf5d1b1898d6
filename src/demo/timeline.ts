/**
 * What the HTML report draws of a keyplex run, recorded from keyplex's public
 * events only: each attempt's key and outcome, cooldowns, disables and
 * circuit changes, and the cost of each answered request by model — every
 * time in ms since the recording started.
 */
import type { CircuitEvent, KeyManager, KeyplexEventName, KeyplexListener } from '../index';

/** One attempt that ended, on one key. */
export interface KeyAttempt {
  /** ms since the recording started, when the attempt ended. */
  t: number;
  ok: boolean;
}

/** A cooldown, a disable or a circuit change on one key (or, for deployment circuits, on a provider). */
export interface KeyMark {
  t: number;
  kind: 'cooldown' | 'disabled' | 'recovered' | 'circuit-open' | 'circuit-closed';
  provider: string;
  /** Undefined for a deployment circuit: it concerns every key of the provider. */
  keyId: string | undefined;
  /** How long it lasts, when the event says (cooldowns, circuit openings). */
  ms?: number | undefined;
  /** Why: a disable's reason, a circuit's reason, the deployment's upstream model. */
  detail?: string | undefined;
}

/** What one public model answered in the run. */
export interface ModelCost {
  model: string;
  requests: number;
  tokens: number;
  costUsd: number;
}

/** A keyplex run as the report draws it. */
export interface Timeline {
  /** ms from the start of the recording to its end. */
  durationMs: number;
  /** Every key, in the order of the manager's stats: `provider/keyId`. */
  keys: { provider: string; keyId: string }[];
  /** Ended attempts per key (`provider/keyId` → attempts). */
  attempts: Record<string, KeyAttempt[]>;
  marks: KeyMark[];
  /** Spend by public model, from the `success` events. */
  costs: ModelCost[];
}

/** A recorder attached to a manager: `finish()` stops it and returns the timeline. */
export interface TimelineRecorder {
  finish(): Timeline;
}

export const keyName = (provider: string, keyId: string): string => `${provider}/${keyId}`;

/** Starts recording `manager`'s events now (time 0). */
export function recordTimeline(manager: KeyManager): TimelineRecorder {
  const started = performance.now();
  const now = () => Math.round((performance.now() - started) * 10) / 10;
  const attempts: Record<string, KeyAttempt[]> = {};
  const marks: KeyMark[] = [];
  const costs = new Map<string, ModelCost>();
  // The key of each request's attempt in flight, to charge the final failure to.
  const current = new Map<string, string>();
  const ended = (key: string | undefined, ok: boolean) => {
    if (key !== undefined) (attempts[key] ??= []).push({ t: now(), ok });
  };
  const mark = (m: Omit<KeyMark, 't'>) => marks.push({ t: now(), ...m });
  const subscriptions: (() => void)[] = [];
  const on = <E extends KeyplexEventName>(event: E, listener: KeyplexListener<E>) => {
    manager.on(event, listener);
    subscriptions.push(() => manager.off(event, listener));
  };
  const circuit = (kind: KeyMark['kind']) => (e: CircuitEvent) =>
    mark({ kind, provider: e.provider, keyId: e.scope === 'key' ? e.keyId : undefined, ms: e.openMs, detail: e.scope === 'key' ? e.reason : `${e.upstreamModel ?? ''} ${e.reason}`.trim() });

  on('attempt', (e) => current.set(e.requestId, keyName(e.provider, e.keyId)));
  on('retry', (e) => {
    ended(keyName(e.provider, e.keyId), false);
    current.delete(e.requestId);
  });
  on('failure', (e) => {
    ended(current.get(e.requestId), false);
    current.delete(e.requestId);
  });
  on('success', (e) => {
    ended(keyName(e.provider, e.keyId), true);
    current.delete(e.requestId);
    const model = e.model ?? '?';
    const cost = costs.get(model) ?? { model, requests: 0, tokens: 0, costUsd: 0 };
    costs.set(model, cost);
    cost.requests++;
    cost.tokens += e.usage?.totalTokens ?? 0;
    cost.costUsd += e.costUsd ?? 0;
  });
  on('key:cooldown', (e) => mark({ kind: 'cooldown', provider: e.provider, keyId: e.keyId, ms: e.retryAfterMs }));
  on('key:disabled', (e) => mark({ kind: 'disabled', provider: e.provider, keyId: e.keyId, detail: e.reason }));
  on('key:recovered', (e) => mark({ kind: 'recovered', provider: e.provider, keyId: e.keyId, detail: e.reason }));
  on('circuit:open', circuit('circuit-open'));
  on('circuit:close', circuit('circuit-closed'));

  return {
    finish() {
      for (const unsubscribe of subscriptions) unsubscribe();
      const keys = Object.values(manager.stats().providers).flatMap((p) => p.keys.map((k) => ({ provider: p.id, keyId: k.id })));
      return { durationMs: now(), keys, attempts, marks, costs: [...costs.values()] };
    },
  };
}
