/** The `providers` option: where each provider is, its keys, models and headers. */
import { ConfigError } from '../../errors';
import { checkBoolean, checkFields, describeType, isPlainObject, maybeNumber, own, prop, quote, RPM, safeName, secretIdProblem, setOwn, TPM } from '../check';
import { defaultScope, RATE_LIMIT_FIELDS, resolveRateLimits } from '../../resilience/rate-limit/options';
import type { KeyInput, ProviderOptions, ResolvedDeployment, ResolvedKey, ResolvedProvider } from '../options';
import { resolveKey } from './keys';
import { resolveModels } from './models';

const PROVIDER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** RFC 9110 `token`: what a header name may be made of. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const PROVIDER_FIELDS: readonly (keyof ProviderOptions)[] = ['baseURL', 'keys', 'models', 'serveAnyModel', 'headers', ...RATE_LIMIT_FIELDS];

/** Where a key was first seen, to report a duplicate without naming the key. */
interface KeySeen {
  provider: string;
  index: number;
  id: string;
}

/** The `providers` option, in the order the object lists them. */
export function resolveProviders(raw: unknown): ResolvedProvider[] {
  if (!isPlainObject(raw)) {
    throw new ConfigError('providers', `expected an object of providers by id, e.g. { openai: { baseURL, keys } }; got ${describeType(raw)}`);
  }
  const ids = Object.keys(raw);
  if (ids.length === 0) throw new ConfigError('providers', 'expected at least one provider; got an empty object');
  const seenKeys = new Map<string, KeySeen>();
  const providers = ids.map((id) => resolveProvider(id, own(raw, id), seenKeys));
  // An id is shown in events, stats and errors: it must not be a secret.
  for (const provider of providers) {
    provider.keys.forEach((key, index) => {
      if (seenKeys.has(key.id)) {
        throw new ConfigError(
          `${prop('providers', provider.id)}.keys[${index}].id`,
          'expected a label; got one of the configured keys. Ids appear in events, stats and errors: never use a key as an id',
        );
      }
    });
  }
  return providers;
}

function resolveProvider(id: string, raw: unknown, seenKeys: Map<string, KeySeen>): ResolvedProvider {
  const field = prop('providers', id);
  if (!PROVIDER_ID.test(id)) {
    throw new ConfigError(field, `expected a provider id of 1 to 64 characters from A-Z, a-z, 0-9 and _ . - that starts with a letter or digit; got ${safeName(id)}`);
  }
  const secret = secretIdProblem(id, 'a provider id');
  if (secret !== undefined) throw new ConfigError(field, secret);
  if (!isPlainObject(raw)) throw new ConfigError(field, `expected an object { baseURL, keys, models?, headers? }; got ${describeType(raw)}`);
  checkFields(raw, PROVIDER_FIELDS, field, 'provider field');
  const { baseURL, origin } = resolveBaseURL(own(raw, 'baseURL'), `${field}.baseURL`);
  const deployments = new Map<string, ResolvedDeployment>();
  const models = resolveModels(own(raw, 'models'), `${field}.models`, deployments);
  const keys = resolveKeys(id, raw, field, seenKeys);
  const rate = resolveRateLimits(raw, field);
  return {
    id,
    baseURL,
    origin,
    keys,
    models,
    anyModel: resolveAnyModel(own(raw, 'serveAnyModel'), models !== undefined, field),
    deployments,
    headers: resolveHeaders(own(raw, 'headers'), `${field}.headers`),
    rate: { ...rate, scope: rate.scope ?? defaultScope(baseURL) },
  };
}

/** What `serveAnyModel` (with or without `models`) makes the provider serve besides what it lists. */
function resolveAnyModel(raw: unknown, lists: boolean, field: string): ResolvedProvider['anyModel'] {
  const any = checkBoolean(raw, `${field}.serveAnyModel`, !lists);
  if (!any && !lists) {
    throw new ConfigError(`${field}.serveAnyModel`, 'expected true, or `models` listing what the provider serves; got false without `models`, which serves nothing');
  }
  return any ? (raw === true ? 'always' : 'unclaimed') : false;
}

function resolveKeys(id: string, raw: Record<string, unknown>, field: string, seenKeys: Map<string, KeySeen>): ResolvedKey[] {
  const keysField = `${field}.keys`;
  const rawKeys = own(raw, 'keys');
  if (!Array.isArray(rawKeys)) throw new ConfigError(keysField, `expected an array of keys; got ${describeType(rawKeys)}`);
  if (rawKeys.length === 0) throw new ConfigError(keysField, 'expected at least one key; got an empty array');
  const providerRpm = maybeNumber(own(raw, 'rpm'), `${field}.rpm`, RPM);
  const providerTpm = maybeNumber(own(raw, 'tpm'), `${field}.tpm`, TPM);
  const keys: ResolvedKey[] = [];
  const ids = new Map<string, number>();
  for (let index = 0; index < rawKeys.length; index++) {
    const keyField = `${keysField}[${index}]`;
    const rawKey: unknown = rawKeys[index];
    const key = resolveKey(id, rawKey as KeyInput, keyField);
    const objectForm = isPlainObject(rawKey);
    const earlier = seenKeys.get(key.key);
    if (earlier !== undefined) {
      throw new ConfigError(
        objectForm ? `${keyField}.key` : keyField,
        earlier.provider === id
          ? `expected each key once; got the same key as keys[${earlier.index}] (id ${quote(earlier.id)})`
          : `expected a key that belongs to this provider only; got the same key as ${prop('providers', earlier.provider)}.keys[${earlier.index}] (id ${quote(earlier.id)}). A key is sent to one provider: list it there once`,
      );
    }
    const sameId = ids.get(key.id);
    if (sameId !== undefined) {
      const idField = objectForm && own(rawKey, 'id') !== undefined ? `${keyField}.id` : keyField;
      throw new ConfigError(idField, `expected an id unique within the provider; got ${quote(key.id)}, already the id of keys[${sameId}]`);
    }
    seenKeys.set(key.key, { provider: id, index, id: key.id });
    ids.set(key.id, index);
    keys.push({ ...key, rpm: key.rpm ?? providerRpm, tpm: key.tpm ?? providerTpm });
  }
  return keys;
}

function resolveBaseURL(raw: unknown, field: string): { baseURL: string; origin: string } {
  const expected = 'expected an absolute http(s) URL such as "https://api.openai.com/v1"';
  if (typeof raw !== 'string') throw new ConfigError(field, `${expected}; got ${describeType(raw)}`);
  // The URL itself is not echoed: it may carry credentials or a key in its query.
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    const hint = raw.trim() === '' ? '' : raw.includes('://') ? '' : ' (it has no scheme: add "https://")';
    throw new ConfigError(field, `${expected}; got ${raw.trim() === '' ? 'an empty string' : 'a string that is not an absolute URL'}${hint}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(field, `${expected}; got a URL with protocol ${safeName(url.protocol)}`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new ConfigError(field, `${expected} without user name or password; got a URL with credentials. Put secrets in \`keys\``);
  }
  if (url.href.includes('?') || url.href.includes('#')) {
    throw new ConfigError(field, `${expected} without query or fragment; got a URL with a "?" or "#" part`);
  }
  const baseURL = url.href.replace(/\/+$/, '');
  // An endpoint's own URL given as the base: the SDK's path would be added to it (…/chat/completions/chat/completions, a 404 every time).
  const endpoint = ENDPOINT_SUFFIX.exec(url.pathname.replace(/\/+$/, ''))?.[0];
  if (endpoint !== undefined) {
    throw new ConfigError(field, `${expected}: the base the API's paths go under; got a URL ending in the endpoint path ${safeName(endpoint)}, which requests would repeat. Leave it out`);
  }
  if (url.pathname === '/') warnWithoutPath(baseURL, field);
  return { baseURL, origin: url.origin };
}

/** Paths of OpenAI-compatible endpoints, which a base URL does not end with. */
const ENDPOINT_SUFFIX = /\/(?:chat\/completions|completions|responses|embeddings|moderations)$/;

/** Base URLs already warned about: once per process each. */
const warnedWithoutPath = new Set<string>();

/**
 * A base URL with no path: OpenAI-compatible APIs nearly always need a version
 * segment (`/v1`, `/v1beta/openai`), and without it every request answers 404.
 * Some gateways serve at their root, so this warns (once) instead of failing.
 */
function warnWithoutPath(baseURL: string, field: string): void {
  if (warnedWithoutPath.has(baseURL)) return;
  warnedWithoutPath.add(baseURL);
  process.emitWarning(
    `keyplex: \`${field}\` has no path, so requests go to <origin>/chat/completions. Most OpenAI-compatible APIs need a version segment, e.g. "https://api.openai.com/v1"; add it, unless this endpoint really serves at its root.`,
    { type: 'KeyplexWarning', code: 'KEYPLEX_BASEURL_WITHOUT_PATH' },
  );
}

function resolveHeaders(raw: unknown, field: string): Record<string, string> {
  const headers: Record<string, string> = {};
  if (raw === undefined) return headers;
  if (!isPlainObject(raw)) throw new ConfigError(field, `expected an object of header names to string values; got ${describeType(raw)}`);
  const lowerNames = new Map<string, string>();
  for (const name of Object.keys(raw)) {
    const nameField = prop(field, name);
    if (!HEADER_NAME.test(name)) {
      throw new ConfigError(nameField, `expected a valid HTTP header name (letters, digits and !#$%&'*+.^_\`|~-); got ${safeName(name)}`);
    }
    const lower = name.toLowerCase();
    if (lower === 'authorization') {
      throw new ConfigError(nameField, "expected no `Authorization` header; it is set from the provider's keys: set `keys` instead");
    }
    const other = lowerNames.get(lower);
    if (other !== undefined) {
      throw new ConfigError(nameField, `expected each header once; got the same name as ${safeName(other)} (header names ignore case)`);
    }
    // Header values are not echoed: they may be secrets (x-api-key, cookies).
    const value = own(raw, name);
    if (typeof value !== 'string') throw new ConfigError(nameField, `expected a string value; got ${describeType(value)}`);
    if (/[\r\n\0]/.test(value)) {
      throw new ConfigError(nameField, 'expected a header value on one line; got a string containing a line break or NUL');
    }
    lowerNames.set(lower, name);
    setOwn(headers, name, value);
  }
  return headers;
}
