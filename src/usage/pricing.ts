/**
 * The dated built-in price table and the cost of a reply.
 */
import type { Usage } from './usage';

/**
 * Prices in USD per million tokens, each from 0 to 1,000,000. `cachedInput` and
 * `cacheWrite` default to `input` when absent. The `prices` option (by public model name)
 * is merged over {@link DEFAULT_PRICES}; a deployment's own `price` wins over
 * both (e.g. a gateway's markup). A cost the reply states
 * (`Usage.statedCostUsd`) wins over a built-in price, not over a configured one.
 *
 * ```ts
 * new KeyManager({ providers, prices: { 'my-finetune': { input: 3, cachedInput: 0.75, output: 12 } } });
 * ```
 */
export interface ModelPrice {
  /** Uncached input tokens, USD per million. */
  input: number;
  /** Output tokens (reasoning included), USD per million. */
  output: number;
  /** Input tokens read from the prompt cache (cache hits), USD per million. Default: `input`. */
  cachedInput?: number;
  /**
   * Input tokens written to the prompt cache, USD per million. Default:
   * `input` (providers that do not charge writes: OpenAI, DeepSeek, Gemini's
   * implicit cache). Anthropic's are listed at its 5-minute cache rate (1.25 ×
   * input); override it for 1-hour caching (2 × input).
   */
  cacheWrite?: number;
}

/**
 * The date the built-in list prices were collected (ISO date string).
 *
 * They are the providers' public list prices as published then (for tiered
 * models, the lowest tier, e.g. Gemini 2.5 Pro prompts up to 200k tokens;
 * for Anthropic's cache writes, the 5-minute cache rate).
 * When your contract or the current list differs, override them with the
 * `prices` option.
 */
export const PRICES_AS_OF = '2025-10-15';

const p = (input: number, cachedInput: number | undefined, output: number, cacheWrite?: number): Readonly<ModelPrice> =>
  Object.freeze({ input, ...(cachedInput === undefined ? {} : { cachedInput }), output, ...(cacheWrite === undefined ? {} : { cacheWrite }) });

/**
 * Built-in list prices by lower-case model name, in USD per million tokens,
 * as of {@link PRICES_AS_OF}. Override them with the `prices` option.
 */
export const DEFAULT_PRICES: Readonly<Record<string, Readonly<ModelPrice>>> = Object.freeze({
  // OpenAI
  'gpt-5': p(1.25, 0.125, 10),
  'gpt-5-mini': p(0.25, 0.025, 2),
  'gpt-5-nano': p(0.05, 0.005, 0.4),
  'gpt-4.1': p(2, 0.5, 8),
  'gpt-4.1-mini': p(0.4, 0.1, 1.6),
  'gpt-4.1-nano': p(0.1, 0.025, 0.4),
  'gpt-4o': p(2.5, 1.25, 10),
  // The first gpt-4o snapshot kept its launch price and has no cache discount.
  'gpt-4o-2024-05-13': p(5, undefined, 15),
  'gpt-4o-mini': p(0.15, 0.075, 0.6),
  o3: p(2, 0.5, 8),
  'o3-mini': p(1.1, 0.55, 4.4),
  'o4-mini': p(1.1, 0.275, 4.4),
  'text-embedding-3-small': p(0.02, undefined, 0),
  'text-embedding-3-large': p(0.13, undefined, 0),
  'text-embedding-ada-002': p(0.1, undefined, 0),
  // Anthropic (cachedInput = cache read, cacheWrite = 5-minute cache write)
  'claude-sonnet-4.5': p(3, 0.3, 15, 3.75),
  'claude-sonnet-4': p(3, 0.3, 15, 3.75),
  'claude-haiku-4.5': p(1, 0.1, 5, 1.25),
  'claude-opus-4.1': p(15, 1.5, 75, 18.75),
  'claude-opus-4': p(15, 1.5, 75, 18.75),
  // Google
  'gemini-2.5-pro': p(1.25, 0.125, 10),
  'gemini-2.5-flash': p(0.3, 0.03, 2.5),
  'gemini-2.5-flash-lite': p(0.1, 0.01, 0.4),
  // DeepSeek (cachedInput = cache hit); both API names serve V3.2.
  'deepseek-v3.2': p(0.28, 0.028, 0.42),
  'deepseek-chat': p(0.28, 0.028, 0.42),
  'deepseek-reasoner': p(0.28, 0.028, 0.42),
});

const BUILT_IN = new Set<Readonly<ModelPrice>>(Object.values(DEFAULT_PRICES));

/**
 * Whether `price` is one of the built-in list prices ({@link DEFAULT_PRICES}),
 * not one configured (a deployment's `price`, the `prices` option): a cost
 * the reply states wins over the former only.
 */
export function isBuiltInPrice(price: Readonly<ModelPrice>): boolean {
  return BUILT_IN.has(price);
}

/** Lookups remembered before the cache is emptied, so that arbitrary model names cannot grow it without bound. */
const MAX_CACHED_LOOKUPS = 10_000;
const DATE_SUFFIX = /-(?:\d{4}-\d{2}-\d{2}|\d{8})$/;
const DASH_BETWEEN_SINGLE_DIGITS = /(?<=(?:^|\D)\d)-(?=\d(?:\D|$))/g;

/**
 * Cost of a usage in USD at `price`: uncached input at `input`, cache reads
 * at `cachedInput` and cache writes at `cacheWrite` (both default `input`),
 * output at `output`, per million tokens.
 */
export function costAt(price: Readonly<ModelPrice>, usage: Usage): number {
  const input = usage.inputTokens;
  const read = Math.min(usage.cachedInputTokens, input);
  // Older Usage objects (made before cache writes were counted) have no cacheWriteTokens.
  const write = Math.min(usage.cacheWriteTokens ?? 0, input - read);
  const uncached = input - read - write;
  return (
    (uncached * price.input + read * (price.cachedInput ?? price.input) + write * (price.cacheWrite ?? price.input) + usage.outputTokens * price.output) /
    1e6
  );
}

/** Model prices (built-in ones with overrides merged over them) and the cost of a usage. */
export class PriceTable {
  readonly #prices = new Map<string, Readonly<ModelPrice>>();
  readonly #cache = new Map<string, Readonly<ModelPrice> | undefined>();
  /** The prices given as overrides (not built in). */
  readonly #overrides = new WeakSet<Readonly<ModelPrice>>();

  /**
   * @param overrides Prices by model name, merged over {@link DEFAULT_PRICES};
   *   an override replaces that model's whole entry. Names are matched
   *   case-insensitively.
   */
  constructor(overrides?: Record<string, ModelPrice>) {
    for (const [name, price] of Object.entries(DEFAULT_PRICES)) this.#prices.set(name, price);
    if (overrides !== undefined) {
      for (const [name, price] of Object.entries(overrides)) {
        const frozen = Object.freeze({ ...price });
        this.#prices.set(name.toLowerCase(), frozen);
        this.#overrides.add(frozen);
      }
    }
  }

  /**
   * The price of a model, or undefined when unknown. Tries in turn the name
   * as given; lower-cased; without a provider prefix (`openai/gpt-4.1` →
   * `gpt-4.1`); without a date suffix (`gpt-4.1-2025-04-14`,
   * `claude-sonnet-4-5-20250929`); with dashes between single digits turned
   * into dots (`claude-sonnet-4-5` → `claude-sonnet-4.5`). Each step builds
   * on the previous one. Results are cached per name.
   */
  lookup(model: string): Readonly<ModelPrice> | undefined {
    const cached = this.#cache.get(model);
    if (cached !== undefined || this.#cache.has(model)) return cached;
    const price = this.#resolve(model);
    if (this.#cache.size >= MAX_CACHED_LOOKUPS) this.#cache.clear();
    this.#cache.set(model, price);
    return price;
  }

  #resolve(model: string): Readonly<ModelPrice> | undefined {
    const prices = this.#prices;
    let name = model;
    let price = prices.get(name);
    if (price !== undefined) return price;

    name = name.toLowerCase();
    price = prices.get(name);
    if (price !== undefined) return price;

    const slash = name.lastIndexOf('/');
    if (slash !== -1) {
      name = name.slice(slash + 1);
      price = prices.get(name);
      if (price !== undefined) return price;
    }

    const undated = name.replace(DATE_SUFFIX, '');
    if (undated !== name) {
      name = undated;
      price = prices.get(name);
      if (price !== undefined) return price;
    }

    const dotted = name.replace(DASH_BETWEEN_SINGLE_DIGITS, '.');
    return dotted !== name ? prices.get(dotted) : undefined;
  }

  /**
   * The price of a model sent upstream as `upstream` and asked for as `model`
   * (its public name): an override of either name (the upstream one first)
   * wins over a built-in price of either, so that an override of a public
   * name is not shadowed by the built-in price of the model it stands for.
   * undefined when neither name has a price.
   */
  priceFor(upstream: string | undefined, model: string | undefined): Readonly<ModelPrice> | undefined {
    const sent = upstream === undefined ? undefined : this.lookup(upstream);
    if (sent !== undefined && this.#overrides.has(sent)) return sent;
    const asked = model === undefined || model === upstream ? undefined : this.lookup(model);
    if (asked !== undefined && this.#overrides.has(asked)) return asked;
    return sent ?? asked;
  }

  /**
   * Cost of a usage in USD, as {@link costAt} prices it. null when the
   * model's price is unknown, never a silent 0.
   */
  cost(model: string, usage: Usage): number | null {
    const price = this.lookup(model);
    return price === undefined ? null : costAt(price, usage);
  }
}
