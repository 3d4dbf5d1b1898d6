/**
 * The Node.js versions keyplex supports, and what it says on an older one.
 *
 * keyplex is built and tested on Node >= 22.12 (`engines` in package.json):
 * the first 22.x where `require()` of ES modules is on by default, which
 * `require('keyplex')` needs (the package ships ES modules only, and its
 * dependency p-queue is ESM-only), and
 * the line the test suite, the benchmarks and CI run on. On an older Node it
 * does not refuse to run; it says so once per process.
 */

/** The oldest Node.js keyplex supports, as `[major, minor]`. */
export const NODE_FLOOR = [22, 12] as const;

/** The `code` of the process warning {@link warnIfOldNode} emits. */
export const NODE_VERSION_WARNING = 'KEYPLEX_NODE_VERSION';

let warned = false;

/** Whether `version` (`process.versions.node` form, e.g. `20.20.2`) is older than {@link NODE_FLOOR}. */
export function isOlderThanFloor(version: string): boolean {
  const [major = 0, minor = 0] = version.replace(/^v/, '').split('.').map(Number);
  return major < NODE_FLOOR[0] || (major === NODE_FLOOR[0] && minor < NODE_FLOOR[1]);
}

/**
 * Emits one process warning (code `KEYPLEX_NODE_VERSION`) the first time it is
 * called on a Node older than 22.12; does nothing on a supported Node or after
 * the first warning. Returns whether it warned. `version` is for tests.
 */
export function warnIfOldNode(version: string = process.versions.node): boolean {
  if (warned || !isOlderThanFloor(version)) return false;
  warned = true;
  process.emitWarning(
    `keyplex supports Node.js >= ${NODE_FLOOR.join('.')} and this is Node.js ${version}: it is not tested here and is not supported ` +
      `(require('keyplex') from CommonJS needs require() of ES modules, on by default only from Node 20.19 / 22.12). ` +
      `Upgrade Node.js to 22.12 or later; to silence this warning, run node with --disable-warning=${NODE_VERSION_WARNING}.`,
    { code: NODE_VERSION_WARNING, type: 'KeyplexWarning' },
  );
  return true;
}

/** Forgets that the warning was emitted (tests only). */
export function resetNodeWarningForTests(): void {
  warned = false;
}
