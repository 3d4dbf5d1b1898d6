/**
 * `keyplex/testing`: a deterministic simulator of OpenAI-compatible
 * providers, to test a client's resilience (key rotation, rate limits,
 * fail-over, streaming errors, cost accounting) offline.
 *
 * Serve it in-process with `simulatorFetch(sim)` (a `fetch` for keyplex's
 * `fetch` option), on a loopback port with `sim.listen()`, or through msw with
 * `simulatorHandlers(sim)` from `keyplex/testing/msw` (needs the optional
 * peer dependency `msw`).
 *
 * @packageDocumentation
 */
export { ProviderSimulator } from './simulator';
export { simulatorFetch } from './fetch';
export type {
  SimulatorOptions,
  SimProviderOptions,
  SimModelOptions,
  SimKeyOptions,
  LatencyOptions,
  FaultKind,
  FaultOptions,
  KeyTally,
  ProviderTally,
  SimResponse,
  SimTransportAction,
} from './simulator';
export type { SimulatorServer } from './http-server';
export { formatDuration } from './rate-window';
