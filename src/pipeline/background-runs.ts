/**
 * The background responses a manager created and has not seen end (their
 * cost comes then: background.ts), bounded as object affinity is. Data
 * only: core.ts holds one, and no stage is imported here.
 */
import type { Deployment } from '../routing/deployments';
import type { Usage } from '../usage/usage';

/** A background response this manager created and has not seen terminal yet. */
export interface Run {
  /** The create's request: its id, tags, metadata and public model, whose budgets and stats its cost counts in. */
  readonly requestId: string;
  readonly tags: readonly string[];
  readonly metadata: Readonly<Record<string, string | number | boolean>>;
  readonly model: string | undefined;
  /** Where it was created (its price, stats, provider) and with which key. */
  readonly deployment: Deployment;
  readonly keyId: string;
  /** The create's input token estimate (a usage that counts only a total is split at it). */
  readonly inputTokens: number;
  /** What the create's `success` reported, and stats counted: no usage, or what a stream left early had used. */
  readonly counted: Usage | null;
  readonly countedUsd: number;
  /** What the create's budgets were settled at: its estimate, or what a stream left early had cost. */
  readonly chargedUsd: number;
  readonly expiresAt: number;
}

/**
 * The background responses a manager created and has not seen terminal:
 * at most `maxIds` (the oldest go first), each for `ttlMs` after its create.
 */
export class BackgroundRuns {
  readonly #runs = new Map<string, Run>();

  constructor(
    readonly maxIds: number,
    readonly ttlMs: number,
  ) {}

  /** Responses remembered (expired ones count until met). */
  get size(): number {
    return this.#runs.size;
  }

  add(id: string, run: Run): void {
    const runs = this.#runs;
    runs.delete(id);
    runs.set(id, run);
    // One ttl for all: the oldest expire first.
    for (const [oldest, first] of runs) {
      if (runs.size <= this.maxIds && first.expiresAt > run.expiresAt - this.ttlMs) break;
      runs.delete(oldest);
    }
  }

  /** The run of response `id`, unless unknown or expired at `now`. */
  get(id: string, now: number): Run | undefined {
    const run = this.#runs.get(id);
    if (run === undefined || run.expiresAt > now) return run;
    this.#runs.delete(id);
    return undefined;
  }

  delete(id: string): void {
    this.#runs.delete(id);
  }
}
