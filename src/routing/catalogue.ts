/**
 * The model catalogue: what the caller asked for (a model, an alias naming a
 * group of models, or `auto`) resolved into tiers of candidate public models,
 * plus the fallbacks to try when a model's every deployment failed. Pure:
 * no I/O, no clock, same input → same output.
 */

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

/** Chooses the model for an `auto` request. */
export interface AutoStrategy {
  /**
   * One of `models` (ordered cheapest → strongest; never empty) for a request
   * with these features. Called once per `auto` request: keep it cheap and pure.
   */
  choose(features: RequestFeatures, models: readonly string[]): string;
}

/** What an {@link AutoStrategy} knows of a request, read cheaply from its body by {@link requestFeatures}. */
export interface RequestFeatures {
  /** Estimated input tokens. */
  inputTokens: number;
  /** Number of messages (chat `messages`, or Responses `input` items; a string input counts 1). */
  messages: number;
  /** Whether the request offers tools (or legacy `functions`). */
  hasTools: boolean;
  /** Whether any message carries an image part. */
  hasImages: boolean;
  /** `max_completion_tokens`, `max_tokens` or `max_output_tokens`, when set. */
  maxOutputTokens: number | undefined;
  /** Text of the last user message, truncated to {@link MAX_FEATURE_TEXT} characters. */
  text: string;
}

/** Characters of the last user message kept in {@link RequestFeatures.text}. */
export const MAX_FEATURE_TEXT = 2000;

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
    const { shortBelow = 500, longAbove = 4000 } = thresholds;
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

const DEFAULT_AUTO_STRATEGY = new ComplexityAutoStrategy();

const IMAGE_PART_TYPES = new Set(['image_url', 'input_image', 'image']);
const TEXT_PART_TYPES = new Set(['text', 'input_text']);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function hasParts(content: unknown, types: ReadonlySet<string>): boolean {
  if (!Array.isArray(content)) return false;
  for (const part of content) if (isRecord(part) && types.has(part.type as string)) return true;
  return false;
}

/** The text of a message content (a string, or the text parts of an array), at most MAX_FEATURE_TEXT characters. */
function contentText(content: unknown): string {
  if (typeof content === 'string') return content.length > MAX_FEATURE_TEXT ? content.slice(0, MAX_FEATURE_TEXT) : content;
  if (!Array.isArray(content)) return '';
  let text = '';
  for (const part of content) {
    if (!isRecord(part) || !TEXT_PART_TYPES.has(part.type as string) || typeof part.text !== 'string') continue;
    text = text === '' ? part.text : `${text}\n${part.text}`;
    if (text.length >= MAX_FEATURE_TEXT) return text.slice(0, MAX_FEATURE_TEXT);
  }
  return text;
}

function tokenCount(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/**
 * The {@link RequestFeatures} of a JSON request body: chat completions
 * (`messages`), Responses (`input`, a string or items) and legacy completions
 * (`prompt`). Cheap: one pass over the messages and their content parts, no
 * serialisation; only the last user message's text is copied (truncated).
 * A missing or unrecognised body yields zero messages, no tools or images and
 * empty text.
 */
export function requestFeatures(body: Record<string, unknown> | undefined, inputTokens: number): RequestFeatures {
  const features: RequestFeatures = { inputTokens, messages: 0, hasTools: false, hasImages: false, maxOutputTokens: undefined, text: '' };
  if (body === undefined) return features;
  const tools = Array.isArray(body.tools) ? body.tools : body.functions;
  features.hasTools = Array.isArray(tools) && tools.length > 0;
  features.maxOutputTokens = tokenCount(body.max_completion_tokens) ?? tokenCount(body.max_tokens) ?? tokenCount(body.max_output_tokens);
  const items = body.messages ?? body.input ?? body.prompt;
  if (typeof items === 'string') {
    features.messages = 1;
    features.text = contentText(items);
  } else if (Array.isArray(items)) {
    features.messages = items.length;
    let lastUser: unknown;
    let found = false;
    for (const item of items) {
      if (!isRecord(item)) continue;
      if (!features.hasImages && hasParts(item.content, IMAGE_PART_TYPES)) features.hasImages = true;
      if (item.role === 'user') {
        lastUser = item.content;
        found = true;
      }
    }
    if (found) features.text = contentText(lastUser);
    else if (items.length > 0 && typeof items[items.length - 1] === 'string') features.text = contentText(items[items.length - 1]);
  }
  return features;
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

// ---------------------------------------------------------------------------
// Validation

/** A problem found in catalogue options: the field (as `aliases.fast[1]`, `fallbacks["gpt-4.1"][0]`) and what is wrong. */
export interface CatalogueProblem {
  field: string;
  problem: string;
}

function prop(base: string, name: string): string {
  if (/^[A-Za-z_$][\w$]*$/.test(name)) return base === '' ? name : `${base}.${name}`;
  return `${base}[${JSON.stringify(name)}]`;
}

function quote(text: string): string {
  return JSON.stringify(text);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return value === '' ? 'an empty string' : `the string ${quote(value)}`;
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  if (!isRecord(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * The first problem in catalogue options, for the configuration layer, or
 * `undefined` when they are valid. Fields are relative to the options object,
 * prefixed with `base` (e.g. `base = 'routing'` → `routing.aliases.fast[1]`);
 * a malformed `options` itself is reported at `base` (or `catalogue` when
 * `base` is empty). Keys other than the four catalogue fields are not checked.
 *
 * `knownModels` is every public model some provider lists. Pass an EMPTY set
 * when any provider serves any model (no `models` list): then every name
 * counts as known and unknown-model checks are skipped, but the structural
 * checks (cycles, empty groups, reserved names, nesting) still apply.
 *
 * Checked: shapes; non-empty names; models named in aliases, fallbacks,
 * context fallbacks and `auto.models` are known models (or, where allowed,
 * aliases); an alias is not named like a known model (it would hide it) nor
 * `auto`; groups (alias members, fallback lists, `auto.models`) are non-empty
 * and name each model once; alias members are not aliases (no nesting);
 * `auto` appears nowhere as a model; context-fallback sources are models,
 * not aliases; no fallback chain (following alias targets into their models)
 * and no context-fallback chain leads back to where it started; `auto.strategy`
 * has a `choose` function; no provider lists a model named `auto` when `auto`
 * is configured.
 */
export function catalogueProblem(options: unknown, knownModels: ReadonlySet<string>, base = ''): CatalogueProblem | undefined {
  if (options === undefined) return undefined;
  if (!isPlainRecord(options)) return { field: base === '' ? 'catalogue' : base, problem: `expected an object { aliases?, fallbacks?, contextFallbacks?, auto? }; got ${describe(options)}` };
  const field = (name: string): string => prop(base, name);
  const isKnown = (name: string): boolean => knownModels.size === 0 || knownModels.has(name);
  const unknown = (name: string): string => `unknown model ${quote(name)}: no provider lists it. Add it to a provider's \`models\`, or fix the name`;

  // Aliases.
  const rawAliases = options.aliases;
  const aliases = new Map<string, string[]>();
  if (rawAliases !== undefined) {
    const aliasesField = field('aliases');
    if (!isPlainRecord(rawAliases)) return { field: aliasesField, problem: `expected an object of alias names to arrays of model names; got ${describe(rawAliases)}` };
    for (const [name, members] of Object.entries(rawAliases)) {
      const f = prop(aliasesField, name);
      if (name === '') return { field: f, problem: 'expected a non-empty alias name' };
      if (name === AUTO_MODEL) return { field: f, problem: '"auto" is reserved for automatic model choice (the `auto` option); name the alias otherwise' };
      if (knownModels.has(name)) return { field: f, problem: `an alias cannot be named like the model ${quote(name)} that a provider lists: it would hide that model. Rename the alias` };
      if (!Array.isArray(members)) return { field: f, problem: `expected an array of model names; got ${describe(members)}` };
      if (members.length === 0) return { field: f, problem: 'expected at least one model; got an empty group' };
      aliases.set(name, members as string[]);
    }
    for (const [name, members] of aliases) {
      const problem = groupProblem(members, prop(aliasesField, name), (member) => {
        if (aliases.has(member)) return `${quote(member)} is an alias; aliases cannot contain aliases. List its models instead`;
        return isKnown(member) ? undefined : unknown(member);
      });
      if (problem) return problem;
    }
  }
  const isTarget = (name: string): string | undefined => (aliases.has(name) || isKnown(name) ? undefined : unknown(name));

  // Fallbacks.
  const rawFallbacks = options.fallbacks;
  if (rawFallbacks !== undefined) {
    const fallbacksField = field('fallbacks');
    if (!isPlainRecord(rawFallbacks)) return { field: fallbacksField, problem: `expected an object of model names to arrays of fallback models; got ${describe(rawFallbacks)}` };
    for (const [source, targets] of Object.entries(rawFallbacks)) {
      const f = prop(fallbacksField, source);
      if (source === '') return { field: f, problem: 'expected a non-empty model name' };
      if (source === AUTO_MODEL) return { field: f, problem: '"auto" has no fallbacks of its own: the model it chooses brings its own. List fallbacks under the models in `auto.models`' };
      const sourceProblem = isTarget(source);
      if (sourceProblem) return { field: f, problem: sourceProblem };
      if (!Array.isArray(targets)) return { field: f, problem: `expected an array of fallback models; got ${describe(targets)}` };
      if (targets.length === 0) return { field: f, problem: 'expected at least one fallback model; got an empty list. Leave the entry out for none' };
      const problem = groupProblem(targets, f, (target) => (target === source ? `${quote(source)} cannot fall back to itself` : isTarget(target)));
      if (problem) return problem;
    }
    const cycle = fallbackCycle(rawFallbacks as Record<string, string[]>, aliases, fallbacksField);
    if (cycle) return cycle;
  }

  // Context fallbacks.
  const rawContext = options.contextFallbacks;
  if (rawContext !== undefined) {
    const contextField = field('contextFallbacks');
    if (!isPlainRecord(rawContext)) return { field: contextField, problem: `expected an object of model names to larger-context model names; got ${describe(rawContext)}` };
    for (const [source, target] of Object.entries(rawContext)) {
      const f = prop(contextField, source);
      if (source === '' || source === AUTO_MODEL) return { field: f, problem: `expected the name of a model; got ${source === '' ? 'an empty string' : '"auto", which is not a model'}` };
      if (aliases.has(source)) return { field: f, problem: `${quote(source)} is an alias; context fallbacks apply to the model that answered context_length_exceeded. List its models instead` };
      if (!isKnown(source)) return { field: f, problem: unknown(source) };
      if (typeof target !== 'string' || target === '') return { field: f, problem: `expected a non-empty model name; got ${describe(target)}` };
      if (target === AUTO_MODEL) return { field: f, problem: '"auto" cannot be a context fallback; name a model with a larger context window' };
      if (target === source) return { field: f, problem: `${quote(source)} cannot be its own context fallback` };
      const targetProblem = isTarget(target);
      if (targetProblem) return { field: f, problem: targetProblem };
    }
    const context = rawContext as Record<string, string>;
    const limit = Object.keys(context).length;
    for (const start of Object.keys(context)) {
      const path = [start];
      let at = start;
      let next = own(context, at);
      // A chain longer than the number of entries has met a cycle not through
      // `start`; that one is reported when the loop starts from its members.
      while (next !== undefined && path.length <= limit) {
        path.push(next);
        if (next === start) return { field: prop(contextField, at), problem: `context fallbacks form a cycle: ${path.join(' → ')}` };
        at = next;
        next = own(context, at);
      }
    }
  }

  // Auto.
  const rawAuto = options.auto;
  if (rawAuto !== undefined) {
    const autoField = field('auto');
    if (!isPlainRecord(rawAuto)) return { field: autoField, problem: `expected an object { models, strategy? }; got ${describe(rawAuto)}` };
    if (knownModels.has(AUTO_MODEL)) return { field: autoField, problem: 'a provider lists a model named "auto", which automatic model choice would hide. Leave `auto` out, or rename the model' };
    const models = rawAuto.models;
    const modelsField = prop(autoField, 'models');
    if (!Array.isArray(models)) return { field: modelsField, problem: `expected an array of models from cheapest to strongest; got ${describe(models)}` };
    if (models.length === 0) return { field: modelsField, problem: 'expected at least one model; got an empty list' };
    const problem = groupProblem(models, modelsField, isTarget);
    if (problem) return problem;
    const strategy = rawAuto.strategy;
    if (strategy !== undefined && !(typeof strategy === 'object' && strategy !== null && typeof (strategy as { choose?: unknown }).choose === 'function')) {
      return { field: prop(autoField, 'strategy'), problem: `expected an object with a choose(features, models) method; got ${describe(strategy)}` };
    }
  }
  return undefined;
}

/** The first bad entry of a list of names: not a non-empty string, `auto`, a repeat, or what `check` says. */
function groupProblem(list: readonly unknown[], field: string, check: (name: string) => string | undefined): CatalogueProblem | undefined {
  const seen = new Set<string>();
  for (let i = 0; i < list.length; i++) {
    const name = list[i];
    const f = `${field}[${i}]`;
    if (typeof name !== 'string' || name === '') return { field: f, problem: `expected a non-empty model name; got ${describe(name)}` };
    if (name === AUTO_MODEL) return { field: f, problem: '"auto" is not a model here: it only works as the requested model' };
    if (seen.has(name)) return { field: f, problem: `expected each model once; got ${quote(name)} again` };
    seen.add(name);
    const problem = check(name);
    if (problem) return { field: f, problem };
  }
  return undefined;
}

/**
 * A cycle in the fallback graph, reported at the entry that closes it. Edges:
 * a name to each of its fallbacks, and an alias to its models (whose
 * fallbacks apply when the alias is reached). Depth first, in configuration
 * order, so the report is deterministic.
 */
function fallbackCycle(fallbacks: Record<string, string[]>, aliases: ReadonlyMap<string, readonly string[]>, fallbacksField: string): CatalogueProblem | undefined {
  const DONE = 2;
  const ACTIVE = 1;
  const state = new Map<string, number>();
  const path: string[] = [];
  /** For each name on `path`, the fallback entry that led to it (`undefined` for a start or a membership edge). */
  const via: (string | undefined)[] = [];
  const visit = (name: string, entry: string | undefined): CatalogueProblem | undefined => {
    state.set(name, ACTIVE);
    path.push(name);
    via.push(entry);
    const targets = own(fallbacks, name) ?? [];
    for (let i = 0; i < targets.length; i++) {
      const found = step(targets[i]!, `${prop(fallbacksField, name)}[${i}]`);
      if (found) return found;
    }
    for (const member of aliases.get(name) ?? []) {
      const found = step(member, undefined);
      if (found) return found;
    }
    path.pop();
    via.pop();
    state.set(name, DONE);
    return undefined;
  };
  const step = (next: string, entry: string | undefined): CatalogueProblem | undefined => {
    const s = state.get(next);
    if (s === undefined) return visit(next, entry);
    if (s === DONE) return undefined;
    const start = path.indexOf(next);
    const cycle = path.slice(start).concat(next).join(' → ');
    // Report the last fallback entry on the cycle (membership edges alone cannot close one).
    let field = entry;
    for (let k = via.length - 1; field === undefined && k > start; k--) field = via[k];
    return { field: field ?? fallbacksField, problem: `fallbacks form a cycle: ${cycle}. A fallback chain must not lead back to where it started` };
  };
  for (const source of Object.keys(fallbacks)) {
    if (state.get(source) === undefined) {
      const found = visit(source, undefined);
      if (found) return found;
    }
  }
  return undefined;
}
