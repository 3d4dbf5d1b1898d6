#!/usr/bin/env node
// The bootstrap behind `npm run demo`, `npm test`, `npm run bench` and
// `npm run example`: plain JavaScript that runs on any Node >= 18, so that a
// fresh clone works with the system Node, whatever its version.
//
//   1. Install: when node_modules is missing, or package-lock.json changed
//      since the last install (its content: a checkout or a new git worktree
//      that only touched the file installs nothing), `npm ci`, quietly. The `node` devDependency puts Node 22 in
//      node_modules/.bin: nothing is installed system-wide.
//   2. Build: only when the sources or the build configuration changed since
//      the last build (a hash of their contents, kept in
//      node_modules/.keyplex-build-hash), quietly;
//      tsup's output is shown only when it fails.
//   3. Run the task's command with node_modules/.bin first on PATH, so under
//      the project's Node 22. Arguments after the task name pass through.
//
// Usage: node scripts/ensure.mjs <demo|test|bench|example|build|install> [args...]
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const bin = join(root, 'node_modules', '.bin');
const FLOOR = [22, 12];
const BUILD_INPUTS = ['src', 'tsup.config.ts', 'tsconfig.json', 'package.json'];
const BUILD_HASH = join(root, 'node_modules', '.keyplex-build-hash');
const INSTALL_STAMP = join(root, 'node_modules', '.keyplex-installed');

/** What each task needs, and the command it runs. */
const TASKS = {
  install: { build: false, command: null },
  build: { build: true, command: null },
  demo: { build: true, command: ['node', 'dist/demo.js'] },
  test: { build: false, command: ['vitest', 'run'] },
  bench: { build: true, command: ['node', 'bench/run.ts'] },
  example: { build: true, command: ['node'] },
};

const env = { ...process.env, PATH: `${bin}${process.platform === 'win32' ? ';' : ':'}${process.env.PATH ?? ''}` };

function fail(message) {
  console.error(`keyplex: ${message}`);
  process.exit(1);
}

function mtime(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}

function olderThanFloor(version) {
  const [major, minor] = version.replace(/^v/, '').split('.').map(Number);
  return major < FLOOR[0] || (major === FLOOR[0] && minor < FLOOR[1]);
}

/** A hash of package-lock.json's content ('' without one). */
function lockHash() {
  const lock = join(root, 'package-lock.json');
  return existsSync(lock) ? createHash('sha256').update(readFileSync(lock)).digest('hex') : '';
}

/**
 * Installed with this very lockfile content (our stamp names it), else npm's own hidden lockfile, or our stamp,
 * whichever is newer, against package-lock.json: an install made by hand since it changed counts too.
 */
function needsInstall() {
  if (!existsSync(join(bin, process.platform === 'win32' ? 'node.cmd' : 'node'))) return true;
  const hash = lockHash();
  if (hash !== '' && existsSync(INSTALL_STAMP) && readFileSync(INSTALL_STAMP, 'utf8').includes(`lock ${hash}`)) return false;
  const installed = Math.max(mtime(INSTALL_STAMP), mtime(join(root, 'node_modules', '.package-lock.json')));
  if (installed < mtime(join(root, 'package-lock.json'))) return true;
  // Installed since the lockfile last changed (by hand, or before stamps named it): name it, so that a later touch
  // of the file alone (a checkout, a new worktree sharing this node_modules) installs nothing.
  if (hash !== '') writeFileSync(INSTALL_STAMP, `${new Date().toISOString()}\nlock ${hash}\n`);
  return false;
}

function install() {
  if (olderThanFloor(process.version)) {
    console.error(
      `keyplex: system Node ${process.version} is older than keyplex's floor ${FLOOR.join('.')}: installing dependencies and using Node 22 from the npm 'node' package in node_modules — nothing installed system-wide (npm's EBADENGINE warnings silenced)…`,
    );
  } else {
    console.error('keyplex: installing dependencies (npm ci)…');
  }
  const started = Date.now();
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const result = spawnSync(npm, ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: root, env: process.env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (result.status !== 0) {
    process.stderr.write(result.stdout ?? '');
    process.stderr.write(result.stderr ?? '');
    fail(`npm ci failed (exit ${result.status ?? result.signal}); the output is above.`);
  }
  writeFileSync(INSTALL_STAMP, `${new Date().toISOString()}\nlock ${lockHash()}\n`);
  const node = spawnSync(join(bin, 'node'), ['--version'], { encoding: 'utf8' }).stdout?.trim() ?? '?';
  console.error(`keyplex: installed in ${((Date.now() - started) / 1000).toFixed(0)} s; the project runs on Node ${node} from node_modules/.bin.`);
}

function* files(path) {
  const stat = statSync(path, { throwIfNoEntry: false });
  if (!stat) return;
  if (!stat.isDirectory()) {
    yield path;
    return;
  }
  for (const entry of readdirSync(path).sort()) yield* files(join(path, entry));
}

/** A hash of every build input's path and contents: robust to clones and checkouts that reset mtimes. */
function buildInputsHash() {
  const hash = createHash('sha256').update(`sourcemap=${process.env.KEYPLEX_SOURCEMAP ?? ''}\0`);
  for (const input of BUILD_INPUTS) {
    for (const file of files(join(root, input))) {
      hash.update(relative(root, file)).update('\0').update(readFileSync(file)).update('\0');
    }
  }
  return hash.digest('hex');
}

function buildIfChanged() {
  const hash = buildInputsHash();
  if (existsSync(join(root, 'dist', 'index.js')) && existsSync(BUILD_HASH) && readFileSync(BUILD_HASH, 'utf8').trim() === hash) return;
  const started = Date.now();
  process.stderr.write('keyplex: building dist/ (sources changed since the last build)…');
  const result = spawnSync('tsup', [], { cwd: root, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], shell: process.platform === 'win32' });
  if (result.status !== 0) {
    process.stderr.write('\n');
    process.stderr.write(result.stdout ?? '');
    process.stderr.write(result.stderr ?? '');
    fail(`the build failed (tsup exit ${result.status ?? result.signal}); its output is above.`);
  }
  mkdirSync(dirname(BUILD_HASH), { recursive: true });
  writeFileSync(BUILD_HASH, `${hash}\n`);
  process.stderr.write(` done in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
}

function run(command, args) {
  const child = spawn(command[0], [...command.slice(1), ...args], { cwd: root, env, stdio: 'inherit', shell: process.platform === 'win32' });
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  // The child gets the terminal's signals itself; a kill aimed at this process is passed on.
  for (const signal of signals) process.on(signal, () => child.kill(signal));
  child.on('error', (error) => fail(`could not start ${command[0]}: ${error.message}`));
  child.on('exit', (code, signal) => {
    if (!signal) process.exit(code ?? 1);
    for (const s of signals) process.removeAllListeners(s);
    process.kill(process.pid, signal);
  });
}

const [name, ...args] = process.argv.slice(2);
const task = TASKS[name];
if (!task) fail(`unknown task '${name ?? ''}': expected one of ${Object.keys(TASKS).join(', ')}`);
if (needsInstall()) install();
if (task.build) buildIfChanged();
if (task.command) run(task.command, args);
