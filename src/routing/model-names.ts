/**
 * Model names not known from configuration — names a caller chooses, passed
 * to a provider that serves any model — and the state each one makes
 * (deployments with latency averages and stats, deployment circuits,
 * per-model stats). Known names (listed by a provider, given deployment
 * options, a routing strategy, or named by the catalogue) keep their state
 * for the manager's life; the others hold one of at most `maxDynamicModels`
 * places, least recently used first, so memory does not grow with the
 * number of distinct names a service passes on.
 *
 * When a new name needs a place and none is free, the least recently used
 * name that is idle gives its place up: its deployments and circuits are
 * dropped and its stats move into the `(other)` bucket of
 * `stats().models`. A name with an attempt in flight never gives its place
 * up; one whose deployment circuit is open or half-open only when every
 * other name looked at has an attempt in flight (bounded memory over a
 * circuit's memory: its next request probes the upstream afresh). So more
 * names than the bound hold a place while more are in flight at once; when
 * a deployment's last attempt in flight ends, idle names over the bound give
 * their places up at once, least recently used first. Each look for one that
 * may go sees at most {@link CANDIDATES} names; one found in flight is in use
 * and moves to the most recently used end, so names in flight do not hide
 * the idle ones behind them. A request still waiting for a lane or a key (or
 * backing off between attempts) when its name gives its place up is counted
 * in `(other)`.
 */
import type { ResolvedOptions } from '../config';
import type { ProviderPool } from '../keys/pool';
import type { Circuit } from '../resilience/breaker/index';
import { AUTO_MODEL } from './catalogue/index';

/** The `stats().models` bucket of names that gave their place up. */
export const OTHER_MODELS = '(other)';
/** How many of the least recently used names are looked at for one that may go. */
const CANDIDATES = 16;

/** Stats that can take in another's counts. */
interface Absorbing {
  absorb(other: this): void;
}

/** The manager state that holds per-model entries (the pipeline's Core has this shape). */
export interface ModelState<S extends Absorbing> {
  readonly pools: readonly ProviderPool[];
  readonly models: Map<string, S>;
  readonly deploymentCircuits: Map<Circuit, unknown>;
  /** The `(other)` bucket, made on first use. */
  otherModels(): S;
}

type Idleness = 'idle' | 'circuit' | 'busy';

export class ModelNames {
  readonly #known: ReadonlySet<string>;
  readonly #max: number;
  /** Names not known from configuration that hold a place, least recently used first. */
  readonly #held = new Map<string, true>();

  constructor(known: ReadonlySet<string>, max: number) {
    this.#known = known;
    this.#max = max;
  }

  /** How many names not known from configuration hold a place. */
  get size(): number {
    return this.#held.size;
  }

  /** Whether `name` may keep per-model state: known from configuration, or holding a place. */
  holds(name: string): boolean {
    return this.#known.has(name) || this.#held.has(name);
  }

  /** A request names `name`: a name not known from configuration takes or refreshes its place; one over the bound frees one. */
  use<S extends Absorbing>(state: ModelState<S>, name: string): void {
    if (this.#known.has(name)) return;
    const held = this.#held;
    if (held.has(name)) {
      held.delete(name);
      held.set(name, true);
      return;
    }
    held.set(name, true);
    if (held.size > this.#max) this.#freeOne(state, name);
  }

  /**
   * An attempt ended and left its deployment (of a provider that serves any
   * model) with none in flight: while more names than the bound hold a place
   * (they were in flight when others came), idle ones give theirs up. A
   * comparison when within the bound.
   */
  idled<S extends Absorbing>(state: ModelState<S>): void {
    if (this.#held.size > this.#max) this.#trim(state);
  }

  /** Every idle name gives its place up, its stats dropped (`stats({ reset: true })`). */
  releaseIdle<S extends Absorbing>(state: ModelState<S>): void {
    for (const name of [...this.#held.keys()]) if (idleness(state, name) !== 'busy') this.#release(state, name, false);
  }

  /** Names over the bound give their places up, one at a time, until none is over or none of those looked at may go. */
  #trim<S extends Absorbing>(state: ModelState<S>): void {
    let freed = true;
    while (freed && this.#held.size > this.#max) freed = this.#freeOne(state, undefined);
  }

  /**
   * Frees one place: the least recently used idle name among the
   * {@link CANDIDATES} looked at, else one of them whose circuit is not
   * closed; never `newest` (the name just placed) nor a name in flight. A
   * name in flight is in use, so it moves to the most recently used end:
   * busy names do not hide the idle ones behind them from the next look.
   * True when a place was freed.
   */
  #freeOne<S extends Absorbing>(state: ModelState<S>, newest: string | undefined): boolean {
    const held = this.#held;
    const looking = Math.min(CANDIDATES, held.size);
    let looked = 0;
    let withCircuit: string | undefined;
    // A name moved to the end is met again only past `newest` or past `looking` names: each is looked at once.
    for (const name of held.keys()) {
      if (name === newest || looked++ >= looking) break;
      const found = idleness(state, name);
      if (found === 'idle') {
        this.#release(state, name, true);
        return true;
      }
      if (found === 'circuit') withCircuit ??= name;
      else {
        held.delete(name);
        held.set(name, true);
      }
    }
    if (withCircuit === undefined) return false;
    this.#release(state, withCircuit, true);
    return true;
  }

  #release<S extends Absorbing>(state: ModelState<S>, name: string, keepCounts: boolean): void {
    this.#held.delete(name);
    const stats = state.models.get(name);
    if (stats !== undefined) {
      if (keepCounts) state.otherModels().absorb(stats);
      state.models.delete(name);
    }
    for (const pool of state.pools) {
      // Only providers that serve any model made state for a name no configuration knows.
      if (pool.models !== undefined) continue;
      pool.deployments.delete(name);
      const circuit = pool.circuits.get(name);
      if (circuit !== undefined) {
        circuit.dispose();
        pool.circuits.delete(name);
        state.deploymentCircuits.delete(circuit);
      }
    }
  }
}

/** Whether a name's state may go: `busy` with an attempt in flight, `circuit` while a deployment circuit is not closed. */
function idleness(state: ModelState<Absorbing>, name: string): Idleness {
  let found: Idleness = 'idle';
  for (const pool of state.pools) {
    if (pool.models !== undefined) continue;
    if ((pool.deployments.get(name)?.inFlight ?? 0) > 0) return 'busy';
    const circuit = pool.circuits.get(name)?.state;
    if (circuit !== undefined && circuit !== 'closed') found = 'circuit';
  }
  return found;
}

/** The model names configuration knows: listed by providers, given options or a strategy, named by the catalogue. */
export function knownModels(options: ResolvedOptions): Set<string> {
  const known = new Set<string>();
  for (const provider of options.providers) {
    for (const name of provider.models?.keys() ?? []) known.add(name);
    for (const name of provider.deployments.keys()) known.add(name);
  }
  for (const name of Object.keys(options.routing.perModel)) known.add(name);
  const { aliases, fallbacks, contextFallbacks, auto } = options.routing.catalogue;
  for (const [name, members] of Object.entries({ ...aliases, ...fallbacks })) {
    known.add(name);
    for (const member of members) known.add(member);
  }
  for (const [name, target] of Object.entries(contextFallbacks ?? {})) known.add(name).add(target);
  if (auto !== undefined) {
    known.add(AUTO_MODEL);
    for (const name of auto.models) known.add(name);
  }
  return known;
}
