/**
 * `keyplex/testing/msw`: the msw transport of the provider simulator. This
 * is the only module that uses `msw` (an optional peer dependency of
 * keyplex, needed only to serve the simulator through msw). msw is loaded by
 * the first `simulatorHandlers()`, not at import: without it that call throws
 * a `MissingPeerError` saying `npm install msw`.
 *
 * @packageDocumentation
 */
import type { HttpHandler } from 'msw';
import { loadPeer } from '../peer';
import type { ProviderSimulator } from './simulator';

/** An msw request handler, as returned by {@link simulatorHandlers}. */
export type SimulatorHttpHandler = HttpHandler;

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

/**
 * `response` with `transfer-encoding: chunked` when its body has no length.
 * msw writes a mocked response to an emulated socket: without chunked framing
 * a body that errors mid-way (an injected `stream_cut`) would reach the
 * client as a clean end of the body instead of an error.
 */
function chunked(response: Response): Response {
  if (response.body === null || response.headers.has('content-length') || response.headers.has('transfer-encoding')) return response;
  const headers = new Headers(response.headers);
  headers.set('transfer-encoding', 'chunked');
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

/**
 * msw handlers serving every provider of `simulator` at its
 * {@link ProviderSimulator.baseURL} (any method, any path under it).
 *
 * A `reset` fault becomes a network error (`HttpResponse.error()`); a
 * `hang` never answers until the request is aborted, and then fails as a
 * network error. A request aborted while the simulator waits out a latency
 * also ends as a network error.
 *
 * @example
 * ```ts
 * import { setupServer } from 'msw/node';
 * import { ProviderSimulator } from 'keyplex/testing';
 * import { simulatorHandlers } from 'keyplex/testing/msw';
 *
 * const server = setupServer(...simulatorHandlers(sim));
 * ```
 * @throws {MissingPeerError} (code `missing_peer`) when `msw` is not installed.
 */
export function simulatorHandlers(simulator: ProviderSimulator): SimulatorHttpHandler[] {
  const { http, HttpResponse } = loadPeer<Pick<typeof import('msw'), 'http' | 'HttpResponse'>>('msw', { entry: 'keyplex/testing/msw', needs: 'simulatorHandlers()' });
  return simulator.providerIds().map((id) =>
    http.all(`${simulator.baseURL(id)}/*`, async ({ request }) => {
      let answer;
      try {
        answer = await simulator.handle(id, request);
      } catch {
        return HttpResponse.error();
      }
      if (answer instanceof Response) return chunked(answer);
      if (answer.kind === 'hang') await aborted(request.signal);
      return HttpResponse.error();
    }),
  );
}

