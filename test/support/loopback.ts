/**
 * Real HTTP upstreams on loopback in the test process (for what msw cannot
 * show: a body's encoding breaking, a loop blocked with an answer in the
 * socket), and the managers over them, closed after each test.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach } from 'vitest';
import type { KeyManager } from '../../src/index';

export function loopbackSuite() {
  const servers: Server[] = [];
  const managers: KeyManager[] = [];
  afterEach(async () => {
    await Promise.all(managers.splice(0).map((m) => m.close()));
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      server.close();
    }
  });
  /** A server answering each request (its JSON body read) with `answer`; counts the requests. */
  async function upstream(answer: (res: ServerResponse, stream: boolean) => void): Promise<{ baseURL: string; requests: () => number }> {
    let requests = 0;
    const server = createServer((req, res) => {
      let text = '';
      req.on('data', (c: Buffer) => (text += c.toString()));
      req.on('end', () => {
        requests++;
        answer(res, (JSON.parse(text) as { stream?: boolean }).stream === true);
      });
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { baseURL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, requests: () => requests };
  }
  /** `manager`, closed after the test. */
  const managed = (manager: KeyManager): KeyManager => (managers.push(manager), manager);
  return { upstream, managed };
}
