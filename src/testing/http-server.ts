/**
 * The loopback HTTP transport of the provider simulator: a node:http server
 * on 127.0.0.1 serving every provider under `/<id>/v1`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';

/**
 * What the server needs of a simulator: the `ProviderSimulator` has it.
 * Structural, so that this file does not import `simulator.ts`, which starts
 * servers from here (no import cycle).
 */
export interface ServedSimulator {
  providerIds(): string[];
  baseURL(providerId: string): string;
  /** The answer: a Response, or a transport action (`reset` drops the connection, others hold it). */
  handle(providerId: string, request: Request): Promise<Response | { readonly kind: string }>;
}

/** A running loopback server of a {@link ServedSimulator}. */
export interface SimulatorServer {
  /** The server's origin, e.g. `http://127.0.0.1:53123`. */
  url: string;
  /**
   * A provider's base URL on this server, `<url>/<id>/v1`: give it to the
   * SDK as `baseURL`.
   * @throws RangeError for an unknown provider.
   */
  baseURL(providerId: string): string;
  /** Stops the server and ends every connection, idle, active or hung. Safe to call twice. */
  close(): Promise<void>;
}

/** Request headers that describe the connection, not the request. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer', 'host', 'content-length', 'expect']);

function notFound(res: ServerResponse, method: string, path: string): void {
  const body = JSON.stringify({ error: { message: `Invalid URL (${method} ${path})`, type: 'invalid_request_error', param: null, code: null } });
  res.writeHead(404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

async function serve(simulator: ServedSimulator, origin: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const socket: Socket = req.socket;
  const method = req.method ?? 'GET';
  const target = new URL(req.url ?? '/', origin);
  const match = /^\/([^/]+)\/v1(?:\/|$)/.exec(target.pathname);
  const providerId = match?.[1];
  if (providerId === undefined || !simulator.providerIds().includes(providerId)) {
    req.resume();
    notFound(res, method, target.pathname);
    return;
  }

  // The client going away (socket closed before the answer ended) aborts the request.
  const gone = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) gone.abort(new DOMException('The client closed the connection', 'AbortError'));
  });

  let body: Buffer | undefined;
  if (method !== 'GET' && method !== 'HEAD') {
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of req) chunks.push(chunk as Buffer);
    } catch {
      socket.destroy();
      return;
    }
    body = Buffer.concat(chunks);
  }

  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || HOP_BY_HOP.has(name)) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  const request = new Request(target, { method, headers, body, signal: gone.signal });

  let answer;
  try {
    answer = await simulator.handle(providerId, request);
  } catch {
    socket.destroy();
    return;
  }
  if (!(answer instanceof Response)) {
    // reset: drop the connection; hang: hold it until the client goes away or close().
    if (answer.kind === 'reset') socket.destroy();
    return;
  }

  const out: Record<string, string> = {};
  answer.headers.forEach((value, name) => {
    out[name] = value;
  });
  res.writeHead(answer.status, out);
  if (answer.body === null) {
    res.end();
    return;
  }
  try {
    // Backpressure: pipeline only pulls from the web stream when the socket drains.
    await pipeline(Readable.fromWeb(answer.body as NodeReadableStream<Uint8Array>), res);
  } catch {
    // The body errored (e.g. an injected stream cut) or the client left: end the connection mid-body.
    socket.destroy();
  }
}

/** Starts a loopback server for `simulator` (see `ProviderSimulator.listen`). */
export function listenSimulator(simulator: ServedSimulator, port: number): Promise<SimulatorServer> {
  return new Promise((resolve, reject) => {
    let origin = '';
    const server = createServer((req, res) => {
      serve(simulator, origin, req, res).catch(() => req.socket.destroy());
    });
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      const { port: actual } = server.address() as AddressInfo;
      origin = `http://127.0.0.1:${actual}`;
      let closing: Promise<void> | undefined;
      resolve({
        url: origin,
        baseURL(providerId: string): string {
          simulator.baseURL(providerId); // throws for an unknown provider
          return `${origin}/${providerId}/v1`;
        },
        close(): Promise<void> {
          closing ??= new Promise<void>((done, fail) => {
            server.close((error) => (error ? fail(error) : done()));
            server.closeAllConnections();
          });
          return closing;
        },
      });
    });
  });
}
