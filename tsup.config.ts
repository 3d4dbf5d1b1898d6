import { defineConfig } from 'tsup';

const shared = { target: 'node22', platform: 'node', splitting: false, treeshake: true, sourcemap: true } as const;

export default defineConfig([
  {
    ...shared,
    entry: { index: 'src/index.ts', testing: 'src/testing/index.ts', 'testing-msw': 'src/testing/msw.ts', redis: 'src/store/redis/index.ts', otel: 'src/otel/index.ts', prometheus: 'src/prometheus/index.ts' },
    format: ['esm', 'cjs'],
    dts: true,
    clean: true,
  },
  {
    // The offline demo, as the `keyplex-demo` command.
    ...shared,
    entry: { demo: 'src/demo/cli.ts' },
    format: ['esm'],
    banner: { js: '#!/usr/bin/env node' },
  },
]);
