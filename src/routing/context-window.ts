import type { DeploymentView } from './view';

/**
 * Whether a request of `inputTokens` + `outputTokens` fits `d`'s context
 * window. An unknown window (or one that is not a positive number) fits.
 * The comparison is exact: token counts are the caller's estimates, so any
 * safety margin belongs there. Skipping a deployment that cannot fit saves an
 * attempt that would end in `context_length_exceeded`.
 */
export function fitsContext(d: DeploymentView, inputTokens: number, outputTokens: number): boolean {
  const window = d.contextWindow;
  if (window === undefined || !(window > 0)) return true;
  return inputTokens + outputTokens <= window;
}
