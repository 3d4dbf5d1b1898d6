/**
 * `keyplex/otel`: OpenTelemetry traces and metrics of a KeyManager, following
 * the GenAI semantic conventions. Needs `@opentelemetry/api` (an optional peer
 * dependency, loaded by the first `instrument()`: without it that call throws
 * a `MissingPeerError` saying `npm install @opentelemetry/api`); no SDK is
 * bundled: the application's tracer and meter providers (or the global ones)
 * receive everything.
 *
 * ```ts
 * import { instrument } from 'keyplex/otel';
 * const otel = instrument(manager); // global providers, or { tracerProvider, meterProvider }
 * // … on shutdown
 * otel.close();
 * ```
 *
 * Never recorded: keys (only key ids), prompts, completions, request or
 * reply bodies, error messages from upstream (only codes and statuses).
 */
import type { MeterProvider, TracerProvider } from '@opentelemetry/api';
import { describeType } from '../config/check';
import { ConfigError } from '../errors';
import type { RequestEvent } from '../events';
import { ModelLabels, operationName, providerInfo } from '../telemetry/labels';
import { checkAdapterArgs, listen, type ObservedManager } from '../telemetry/state';
import { loadOtelApi } from './api';
import { Metrics } from './metrics';
import { RequestSpans, type OpenRequest } from './spans';

export { knownModels, type ModelSource } from '../telemetry/labels';
export type { ObservedManager } from '../telemetry/state';

/** Options of {@link instrument}. Every one has a default. */
export interface InstrumentOptions {
  /** Where spans go. Default: the global tracer provider (`trace.getTracerProvider()`). `false`: no spans. */
  tracerProvider?: TracerProvider | false;
  /** Where metrics go. Default: the global meter provider (`metrics.getMeterProvider()`). `false`: no metrics. */
  meterProvider?: MeterProvider | false;
  /**
   * `gen_ai.provider.name` by keyplex provider id. Default: the conventions'
   * name of the provider's host (`api.openai.com` → `openai`,
   * `api.anthropic.com` → `anthropic`, `generativelanguage.googleapis.com` →
   * `gcp.gemini`, `api.deepseek.com` → `deepseek`…), else the provider id.
   */
  providerNames?: Record<string, string>;
  /**
   * Model names that are always their own metric attribute value, e.g.
   * `knownModels(options)` of the manager's options. Spans always carry the
   * exact model names.
   */
  models?: Iterable<string>;
  /**
   * How many other model names (asked for by callers, not in `models`) become
   * metric attribute values before the rest read `_OTHER`. Default 50.
   */
  maxModels?: number;
  /** Also set the older `gen_ai.system` (conventions up to v1.36) beside `gen_ai.provider.name`. Default false. */
  legacySystemAttribute?: boolean;
}

/** A running instrumentation. */
export interface Instrumentation {
  /** Stops listening, ends the spans of requests still open, and removes the gauges' callback. Idempotent. */
  close(): void;
}

/** The instrumentation scope's name. */
export const INSTRUMENTATION_NAME = 'keyplex';

function checkOptions(manager: unknown, options: InstrumentOptions): number {
  checkAdapterArgs(manager, options, ['tracerProvider', 'meterProvider', 'providerNames', 'models', 'maxModels', 'legacySystemAttribute'], 'instrument()');
  for (const [field, method] of [['tracerProvider', 'getTracer'], ['meterProvider', 'getMeter']] as const) {
    const provider: unknown = options[field];
    if (provider !== undefined && provider !== false && typeof (provider as Record<string, unknown> | null)?.[method] !== 'function') {
      throw new ConfigError(field, `expected an OpenTelemetry ${field} (with ${method}()), or false for none; got ${describeType(provider)}`);
    }
  }
  const max = options.maxModels ?? 50;
  if (!Number.isInteger(max) || max < 0) {
    throw new ConfigError('maxModels', `expected a whole number ≥ 0 of model names kept as metric attributes; got ${String(max)}`);
  }
  return max;
}

/**
 * Traces and measures every request of `manager`: one CLIENT span per
 * request (`chat gpt-4.1`) with a child span per attempt, and the GenAI
 * client metrics plus keyplex's state as observable gauges.
 * @throws ConfigError for a malformed option.
 * @throws {MissingPeerError} (code `missing_peer`) when `@opentelemetry/api` is not installed.
 */
export function instrument(manager: ObservedManager, options: InstrumentOptions = {}): Instrumentation {
  const maxModels = checkOptions(manager, options);
  const api = loadOtelApi();
  const { trace, metrics } = api;
  const providers = providerInfo(manager.toJSON().providers, options.providerNames);
  const tracerProvider = options.tracerProvider === undefined ? trace.getTracerProvider() : options.tracerProvider;
  const meterProvider = options.meterProvider === undefined ? metrics.getMeterProvider() : options.meterProvider;
  const spans = tracerProvider ? new RequestSpans(api, tracerProvider.getTracer(INSTRUMENTATION_NAME), providers, options.legacySystemAttribute ?? false) : undefined;
  const meters = meterProvider
    ? new Metrics(api, meterProvider.getMeter(INSTRUMENTATION_NAME), manager, providers, new ModelLabels(options.models ?? [], maxModels, '_OTHER'))
    : undefined;
  const open = new Map<string, OpenRequest>();

  const onRequest = (e: RequestEvent) => {
    const operation = operationName(e.path);
    open.set(e.requestId, { operation, span: spans?.start(e, operation, open.size), attempt: undefined, attemptNumber: 0, failover: undefined });
  };
  const stop = listen(manager, {
    request: onRequest,
    attempt: (e) => {
      const r = open.get(e.requestId);
      if (r) spans?.attempt(r, e);
    },
    retry: (e) => {
      const r = open.get(e.requestId);
      if (r) spans?.retry(r, e);
      meters?.retry(e);
    },
    failover: (e) => {
      const r = open.get(e.requestId);
      if (r) spans?.failover(r, e);
      meters?.failover(e);
    },
    success: (e) => {
      const r = open.get(e.requestId);
      open.delete(e.requestId);
      if (r) spans?.success(r, e);
      meters?.success(r?.operation ?? 'chat', e);
    },
    failure: (e) => {
      const r = open.get(e.requestId);
      open.delete(e.requestId);
      if (r) spans?.failure(r, e);
      meters?.failure(r?.operation ?? 'chat', e);
    },
    // A request answered from the response cache: no attempt, its span ends here.
    'cache:hit': (e) => {
      const r = open.get(e.requestId);
      open.delete(e.requestId);
      r?.span?.setAttribute('keyplex.cache', 'hit');
      r?.span?.end();
    },
    'background:settled': (e) => meters?.background(e),
    'lane:rejected': (e) => meters?.rejected(e),
    'key:cooldown': (e) => meters?.cooldown(e),
    'key:disabled': (e) => meters?.disabled(e),
  });

  let closed = false;
  return {
    close() {
      if (closed) return;
      closed = true;
      stop();
      for (const r of open.values()) spans?.abandon(r);
      open.clear();
      meters?.close();
    },
  };
}
