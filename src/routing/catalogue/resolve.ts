/**
 * The model catalogue: what the caller asked for (a model, an alias naming a
 * group of models, or `auto`) resolved into tiers of candidate public models,
 * plus the fallbacks to try when a model's every deployment failed. Pure:
 * no I/O, no clock, same input → same output.
 */
import { DEFAULT_AUTO_STRATEGY, type AutoStrategy } from './auto';
import type { RequestFeatures } from './features';

/** The name that asks for automatic model choice (when `auto` is configured). */
export const AUTO_MODEL = 'auto';

/** Model aliases, fallbacks and automatic choice. */
export interface CatalogueOptions {
  /**
   * Named groups of models, routed together as one tier: `fast: ['deepseek-v3.2', 'gemini-2.5-flash']`.
   * Members are models, not other aliases.
   */
  aliases?: Record<string, string[]>;
  /**
   * Models (or aliases) to try, in order, after every deployment of a model
   * (or of every model of an alias) failed or is unavailable:
   * `'gpt-4.1': ['claude-sonnet-4.5', 'gemini-2.5-flash']`. A target may be an
   * alias (its models become one tier). Followed transitively, breadth first.
   */
  fallbacks?: Record<string, string[]>;
  /** Model → the model (or alias) to retry with on `context_length_exceeded`; followed transitively by {@link contextFallbackChain}. */
  contextFallbacks?: Record<string, string>;
  /** Automatic choice when the request names `auto`: `models` from cheapest to strongest (models or aliases). */
  auto?: { models: string[]; strategy?: AutoStrategy };
}


/** How a requested model resolved. */
export interface Resolution {
  /** The model name the caller sent. */
  requested: string;
  /**
   * Candidate public models, tier by tier. Tier 0 is the model itself, or
   * the alias' models (routed together, the routing strategy ordering their
   * deployments as one list). Then one tier per fallback (a fallback naming
   * an alias is one tier of its models), in order. Each model appears once;
   * tiers are never empty.
   */
  tiers: string[][];
  /** Set when `auto` chose the model. */
  auto?: { chosen: string };
}

function own<T>(record: Record<string, T> | undefined, key: string): T | undefined {
  return record !== undefined && Object.hasOwn(record, key) ? record[key] : undefined;
}

/**
 * Resolves `requested` against the catalogue into tiers of candidate models.
 *
 * - `auto`, when `catalogue.auto` is set, is first replaced by the strategy's
 *   choice among `auto.models` (default {@link ComplexityAutoStrategy}); the
 *   chosen name then resolves like any other, its own fallbacks included.
 *   Without `catalogue.auto`, `auto` is an ordinary model name (some gateways
 *   serve one).
 * - An alias becomes tier 0 of its models; anything else is tier 0 alone
 *   (unknown names pass through: whether a provider serves them is the
 *   router's business).
 * - Fallbacks are then followed breadth first: the requested name's own list
 *   (an alias may have one), then those of each tier-0 model, then those of
 *   the fallbacks themselves, each name once. A model already placed is not
 *   repeated, so cycles end.
 *
 * @throws {Error} when a custom auto strategy returns a name not in `auto.models`.
 */
export function resolveModel(requested: string, catalogue: CatalogueOptions, features: RequestFeatures): Resolution {
  let name = requested;
  let auto: { chosen: string } | undefined;
  const autoOptions = catalogue.auto;
  if (requested === AUTO_MODEL && autoOptions !== undefined) {
    const models = autoOptions.models;
    const chosen = (autoOptions.strategy ?? DEFAULT_AUTO_STRATEGY).choose(features, models);
    if (!models.includes(chosen)) {
      throw new Error(`keyplex: the auto strategy chose ${JSON.stringify(chosen)}, which is not one of auto.models (${models.map((m) => JSON.stringify(m)).join(', ')})`);
    }
    name = chosen;
    auto = { chosen };
  }

  const { aliases, fallbacks } = catalogue;
  /** Names placed or expanded: models and aliases (they never share a name in a valid catalogue). */
  const visited = new Set<string>([name]);
  /** Names whose fallbacks apply, in the order they apply. */
  const queue: string[] = [name];
  const tier0: string[] = [];
  const group = own(aliases, name);
  if (group === undefined) tier0.push(name);
  else addGroup(group, tier0, visited, queue);
  const tiers: string[][] = tier0.length > 0 ? [tier0] : [];

  if (fallbacks !== undefined) {
    for (let i = 0; i < queue.length; i++) {
      const targets = own(fallbacks, queue[i]!);
      if (targets === undefined) continue;
      for (const target of targets) {
        if (visited.has(target)) continue;
        visited.add(target);
        const members = own(aliases, target);
        if (members === undefined) {
          tiers.push([target]);
          queue.push(target);
        } else {
          queue.push(target);
          const tier: string[] = [];
          addGroup(members, tier, visited, queue);
          if (tier.length > 0) tiers.push(tier);
        }
      }
    }
  }
  return auto === undefined ? { requested, tiers } : { requested, tiers, auto };
}

/** Adds the not yet visited members of a group to `tier` and to the fallback queue. */
function addGroup(members: readonly string[], tier: string[], visited: Set<string>, queue: string[]): void {
  for (const member of members) {
    if (visited.has(member)) continue;
    visited.add(member);
    tier.push(member);
    queue.push(member);
  }
}

/**
 * The models to retry with, in order, when `model` answered
 * `context_length_exceeded`: its context fallback, that one's, and so on,
 * each once (a cycle ends the chain). Empty when none is configured. A target
 * naming an alias is returned as is; resolve it with {@link resolveModel}.
 */
export function contextFallbackChain(model: string, catalogue: CatalogueOptions): string[] {
  const chain: string[] = [];
  const map = catalogue.contextFallbacks;
  if (map === undefined) return chain;
  const seen = new Set<string>([model]);
  for (let next = own(map, model); next !== undefined && !seen.has(next); next = own(map, next)) {
    seen.add(next);
    chain.push(next);
  }
  return chain;
}
