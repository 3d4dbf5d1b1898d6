/**
 * KeyManager: the facade users see — `wrap()` / `fetch`, events, stats, key
 * administration, close. Each request goes to the pipeline
 * (src/pipeline/pipeline.ts holds the stage order: intercept → route → admit
 * → loop { acquire → send → decide } → respond → account); the state the
 * stages share is one {@link Core} (src/pipeline/core.ts), built by
 * src/pipeline/wiring.ts.
 */
import { resolveKey, resolveOptions, type KeyInput, type KeyManagerOptions } from './config';
import { describeType, safeName } from './config/check';
import { ConfigError, ManagerClosedError } from './errors';
import type { KeyplexEventName, KeyplexListener } from './events';
import { secretOf, type Key } from './keys/key';
import type { ProviderPool } from './keys/pool';
import { keysChanged, type Core } from './pipeline/core';
import { handle } from './pipeline/pipeline';
import { loadAdded } from './pipeline/store-sync';
import { createCore } from './pipeline/wiring';
import { OTHER_MODELS } from './routing/model-names';
import { KEYPLEX_BASE_URL } from './request';
import { warnIfOldNode } from './runtime';
import type { LaneStats } from './resilience/bulkhead';
import type { DeploymentStats, KeyplexStats, ModelStats, ProviderStats } from './usage/stats';

/** What `wrap()` needs of a client: the `openai` SDK's `withOptions`. */
export interface WrappableClient<C> {
  withOptions(options: { fetch: typeof globalThis.fetch; maxRetries: number; baseURL: string }): C;
}

/** The manager's state, for {@link stateSizes}; set by the class's static block. */
let coreOf: (manager: KeyManager) => Core;

/**
 * Many keys across many OpenAI-compatible providers as one client.
 *
 * ```ts
 * const manager = new KeyManager({ providers: { openai: { baseURL: 'https://api.openai.com/v1', keys: [k1, k2] } } });
 * const client = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
 * ```
 */
export class KeyManager {
  readonly #core: Core;

  static {
    coreOf = (manager) => manager.#core;
  }

  /** @throws ConfigError naming the offending option. */
  constructor(options: KeyManagerOptions) {
    warnIfOldNode();
    this.#core = createCore(resolveOptions(options));
  }

  /**
   * The `fetch` every request goes through. `wrap()` installs it; it can also
   * be given to a client directly, or to any client that takes a `fetch` (Vercel AI SDK,
   * LangChain.js: see docs/integrations.md) (`new OpenAI({ fetch: manager.fetch, maxRetries: 0, baseURL: KEYPLEX_BASE_URL })`).
   */
  readonly fetch = (input: string | URL | Request, init?: RequestInit): Promise<Response> => handle(this.#core, input, init);

  /**
   * The same SDK client with every request routed through keyplex: its
   * `fetch` is the manager's, its own retries are off (keyplex retries, switching
   * keys between attempts), and its base URL is a placeholder that keyplex
   * replaces with the chosen provider's. An `AzureOpenAI` client is refused
   * (a `ConfigError`): give Azure as a provider with its v1 endpoint instead.
   * @throws ManagerClosedError once `close()` was called.
   */
  wrap<C extends WrappableClient<C>>(client: C): C {
    this.#open('wrap');
    // An AzureOpenAI client sends deployment paths (`/deployments/<name>/…?api-version=…`) that no provider answers through keyplex.
    if (typeof client === 'object' && client !== null && 'deploymentName' in client && 'apiVersion' in client) {
      throw new ConfigError(
        'client',
        "wrap() takes an OpenAI client, not an AzureOpenAI one (its deployment paths reach no provider through keyplex, which picks the deployment by model). Wrap `new OpenAI()`, and give Azure as a provider with its OpenAI-compatible endpoint, baseURL 'https://<resource>.openai.azure.com/openai/v1'.",
      );
    }
    if (typeof (client as { withOptions?: unknown } | null | undefined)?.withOptions !== 'function') {
      throw new ConfigError(
        'client',
        `wrap() takes an instance of the openai SDK's client, \`new OpenAI({ apiKey: 'managed-by-keyplex' })\`, and uses its withOptions(); got ${describeType(client)} without it. For a client of another library that takes a \`fetch\`, give it \`manager.fetch\` (docs/integrations.md).`,
      );
    }
    return client.withOptions({ fetch: this.fetch, maxRetries: 0, baseURL: KEYPLEX_BASE_URL });
  }

  // ---------------------------------------------------------------- events

  /** Adds a listener. A listener that throws never breaks a request. */
  on<E extends KeyplexEventName>(event: E, listener: KeyplexListener<E>): this {
    this.#core.hub.on(event, listener);
    return this;
  }

  /** Adds a listener called at most once. */
  once<E extends KeyplexEventName>(event: E, listener: KeyplexListener<E>): this {
    this.#core.hub.once(event, listener);
    return this;
  }

  /** Removes a listener added with `on` or `once`. */
  off<E extends KeyplexEventName>(event: E, listener: KeyplexListener<E>): this {
    this.#core.hub.off(event, listener);
    return this;
  }

  // ---------------------------------------------------------------- key administration

  /** @throws ManagerClosedError once `close()` was called (a drain under way included): a call that would change or use the manager does nothing then, and says so. */
  #open(call: string): void {
    if (this.#core.closed) throw new ManagerClosedError({ call });
  }

  #pool(provider: string): ProviderPool {
    const pools = this.#core.pools;
    const pool = pools.find((p) => p.id === provider);
    if (!pool) throw new ConfigError('provider', `${safeName(provider)} is not a configured provider (configured: ${pools.map((p) => p.id).join(', ')})`);
    return pool;
  }

  /** The key `keyId` names; a key given for its id is never echoed (the message names its id when it is one of the provider's). */
  #key(provider: string, keyId: string): Key {
    const pool = this.#pool(provider);
    const key = pool.find(keyId);
    if (key) return key;
    const given = pool.keys.find((k) => secretOf(k) === keyId);
    throw new ConfigError('keyId', given ? `provider '${provider}' has no key of that id: it is one of its keys itself; pass its id, '${given.id}'` : `provider '${provider}' has no key ${safeName(keyId)}`);
  }

  /**
   * Adds a key to a provider while requests run; it is used from the next
   * selection on. With a shared store it takes on what the store holds of
   * its id (disabled or cooling elsewhere, its circuit open). Returns its id.
   * @throws ConfigError for a malformed key, a duplicate id, or a key already configured; ManagerClosedError once `close()` was called.
   */
  addKey(provider: string, key: KeyInput): string {
    this.#open('addKey');
    const core = this.#core;
    const pool = this.#pool(provider);
    const resolved = resolveKey(provider, key, 'key');
    if (pool.find(resolved.id)) throw new ConfigError('key.id', `provider '${provider}' already has a key with id '${resolved.id}'`);
    for (const other of core.pools) {
      if (other.keys.some((k) => k.holds(resolved.key))) {
        throw new ConfigError('key', `this key is already configured for provider '${other.id}'`);
      }
    }
    const added = core.makeKey(provider, resolved);
    pool.add(added);
    if (core.hub.wants('key:added')) core.hub.emit('key:added', { provider, keyId: resolved.id });
    loadAdded(core, added);
    keysChanged(core);
    return resolved.id;
  }

  /** Removes a key: attempts already sent with it finish; no new one starts. Emits `key:removed`. @throws ManagerClosedError once `close()` was called. */
  removeKey(provider: string, keyId: string): void {
    this.#open('removeKey');
    this.#pool(provider).remove(this.#key(provider, keyId));
  }

  /** Takes a key out of use until `enableKey`. Emits `key:disabled` with reason `manual`. @throws ManagerClosedError once `close()` was called. */
  disableKey(provider: string, keyId: string): void {
    this.#open('disableKey');
    this.#key(provider, keyId).disable('manual');
  }

  /**
   * Puts a disabled, cooling or circuit-broken key back in use: forgets what
   * its rate limiters learnt (limits and periods from headers, AIMD
   * estimates, rests; configured limits stay) and closes its circuit. Emits
   * `key:recovered` with reason `manual` (and `circuit:close`, reason
   * `manual`, when its circuit was not closed).
   * @throws ManagerClosedError once `close()` was called.
   */
  enableKey(provider: string, keyId: string): void {
    this.#open('enableKey');
    const key = this.#key(provider, keyId);
    key.forgetLimits();
    key.enable(Date.now());
    key.circuit?.forceClose();
  }

  // ---------------------------------------------------------------- stats and lifecycle

  /**
   * A snapshot of counters per key, provider, deployment, model and in total,
   * with latency and time-to-first-token percentiles (p50, p95, p99). Keys
   * appear by id only. With `{ reset: true }` every counter and histogram
   * starts again from zero after the snapshot is taken (interval reporting);
   * what is in flight, key states and circuits are not reset.
   *
   * The per-key detail costs time in proportion to the keys (about 33 ms for
   * 10,000 keys): with `{ keys: false }` every provider's `keys` is an empty
   * array and the snapshot takes well under a millisecond at any key count,
   * for frequent polling of large pools.
   */
  stats(options: { reset?: boolean; keys?: boolean } = {}): KeyplexStats {
    const core = this.#core;
    const now = Date.now();
    const providers: Record<string, ProviderStats> = {};
    const deployments: DeploymentStats[] = [];
    for (const pool of core.pools) {
      providers[pool.id] = { id: pool.id, ...pool.counters.snapshot(), ...pool.counters.timings(), keys: options.keys === false ? [] : pool.keys.map((key) => key.stats(now)) };
      for (const deployment of pool.deployments.values()) {
        if (deployment.upstreamModel === undefined) continue;
        deployments.push({
          provider: pool.id,
          model: deployment.model,
          upstreamModel: deployment.upstreamModel,
          circuit: pool.circuits.get(deployment.upstreamModel)?.state,
          inFlight: deployment.inFlight,
          ...deployment.stats.snapshot(),
          ...deployment.stats.timings(),
        });
      }
    }
    const models: Record<string, ModelStats> = {};
    for (const [model, stats] of core.models) models[model] = { model, ...stats.snapshot(), ...stats.timings() };
    const snapshot: KeyplexStats = {
      totals: { ...core.totals.snapshot(), ...core.totals.timings(), inFlight: core.inFlight },
      providers,
      deployments,
      models,
      lanes: core.bulkhead.stats(),
      budgets: [...(core.budgets?.stats() ?? []), ...(core.keyBudgets?.stats() ?? [])],
    };
    if (core.cache) snapshot.cache = core.cache.stats();
    if (options.reset) this.#resetStats();
    return snapshot;
  }

  #resetStats(): void {
    const core = this.#core;
    core.totals.reset();
    // Names no configuration knows give their places (and state) up; known ones start from zero.
    core.modelNames.releaseIdle(core);
    core.cache?.reset();
    core.bulkhead.resetCounts();
    for (const stats of core.models.values()) stats.reset();
    core.models.delete(OTHER_MODELS);
    for (const pool of core.pools) {
      pool.counters.reset();
      for (const key of pool.keys) key.counters.reset();
      for (const deployment of pool.deployments.values()) deployment.stats.reset();
    }
  }

  /** Running and queued requests per bulkhead lane, with the lanes' capacities. */
  get lanes(): Record<string, LaneStats> {
    return this.#core.bulkhead.stats();
  }

  /** Resolves when no request is running or queued in any lane. */
  onIdle(): Promise<void> {
    return this.#core.bulkhead.onIdle();
  }

  /**
   * Stops the manager: new requests are refused with a `manager_closed` error
   * and timers are released. By default queued and in-flight requests end with
   * that error too; with `{ drain: true }` they finish first (each within its
   * deadline), unless a plain `close()` follows and ends them. Resolves when
   * no request is left. Afterwards `addKey`, `removeKey`, `disableKey`,
   * `enableKey` and `wrap` throw `ManagerClosedError`; `close()` again,
   * `stats()`, `toJSON()`, `lanes`, `onIdle()` and `on`/`off` stay harmless.
   */
  async close(options: { drain?: boolean } = {}): Promise<void> {
    const core = this.#core;
    const first = !core.closed;
    core.closed = true;
    if (options.drain) {
      if (first) await core.bulkhead.close('drain');
    } else if (!core.closedByAbort) {
      // Also during a drain: a shutdown whose grace period ran out ends what is left.
      core.closedByAbort = true;
      core.active.abortAll(new ManagerClosedError({ inFlight: true }));
      void core.bulkhead.close('reject', new ManagerClosedError({ inFlight: true }));
    }
    if (first || !options.drain) {
      for (const pool of core.pools) for (const key of pool.keys) key.dispose();
      for (const circuit of core.deploymentCircuits.keys()) circuit.dispose();
    }
    if (core.inFlight > 0) await new Promise<void>((resolve) => core.idleWaiters.push(resolve));
    await core.session.close();
  }

  /** Safe to log: providers and key ids, never keys. */
  toJSON(): { providers: { id: string; baseURL: string; keys: string[] }[]; closed: boolean } {
    return { providers: this.#core.pools.map((p) => p.toJSON()), closed: this.#core.closed };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `KeyManager ${JSON.stringify(this.toJSON())}`;
  }
}

/**
 * @internal Sizes of a manager's per-model state (for tests: memory bounded
 * whatever the number of distinct model names). Not exported by the package.
 */
export function stateSizes(manager: KeyManager): { dynamicModels: number; modelStats: number; deployments: number; deploymentCircuits: number } {
  const core = coreOf(manager);
  let deployments = 0;
  for (const pool of core.pools) if (pool.models === undefined) deployments += pool.deployments.size;
  return { dynamicModels: core.modelNames.size, modelStats: core.models.size, deployments, deploymentCircuits: core.deploymentCircuits.size };
}
