/**
 * Loads an optional peer dependency (`ioredis`, `@opentelemetry/api`,
 * `prom-client`, `msw`) at the first call that needs it rather than at import:
 * the entry that uses it then imports without it, and that call throws a
 * {@link MissingPeerError} saying what to install instead of Node's bare
 * "Cannot find package". Entries import only the peer's types statically
 * (`import type`, gone from the build).
 *
 * The peer is loaded with `require`, which is synchronous (the calls that need
 * a peer return at once) and, on Node ≥ 22.12, loads an ES-module-only peer
 * too (msw 3). `require` and the app's `import` get the same module where the
 * peer has a single build (prom-client, msw 3, and `@opentelemetry/api`,
 * whose providers live in a global besides). msw 2 has two builds: `require`
 * gives its CommonJS one, whose handlers msw's `setupServer` accepts as it
 * tells handlers by a field they carry, not by their class.
 */
import { createRequire } from 'node:module';
import { MissingPeerError } from './errors';

/** Loads a package by name, as `require` does. */
export type PeerRequire = (id: string) => unknown;

/** Who needs the peer, for the error's message. */
export interface PeerUse {
  /** The keyplex entry, e.g. `keyplex/otel`. */
  entry: string;
  /** What needs it, e.g. `instrument()`. */
  needs: string;
  /** Another way out, e.g. passing a client of one's own. */
  otherwise?: string;
}

let nativeRequire: PeerRequire | undefined;
let replaced: PeerRequire | undefined;

/**
 * A `require` next to this module, made once: from `import.meta.url` (the
 * package's ES modules), else `__filename` (this code bundled into CommonJS,
 * where `import.meta` is empty). `import.meta.url` first: a global
 * `__filename` (`node -e` sets one, `'[eval]'`) must not be taken for this
 * module's.
 */
function localRequire(): PeerRequire {
  nativeRequire ??= createRequire(typeof import.meta.url === 'string' ? import.meta.url : __filename);
  return nativeRequire;
}

/**
 * Internal, for tests: loads peers with `load` instead of Node's `require`
 * (e.g. one that throws Node's MODULE_NOT_FOUND error); `undefined` restores
 * `require`. Not exported by any entry.
 */
export function replacePeerRequire(load: PeerRequire | undefined): void {
  replaced = load;
}

/**
 * Whether `error` says that `packageName` itself cannot be found, as Node's
 * `require` (`MODULE_NOT_FOUND`, "Cannot find module 'x'") and `import`
 * (`ERR_MODULE_NOT_FOUND`, "Cannot find package 'x'") say it. A package found
 * but missing a file or a dependency of its own names that other module: false.
 */
export function isMissingPackage(error: unknown, packageName: string): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if ((code !== 'MODULE_NOT_FOUND' && code !== 'ERR_MODULE_NOT_FOUND') || typeof message !== 'string') return false;
  return message.startsWith(`Cannot find module '${packageName}'`) || message.startsWith(`Cannot find package '${packageName}'`);
}

/**
 * The peer `packageName`'s module.
 * @param load how to load it; default Node's `require` (or the test's, see {@link replacePeerRequire}).
 * @throws {MissingPeerError} when the package is not installed (the original error is its `cause`).
 * @throws the peer's own error, unchanged, when it is installed but fails to load.
 */
export function loadPeer<T>(packageName: string, use: PeerUse, load?: PeerRequire): T {
  try {
    return (load ?? replaced ?? localRequire())(packageName) as T;
  } catch (error) {
    if (isMissingPackage(error, packageName)) throw new MissingPeerError(packageName, use, { cause: error });
    throw error;
  }
}
