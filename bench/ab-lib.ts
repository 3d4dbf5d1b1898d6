/**
 * The three clients bench/ab-dists.ts and bench/ab-stream.ts compare: the raw
 * SDK, and a manager from each of two builds (3 providers × 10 fake keys,
 * listeners on `request`, `attempt`, `success`), all on the same fake fetch.
 */
import { pathToFileURL } from 'node:url';
import OpenAI from 'openai';
import { fakeKey, fakeKeys, MODEL } from './lib.ts';

export type Manager = { wrap<T>(client: T): T; close(): Promise<void>; on(event: string, listener: () => void): unknown; fetch: typeof globalThis.fetch };
const baseURL = (id: string) => `https://${id}.bench.invalid/v1`;

/** A manager from the build at `path`: 3 providers × 10 fake keys on `fetch`, listeners on `request`, `attempt`, `success`. */
export async function managerFrom(path: string, fetch: typeof globalThis.fetch): Promise<Manager> {
  const { KeyManager } = (await import(pathToFileURL(path).href)) as { KeyManager: new (o: unknown) => Manager };
  const providers = Object.fromEntries(Object.entries(fakeKeys(3, 10)).map(([id, keys]) => [id, { baseURL: baseURL(id), keys, models: [MODEL] }]));
  const manager = new KeyManager({ providers, fetch });
  for (const e of ['request', 'attempt', 'success']) manager.on(e, () => undefined);
  return manager;
}

async function wrapped(path: string, fetch: typeof globalThis.fetch): Promise<{ client: OpenAI; manager: Manager }> {
  const manager = await managerFrom(path, fetch);
  return { manager, client: manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 })) };
}

/** `raw`, `base` and `branch` clients; `close` closes the two managers. */
export async function abClients(basePath: string, branchPath: string, fetch: typeof globalThis.fetch): Promise<{ clients: Record<string, OpenAI>; close: () => Promise<void> }> {
  const base = await wrapped(basePath, fetch);
  const branch = await wrapped(branchPath, fetch);
  const clients = { raw: new OpenAI({ apiKey: fakeKey(), baseURL: baseURL('raw'), fetch, maxRetries: 0 }), base: base.client, branch: branch.client };
  return { clients, close: async () => void (await Promise.all([base.manager.close(), branch.manager.close()])) };
}
