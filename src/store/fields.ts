/**
 * How stores name keys and circuits in their maps and hashes: provider and
 * key id (never the key), URI-encoded so that no name can run into another.
 */
import type { StoreCircuitRef, StoreKeyRef } from './types';

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
