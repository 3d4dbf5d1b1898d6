/**
 * How stores name keys and circuits in their maps and hashes, and the key
 * that created an object: provider and key id (never the key), URI-encoded
 * so that no name can run into another.
 */
import type { StoreCircuitRef, StoreKeyRef, StoreObjectHome } from './types';

/** `provider:keyId`. */
export function keyField(key: StoreKeyRef): string {
  return `${encodeURIComponent(key.provider)}:${encodeURIComponent(key.keyId)}`;
}

/** `k:provider:keyId` or `d:provider:upstreamModel`. */
export function circuitField(circuit: StoreCircuitRef): string {
  const name = circuit.scope === 'key' ? circuit.keyId : circuit.upstreamModel;
  return `${circuit.scope === 'key' ? 'k' : 'd'}:${encodeURIComponent(circuit.provider)}:${encodeURIComponent(name)}`;
}

/** The key a {@link keyField} names; `undefined` for anything else. */
export function parseKeyField(field: string): StoreKeyRef | undefined {
  const parts = field.split(':');
  if (parts.length !== 2) return undefined;
  return { provider: decodeURIComponent(parts[0]!), keyId: decodeURIComponent(parts[1]!) };
}

/** The circuit a {@link circuitField} names; `undefined` for anything else. */
export function parseCircuitField(field: string): StoreCircuitRef | undefined {
  const parts = field.split(':');
  if (parts.length !== 3) return undefined;
  const provider = decodeURIComponent(parts[1]!);
  const name = decodeURIComponent(parts[2]!);
  if (parts[0] === 'k') return { scope: 'key', provider, keyId: name };
  if (parts[0] === 'd') return { scope: 'deployment', provider, upstreamModel: name };
  return undefined;
}

/** Where an object was created, as stores keep it: `kind:provider:keyId`. */
export function homeValue(home: StoreObjectHome): string {
  return `${home.kind}:${keyField(home)}`;
}

/** The home a {@link homeValue} names; `undefined` for nothing or anything else (the manager checks the kind). */
export function parseHome(value: string | undefined): StoreObjectHome | undefined {
  const at = value === undefined ? -1 : value.indexOf(':');
  if (at <= 0) return undefined;
  try {
    const key = parseKeyField(value!.slice(at + 1));
    return key === undefined ? undefined : { provider: key.provider, keyId: key.keyId, kind: value!.slice(0, at) as StoreObjectHome['kind'] };
  } catch {
    return undefined; // Not URI-encoded as written here.
  }
}
