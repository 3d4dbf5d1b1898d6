#!/usr/bin/env node
// The package as a consumer gets it: `npm pack`, then three throwaway
// TypeScript projects — moduleResolution node10, node16 and bundler — that
// install the tarball (with openai, msw, ioredis, @opentelemetry/api, prom-client and @types/node at the
// versions in this clone's node_modules, from npm's cache where it can: --prefer-offline) and
// typecheck a file importing every entry: keyplex, keyplex/testing,
// keyplex/testing/msw, keyplex/redis, keyplex/otel, keyplex/prometheus.
//
// Usage: node scripts/check-consumer.mjs [--keep]   (--keep leaves the temp dir)
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const keep = process.argv.includes('--keep');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const version = (name) => JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')).version;
const peers = ['openai', 'msw', 'ioredis', '@opentelemetry/api', 'prom-client', '@types/node'].map((name) => `${name}@${version(name)}`);

/** Uses every entry's main export, so that a missing or mistyped declaration fails the check. */
const USES = `
const manager = new KeyManager({ providers: { p: { baseURL: 'https://p.invalid/v1', keys: ['fake-consumer-key'] } } });
const client: OpenAI = manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex' }));
const simulator = new ProviderSimulator({ providers: [{ id: 'p', keys: ['fake-consumer-key'], models: ['gpt-4.1'] }] });
const store = new RedisStore({ url: 'redis://127.0.0.1:6379' });
const caught: boolean = KeyplexError.is(new Error('not ours'));
const telemetry = instrument(manager);
const metrics = registerKeyplexMetrics(manager);
export const used = [client, simulator, store, caught, manager.stats().totals.requests, telemetry, metrics.registry];
`;
const MSW = `
export const handlers: number = simulatorHandlers(simulator).length;
`;
const IMPORTS = `import { OpenAI } from 'openai';
import { KeyManager, KeyplexError } from 'keyplex';
import { ProviderSimulator } from 'keyplex/testing';
import { RedisStore } from 'keyplex/redis';
import { instrument } from 'keyplex/otel';
import { registerKeyplexMetrics } from 'keyplex/prometheus';
`;
const MSW_IMPORT = `import { simulatorHandlers } from 'keyplex/testing/msw';
`;
const ESM = IMPORTS + MSW_IMPORT + USES + MSW;

const strict = { strict: true, noEmit: true, skipLibCheck: false, types: ['node'], target: 'es2022', lib: ['es2023', 'dom'] };
const PROJECTS = [
  // Old-style resolution (no `exports`): the subpaths resolve through `typesVersions`. msw 3's own
  // declarations need node16 or bundler resolution, so declaration files are not checked here.
  { name: 'node10', type: 'commonjs', options: { module: 'commonjs', moduleResolution: 'node10', esModuleInterop: true, skipLibCheck: true }, files: { 'index.ts': ESM } },
  // Node's own resolution, from an ES module and from a CommonJS one. msw 3 is ESM-only, so
  // keyplex/testing/msw is for ES modules (or require() of ESM: Node >= 22.12, TypeScript's nodenext).
  { name: 'node16', type: 'module', options: { module: 'node16', moduleResolution: 'node16' }, files: { 'index.ts': ESM, 'legacy.cts': IMPORTS + USES } },
  { name: 'bundler', type: 'module', options: { module: 'esnext', moduleResolution: 'bundler' }, files: { 'index.ts': ESM } },
];

function run(command, args, cwd) {
  try {
    return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    process.stderr.write(`${error.stdout ?? ''}${error.stderr ?? ''}`);
    throw new Error(`${[command, ...args].join(' ')} failed in ${cwd}`);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'keyplex-consumer-'));
let failed = 0;
try {
  // `npm pack` runs `prepack`, which builds only if the sources changed.
  const tarball = JSON.parse(run(npm, ['pack', '--json', '--pack-destination', dir, '--loglevel=error'], root))[0].filename;
  console.log(`packed ${tarball}`);
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ name: 'keyplex-consumer-check', private: true }, null, 2)}\n`);
  // One install for the three projects (they are subfolders: resolution walks up to it), from the cache first.
  run(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', `./${tarball}`, ...peers], dir);
  console.log(`installed the tarball with ${peers.join(', ')}`);
  for (const project of PROJECTS) {
    const at = join(dir, project.name);
    mkdirSync(at);
    writeFileSync(join(at, 'package.json'), `${JSON.stringify({ name: `consumer-${project.name}`, private: true, type: project.type }, null, 2)}\n`);
    writeFileSync(join(at, 'tsconfig.json'), `${JSON.stringify({ compilerOptions: { ...strict, ...project.options }, include: Object.keys(project.files) }, null, 2)}\n`);
    for (const [file, text] of Object.entries(project.files)) writeFileSync(join(at, file), text);
    try {
      run(process.execPath, [tsc, '-p', at], at);
      console.log(`moduleResolution ${project.name}: ${Object.keys(project.files).join(', ')} typecheck`);
    } catch {
      failed++;
      console.error(`moduleResolution ${project.name}: FAILED (the compiler's output is above)`);
    }
  }
} finally {
  if (keep) console.log(`left in ${dir}: ${readdirSync(dir).join(', ')}`);
  else rmSync(dir, { recursive: true, force: true });
}
if (failed > 0) {
  console.error(`${failed} of ${PROJECTS.length} consumer projects failed to typecheck`);
  process.exit(1);
}
