/**
 * Run by test/peers/missing-peers.test.ts as its own Node process, in a folder
 * that holds keyplex's entries bundled one by one (as the package builds them:
 * each with its own copy of keyplex's errors) with the optional peers left
 * out, and no node_modules above it: a user who installed keyplex without
 * them. Imports each entry, makes its first call, and prints one JSON line:
 * by entry, whether it imported and what the call threw.
 */
const { ConfigError, KeyManager, KeyplexError, MissingPeerError, isKeyplexError } = await import('./index.mjs');
const { ProviderSimulator } = await import('./testing.mjs');

const manager = new KeyManager({ providers: { one: { baseURL: 'https://api.one.test/v1', keys: ['fake-probe-000000000001'] } } });
const sim = new ProviderSimulator({ providers: [{ id: 'a', keys: ['fake-probe-000000000002'], models: ['gpt-4.1'] }] });

/** Each entry's first call that needs its peer. */
const calls = {
  redis: (entry) => new entry.RedisStore({ url: 'redis://127.0.0.1:1' }),
  otel: (entry) => entry.instrument(manager),
  prometheus: (entry) => entry.registerKeyplexMetrics(manager),
  'testing-msw': (entry) => entry.simulatorHandlers(sim),
};

function described(error) {
  return {
    name: error?.name,
    code: error?.code,
    message: error?.message,
    packageName: error?.packageName,
    entry: error?.entry,
    installCommand: error?.installCommand,
    // typeof: a keyplex without the class must fail the test's assertion, not crash the probe.
    instanceOfMain: typeof MissingPeerError === 'function' && error instanceof MissingPeerError,
    isKeyplexError: isKeyplexError(error, 'missing_peer'),
  };
}

/** Each entry's option check, which throws before the peer is needed: a ConfigError of the entry's own copy. */
const badOptions = {
  redis: (entry) => new entry.RedisStore({ failMode: 'sometimes' }),
  prometheus: (entry) => entry.registerKeyplexMetrics(manager, { prefix: '9bad' }),
};

const results = {};
for (const [name, call] of Object.entries(calls)) {
  let entry;
  try {
    entry = await import(`./${name}.mjs`);
  } catch (error) {
    results[name] = { imported: false, error: described(error) };
    continue;
  }
  try {
    call(entry);
    results[name] = { imported: true, error: null };
  } catch (error) {
    results[name] = { imported: true, error: described(error) };
  }
}
for (const [name, call] of Object.entries(badOptions)) {
  try {
    call(await import(`./${name}.mjs`));
    results[`${name} options`] = { imported: true, error: null };
  } catch (error) {
    results[`${name} options`] = {
      imported: true,
      error: { name: error?.name, code: error?.code, configErrorOfMain: error instanceof ConfigError, keyplexErrorOfMain: error instanceof KeyplexError, missingPeerOfMain: error instanceof MissingPeerError },
    };
  }
}
process.stdout.write(`${JSON.stringify(results)}\n`);
process.exit(0);
