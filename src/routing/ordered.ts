import type { DeploymentView, RoutingStrategy } from './view';

/**
 * Configuration order: providers that list the model, in the order they are
 * configured, then providers that serve any model. Plain ordered fallback —
 * the first deployment takes all traffic while it is healthy.
 */
export class OrderedStrategy implements RoutingStrategy {
  order(deployments: readonly DeploymentView[]): DeploymentView[] {
    return deployments.slice();
  }
}
