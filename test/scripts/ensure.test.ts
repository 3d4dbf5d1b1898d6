/**
 * scripts/ensure.mjs's install step, run as `npm test` runs it, on a copy in a
 * temporary folder with a stand-in `npm` on PATH that records its calls (no
 * real install). It installs when package-lock.json's content changed, not
 * when the file was only touched (a `git checkout` there and back, a new git
 * worktree): the README says later runs skip the install "unless
 * package-lock.json … changed".
 */
import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, test } from 'vitest';

const folders: string[] = [];
afterEach(() => {
  for (const dir of folders.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A project folder with ensure.mjs, a lockfile, a Node in node_modules/.bin and a recording `npm` first on PATH. */
function project(lock: string) {
  const root = mkdtempSync(join(tmpdir(), 'keyplex-ensure-'));
  folders.push(root);
  mkdirSync(join(root, 'scripts'));
  copyFileSync(resolve('scripts/ensure.mjs'), join(root, 'scripts', 'ensure.mjs'));
  writeFileSync(join(root, 'package-lock.json'), lock);
  mkdirSync(join(root, 'node_modules', '.bin'), { recursive: true });
  mkdirSync(join(root, 'fake-bin'));
  for (const [file, script] of [
    [join(root, 'node_modules', '.bin', 'node'), '#!/bin/sh\necho v22.23.3\n'],
    [join(root, 'fake-bin', 'npm'), `#!/bin/sh\necho "$*" >> "${join(root, 'npm-calls')}"\n`],
  ] as const) {
    writeFileSync(file, script);
    chmodSync(file, 0o755);
  }
  const install = () =>
    promisify(execFile)(process.execPath, [join(root, 'scripts', 'ensure.mjs'), 'install'], { env: { ...process.env, PATH: `${join(root, 'fake-bin')}:${process.env.PATH ?? ''}` } });
  const npmCalls = () => (existsSync(join(root, 'npm-calls')) ? readFileSync(join(root, 'npm-calls'), 'utf8').trim().split('\n') : []);
  /** Sets a file's modification time, in seconds from now. */
  const touch = (file: string, secondsFromNow: number) => {
    const at = Date.now() / 1000 + secondsFromNow;
    utimesSync(join(root, file), at, at);
  };
  return { root, install, npmCalls, touch };
}

describe('scripts/ensure.mjs install', () => {
  test('a lockfile touched but not changed (a checkout, a new worktree) installs nothing again', async () => {
    const p = project('{"lockfileVersion":3,"a":1}\n');
    await p.install();
    expect(p.npmCalls()).toEqual([expect.stringMatching(/^ci /)]);

    p.touch('package-lock.json', 60);
    await p.install();

    expect(p.npmCalls()).toHaveLength(1);
  });

  test('a lockfile whose content changed installs again', async () => {
    const p = project('{"lockfileVersion":3,"a":1}\n');
    await p.install();

    writeFileSync(join(p.root, 'package-lock.json'), '{"lockfileVersion":3,"a":2}\n');
    p.touch('package-lock.json', 60);
    await p.install();

    expect(p.npmCalls()).toHaveLength(2);
  });

  test('an install made without it (npm ci by hand, newer than the lockfile) is kept, also once the lockfile is touched', async () => {
    const p = project('{"lockfileVersion":3,"a":1}\n');
    writeFileSync(join(p.root, 'node_modules', '.package-lock.json'), '{}');
    p.touch('package-lock.json', -60);

    await p.install();
    p.touch('package-lock.json', 60);
    await p.install();

    expect(p.npmCalls()).toEqual([]);
  });
});
