/**
 * One CLIENT span per request, named `{gen_ai.operation.name} {gen_ai.request.model}`
 * as the GenAI conventions say, with one INTERNAL child span per attempt.
 *
 * Why child spans for attempts rather than span events: an attempt has a
 * duration (and the backoff between attempts shows as the gap between
 * them), its own outcome and status, and its own provider, key and server;
 * trace views draw child spans as a waterfall, while events are bare
 * timestamps that several backends cap or hide. The HTTP conventions model
 * resends the same way (one span per physical try). Attempts are INTERNAL
 * and carry no `gen_ai.operation.name`, so GenAI-aware backends count each
 * request's tokens once, on the request span. A fail-over is also an event
 * (`keyplex.failover`) on the request span.
 */
import type { Attributes, Span, Tracer } from '@opentelemetry/api';
import type { AttemptEvent, FailoverEvent, FailureEvent, RequestEvent, RetryEvent, SuccessEvent } from '../events';
import { secondsOf, type ProviderInfo } from '../telemetry/labels';
import { ATTR } from './attributes';
import type { OtelApi } from './api';

/** What is kept of a request between its events. */
export interface OpenRequest {
  operation: string;
  span: Span | undefined;
  /** The attempt span in flight, if any. */
  attempt: Span | undefined;
  attemptNumber: number;
  /** The fail-over that leads to the next attempt. */
  failover: FailoverEvent | undefined;
}

/** Requests followed at once at most; past it, new requests get no span (metrics go on). */
const MAX_OPEN_SPANS = 100_000;

export class RequestSpans {
  readonly #api: OtelApi;
  readonly #tracer: Tracer;
  readonly #providers: ReadonlyMap<string, ProviderInfo>;
  readonly #legacySystem: boolean;

  constructor(api: OtelApi, tracer: Tracer, providers: ReadonlyMap<string, ProviderInfo>, legacySystem: boolean) {
    this.#api = api;
    this.#tracer = tracer;
    this.#providers = providers;
    this.#legacySystem = legacySystem;
  }

  /** The request span, a child of the caller's active span; undefined past {@link MAX_OPEN_SPANS}. */
  start(e: RequestEvent, operation: string, open: number): Span | undefined {
    if (open >= MAX_OPEN_SPANS) return undefined;
    const attributes: Attributes = { [ATTR.operation]: operation, [ATTR.requestId]: e.requestId };
    if (e.model !== undefined) attributes[ATTR.requestModel] = e.model;
    if (e.stream) attributes[ATTR.requestStream] = true;
    if (e.tags.length > 0) attributes[ATTR.tags] = [...e.tags];
    // With one provider, who serves the request is known before it starts (the conventions want it at creation).
    if (this.#providers.size === 1) Object.assign(attributes, this.#providerAttributes([...this.#providers.keys()][0]!));
    const name = e.model === undefined ? operation : `${operation} ${e.model}`;
    return this.#tracer.startSpan(name, { kind: this.#api.SpanKind.CLIENT, attributes, startTime: Date.now() }, this.#api.context.active());
  }

  attempt(r: OpenRequest, e: AttemptEvent): void {
    if (!r.span) return;
    this.#endAttempt(r, { [ATTR.errorType]: 'superseded' }, true);
    const attributes: Attributes = {
      ...this.#providerAttributes(e.provider),
      [ATTR.attempt]: e.attempt,
      [ATTR.keyId]: e.keyId,
      [ATTR.strategy]: e.strategy,
      [ATTR.rank]: e.rank,
    };
    if (e.upstreamModel !== undefined) attributes[ATTR.upstreamModel] = e.upstreamModel;
    if (e.deploymentModel !== undefined) attributes[ATTR.deploymentModel] = e.deploymentModel;
    if (r.failover) {
      attributes[ATTR.failover] = true;
      attributes[ATTR.failoverFrom] = r.failover.from.provider;
      attributes[ATTR.failoverReason] = r.failover.reason;
      r.failover = undefined;
    }
    if (r.attemptNumber === 0) r.span.setAttributes(this.#providerAttributes(e.provider));
    r.attemptNumber = e.attempt;
    const { context, trace, SpanKind } = this.#api;
    const parent = trace.setSpan(context.active(), r.span);
    r.attempt = this.#tracer.startSpan(`keyplex.attempt ${e.provider}`, { kind: SpanKind.INTERNAL, attributes, startTime: Date.now() }, parent);
  }

  retry(r: OpenRequest, e: RetryEvent): void {
    const attributes: Attributes = { [ATTR.errorType]: e.reason, [ATTR.retryReason]: e.reason, [ATTR.retryDelayMs]: e.delayMs };
    if (e.status !== undefined) attributes[ATTR.httpStatus] = e.status;
    this.#endAttempt(r, attributes, true);
  }

  failover(r: OpenRequest, e: FailoverEvent): void {
    r.failover = e;
    r.span?.addEvent('keyplex.failover', {
      'keyplex.failover.from_provider': e.from.provider,
      'keyplex.failover.from_key_id': e.from.keyId,
      'keyplex.failover.to_provider': e.to.provider,
      'keyplex.failover.to_key_id': e.to.keyId,
      [ATTR.failoverReason]: e.reason,
      [ATTR.attempt]: e.attempt,
    });
  }

  success(r: OpenRequest, e: SuccessEvent): void {
    this.#endAttempt(r, {}, false);
    const span = r.span;
    if (!span) return;
    const attributes: Attributes = { ...this.#providerAttributes(e.provider), [ATTR.keyId]: e.keyId, [ATTR.attempts]: e.attempts };
    if (e.upstreamModel !== undefined) attributes[ATTR.responseModel] = e.upstreamModel;
    if (e.usage) {
      attributes[ATTR.inputTokens] = e.usage.inputTokens;
      attributes[ATTR.outputTokens] = e.usage.outputTokens;
      attributes[ATTR.cacheReadTokens] = e.usage.cachedInputTokens;
      attributes[ATTR.cacheWriteTokens] = e.usage.cacheWriteTokens;
      attributes[ATTR.reasoningTokens] = e.usage.reasoningTokens;
    }
    if (e.costUsd !== null) attributes[ATTR.costUsd] = e.costUsd;
    if (e.ttftMs !== undefined) attributes[ATTR.timeToFirstChunk] = secondsOf(e.ttftMs);
    span.setAttributes(attributes);
    span.end();
  }

  failure(r: OpenRequest, e: FailureEvent): void {
    const last = e.error.attempts.at(-1);
    if (r.attempt) {
      const outcome = e.error.attempts.find((a) => a.attempt === r.attemptNumber) ?? last;
      const attributes: Attributes = { [ATTR.errorType]: outcome && outcome.kind !== 'success' ? outcome.kind : e.error.code };
      if (outcome?.status !== undefined) attributes[ATTR.httpStatus] = outcome.status;
      this.#endAttempt(r, attributes, true);
    }
    const span = r.span;
    if (!span) return;
    const attributes: Attributes = { [ATTR.errorType]: e.error.code, [ATTR.attempts]: e.attempts };
    if (last) Object.assign(attributes, this.#providerAttributes(last.provider), { [ATTR.keyId]: last.keyId });
    if (e.error.status !== undefined) attributes[ATTR.httpStatus] = e.error.status;
    span.setAttributes(attributes);
    // The code only: an upstream message may quote the request.
    span.setStatus({ code: this.#api.SpanStatusCode.ERROR, message: `keyplex: ${e.error.code}` });
    span.end();
  }

  /** Ends what is open (the adapter is closing). */
  abandon(r: OpenRequest): void {
    this.#endAttempt(r, { [ATTR.errorType]: 'instrumentation_closed' }, true);
    r.span?.setAttribute(ATTR.errorType, 'instrumentation_closed');
    r.span?.end();
  }

  #endAttempt(r: OpenRequest, attributes: Attributes, failed: boolean): void {
    const span = r.attempt;
    if (!span) return;
    r.attempt = undefined;
    span.setAttributes(attributes);
    if (failed) span.setStatus({ code: this.#api.SpanStatusCode.ERROR, message: `keyplex: ${String(attributes[ATTR.errorType])}` });
    span.end();
  }

  #providerAttributes(provider: string): Attributes {
    const info = this.#providers.get(provider);
    const name = info?.name ?? provider;
    const attributes: Attributes = { [ATTR.provider]: name, [ATTR.keyplexProvider]: provider };
    if (this.#legacySystem) attributes[ATTR.system] = name;
    if (info?.address !== undefined) attributes[ATTR.serverAddress] = info.address;
    if (info?.port !== undefined) attributes[ATTR.serverPort] = info.port;
    return attributes;
  }
}
