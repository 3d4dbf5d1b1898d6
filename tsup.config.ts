import { defineConfig, type Options } from 'tsup';

// The package ships JavaScript with its whitespace and syntax minified but every
// name kept (a stack trace or a debugger still reads it), and no source maps
// (maps with the sources embedded were three quarters of the tarball): the
// tarball stays under 300 kB. For local debugging, `KEYPLEX_SOURCEMAP=1 npm run
// build` writes maps that point at src/.
const sourcemap = process.env.KEYPLEX_SOURCEMAP === '1';
const shared = {
  target: 'node22',
  platform: 'node',
  splitting: false,
  treeshake: true,
  sourcemap,
  esbuildOptions(options) {
    options.sourcesContent = false;
    // Minified lines broken at about this width: where Node prints the line an uncaught error was thrown from, a
    // user sees one short line, not 64 KB of code before the message (a bad option's ConfigError, say).
    options.lineLimit = 120;
  },
  minifyWhitespace: true,
  minifySyntax: true,
} as const satisfies Options;

/** The package's entries. */
const ENTRIES: Record<string, string> = { index: 'src/index.ts', testing: 'src/testing/index.ts', 'testing-msw': 'src/testing/msw.ts', redis: 'src/store/redis/index.ts', otel: 'src/otel/index.ts', prometheus: 'src/prometheus/index.ts' };

/** The library's own entries, as the demo imports them: by the package's name, resolved by its `exports`. */
const SELF: Record<string, string> = { '../index': 'keyplex', '../testing/index': 'keyplex/testing' };

export default defineConfig([
  {
    // ES modules only: \`require('keyplex')\` loads them too (require(esm), Node >= 22.12, the
    // package's floor), so CommonJS users get the same single copy (no dual-package hazard)
    // and the tarball no second build.
    ...shared,
    entry: ENTRIES,
    format: ['esm'],
    dts: true,
    clean: true,
  },
  {
    // Declarations for \`require\` (.d.cts): TypeScript's node16 resolution types a CommonJS
    // importer by them (it would refuse an ES module's .d.ts there).
    ...shared,
    entry: ENTRIES,
    format: ['cjs'],
    dts: { only: true },
  },
  {
    // The offline demo, as the `keyplex-demo` command. It imports the library
    // through the package's own entries (self-reference), not a second copy.
    ...shared,
    entry: { demo: 'src/demo/cli.ts' },
    format: ['esm'],
    // A command, not a library: fully minified (its sources are in the repository).
    minify: true,
    banner: { js: '#!/usr/bin/env node' },
    esbuildPlugins: [
      {
        name: 'keyplex-self-reference',
        setup(build) {
          build.onResolve({ filter: /^\.\.\/(index|testing\/index)$/ }, (args) => {
            const self = SELF[args.path];
            return self && /[\\/]src[\\/]demo$/.test(args.resolveDir) ? { path: self, external: true } : undefined;
          });
        },
      },
    ],
  },
]);
