/**
 * `@opentelemetry/api`, loaded at the first `instrument()` rather than at
 * import (the shared peer loader, `src/peer.ts`): `keyplex/otel` imports
 * without it, and `instrument()` then throws a `MissingPeerError` saying to
 * install it. The api keeps its providers and context manager in a global
 * (`Symbol.for('opentelemetry.js.api.1')`), so this copy and the app's own
 * `import` see the same ones.
 */
import { loadPeer } from '../peer';

/** The parts of `@opentelemetry/api` keyplex uses. */
export type OtelApi = Pick<typeof import('@opentelemetry/api'), 'context' | 'metrics' | 'trace' | 'SpanKind' | 'SpanStatusCode' | 'ValueType'>;

/**
 * The `@opentelemetry/api` module.
 * @throws {MissingPeerError} when it is not installed.
 */
export function loadOtelApi(): OtelApi {
  return loadPeer<OtelApi>('@opentelemetry/api', { entry: 'keyplex/otel', needs: 'instrument()' });
}
