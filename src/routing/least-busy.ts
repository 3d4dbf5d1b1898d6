import type { DeploymentView, RoutingStrategy } from './view';

/**
 * Fewest attempts in flight first; ties keep configuration order. Spreads
 * concurrent load across deployments without needing any measurement.
 */
export class LeastBusyStrategy implements RoutingStrategy {
  order(deployments: readonly DeploymentView[]): DeploymentView[] {
    return deployments.slice().sort((a, b) => a.inFlight - b.inFlight);
  }
}
