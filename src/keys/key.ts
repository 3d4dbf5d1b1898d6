/**
 * One key of one provider, and its lifecycle: cool down, disable, enable,
 * remove. The key owns its state; others read it (selectors through a
 * {@link KeyView}) and ask for changes through its methods, each of which
 * reports the change to the listener the manager gave it (store publication,
 * events, waking waiting requests).
 *
 * The secret is held in a module-private WeakMap, so no keyplex object ever
 * carries one as a property: not in `JSON.stringify`, not in `util.inspect`,
 * not in a debugger's object view.
 */
import type { ResolvedKey } from '../config';
import type { KeyDisabledReason } from '../events';
import type { Circuit } from '../resilience/breaker/index';
import type { KeyLimiter } from '../resilience/rate-limit/index';
import type { StoreKeyRef } from '../store/types';
import { TimedCounterSet, type KeyStats } from '../usage/stats';
import { endWithin } from '../wall-clock';
import type { KeySelector, KeyView, SelectContext } from './selector';

const secrets = new WeakMap<Key, string>();

/** The secret of a key; only the request sender calls this. */
export function secretOf(key: Key): string {
  const secret = secrets.get(key);
  if (secret === undefined) throw new Error('keyplex: internal error: key without secret');
  return secret;
}

/**
 * A change of a key's state. `remote` is set when another manager made it (a
 * state store carried it): it is not published again.
 */
export type KeyChange =
  | { kind: 'cooldown'; ms: number; until: number; remote: boolean; capped: boolean }
  | { kind: 'cooldown-ended' }
  | { kind: 'disabled'; reason: KeyDisabledReason; remote: boolean }
  | { kind: 'enabled'; remote: boolean; wasOut: boolean }
  | { kind: 'removed' };

/** The windows a request draws on: a limiter, and how a state store names them. */
export interface KeyWindow {
  readonly limiter: KeyLimiter;
  readonly ref: StoreKeyRef;
}

/**
 * Where a key's windows are for each upstream model: its own limiter, or the
 * manager's per key × model and quota-group limiters.
 */
export interface KeyWindows {
  /** The windows a request for `upstreamModel` on this key draws on. */
  for(upstreamModel: string | undefined): KeyWindow;
  /** Forgets what every limiter of the key (or its group) learnt. */
  forget(): void;
  /** Its windows per upstream model, by model (scope `'model'` only). */
  models?(): Iterable<[string, KeyWindow]>;
}

/** The upstream model keys are being judged for (set around a selector's call; see {@link selectingFor}). */
let judgedModel: string | undefined;
/** When they are being judged (epoch ms), likewise: one clock read for every key's `headroom`, not one each. */
let judgedAt: number | undefined;

/**
 * `selector`'s choice among `keys`, their views' `headroom` that of the windows
 * a request for `upstreamModel` draws on (per key × model or quota group), as
 * of `now` (`Date.now()`, read once by the caller for the whole pick).
 */
export function selectingFor(upstreamModel: string | undefined, selector: KeySelector, keys: readonly KeyView[], ctx: SelectContext, now?: number): KeyView | undefined {
  judgedModel = upstreamModel;
  judgedAt = now;
  try {
    return selector.select(keys, ctx);
  } finally {
    judgedModel = undefined;
    judgedAt = undefined;
  }
}

/** Told of every change of a key's state. */
export type KeyChangeListener = (key: Key, change: KeyChange) => void;

/** A read-only view of a key for selectors: live figures, no way to change the key. */
class View implements KeyView {
  readonly #key: Key;
  constructor(key: Key) {
    this.#key = key;
  }
  get id(): string {
    return this.#key.id;
  }
  get provider(): string {
    return this.#key.provider;
  }
  get weight(): number {
    return this.#key.weight;
  }
  get inFlight(): number {
    return this.#key.inFlight;
  }
  get requests(): number {
    return this.#key.counters.requests;
  }
  get headroom(): number {
    const key = this.#key;
    return (judgedModel === undefined ? key.limiter : key.windowFor(judgedModel).limiter).headroom(judgedAt);
  }
  toJSON(): { id: string; provider: string } {
    return { id: this.#key.id, provider: this.#key.provider };
  }
  /** The key behind a view this module made; undefined for any other object. */
  static keyOf(view: unknown): Key | undefined {
    return view instanceof View ? view.#key : undefined;
  }
}

/** The key behind a view handed to a selector (undefined when `view` is not one). */
export function keyOfView(view: unknown): Key | undefined {
  return View.keyOf(view);
}

/**
 * How long a key that said it cannot use a model (403/404 `model_not_found`)
 * is left for last for that model: access granted to its project meanwhile is
 * found within this long.
 */
export const MODEL_REFUSAL_MS = 10 * 60_000;

/** The lifecycle state of a key that has been out of use (cooled down, disabled or removed): made at the first, so keys that never were hold none of it. */
class KeyOut {
  disabled: KeyDisabledReason | undefined = undefined;
  cooldownUntil = 0;
  /** The length of the cooldown in force (ms): how far ahead of any clock reading it can end. */
  cooldownMs = 0;
  cooldownTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  removed = false;
  /** Upstream models the key said it cannot use (403/404 `model_not_found`), each until when it is left for last for them. */
  refused: Map<string, number> | undefined = undefined;

  clearTimer(): void {
    if (this.cooldownTimer) clearTimeout(this.cooldownTimer);
    this.cooldownTimer = undefined;
  }
}

/** The default listener (one function for every key made without one). */
const IGNORE_CHANGES: KeyChangeListener = () => {};

/** One key of one provider; under rate-limit scope `'key'` without a quota group, also its own (only) window. */
export class Key implements KeyWindow {
  /** How a state store names it (also where its id and provider are held: no copies per key). */
  readonly ref: StoreKeyRef;
  readonly weight: number;
  /** What a selector sees of it (made once). */
  readonly view: KeyView;
  /** Its attempts; histograms packed and made at the first sample, so unused keys cost none. */
  readonly counters = new TimedCounterSet(true);
  /** Its rate-limit windows. */
  readonly limiter: KeyLimiter;
  /** Its circuit breaker, unless key circuits are off. */
  readonly circuit: Circuit | undefined;
  #inFlight = 0;
  /** Cooldown, disable and removal state: undefined while the key never was out (no private method either: no brand slot per key). */
  #out: KeyOut | undefined;
  readonly #changed: KeyChangeListener;
  /** Undefined: the key itself (its `limiter` and `ref`) is the window of every model. */
  readonly #windows: KeyWindows | undefined;

  /** @param windows Where its windows are per upstream model; default: its own `limiter` for every model (no object per key). */
  constructor(
    provider: string,
    resolved: ResolvedKey,
    limiter: KeyLimiter,
    circuit: Circuit | undefined,
    changed: KeyChangeListener = IGNORE_CHANGES,
    windows?: KeyWindows,
  ) {
    this.ref = Object.freeze({ provider, keyId: resolved.id });
    this.weight = resolved.weight;
    this.limiter = limiter;
    this.circuit = circuit;
    this.#out = undefined;
    this.#changed = changed;
    this.view = new View(this);
    this.#windows = windows;
    secrets.set(this, resolved.key);
  }

  get id(): string {
    return this.ref.keyId;
  }
  get provider(): string {
    return this.ref.provider;
  }

  /** The windows a request for `upstreamModel` draws on (the key's own, per model, or its quota group's). */
  windowFor(upstreamModel: string | undefined): KeyWindow {
    return this.#windows === undefined ? this : this.#windows.for(upstreamModel);
  }

  /** Forgets learnt limits, periods, estimates and rests on every window of the key (`enableKey`). */
  forgetLimits(): void {
    if (this.#windows === undefined) this.limiter.forget();
    else this.#windows.forget();
  }

  /** Attempts on this key that have not finished yet. */
  get inFlight(): number {
    return this.#inFlight;
  }
  /** Why the key is out of use for good (until enabled again). */
  get disabled(): KeyDisabledReason | undefined {
    return this.#out?.disabled;
  }
  /** `Date.now()` until which the key cools down after a 429. */
  get cooldownUntil(): number {
    return this.#out?.cooldownUntil ?? 0;
  }
  /** Set once the key is removed; in-flight attempts finish, nothing new starts. */
  get removed(): boolean {
    return this.#out?.removed ?? false;
  }
  /** Attempts ever sent with this key. */
  get requests(): number {
    return this.counters.requests;
  }
  /** Share of its rate-limit windows still free, 0..1. */
  get headroom(): number {
    return this.limiter.headroom();
  }

  /** An attempt starts on this key (only a lease calls this). */
  attemptStarted(): void {
    this.#inFlight++;
  }
  /** An attempt on this key ended (only a lease calls this). */
  attemptEnded(): void {
    this.#inFlight--;
  }

  /** Enabled, present, and not cooling down at `now`. */
  usable(now: number): boolean {
    const out = this.#out;
    return out === undefined || (out.disabled === undefined && !out.removed && out.cooldownUntil <= now);
  }

  /**
   * When the key's cooldown ends as seen at `now` (0: none): never further
   * ahead than the cooldown's length. A wall clock stepped back while it
   * cools would put its end that much later; its timer ends it on time.
   */
  cooldownEnd(now: number): number {
    const out = this.#out;
    if (out === undefined) return 0;
    return endWithin(out.cooldownUntil, out.cooldownMs, now);
  }

  /**
   * Cools the key down for `ms` from `now`; `key:recovered` is reported when it
   * ends. Nothing happens to a removed key (a 429 of an attempt sent before the removal).
   * `limiter`: the one that rests as long (told when the cooldown ends, in case the clock stepped back meanwhile).
   */
  cool(ms: number, now: number, remote = false, capped = false, limiter?: KeyLimiter): void {
    const out = (this.#out ??= new KeyOut());
    if (out.removed) return;
    out.cooldownUntil = now + ms;
    out.cooldownMs = ms;
    out.clearTimer();
    // The end in the limiter's time, which a clock stepped back before the timer runs no longer matches.
    const restedUntil = limiter === undefined ? 0 : limiter.time(now) + ms;
    const timer = setTimeout(() => {
      out.cooldownTimer = undefined;
      // The timer runs on the monotonic clock: `ms` have passed, whatever a wall clock stepped back since says.
      const at = Date.now();
      if (out.cooldownUntil > at) {
        limiter?.reached(restedUntil);
        out.cooldownUntil = at;
      }
      if (this.usable(at)) this.#changed(this, { kind: 'cooldown-ended' });
    }, ms);
    timer.unref?.();
    out.cooldownTimer = timer;
    this.#changed(this, { kind: 'cooldown', ms, until: out.cooldownUntil, remote, capped });
  }

  /**
   * The key answered that it cannot use `upstreamModel` (its project has no
   * access; its provider does not serve it) at `now`: requests for that
   * model try it after every other key for {@link MODEL_REFUSAL_MS}. It
   * stays in use for other models.
   */
  refuseModel(upstreamModel: string, now: number): void {
    const out = (this.#out ??= new KeyOut());
    const refused = (out.refused ??= new Map());
    // Expired ones go when another is added: the map holds only the models refused lately.
    for (const [model, until] of refused) if (until <= now) refused.delete(model);
    refused.set(upstreamModel, now + MODEL_REFUSAL_MS);
  }

  /** Whether the key said, less than {@link MODEL_REFUSAL_MS} before `now`, that it cannot use `upstreamModel`. */
  refuses(upstreamModel: string | undefined, now: number): boolean {
    const until = upstreamModel === undefined ? undefined : this.#out?.refused?.get(upstreamModel);
    return until !== undefined && until > now;
  }

  /** Takes the key out of use until enabled; nothing happens when it already is, or is removed. */
  disable(reason: KeyDisabledReason, remote = false): void {
    const out = (this.#out ??= new KeyOut());
    if (out.disabled !== undefined || out.removed) return;
    out.disabled = reason;
    out.clearTimer();
    this.#changed(this, { kind: 'disabled', reason, remote });
  }

  /** Puts the key back in use (no longer disabled nor cooling down, and tried again first for models it refused). */
  enable(now: number, remote = false): void {
    const out = this.#out;
    const wasOut = out !== undefined && (out.disabled !== undefined || out.cooldownUntil > now);
    if (out !== undefined) {
      out.disabled = undefined;
      out.cooldownUntil = 0;
      out.refused = undefined;
      out.clearTimer();
    }
    this.#changed(this, { kind: 'enabled', remote, wasOut });
  }

  /**
   * Takes the key out for good: attempts already sent finish, no new one
   * starts, and what they report (a 429, a 401) changes it no more. Its
   * circuit's timer is stopped.
   */
  remove(): void {
    const out = (this.#out ??= new KeyOut());
    out.removed = true;
    out.clearTimer();
    this.circuit?.dispose();
    this.#changed(this, { kind: 'removed' });
  }

  /** Releases its timers (the manager closes). */
  dispose(): void {
    this.#out?.clearTimer();
    this.circuit?.dispose();
  }

  /** True when this key's secret equals `secret` (for duplicate checks). */
  holds(secret: string): boolean {
    return secrets.get(this) === secret;
  }

  stats(now: number): KeyStats {
    const disabled = this.disabled;
    const cooldownUntil = this.cooldownEnd(now);
    const cooling = cooldownUntil > now;
    return {
      id: this.id,
      provider: this.provider,
      weight: this.weight,
      status: disabled ? 'disabled' : cooling ? 'cooling' : 'active',
      disabledReason: disabled,
      cooldownRemainingMs: cooling ? cooldownUntil - now : 0,
      inFlight: this.#inFlight,
      circuit: this.circuit?.state,
      limits: this.limiter.limits,
      headroom: this.limiter.headroom(),
      ...this.counters.snapshot(),
      ...this.counters.timings(),
      ...modelStats(this.#windows, this.limiter),
      ...refusedStats(this.#out?.refused, now),
    };
  }

  toJSON(): { id: string; provider: string } {
    return { id: this.id, provider: this.provider };
  }
}

/** `refusedModels`: the models a key refused lately, with the time left; nothing when none. */
function refusedStats(refused: ReadonlyMap<string, number> | undefined, now: number): Pick<KeyStats, 'refusedModels'> {
  if (refused === undefined) return {};
  let out: NonNullable<KeyStats['refusedModels']> | undefined;
  for (const [model, until] of refused) if (until > now) (out ??= {})[model] = { remainingMs: until - now };
  return out === undefined ? {} : { refusedModels: out };
}

/** Under scope `'model'`: `models` (each model window's limits and headroom) and the lowest headroom. */
function modelStats(keyWindows: KeyWindows | undefined, limiter: KeyLimiter): Pick<KeyStats, 'models'> & { headroom?: number } {
  const windows = keyWindows?.models?.();
  if (windows === undefined) return {};
  const models: NonNullable<KeyStats['models']> = {};
  let headroom = limiter.headroom();
  for (const [model, { limiter: own }] of windows) {
    const free = own.headroom();
    models[model] = { limits: own.limits, headroom: free };
    headroom = Math.min(headroom, free);
  }
  return { models, headroom };
}
