/**
 * The demo's workload: the same requests, in the same order, through any
 * `openai` client, measured from the application's side.
 */
import type OpenAI from 'openai';

/** One request of the workload. */
export interface WorkItem {
  model: string;
  prompt: string;
  stream: boolean;
  maxTokens: number;
}

/** What the application saw of one run. */
export interface RunResult {
  requests: number;
  errors: number;
  /** Errors by HTTP status (or `connection`). */
  errorsByKind: Record<string, number>;
  latenciesMs: number[];
  durationMs: number;
  /** Tokens the application saw in replies. */
  tokens: number;
}

const TOPICS = ['rate limits', 'key rotation', 'circuit breakers', 'token budgets', 'stream parsing', 'cache hits', 'fail-over', 'latency tails'];

/** A deterministic workload: the four models in turn, one in five streamed. */
export function makeWorkload(count: number, models: readonly string[], seed: number): WorkItem[] {
  let state = seed >>> 0 || 1;
  const next = () => {
    state = (Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return state / 2 ** 32;
  };
  return Array.from({ length: count }, (_, i) => {
    const topic = TOPICS[Math.floor(next() * TOPICS.length)]!;
    const words = 20 + Math.floor(next() * 200);
    return {
      model: models[i % models.length]!,
      prompt: `Explain ${topic} in ${words} words. `.repeat(1 + Math.floor(next() * 4)),
      stream: i % 5 === 4,
      maxTokens: 64 + Math.floor(next() * 192),
    };
  });
}

function kindOf(error: unknown): string {
  const status = (error as { status?: unknown }).status;
  return typeof status === 'number' ? String(status) : 'connection';
}

/**
 * Runs `items` through `client` with `concurrency` workers; `onProgress` after
 * each request. `client` may be a function choosing the client of each request.
 */
export async function runWorkload(
  client: OpenAI | ((item: WorkItem, index: number) => OpenAI),
  items: readonly WorkItem[],
  concurrency: number,
  onProgress: (done: number, errors: number) => void,
): Promise<RunResult> {
  const result: RunResult = { requests: items.length, errors: 0, errorsByKind: {}, latenciesMs: [], durationMs: 0, tokens: 0 };
  let nextIndex = 0;
  let done = 0;
  const started = performance.now();
  const worker = async () => {
    for (let i = nextIndex++; i < items.length; i = nextIndex++) {
      const item = items[i]!;
      const sdk = typeof client === 'function' ? client(item, i) : client;
      const t0 = performance.now();
      try {
        const messages = [{ role: 'user' as const, content: item.prompt }];
        if (item.stream) {
          const stream = await sdk.chat.completions.create({ model: item.model, messages, max_tokens: item.maxTokens, stream: true, stream_options: { include_usage: true } });
          for await (const chunk of stream) if (chunk.usage) result.tokens += chunk.usage.total_tokens;
        } else {
          const reply = await sdk.chat.completions.create({ model: item.model, messages, max_tokens: item.maxTokens });
          result.tokens += reply.usage?.total_tokens ?? 0;
        }
        result.latenciesMs.push(performance.now() - t0);
      } catch (error) {
        result.errors++;
        const kind = kindOf(error);
        result.errorsByKind[kind] = (result.errorsByKind[kind] ?? 0) + 1;
      }
      onProgress(++done, result.errors);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  result.durationMs = performance.now() - started;
  return result;
}

/** The `p`-th percentile (0..100) of `values`, nearest-rank; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
