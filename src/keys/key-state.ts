/**
 * Runtime state of keys and providers. Secrets are held in a module-private
 * WeakMap, so no keyplex object ever carries one as a property: not in
 * `JSON.stringify`, not in `util.inspect`, not in a debugger's object view.
 */
import type { ResolvedDeployment, ResolvedKey, ResolvedProvider } from '../config';
import type { KeyDisabledReason } from '../events';
import type { Circuit, CircuitState } from '../resilience/breaker/index';
import type { KeyLimiter, KeyLimits } from '../resilience/rate-limit/index';
import type { Deployment } from '../routing/deployments';
import type { StoreKeyRef } from '../store/types';
import { TimedCounterSet, type KeyStats } from '../usage/stats';
import type { KeyView } from './selector';

const secrets = new WeakMap<KeyState, string>();

/** The secret of a key; only the request sender calls this. */
export function secretOf(key: KeyState): string {
  const secret = secrets.get(key);
  if (secret === undefined) throw new Error('keyplex: internal error: key without secret');
  return secret;
}

/** One key of one provider. */
export class KeyState implements KeyView {
  readonly id: string;
  readonly provider: string;
  /** How a state store names it. */
  readonly ref: StoreKeyRef;
  readonly weight: number;
  inFlight = 0;
  /** Why the key is out of use for good (until enabled again). */
  disabled: KeyDisabledReason | undefined;
  /** `Date.now()` until which the key cools down after a 429. */
  cooldownUntil = 0;
  cooldownTimer: ReturnType<typeof setTimeout> | undefined;
  /** Set once the key is removed; in-flight attempts finish, nothing new starts. */
  removed = false;
  /** Its attempts; histograms packed and made at the first sample, so unused keys cost none. */
  readonly counters = new TimedCounterSet(true);
  /** Its rate-limit windows. */
  readonly limiter: KeyLimiter;
  /** Its circuit breaker, unless key circuits are off. */
  readonly circuit: Circuit | undefined;

  /** Attempts ever sent with this key. */
  get requests(): number {
    return this.counters.requests;
  }

  /** Share of its rate-limit windows still free, 0..1. */
  get headroom(): number {
    return this.limiter.headroom();
  }

  constructor(provider: string, resolved: ResolvedKey, limiter: KeyLimiter, circuit: Circuit | undefined) {
    this.id = resolved.id;
    this.provider = provider;
    this.ref = Object.freeze({ provider, keyId: resolved.id });
    this.weight = resolved.weight;
    this.limiter = limiter;
    this.circuit = circuit;
    secrets.set(this, resolved.key);
  }

  /** Enabled, present, and not cooling down at `now`. */
  usable(now: number): boolean {
    return this.disabled === undefined && !this.removed && this.cooldownUntil <= now;
  }

  /** True when this key's secret equals `secret` (for duplicate checks). */
  holds(secret: string): boolean {
    return secrets.get(this) === secret;
  }

  stats(now: number): KeyStats {
    const cooling = this.cooldownUntil > now;
    return {
      id: this.id,
      provider: this.provider,
      weight: this.weight,
      status: this.disabled ? 'disabled' : cooling ? 'cooling' : 'active',
      disabledReason: this.disabled,
      cooldownRemainingMs: cooling ? this.cooldownUntil - now : 0,
      inFlight: this.inFlight,
      circuit: this.circuit?.state,
      limits: this.limiter.limits,
      headroom: this.limiter.headroom(),
      ...this.counters.snapshot(),
      ...this.counters.timings(),
    };
  }

  toJSON(): { id: string; provider: string } {
    return { id: this.id, provider: this.provider };
  }
}

/** A provider and its keys. */
export class ProviderPool {
  readonly id: string;
  readonly baseURL: string;
  readonly origin: string;
  readonly models: ReadonlyMap<string, string> | undefined;
  readonly headers: Readonly<Record<string, string>>;
  /** Keys in configuration order (removed keys are taken out). */
  keys: KeyState[];
  /** Its attempts, with latency and time-to-first-token histograms. */
  readonly counters = new TimedCounterSet();
  /** Where the next pick starts judging keys, in pools larger than one batch. */
  nextScan = 0;
  /** Deployment circuits by upstream model, made on first use by the manager. */
  readonly circuits = new Map<string, Circuit>();
  /** Its deployments by public model, made on first use by routing. */
  readonly deployments = new Map<string, Deployment>();
  /** What the configuration says about its deployments, by public model. */
  readonly deploymentOptions: ReadonlyMap<string, ResolvedDeployment>;

  /** @param makeKey builds the state of one of its keys (the manager wires limiter and circuit). */
  constructor(resolved: ResolvedProvider, makeKey: (provider: string, key: ResolvedKey) => KeyState) {
    this.id = resolved.id;
    this.baseURL = resolved.baseURL;
    this.origin = resolved.origin;
    this.models = resolved.models;
    this.deploymentOptions = resolved.deployments;
    // Lower-case names, so they replace the SDK's headers of the same name.
    this.headers = Object.fromEntries(Object.entries(resolved.headers).map(([name, value]) => [name.toLowerCase(), value]));
    this.keys = resolved.keys.map((k) => makeKey(resolved.id, k));
  }

  find(keyId: string): KeyState | undefined {
    return this.keys.find((k) => k.id === keyId);
  }

  toJSON(): { id: string; baseURL: string; keys: string[] } {
    return { id: this.id, baseURL: this.baseURL, keys: this.keys.map((k) => k.id) };
  }
}
