import { defineConfig, type Options } from 'tsup';

// The package ships readable, unminified JavaScript and no source maps (maps
// with the sources embedded were three quarters of the tarball). For local
// debugging, `KEYPLEX_SOURCEMAP=1 npm run build` writes maps that point at src/.
const sourcemap = process.env.KEYPLEX_SOURCEMAP === '1';
const shared = {
  target: 'node22',
  platform: 'node',
  splitting: false,
  treeshake: true,
  sourcemap,
  esbuildOptions(options) {
    options.sourcesContent = false;
  },
} as const satisfies Options;

/**
 * `ioredis` is an optional peer, needed only by keyplex/redis. It is loaded
 * through a small module that, when ioredis is not installed, throws an error
 * saying so and what to run, instead of Node's bare "Cannot find package".
 * A static `import` cannot be caught in an ES module, and tsup's CommonJS
 * build is converted from the ES one (no top-level await), so both load it
 * with `createRequire(import.meta.url)` (ioredis is CommonJS; tsup shims
 * `import.meta.url` in the CommonJS build). Bundlers that do not follow
 * `createRequire` must be told to include ioredis.
 */
const IOREDIS_MISSING =
  "keyplex/redis needs ioredis, an optional peer dependency that is not installed here: run 'npm install ioredis' (version 5 or 6) in your project.";
const optionalIoredis: NonNullable<Options['esbuildPlugins']>[number] = {
  name: 'keyplex-optional-ioredis',
  setup(build) {
    build.onResolve({ filter: /^ioredis$/ }, () => ({ path: 'ioredis', namespace: 'optional-peer' }));
    build.onLoad({ filter: /^ioredis$/, namespace: 'optional-peer' }, () => ({
      loader: 'js',
      resolveDir: process.cwd(),
      contents: `import { createRequire } from 'node:module';
let ioredis;
try {
  ioredis = createRequire(import.meta.url)('ioredis');
} catch (error) {
  if (error && error.code === 'MODULE_NOT_FOUND' && String(error.message).includes("'ioredis'")) throw new Error(${JSON.stringify(IOREDIS_MISSING)}, { cause: error });
  throw error;
}
export const Redis = ioredis.Redis;
`,
    }));
  },
};

/** The library's own entries, as the demo imports them: by the package's name, resolved by its `exports`. */
const SELF: Record<string, string> = { '../index': 'keyplex', '../testing/index': 'keyplex/testing' };

export default defineConfig([
  {
    ...shared,
    entry: { index: 'src/index.ts', testing: 'src/testing/index.ts', 'testing-msw': 'src/testing/msw.ts', redis: 'src/store/redis/index.ts', otel: 'src/otel/index.ts', prometheus: 'src/prometheus/index.ts' },
    format: ['esm', 'cjs'],
    dts: true,
    clean: true,
    // Not tsup's plain external: the plugin below loads ioredis itself.
    noExternal: ['ioredis'],
    esbuildPlugins: [optionalIoredis],
  },
  {
    // The offline demo, as the `keyplex-demo` command. It imports the library
    // through the package's own entries (self-reference), not a second copy.
    ...shared,
    entry: { demo: 'src/demo/cli.ts' },
    format: ['esm'],
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
