/** A provider's `models` (public names, upstream names, deployment options) and `prices`. */
import { ConfigError } from '../../errors';
import type { ModelPrice } from '../../usage/pricing';
import { checkFields, checkNumber, describe, describeType, isPlainObject, maybeNumber, own, prop, safeName, setOwn, USD_PER_MILLION, WEIGHT } from '../check';
import type { DeploymentOptions, ResolvedDeployment } from '../options';

const DEPLOYMENT_FIELDS: readonly (keyof DeploymentOptions)[] = ['upstream', 'contextWindow', 'price', 'weight', 'tags'];
const PRICE_FIELDS: readonly (keyof ModelPrice)[] = ['input', 'output', 'cachedInput', 'cacheWrite'];

/**
 * Public name → upstream name of a provider's `models` (`undefined`: it serves
 * any model); what else an entry says goes into `deployments`.
 */
export function resolveModels(raw: unknown, field: string, deployments: Map<string, ResolvedDeployment>): Map<string, string> | undefined {
  if (raw === undefined) return undefined;
  if (Array.isArray(raw)) return resolveModelList(raw, field);
  if (!isPlainObject(raw)) {
    throw new ConfigError(field, `expected an array of model names or an object mapping public names to upstream names; got ${describeType(raw)}`);
  }
  const names = Object.keys(raw);
  if (names.length === 0) {
    throw new ConfigError(field, 'expected at least one model; got an empty object. Leave `models` out to serve any model');
  }
  const models = new Map<string, string>();
  for (const name of names) {
    let upstream = own(raw, name);
    const entryField = prop(field, name);
    if (name === '') throw new ConfigError(entryField, 'expected a non-empty public model name; got an empty string');
    if (isPlainObject(upstream)) {
      upstream = own(upstream, 'upstream') ?? name;
      deployments.set(name, resolveDeployment(own(raw, name) as Record<string, unknown>, entryField));
    }
    if (typeof upstream !== 'string' || upstream === '') {
      throw new ConfigError(
        entryField,
        `expected the provider's non-empty model name, or an object { upstream?, contextWindow?, price?, weight?, tags? }; got ${describe(upstream)}`,
      );
    }
    models.set(name, upstream);
  }
  return models;
}

function resolveModelList(raw: unknown[], field: string): Map<string, string> {
  if (raw.length === 0) {
    throw new ConfigError(field, 'expected at least one model name; got an empty array. Leave `models` out to serve any model');
  }
  const models = new Map<string, string>();
  for (let index = 0; index < raw.length; index++) {
    const name: unknown = raw[index];
    if (typeof name !== 'string' || name === '') {
      throw new ConfigError(`${field}[${index}]`, `expected a non-empty model name; got ${describe(name)}`);
    }
    if (models.has(name)) throw new ConfigError(`${field}[${index}]`, `expected each model once; got ${safeName(name)} again`);
    models.set(name, name);
  }
  return models;
}

function resolveDeployment(options: Record<string, unknown>, field: string): ResolvedDeployment {
  checkFields(options, DEPLOYMENT_FIELDS, field, 'deployment option');
  const upstream = own(options, 'upstream');
  if (upstream !== undefined && (typeof upstream !== 'string' || upstream === '')) {
    throw new ConfigError(`${field}.upstream`, `expected the provider's non-empty model name; got ${describe(upstream)}`);
  }
  const contextWindow = maybeNumber(own(options, 'contextWindow'), `${field}.contextWindow`, { min: 1, max: 1e9, integer: true, unit: 'tokens' });
  const weight = maybeNumber(own(options, 'weight'), `${field}.weight`, WEIGHT) ?? 1;
  const rawPrice = own(options, 'price');
  const price = rawPrice === undefined ? undefined : resolvePrice(rawPrice, `${field}.price`);
  const rawTags = own(options, 'tags');
  if (rawTags !== undefined && !(Array.isArray(rawTags) && rawTags.every((t) => typeof t === 'string' && t !== ''))) {
    throw new ConfigError(`${field}.tags`, `expected an array of non-empty strings; got ${describeType(rawTags)}`);
  }
  return { contextWindow, price, weight, tags: rawTags === undefined ? [] : [...(rawTags as string[])] };
}

/** The `prices` option: model name → price, copied. */
export function resolvePrices(raw: unknown): Record<string, ModelPrice> {
  const prices: Record<string, ModelPrice> = {};
  if (raw === undefined) return prices;
  if (!isPlainObject(raw)) {
    throw new ConfigError('prices', `expected an object of model name to { input, output, cachedInput?, cacheWrite? }; got ${describeType(raw)}`);
  }
  for (const model of Object.keys(raw)) {
    const field = prop('prices', model);
    if (model === '') throw new ConfigError(field, 'expected a non-empty model name; got an empty string');
    setOwn(prices, model, resolvePrice(own(raw, model), field));
  }
  return prices;
}

function resolvePrice(entry: unknown, field: string): ModelPrice {
  if (!isPlainObject(entry)) {
    throw new ConfigError(field, `expected { input, output, cachedInput?, cacheWrite? } in USD per million tokens; got ${describeType(entry)}`);
  }
  checkFields(entry, PRICE_FIELDS, field, 'price field');
  const price: ModelPrice = {
    input: checkNumber(own(entry, 'input'), `${field}.input`, USD_PER_MILLION),
    output: checkNumber(own(entry, 'output'), `${field}.output`, USD_PER_MILLION),
  };
  const cachedInput = maybeNumber(own(entry, 'cachedInput'), `${field}.cachedInput`, USD_PER_MILLION);
  if (cachedInput !== undefined) price.cachedInput = cachedInput;
  const cacheWrite = maybeNumber(own(entry, 'cacheWrite'), `${field}.cacheWrite`, USD_PER_MILLION);
  if (cacheWrite !== undefined) price.cacheWrite = cacheWrite;
  return price;
}
