// Loads the built package the way users do, by its name, through both
// `import` and `require` (the same ES modules: require(esm), Node >= 22.12),
// and checks the public entry points are there and are one copy.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const expected = ['KeyManager', 'keyplex', 'getKeyplexDetails', 'KeyplexError', 'ConfigError', 'KEYPLEX_BASE_URL', 'DEFAULT_PRICES'];

const esm = await import('keyplex');
const cjs = require('keyplex');
// One copy for both: an error class or a manager made through one is the other's.
assert.equal(cjs.KeyManager, esm.KeyManager, "require('keyplex') and import('keyplex') are one module");
for (const [how, mod] of [['import', esm], ['require', cjs]]) {
  for (const name of expected) assert.ok(name in mod, `${how}('keyplex') lacks ${name}`);
  const manager = new mod.KeyManager({ providers: { p: { baseURL: 'https://p.invalid/v1', keys: ['fake-smoke-key'] } } });
  assert.equal(typeof manager.fetch, 'function');
  await manager.close();
  assert.throws(() => new mod.KeyManager({ providers: {} }), (err) => err instanceof mod.ConfigError && err.field === 'providers');
  console.log(`${how}('keyplex'): ok`);
}

// keyplex/redis, with ioredis (an optional peer) installed: both ways, and usable as a manager's store.
const redisEsm = await import('keyplex/redis');
const redisCjs = require('keyplex/redis');
for (const [how, mod, core] of [['import', redisEsm, esm], ['require', redisCjs, cjs]]) {
  assert.equal(typeof mod.RedisStore, 'function', `${how}('keyplex/redis') lacks RedisStore`);
  // Nothing listens on port 1: the store reports it and serves on local state (fail-open).
  const store = new mod.RedisStore({ url: 'redis://127.0.0.1:1', retryMs: 10_000 });
  const manager = new core.KeyManager({ providers: { p: { baseURL: 'https://p.invalid/v1', keys: ['fake-smoke-key'] } }, store });
  await manager.close();
  await store.close();
  console.log(`${how}('keyplex/redis'): ok`);
}

// keyplex/otel and keyplex/prometheus, with their optional peers installed: both ways, on a manager of either copy.
const { Registry } = require('prom-client');
for (const [how, otel, prom, core] of [
  ['import', await import('keyplex/otel'), await import('keyplex/prometheus'), esm],
  ['require', require('keyplex/otel'), require('keyplex/prometheus'), cjs],
]) {
  const manager = new core.KeyManager({ providers: { p: { baseURL: 'https://p.invalid/v1', keys: ['fake-smoke-key'] } } });
  otel.instrument(manager).close();
  const metrics = prom.registerKeyplexMetrics(manager, { registry: new Registry() });
  assert.match(await metrics.registry.metrics(), /keyplex_keys\{provider="p",status="active"\} 1/);
  metrics.close();
  await manager.close();
  console.log(`${how}('keyplex/otel'), ${how}('keyplex/prometheus'): ok`);
}

// keyplex/redis without ioredis installed: it imports, and a RedisStore that must make its own
// client says what to install, both ways. The entry files alone, where no ioredis can be found.
{
  const { cpSync, mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'keyplex-no-ioredis-'));
  try {
    for (const file of readdirSync(new URL('../dist/', import.meta.url))) {
      if (file.endsWith('.js')) cpSync(new URL(`../dist/${file}`, import.meta.url), join(dir, file));
    }
    writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
    const friendly = (err) => /ioredis.*npm install ioredis/.test(err.message);
    const esmStore = await import(join(dir, 'redis.js'));
    assert.throws(() => new esmStore.RedisStore({ url: 'redis://127.0.0.1:1' }), friendly, 'import: keyplex/redis without ioredis');
    const cjsStore = require(join(dir, 'redis.js'));
    assert.throws(() => new cjsStore.RedisStore({ url: 'redis://127.0.0.1:1' }), friendly, 'require: keyplex/redis without ioredis');
    console.log('keyplex/redis without ioredis: imports, and new RedisStore() says to install it');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
