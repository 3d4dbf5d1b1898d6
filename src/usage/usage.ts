/**
 * Token usage normalised across endpoints (chat, legacy completions,
 * Responses, embeddings) and OpenAI-compatible providers.
 */

/** Token usage of one reply, the same shape whatever the endpoint or provider. */
export interface Usage {
  /** All prompt/input tokens, cached ones included. */
  inputTokens: number;
  /** All output tokens, reasoning ones included. */
  outputTokens: number;
  /** The part of `inputTokens` served from the provider's prompt cache. */
  cachedInputTokens: number;
  /** The part of `outputTokens` spent on reasoning. */
  reasoningTokens: number;
  /** The provider's total when it gives one, else `inputTokens + outputTokens`. */
  totalTokens: number;
  /**
   * Set on the usage of a stream that ended before its end (the caller broke
   * off, or it failed part-way) when the provider had not reported usage yet:
   * `inputTokens` is keyplex's estimate of the prompt, `outputTokens` is
   * estimated from the text streamed so far (4 characters a token).
   */
  partial?: true;
}

/** A usage of zero tokens everywhere. */
export const ZERO_USAGE: Readonly<Usage> = Object.freeze({
  inputTokens: 0,
  outputTokens: 0,
  cachedInputTokens: 0,
  reasoningTokens: 0,
  totalTokens: 0,
});

type Obj = Record<string, unknown>;

/** The value as a plain (non-array) object, else undefined. */
function asObject(value: unknown): Obj | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Obj)
    : undefined;
}

/** The value as a token count (a finite number ≥ 0), else undefined. */
function count(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/**
 * Usage from a parsed JSON reply body or a parsed SSE event payload;
 * undefined when it has none. Never throws on parsed JSON of any shape.
 *
 * Understands `usage` objects of chat completions (and their stream chunks),
 * legacy completions, embeddings, the Responses API (`input_tokens` …) and
 * DeepSeek's `prompt_cache_hit_tokens`, plus the `response.usage` of the
 * terminal Responses stream events (`response.completed`,
 * `response.incomplete`, `response.failed`). Counts that are missing or not
 * non-negative numbers read as 0; cached and reasoning counts are capped at
 * the input and output counts they are part of.
 */
export function usageFromBody(body: unknown): Usage | undefined {
  const b = asObject(body);
  if (b === undefined) return undefined;
  let u = asObject(b.usage);
  if (u === undefined) {
    const type = b.type;
    if (type === 'response.completed' || type === 'response.incomplete' || type === 'response.failed') {
      u = asObject(asObject(b.response)?.usage);
    }
  }
  return u === undefined ? undefined : fromUsageObject(u);
}

function fromUsageObject(u: Obj): Usage | undefined {
  const hit = count(u.prompt_cache_hit_tokens);
  let input = count(u.input_tokens) ?? count(u.prompt_tokens);
  if (input === undefined && hit !== undefined) input = hit + (count(u.prompt_cache_miss_tokens) ?? 0);
  const output = count(u.output_tokens) ?? count(u.completion_tokens);
  const total = count(u.total_tokens);
  if (input === undefined && output === undefined && total === undefined) return undefined;

  const inputTokens = input ?? 0;
  const outputTokens = output ?? 0;
  const cached =
    count(asObject(u.prompt_tokens_details)?.cached_tokens) ??
    count(asObject(u.input_tokens_details)?.cached_tokens) ??
    hit ??
    0;
  const reasoning =
    count(asObject(u.completion_tokens_details)?.reasoning_tokens) ??
    count(asObject(u.output_tokens_details)?.reasoning_tokens) ??
    0;
  return {
    inputTokens,
    outputTokens,
    cachedInputTokens: cached < inputTokens ? cached : inputTokens,
    reasoningTokens: reasoning < outputTokens ? reasoning : outputTokens,
    totalTokens: total ?? inputTokens + outputTokens,
  };
}

/** The field-by-field sum of two usages. */
export function addUsage(a: Usage, b: Usage): Usage {
  return {
    inputTokens: a.inputTokens + b.inputTokens,
    outputTokens: a.outputTokens + b.outputTokens,
    cachedInputTokens: a.cachedInputTokens + b.cachedInputTokens,
    reasoningTokens: a.reasoningTokens + b.reasoningTokens,
    totalTokens: a.totalTokens + b.totalTokens,
  };
}
