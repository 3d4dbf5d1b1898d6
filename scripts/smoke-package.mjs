// Loads the built package the way users do, by its name, through both
// `import` and `require`, and checks the public entry points are there.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const expected = ['KeyManager', 'keyplex', 'getKeyplexDetails', 'KeyplexError', 'ConfigError', 'KEYPLEX_BASE_URL', 'DEFAULT_PRICES'];

const esm = await import('keyplex');
const cjs = require('keyplex');
for (const [how, mod] of [['import', esm], ['require', cjs]]) {
  for (const name of expected) assert.ok(name in mod, `${how}('keyplex') lacks ${name}`);
  const manager = new mod.KeyManager({ providers: { p: { baseURL: 'https://p.invalid/v1', keys: ['fake-smoke-key'] } } });
  assert.equal(typeof manager.fetch, 'function');
  await manager.close();
  assert.throws(() => new mod.KeyManager({ providers: {} }), (err) => err instanceof mod.ConfigError && err.field === 'providers');
  console.log(`${how}('keyplex'): ok`);
}
