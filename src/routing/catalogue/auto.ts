/**
 * Automatic model choice for requests that name `auto`: the
 * {@link AutoStrategy} interface and the built-in length heuristic.
 */
import { DEFAULTS } from '../../config/defaults';
import type { RequestFeatures } from './features';

/**
 * Chooses the model for an `auto` request. The chosen model then routes like
 * any other (its deployments, fallbacks and circuits apply).
 *
 * ```ts
 * const toolsToStrongest: AutoStrategy = {
 *   choose: (features, models) => (features.hasTools ? models[models.length - 1]! : models[0]!),
 * };
 * new KeyManager({ providers, routing: { auto: { models: ['gpt-4.1-mini', 'gpt-4.1'], strategy: toolsToStrongest } } });
 * // then: client.chat.completions.create({ model: 'auto', messages })
 * ```
 */
export interface AutoStrategy {
  /**
   * One of `models` (ordered cheapest → strongest; never empty) for a request
   * with these features. Called once per `auto` request: keep it cheap and pure.
   */
  choose(features: RequestFeatures, models: readonly string[]): string;
}

/** Thresholds of a {@link ComplexityAutoStrategy}, in input tokens. */
export interface ComplexityThresholds {
  /** Below this many input tokens a prompt without tools or images is short: the cheapest model. Default 500. */
  shortBelow?: number;
  /** Above this many input tokens a prompt is long: the strongest model. Default 4000. */
  longAbove?: number;
}

/**
 * The classic length heuristic, in this order:
 *
 * 1. tools or images → the strongest (last) model: tool use and vision are
 *    where small models fail most;
 * 2. more than `longAbove` (default 4000) input tokens → the strongest;
 * 3. fewer than `shortBelow` (default 500) input tokens → the cheapest (first);
 * 4. anything else → the middle model, `models[floor(n / 2)]` (the upper
 *    middle for an even count, so with two models only short simple prompts
 *    go to the cheaper one).
 *
 * A single model is always chosen.
 */
export class ComplexityAutoStrategy implements AutoStrategy {
  /** Input tokens below which a simple prompt goes to the cheapest model. */
  readonly shortBelow: number;
  /** Input tokens above which a prompt goes to the strongest model. */
  readonly longAbove: number;

  /** @throws {RangeError} when a threshold is negative or not a number, or `shortBelow > longAbove`. */
  constructor(thresholds: ComplexityThresholds = {}) {
    const { shortBelow = DEFAULTS.autoThresholds.shortBelow, longAbove = DEFAULTS.autoThresholds.longAbove } = thresholds;
    if (!(shortBelow >= 0) || !(longAbove >= 0) || shortBelow > longAbove) {
      throw new RangeError(`keyplex: ComplexityAutoStrategy needs 0 <= shortBelow <= longAbove; got shortBelow ${shortBelow}, longAbove ${longAbove}`);
    }
    this.shortBelow = shortBelow;
    this.longAbove = longAbove;
  }

  choose(features: RequestFeatures, models: readonly string[]): string {
    const n = models.length;
    if (n === 0) throw new RangeError('keyplex: ComplexityAutoStrategy.choose needs at least one model');
    if (features.hasTools || features.hasImages || features.inputTokens > this.longAbove) return models[n - 1]!;
    if (features.inputTokens < this.shortBelow) return models[0]!;
    return models[n >> 1]!;
  }
}

/** The strategy of an `auto` option that names none. */
export const DEFAULT_AUTO_STRATEGY = new ComplexityAutoStrategy();
