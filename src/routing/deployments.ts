/**
 * Deployments: a provider × an upstream model. Routing turns a request's
 * public model into the ordered list of deployments that may serve it.
 */
import type { ProviderPool } from '../keys/key-state';

export interface Deployment {
  pool: ProviderPool;
  /** The model name sent upstream; `undefined` for requests that name none. */
  upstreamModel: string | undefined;
}

/**
 * The deployments for `model`, in order: providers that list the model (in
 * configuration order), then providers that serve any model. A request that
 * names no model (files, model lists) goes to the first provider only, since
 * such resources live with one provider. `pinned` restricts to one provider.
 */
export function route(pools: readonly ProviderPool[], model: string | undefined, pinned?: string): Deployment[] {
  const candidates = pinned === undefined ? pools : pools.filter((p) => p.id === pinned);
  if (model === undefined) {
    const first = candidates[0];
    return first ? [{ pool: first, upstreamModel: undefined }] : [];
  }
  const listed: Deployment[] = [];
  const open: Deployment[] = [];
  for (const pool of candidates) {
    if (pool.models === undefined) open.push({ pool, upstreamModel: model });
    else {
      const upstream = pool.models.get(model);
      if (upstream !== undefined) listed.push({ pool, upstreamModel: upstream });
    }
  }
  return listed.concat(open);
}
