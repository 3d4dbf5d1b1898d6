/**
 * The entries that need an optional peer (`keyplex/redis`, `keyplex/otel`,
 * `keyplex/prometheus`, `keyplex/testing/msw`) without it, as a user who
 * installed keyplex alone meets them: the entry imports, and its first call
 * that needs the peer throws `MissingPeerError` (code `missing_peer`) naming
 * the package, the entry and `npm install <package>`, not Node's bare
 * "Cannot find package". A peer that is installed but broken is not reported
 * as missing: its own error comes through.
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { isKeyplexError, KeyManager, KeyplexError, MissingPeerError } from '../../src/index';
import { instrument } from '../../src/otel/index';
import { replacePeerRequire } from '../../src/peer';
import { registerKeyplexMetrics } from '../../src/prometheus/index';
import { RedisStore } from '../../src/store/redis/index';
import { ProviderSimulator } from '../../src/testing';
import { simulatorHandlers } from '../../src/testing/msw';
import { fakeKey } from '../support/fake-keys';
import { closeAfterEach } from '../support/scaffold';
import '../support/setup';

const PEERS = ['ioredis', '@opentelemetry/api', 'prom-client', 'msw'];

/** The package's entries, by their names in dist (tsup.config.ts), that the probe imports. */
const ENTRIES: Record<string, string> = {
  index: 'src/index.ts',
  testing: 'src/testing/index.ts',
  'testing-msw': 'src/testing/msw.ts',
  redis: 'src/store/redis/index.ts',
  otel: 'src/otel/index.ts',
  prometheus: 'src/prometheus/index.ts',
};

/** What each entry's first call should say: the entry, the call, the package, and what else would do. */
const EXPECTED = [
  { name: 'redis', entry: 'keyplex/redis', needs: 'RedisStore', packageName: 'ioredis', otherwise: ', or pass a client of your own as `new RedisStore({ client })`' },
  { name: 'otel', entry: 'keyplex/otel', needs: 'instrument()', packageName: '@opentelemetry/api', otherwise: '' },
  { name: 'prometheus', entry: 'keyplex/prometheus', needs: 'registerKeyplexMetrics()', packageName: 'prom-client', otherwise: '' },
  { name: 'testing-msw', entry: 'keyplex/testing/msw', needs: 'simulatorHandlers()', packageName: 'msw', otherwise: '' },
];

interface ProbeError {
  name?: string;
  code?: string;
  message?: string;
  packageName?: string;
  entry?: string;
  installCommand?: string;
  instanceOfMain: boolean;
  isKeyplexError: boolean;
}

describe('each entry built without its optional peer, run by Node', () => {
  let dir: string;
  let results: Record<string, { imported: boolean; error: ProbeError | null }>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'keyplex-peers-'));
    const from = createRequire(join(dir, 'probe.mjs'));
    for (const peer of PEERS) expect(() => from.resolve(peer), `${peer} must not be found from ${dir}`).toThrow();
    // One bundle per entry, as tsup builds them (splitting off): each carries its own copy of keyplex's errors.
    const entryPoints = Object.fromEntries(Object.entries(ENTRIES).map(([name, path]) => [name, resolve(path)]));
    await build({ entryPoints, bundle: true, platform: 'node', format: 'esm', target: 'node22', external: PEERS, outdir: dir, outExtension: { '.js': '.mjs' }, logLevel: 'error' });
    await copyFile(resolve('test/support/peer-probe.mjs'), join(dir, 'probe.mjs'));
    const { stdout } = await promisify(execFile)(process.execPath, [join(dir, 'probe.mjs')], { cwd: dir });
    results = JSON.parse(stdout) as typeof results;
  }, 60_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test.each(EXPECTED)('$entry imports without $packageName; $needs throws MissingPeerError saying `npm install $packageName`', ({ name, entry, needs, packageName, otherwise }) => {
    const result = results[name];
    expect(result?.imported).toBe(true);
    expect(result?.error).toMatchObject({ name: 'MissingPeerError', code: 'missing_peer', packageName, entry, installCommand: `npm install ${packageName}` });
    expect(result?.error?.message).toBe(`${entry}: ${needs} needs the optional peer dependency '${packageName}', which is not installed. Run \`npm install ${packageName}\`${otherwise}.`);
  });

  test("the entry's MissingPeerError is `instanceof` the class from the main entry (another bundle), and isKeyplexError(err, 'missing_peer')", () => {
    for (const { name } of EXPECTED) {
      expect(results[name]?.error).toMatchObject({ instanceOfMain: true, isKeyplexError: true });
    }
  });

  test("an entry's ConfigError (a bad option, checked before the peer is needed) is `instanceof` ConfigError and KeyplexError of the main entry, and no other class", () => {
    for (const name of ['redis options', 'prometheus options']) {
      expect(results[name]?.error, name).toEqual({ name: 'ConfigError', code: 'invalid_config', configErrorOfMain: true, keyplexErrorOfMain: true, missingPeerOfMain: false });
    }
  });

  test('required from CommonJS (`node -e`, which sets a global `__filename`), an entry still says what to install', async () => {
    const script = `const { instrument } = require(${JSON.stringify(join(dir, 'otel.mjs'))});
const { KeyManager } = require(${JSON.stringify(join(dir, 'index.mjs'))});
try { instrument(new KeyManager({ providers: { one: { baseURL: 'https://api.one.test/v1', keys: ['fake-probe-000000000003'] } } })); }
catch (error) { process.stdout.write(JSON.stringify({ code: error.code, message: error.message })); }
process.exit(0);`;
    const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], { cwd: dir });
    expect(JSON.parse(stdout)).toEqual({ code: 'missing_peer', message: expect.stringContaining('Run `npm install @opentelemetry/api`') });
  });

});

describe('a peer that is installed but fails to load is not reported as missing', () => {
  afterEach(() => replacePeerRequire(undefined));
  const managers = closeAfterEach();

  function managerForTest(): KeyManager {
    const manager = new KeyManager({ providers: { one: { baseURL: 'https://api.one.test/v1', keys: [fakeKey('peer')] } } });
    managers.push(manager);
    return manager;
  }

  test("a dependency of the peer missing (Node's MODULE_NOT_FOUND naming another module) comes through unchanged", () => {
    const inner = Object.assign(new Error("Cannot find module 'denque'\nRequire stack:\n- /app/node_modules/ioredis/built/index.js"), { code: 'MODULE_NOT_FOUND' });
    replacePeerRequire(() => {
      throw inner;
    });
    expect(() => new RedisStore({ url: 'redis://127.0.0.1:1' })).toThrow(inner);
    expect(() => instrument(managerForTest())).toThrow(inner);
  });

  test('a file of the peer itself missing, or the peer throwing while it loads, comes through unchanged', () => {
    const brokenMain = Object.assign(new Error("Cannot find module '/app/node_modules/prom-client/index.js'. Please verify that the package.json has a valid \"main\" entry"), {
      code: 'MODULE_NOT_FOUND',
    });
    replacePeerRequire(() => {
      throw brokenMain;
    });
    expect(() => registerKeyplexMetrics(managerForTest())).toThrow(brokenMain);
    const syntax = new SyntaxError('Unexpected token');
    replacePeerRequire(() => {
      throw syntax;
    });
    expect(() => simulatorHandlers(new ProviderSimulator({ providers: [{ id: 'a', keys: [fakeKey('sim')], models: ['gpt-4.1'] }] }))).toThrow(syntax);
  });

  test("only the peer itself not found, as require or import says it, is MissingPeerError, with Node's error as its cause", () => {
    for (const message of ["Cannot find module 'prom-client'\nRequire stack:\n- /app/x.js", "Cannot find package 'prom-client' imported from /app/x.mjs"]) {
      const notFound = Object.assign(new Error(message), { code: message.includes('package') ? 'ERR_MODULE_NOT_FOUND' : 'MODULE_NOT_FOUND' });
      replacePeerRequire(() => {
        throw notFound;
      });
      const error = (() => {
        try {
          registerKeyplexMetrics(managerForTest());
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(MissingPeerError);
      expect(error).toBeInstanceOf(KeyplexError);
      expect(isKeyplexError(error, 'missing_peer')).toBe(true);
      expect((error as MissingPeerError).cause).toBe(notFound);
    }
  });
});
