/**
 * The errors of the application's own setup: options given to the manager
 * or to `keyplex.options()`, a hook that threw, an optional peer missing.
 */

import { KeyplexError, type AttemptOutcome } from './base';

/** Bad options given to `new KeyManager()` or a runtime key call; `field` names the option. */
export class ConfigError extends KeyplexError {
  /** Path of the offending option, e.g. `providers.openai.keys[2].weight`. */
  readonly field: string;
  constructor(field: string, problem: string) {
    super('invalid_config', `Invalid keyplex option \`${field}\`: ${problem}`);
    this.name = 'ConfigError';
    this.field = field;
  }

  /** Any keyplex error with code `invalid_config`, from whichever copy of keyplex's bundles threw it (`keyplex/redis`, `keyplex/prometheus`, …). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return KeyplexError.is(value) && value.code === 'invalid_config';
  }
}

/**
 * `manager.fetch` was called with a URL whose API base keyplex cannot tell:
 * not `KEYPLEX_BASE_URL`, not a configured provider's `baseURL`, and a
 * version segment in its path (`https://openrouter.ai/api/v1/…`), which
 * would reach no endpoint on whichever provider the request is routed to.
 * Answered with status 400, nothing sent.
 */
export class UnknownBaseUrlError extends KeyplexError {
  /** @param shown - the URL's origin and path (never its query, which may hold a secret); `base` KEYPLEX_BASE_URL. */
  constructor(shown: string, base: string) {
    super(
      'unknown_base_url',
      `keyplex: manager.fetch was called for ${shown}, whose base URL is neither KEYPLEX_BASE_URL nor a configured provider's; keyplex cannot tell which part of its path is the base and which the endpoint, so nothing was sent. Give the client that calls manager.fetch the base URL KEYPLEX_BASE_URL ('${base}', exported by keyplex; see docs/integrations.md): keyplex puts in each provider's own.`,
      { status: 400 },
    );
    this.name = 'UnknownBaseUrlError';
  }
}

/** The per-request options given to `keyplex.options()` are malformed. */
export class RequestOptionsError extends KeyplexError {
  /** @param options.status set when the request went through the SDK (400: it raises `BadRequestError`). */
  constructor(field: string, problem: string, options: { requestId?: string; status?: number } = {}) {
    super('invalid_request_options', `Invalid keyplex request option \`${field}\`: ${problem}`, options);
    this.name = 'RequestOptionsError';
  }
}

/**
 * A `beforeAttempt` or `afterResponse` hook threw or rejected, so the
 * request failed (it is not retried on another key: the hook would most
 * likely throw again). Answered with status 500 (the SDK raises
 * `InternalServerError`); the message quotes the hook's own, and `cause` is
 * what the hook threw.
 */
export class HookFailedError extends KeyplexError {
  /** Which hook: `beforeAttempt[0]`, `afterResponse[1]`, …, or strategy: `RoutingStrategy.order`, `AutoStrategy.choose`. */
  readonly hook: string;
  constructor(hook: string, message: string, options: { requestId?: string; attempts?: AttemptOutcome[]; cause?: unknown }) {
    super('hook_failed', message, { ...options, status: 500 });
    this.name = 'HookFailedError';
    this.hook = hook;
  }
}

/**
 * An entry point needs an optional peer dependency that is not installed:
 * thrown at the first call that needs it (importing the entry works without
 * it). `packageName` is what to install, `entry` the keyplex entry that
 * needs it; the message gives the install command. Thrown by `new
 * RedisStore()` without `client` (`ioredis`), `instrument()` of `keyplex/otel`
 * (`@opentelemetry/api`), `registerKeyplexMetrics()` of `keyplex/prometheus`
 * (`prom-client`) and `simulatorHandlers()` of `keyplex/testing/msw` (`msw`).
 *
 * Only "this very package cannot be found" becomes this error: a peer that is
 * installed but fails to load (a file or dependency of its own missing, a
 * syntax error) throws its own error unchanged, which names the real fault.
 *
 * Each entry is bundled with its own copy of keyplex's errors, so
 * `instanceof MissingPeerError` is answered by the error's `code` (and
 * keyplex's marker), not by its prototype: it holds for an error thrown by
 * `keyplex/otel` and tested against the class imported from `keyplex`.
 *
 * ```ts
 * import { MissingPeerError } from 'keyplex';
 * import { instrument } from 'keyplex/otel';
 * try { instrument(manager); }
 * catch (err) { if (err instanceof MissingPeerError) console.warn(`tracing off: ${err.message}`); else throw err; }
 * ```
 */
export class MissingPeerError extends KeyplexError {
  /** The npm package that is missing, e.g. `@opentelemetry/api`. */
  readonly packageName: string;
  /** The keyplex entry point that needs it, e.g. `keyplex/otel`. */
  readonly entry: string;
  /** What installs it: `npm install <packageName>`. */
  readonly installCommand: string;
  /**
   * @param use.needs what needs the package, e.g. `instrument()`.
   * @param use.otherwise another way out, added to the message (e.g. passing a client of one's own).
   */
  constructor(packageName: string, use: { entry: string; needs: string; otherwise?: string | undefined }, options: { cause?: unknown } = {}) {
    const installCommand = `npm install ${packageName}`;
    const otherwise = use.otherwise === undefined ? '' : `, or ${use.otherwise}`;
    super(
      'missing_peer',
      `${use.entry}: ${use.needs} needs the optional peer dependency '${packageName}', which is not installed. Run \`${installCommand}\`${otherwise}.`,
      options,
    );
    this.name = 'MissingPeerError';
    this.packageName = packageName;
    this.entry = use.entry;
    this.installCommand = installCommand;
  }

  /** Any keyplex error with code `missing_peer`, from whichever copy of keyplex's bundles threw it. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return KeyplexError.is(value) && value.code === 'missing_peer';
  }
}
