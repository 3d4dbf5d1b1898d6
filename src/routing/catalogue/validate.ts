/**
 * Validation of the catalogue options (`routing.aliases`, `fallbacks`,
 * `contextFallbacks`, `auto`), with the shared toolkit. Names the caller
 * gave are quoted only when they cannot be secrets.
 */
import { describe, isPlainObject, prop, safeName, type Problem } from '../../config/check';
import { AUTO_MODEL } from './resolve';

/** A problem found in catalogue options: the field (as `aliases.fast[1]`, `fallbacks["gpt-4.1"][0]`) and what is wrong. */
export type CatalogueProblem = Problem;

/** A name inside a longer text (a cycle): as it is, or `<a name of N characters>` when it could be a secret. */
function safeText(name: string): string {
  const shown = safeName(name);
  return shown.startsWith('"') ? name : `<${shown}>`;
}

/** What the parts of one check share. */
interface Scope {
  readonly field: (name: string) => string;
  readonly knownModels: ReadonlySet<string>;
  readonly aliases: Map<string, string[]>;
  readonly isKnown: (name: string) => boolean;
  readonly unknown: (name: string) => string;
  readonly isTarget: (name: string) => string | undefined;
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
  if (!isPlainObject(options)) return { field: base === '' ? 'catalogue' : base, problem: `expected an object { aliases?, fallbacks?, contextFallbacks?, auto? }; got ${describe(options)}` };
  const aliases = new Map<string, string[]>();
  const isKnown = (name: string): boolean => knownModels.size === 0 || knownModels.has(name);
  const unknown = (name: string): string => `unknown model ${safeName(name)}: no provider lists it. Add it to a provider's \`models\`, or fix the name`;
  const scope: Scope = {
    field: (name) => prop(base, name),
    knownModels,
    aliases,
    isKnown,
    unknown,
    isTarget: (name) => (aliases.has(name) || isKnown(name) ? undefined : unknown(name)),
  };
  return (
    aliasesProblem(options.aliases, scope) ??
    fallbacksProblem(options.fallbacks, scope) ??
    contextFallbacksProblem(options.contextFallbacks, scope) ??
    autoProblem(options.auto, scope)
  );
}

/** Checks `aliases` and fills `scope.aliases`. */
function aliasesProblem(rawAliases: unknown, scope: Scope): CatalogueProblem | undefined {
  if (rawAliases === undefined) return undefined;
  const { aliases } = scope;
  const aliasesField = scope.field('aliases');
  if (!isPlainObject(rawAliases)) return { field: aliasesField, problem: `expected an object of alias names to arrays of model names; got ${describe(rawAliases)}` };
  for (const [name, members] of Object.entries(rawAliases)) {
    const f = prop(aliasesField, name);
    if (name === '') return { field: f, problem: 'expected a non-empty alias name' };
    if (name === AUTO_MODEL) return { field: f, problem: '"auto" is reserved for automatic model choice (the `auto` option); name the alias otherwise' };
    if (scope.knownModels.has(name)) return { field: f, problem: `an alias cannot be named like the model ${safeName(name)} that a provider lists: it would hide that model. Rename the alias` };
    if (!Array.isArray(members)) return { field: f, problem: `expected an array of model names; got ${describe(members)}` };
    if (members.length === 0) return { field: f, problem: 'expected at least one model; got an empty group' };
    aliases.set(name, members as string[]);
  }
  for (const [name, members] of aliases) {
    const problem = groupProblem(members, prop(aliasesField, name), (member) => {
      if (aliases.has(member)) return `${safeName(member)} is an alias; aliases cannot contain aliases. List its models instead`;
      return scope.isKnown(member) ? undefined : scope.unknown(member);
    });
    if (problem) return problem;
  }
  return undefined;
}

function fallbacksProblem(rawFallbacks: unknown, scope: Scope): CatalogueProblem | undefined {
  if (rawFallbacks === undefined) return undefined;
  const fallbacksField = scope.field('fallbacks');
  if (!isPlainObject(rawFallbacks)) return { field: fallbacksField, problem: `expected an object of model names to arrays of fallback models; got ${describe(rawFallbacks)}` };
  for (const [source, targets] of Object.entries(rawFallbacks)) {
    const f = prop(fallbacksField, source);
    if (source === '') return { field: f, problem: 'expected a non-empty model name' };
    if (source === AUTO_MODEL) return { field: f, problem: '"auto" has no fallbacks of its own: the model it chooses brings its own. List fallbacks under the models in `auto.models`' };
    const sourceProblem = scope.isTarget(source);
    if (sourceProblem) return { field: f, problem: sourceProblem };
    if (!Array.isArray(targets)) return { field: f, problem: `expected an array of fallback models; got ${describe(targets)}` };
    if (targets.length === 0) return { field: f, problem: 'expected at least one fallback model; got an empty list. Leave the entry out for none' };
    const problem = groupProblem(targets, f, (target) => (target === source ? `${safeName(source)} cannot fall back to itself` : scope.isTarget(target)));
    if (problem) return problem;
  }
  return fallbackCycle(rawFallbacks as Record<string, string[]>, scope.aliases, fallbacksField);
}

function contextFallbacksProblem(rawContext: unknown, scope: Scope): CatalogueProblem | undefined {
  if (rawContext === undefined) return undefined;
  const contextField = scope.field('contextFallbacks');
  if (!isPlainObject(rawContext)) return { field: contextField, problem: `expected an object of model names to larger-context model names; got ${describe(rawContext)}` };
  for (const [source, target] of Object.entries(rawContext)) {
    const f = prop(contextField, source);
    if (source === '' || source === AUTO_MODEL) return { field: f, problem: `expected the name of a model; got ${source === '' ? 'an empty string' : '"auto", which is not a model'}` };
    if (scope.aliases.has(source)) return { field: f, problem: `${safeName(source)} is an alias; context fallbacks apply to the model that answered context_length_exceeded. List its models instead` };
    if (!scope.isKnown(source)) return { field: f, problem: scope.unknown(source) };
    if (typeof target !== 'string' || target === '') return { field: f, problem: `expected a non-empty model name; got ${describe(target)}` };
    if (target === AUTO_MODEL) return { field: f, problem: '"auto" cannot be a context fallback; name a model with a larger context window' };
    if (target === source) return { field: f, problem: `${safeName(source)} cannot be its own context fallback` };
    const targetProblem = scope.isTarget(target);
    if (targetProblem) return { field: f, problem: targetProblem };
  }
  return contextCycle(rawContext as Record<string, string>, contextField);
}

function contextCycle(context: Record<string, string>, contextField: string): CatalogueProblem | undefined {
  const limit = Object.keys(context).length;
  for (const start of Object.keys(context)) {
    const path = [start];
    let at = start;
    let next = own(context, at);
    // A chain longer than the number of entries has met a cycle not through
    // `start`; that one is reported when the loop starts from its members.
    while (next !== undefined && path.length <= limit) {
      path.push(next);
      if (next === start) return { field: prop(contextField, at), problem: `context fallbacks form a cycle: ${path.map(safeText).join(' → ')}` };
      at = next;
      next = own(context, at);
    }
  }
  return undefined;
}

function autoProblem(rawAuto: unknown, scope: Scope): CatalogueProblem | undefined {
  if (rawAuto === undefined) return undefined;
  const autoField = scope.field('auto');
  if (!isPlainObject(rawAuto)) return { field: autoField, problem: `expected an object { models, strategy? }; got ${describe(rawAuto)}` };
  if (scope.knownModels.has(AUTO_MODEL)) return { field: autoField, problem: 'a provider lists a model named "auto", which automatic model choice would hide. Leave `auto` out, or rename the model' };
  const models = rawAuto.models;
  const modelsField = prop(autoField, 'models');
  if (!Array.isArray(models)) return { field: modelsField, problem: `expected an array of models from cheapest to strongest; got ${describe(models)}` };
  if (models.length === 0) return { field: modelsField, problem: 'expected at least one model; got an empty list' };
  const problem = groupProblem(models, modelsField, scope.isTarget);
  if (problem) return problem;
  const strategy = rawAuto.strategy;
  if (strategy !== undefined && !(typeof strategy === 'object' && strategy !== null && typeof (strategy as { choose?: unknown }).choose === 'function')) {
    return { field: prop(autoField, 'strategy'), problem: `expected an object with a choose(features, models) method; got ${describe(strategy)}` };
  }
  return undefined;
}

function own<T>(record: Record<string, T> | undefined, key: string): T | undefined {
  return record !== undefined && Object.hasOwn(record, key) ? record[key] : undefined;
}

/** The first bad entry of a list of names: not a non-empty string, `auto`, a repeat, or what `check` says. */
function groupProblem(list: readonly unknown[], field: string, check: (name: string) => string | undefined): CatalogueProblem | undefined {
  const seen = new Set<string>();
  for (let i = 0; i < list.length; i++) {
    const name = list[i];
    const f = `${field}[${i}]`;
    if (typeof name !== 'string' || name === '') return { field: f, problem: `expected a non-empty model name; got ${describe(name)}` };
    if (name === AUTO_MODEL) return { field: f, problem: '"auto" is not a model here: it only works as the requested model' };
    if (seen.has(name)) return { field: f, problem: `expected each model once; got ${safeName(name)} again` };
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
    const cycle = path.slice(start).concat(next).map(safeText).join(' → ');
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
