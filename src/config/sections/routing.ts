/** How a key is picked (`keySelection`) and how models are routed (`routing`). */
import { ConfigError } from '../../errors';
import { KEY_SELECTOR_NAMES, type KeySelectorName } from '../../keys/create-selector';
import type { KeySelector } from '../../keys/selector';
import { catalogueProblem, type CatalogueOptions } from '../../routing/catalogue/index';
import { ROUTING_STRATEGY_NAMES, type RoutingStrategy, type RoutingStrategyName } from '../../routing/strategy';
import { assertNoProblem, checkFields, describe, describeType, isPlainObject, optionalNumber, own, prop, quote, setOwn } from '../check';
import { DEFAULTS } from '../defaults';
import type { ResolvedOptions, ResolvedProvider } from '../options';

const ROUTING_FIELDS = ['strategy', 'perModel', 'aliases', 'fallbacks', 'contextFallbacks', 'auto'];

/** `keySelection`: a built-in's name or an object with a `select` method. */
export function resolveKeySelection(raw: unknown): KeySelectorName | KeySelector {
  if (raw === undefined) return DEFAULTS.keySelection;
  const expected = `expected one of ${KEY_SELECTOR_NAMES.map(quote).join(', ')} or an object with a select(keys, ctx) method`;
  if (typeof raw === 'string') {
    const name = KEY_SELECTOR_NAMES.find((n) => n === raw);
    if (name === undefined) throw new ConfigError('keySelection', `${expected}; got ${describe(raw)}`);
    return name;
  }
  if ((typeof raw === 'object' && raw !== null) || typeof raw === 'function') {
    if (typeof (raw as { select?: unknown }).select !== 'function') {
      throw new ConfigError('keySelection', `${expected}; got ${describeType(raw)} without a select function`);
    }
    return raw as KeySelector;
  }
  throw new ConfigError('keySelection', `${expected}; got ${describe(raw)}`);
}

function resolveStrategy(raw: unknown, field: string): RoutingStrategyName | RoutingStrategy {
  if (typeof raw === 'string' && (ROUTING_STRATEGY_NAMES as readonly string[]).includes(raw)) return raw as RoutingStrategyName;
  if (typeof raw === 'object' && raw !== null && typeof (raw as { order?: unknown }).order === 'function') return raw as RoutingStrategy;
  throw new ConfigError(field, `expected one of ${ROUTING_STRATEGY_NAMES.map(quote).join(', ')} or an object with an order(deployments, ctx) method; got ${describe(raw)}`);
}

/** `routing`: strategies, then the catalogue (aliases, fallbacks, `auto`) checked against the models providers list. */
export function resolveRouting(raw: unknown, providers: readonly ResolvedProvider[]): ResolvedOptions['routing'] {
  if (raw === undefined) return { strategy: DEFAULTS.routingStrategy, perModel: {}, catalogue: {} };
  if (!isPlainObject(raw)) throw new ConfigError('routing', `expected an object { strategy?, perModel?, aliases?, fallbacks?, contextFallbacks?, auto? }; got ${describeType(raw)}`);
  checkFields(raw, ROUTING_FIELDS, 'routing', 'routing option');
  const strategy = own(raw, 'strategy') === undefined ? DEFAULTS.routingStrategy : resolveStrategy(own(raw, 'strategy'), 'routing.strategy');
  const perModel: Record<string, RoutingStrategyName | RoutingStrategy> = {};
  const rawPerModel = own(raw, 'perModel');
  if (rawPerModel !== undefined) {
    if (!isPlainObject(rawPerModel)) throw new ConfigError('routing.perModel', `expected an object of strategies by model; got ${describeType(rawPerModel)}`);
    for (const name of Object.keys(rawPerModel)) setOwn(perModel, name, resolveStrategy(own(rawPerModel, name), prop('routing.perModel', name)));
  }
  // A model is known when a provider lists it; a provider that serves any model makes every name known.
  const known = new Set<string>();
  if (providers.every((p) => p.anyModel === false)) for (const p of providers) for (const name of p.models!.keys()) known.add(name);
  const catalogue: Record<string, unknown> = {};
  for (const name of ['aliases', 'fallbacks', 'contextFallbacks', 'auto'] as const) if (own(raw, name) !== undefined) catalogue[name] = own(raw, name);
  assertNoProblem(catalogueProblem(catalogue, known, 'routing'));
  return { strategy, perModel, catalogue: copyCatalogue(catalogue as CatalogueOptions) };
}

/** The longest `affinity.ttlMs`: a year (a timestamp compared, never a timer). */
const YEAR_MS = 365 * 24 * 3_600_000;

/**
 * `affinity` (or its older name `responseAffinity`, errors naming the one
 * given): undefined when `false` (off); the defaults when absent.
 */
export function resolveAffinity(options: Record<string, unknown>): ResolvedOptions['affinity'] {
  const older = own(options, 'responseAffinity');
  if (older !== undefined && own(options, 'affinity') !== undefined) {
    throw new ConfigError('responseAffinity', 'both `affinity` and its older name `responseAffinity` are given; keep `affinity` alone');
  }
  const name = older === undefined ? 'affinity' : 'responseAffinity';
  const raw = older ?? own(options, 'affinity');
  if (raw === false) return undefined;
  if (raw === undefined) return { ...DEFAULTS.affinity };
  if (!isPlainObject(raw)) throw new ConfigError(name, `expected an object { maxIds?, ttlMs? } or false; got ${describe(raw)}`);
  checkFields(raw, ['maxIds', 'ttlMs'], name, `${name} option`);
  return {
    maxIds: optionalNumber(own(raw, 'maxIds'), `${name}.maxIds`, DEFAULTS.affinity.maxIds, { min: 1, max: 10_000_000, integer: true, unit: 'object ids' }),
    ttlMs: optionalNumber(own(raw, 'ttlMs'), `${name}.ttlMs`, DEFAULTS.affinity.ttlMs, { min: 0, exclusiveMin: true, max: YEAR_MS, unit: 'ms' }),
  };
}

/** Copies: later changes to the caller's objects must not change routing. */
function copyCatalogue(catalogue: CatalogueOptions): CatalogueOptions {
  const copyLists = (lists: Record<string, string[]>) => Object.fromEntries(Object.entries(lists).map(([name, list]) => [name, [...list]]));
  const resolved: CatalogueOptions = {};
  if (catalogue.aliases !== undefined) resolved.aliases = copyLists(catalogue.aliases);
  if (catalogue.fallbacks !== undefined) resolved.fallbacks = copyLists(catalogue.fallbacks);
  if (catalogue.contextFallbacks !== undefined) resolved.contextFallbacks = { ...catalogue.contextFallbacks };
  if (catalogue.auto !== undefined) resolved.auto = { ...catalogue.auto, models: [...catalogue.auto.models] };
  return resolved;
}
