/**
 * A real `redis-server` for the Redis suites: started on a free loopback port
 * (no persistence), stopped, and started again on the same port.
 *
 * Where no `redis-server` binary exists the suites skip, and say so loudly;
 * with `KEYPLEX_REQUIRE_REDIS=1` (set by `.ci/run`) a missing binary fails them.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';

const REQUIRED = process.env.KEYPLEX_REQUIRE_REDIS === '1';

/** The `redis-server` binary: `$REDIS_SERVER`, else the first on PATH or in /usr/bin, /usr/sbin, /usr/local/bin. */
function findRedisServer(): string | undefined {
  const fromEnv = process.env.REDIS_SERVER;
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : undefined;
  const which = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  const found = which.status === 0 ? which.stdout.trim() : '';
  if (found) return found;
  return ['/usr/bin/redis-server', '/usr/sbin/redis-server', '/usr/local/bin/redis-server'].find((path) => existsSync(path));
}

export const REDIS_SERVER = findRedisServer();

/**
 * `timeoutMs` for a RedisStore in a test that is not about a slow Redis: far
 * above what Redis takes on a loaded machine. With the default 250 ms a
 * starved test process took a late answer for an outage, failed open and went
 * on on local state (a `store:error`, each manager admitting its own limit).
 */
export const PATIENT_REDIS_MS = 10_000;

/** Whether the Redis suites can run here. Logs a banner when they cannot; throws when they must. */
export function redisAvailable(suite: string): boolean {
  if (REDIS_SERVER !== undefined) return true;
  if (REQUIRED) throw new Error(`${suite}: KEYPLEX_REQUIRE_REDIS=1 but no redis-server binary was found (install Debian's redis-server, or set REDIS_SERVER).`);
  console.warn(
    `\n${'!'.repeat(78)}\n!! ${suite}: SKIPPED — no redis-server binary found (PATH, /usr/bin, /usr/sbin, $REDIS_SERVER).\n` +
      `!! Install it (apt-get install redis-server) to run the Redis suites; CI always runs them.\n${'!'.repeat(78)}\n`,
  );
  return false;
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

/** Answers true once something on `port` replies +PONG to PING. */
function pings(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

/** The process id of the `redis-server` at `url` (to SIGSTOP it: a hung server, connections open). */
export async function serverPid(url: string): Promise<number> {
  const admin = new Redis(url);
  const info = await admin.info('server');
  admin.disconnect();
  return Number(/process_id:(\d+)/.exec(info)?.[1]);
}

/** One `redis-server` process on loopback. */
export class RedisServer {
  readonly port: number;
  #process: ChildProcess | undefined;

  constructor(port: number) {
    this.port = port;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts a server on a free port (or `port`) and waits until it answers PING. */
  static async start(port?: number): Promise<RedisServer> {
    const server = new RedisServer(port ?? (await freePort()));
    await server.start();
    return server;
  }

  /** (Re)starts the server on its port. */
  async start(): Promise<void> {
    if (REDIS_SERVER === undefined) throw new Error('no redis-server binary');
    if (this.#process) return;
    const child = spawn(REDIS_SERVER, ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], {
      stdio: 'ignore',
    });
    this.#process = child;
    // A test process that ends without its afterAll (a worker torn down) must not leave a server behind.
    const orphaned = () => child.kill('SIGKILL');
    process.once('exit', orphaned);
    child.once('exit', () => {
      process.off('exit', orphaned);
      if (this.#process === child) this.#process = undefined;
    });
    // Waiting for another process to come up: real time is the only clock there is.
    for (let i = 0; i < 200; i++) {
      if (await pings(this.port)) return;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    throw new Error(`redis-server did not answer on port ${this.port}`);
  }

  /** Kills the server (SIGKILL: no goodbye to clients, as in a crash) and waits until it is gone. */
  async stop(): Promise<void> {
    const child = this.#process;
    if (!child) return;
    this.#process = undefined;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }
}

/** A test file's own redis-server: started before its tests, stopped after them. */
export interface SuiteRedis {
  /** False where the file's Redis suites skip (no binary, not required). */
  readonly available: boolean;
  /** The running server; only inside tests of an available suite. */
  readonly server: RedisServer;
}

/** Registers the file's `beforeAll`/`afterAll` for a redis-server when one is available (see {@link redisAvailable}). */
export function redisForSuite(suite: string): SuiteRedis {
  const available = redisAvailable(suite);
  let server: RedisServer | undefined;
  if (available) {
    beforeAll(async () => {
      server = await RedisServer.start();
    }, 20_000);
    afterAll(async () => {
      await server?.stop();
    });
  }
  return {
    available,
    get server(): RedisServer {
      if (server === undefined) throw new Error(`${suite}: no redis-server is running (the suite should have been skipped)`);
      return server;
    },
  };
}
