/** A provider and its keys. */
import type { ResolvedDeployment, ResolvedKey, ResolvedProvider } from '../config';
import type { Circuit } from '../resilience/breaker/index';
import { TimedCounterSet } from '../usage/stats';
import type { Key } from './key';

/**
 * What a pool knows of the deployments routing made on it (routing's
 * `Deployment` has this shape; the pool does not import routing, so keys and
 * routing do not import each other).
 */
export interface PoolDeployment {
  readonly model: string;
  readonly upstreamModel: string | undefined;
  readonly inFlight: number;
  readonly stats: TimedCounterSet;
}

/** A provider and its keys. Its key list changes only through `add` and `remove`. */
export class ProviderPool {
  readonly id: string;
  readonly baseURL: string;
  readonly origin: string;
  readonly models: ReadonlyMap<string, string> | undefined;
  /** Which models it serves besides those it lists (see `ResolvedProvider.anyModel`). */
  readonly anyModel: 'always' | 'unclaimed' | false;
  readonly headers: Readonly<Record<string, string>>;
  #keys: readonly Key[];
  /** Its attempts, with latency and time-to-first-token histograms. */
  readonly counters = new TimedCounterSet();
  /** Where the next pick starts judging keys, in pools larger than one batch. */
  nextScan = 0;
  /** Deployment circuits by upstream model, made on first use (src/pipeline/wiring.ts). */
  readonly circuits = new Map<string, Circuit>();
  /** Its deployments by public model, made on first use by routing. */
  readonly deployments = new Map<string, PoolDeployment>();
  /** What the configuration says about its deployments, by public model. */
  readonly deploymentOptions: ReadonlyMap<string, ResolvedDeployment>;

  /** @param makeKey builds the state of one of its keys (the manager wires limiter and circuit). */
  constructor(resolved: ResolvedProvider, makeKey: (provider: string, key: ResolvedKey) => Key) {
    this.id = resolved.id;
    this.baseURL = resolved.baseURL;
    this.origin = resolved.origin;
    this.models = resolved.models;
    this.anyModel = resolved.anyModel;
    this.deploymentOptions = resolved.deployments;
    // Lower-case names, so they replace the SDK's headers of the same name.
    this.headers = Object.fromEntries(Object.entries(resolved.headers).map(([name, value]) => [name.toLowerCase(), value]));
    this.#keys = resolved.keys.map((k) => makeKey(resolved.id, k));
  }

  /** Keys in configuration order (removed keys are taken out). A new array after each change: safe to iterate. */
  get keys(): readonly Key[] {
    return this.#keys;
  }

  find(keyId: string): Key | undefined {
    return this.#keys.find((k) => k.id === keyId);
  }

  add(key: Key): void {
    this.#keys = [...this.#keys, key];
  }

  /** Takes the key out of the pool, then tells the key (which reports `removed`). */
  remove(key: Key): void {
    this.#keys = this.#keys.filter((k) => k !== key);
    key.remove();
  }

  toJSON(): { id: string; baseURL: string; keys: string[] } {
    return { id: this.id, baseURL: this.baseURL, keys: this.#keys.map((k) => k.id) };
  }
}
