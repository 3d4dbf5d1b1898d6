/**
 * The in-process transport of the provider simulator: a `fetch` that hands
 * each request straight to {@link ProviderSimulator.handle}, with no HTTP and
 * no msw. Give it to keyplex as its `fetch` option (or to the SDK) for fast,
 * deterministic tests, fake timers included.
 */
import type { ProviderSimulator } from './simulator';

/** Requests being answered (see below). */
const live = new Set<Request>();

/** Rejects with the signal's reason once it aborts. */
function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

/**
 * A `fetch` serving every provider of `simulator` at its
 * {@link ProviderSimulator.baseURL}; other URLs answer 404. A `reset` fault
 * rejects like a dropped connection (`TypeError: fetch failed`); a `hang`
 * waits for the request's signal and rejects with its reason, as `fetch` does.
 *
 * @example
 * ```ts
 * const sim = new ProviderSimulator({ providers: [{ id: 'a', keys: ['fake-key-1'], models: ['gpt-4.1'] }] });
 * const manager = new KeyManager({ providers: { a: { baseURL: sim.baseURL('a'), keys: ['fake-key-1'] } }, fetch: simulatorFetch(sim) });
 * ```
 */
export function simulatorFetch(simulator: ProviderSimulator): typeof globalThis.fetch {
  const bases = simulator.providerIds().map((id) => ({ id, base: simulator.baseURL(id) }));
  return async (input, init) => {
    const request = new Request(input, init);
    const provider = bases.find(({ base }) => request.url === base || request.url.startsWith(`${base}/`));
    if (provider === undefined) {
      return new Response(JSON.stringify({ error: { message: `no simulated provider at ${new URL(request.url).origin}`, type: 'invalid_request_error', code: null, param: null } }), {
        status: 404,
        headers: { 'content-type': 'application/json' },
      });
    }
    // A Request follows the caller's signal through a weak reference to its own
    // controller: keep the Request reachable while it is answered, and wait for
    // a hang's end on the caller's signal itself, or a collected Request would
    // never see the abort (and a hung call would never end).
    const signal = init?.signal ?? request.signal;
    live.add(request);
    try {
      let answer;
      try {
        answer = await simulator.handle(provider.id, request);
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        throw new TypeError('fetch failed', { cause: error });
      }
      if (answer instanceof Response) return answer;
      if (answer.kind === 'hang') await aborted(signal);
      throw new TypeError('fetch failed', { cause: new Error('keyplex simulator: connection reset (injected fault)') });
    } finally {
      live.delete(request);
    }
  };
}
