/**
 * Token usage normalised across endpoints (chat, legacy completions,
 * Responses, embeddings) and OpenAI-compatible providers.
 */

/** Token usage of one reply, the same shape whatever the endpoint or provider. */
export interface Usage {
  /** All prompt/input tokens: uncached ones, cache reads and cache writes. */
  inputTokens: number;
  /** All output tokens, reasoning ones included. */
  outputTokens: number;
  /**
   * The part of `inputTokens` read from the provider's prompt cache (cache
   * hits): OpenAI's and Gemini's `cached_tokens`, Anthropic's
   * `cache_read_input_tokens`, DeepSeek's `prompt_cache_hit_tokens`, Gemini's
   * `cachedContentTokenCount`.
   */
  cachedInputTokens: number;
  /**
   * The part of `inputTokens` written to the provider's prompt cache (priced
   * at the model's `cacheWrite`): Anthropic's `cache_creation_input_tokens`,
   * OpenRouter's `cache_write_tokens`. 0 for providers that do not charge
   * writes (OpenAI, DeepSeek, Gemini's implicit cache).
   */
  cacheWriteTokens: number;
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
  /**
   * The cost the provider stated in the reply, in USD, when it stated one:
   * OpenRouter's `usage.cost` (the credits charged; on a BYOK request, where
   * the upstream bills the user's own key, plus
   * `usage.cost_details.upstream_inference_cost`), xAI's
   * `usage.cost_in_usd_ticks` (1 USD = 10^10 ticks). A figure that is not a
   * number from 0 to 1,000 USD reads as not stated. It prices the reply unless
   * a price is configured for its model (see the `success` event's `costUsd`).
   */
  statedCostUsd?: number;
}

/** A usage of zero tokens everywhere. */
export const ZERO_USAGE: Readonly<Usage> = Object.freeze({
  inputTokens: 0,
  outputTokens: 0,
  cachedInputTokens: 0,
  cacheWriteTokens: 0,
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

/**
 * The most tokens one reply may plausibly count (no model has a context near
 * it): a count above it is a broken answer, and read as missing, so that it
 * cannot spend a budget or swamp the stats (a reply claiming 1e300 tokens
 * blocked a $5-a-day budget for the rest of its day).
 */
const MAX_TOKENS = 1e9;

/** The value as a token count (a finite number from 0 to {@link MAX_TOKENS}), else undefined. */
function count(value: unknown): number | undefined {
  return typeof value === 'number' && value >= 0 && value <= MAX_TOKENS ? value : undefined;
}

/**
 * The most one reply may plausibly cost, in USD: no model's reply comes near
 * it (a million output tokens at the dearest listed price is 75 USD), so a
 * stated cost above it is a broken answer, read as not stated, that cannot
 * block a budget for the rest of its window.
 */
const MAX_STATED_COST_USD = 1_000;
/** xAI's unit of cost: 1 USD = 10^10 ticks. */
const TICKS_PER_USD = 1e10;

/** The value as an amount of USD (a number from 0 to {@link MAX_STATED_COST_USD}), else undefined. */
function usd(value: unknown): number | undefined {
  return typeof value === 'number' && value >= 0 && value <= MAX_STATED_COST_USD ? value : undefined;
}

/**
 * The cost a usage object states (see {@link Usage.statedCostUsd}), else
 * undefined. Reads two members that replies of other providers lack.
 */
function statedCost(u: Obj): number | undefined {
  const charged = u.cost;
  if (charged !== undefined) {
    // OpenRouter: on a BYOK request its charge is only its fee; the upstream billed the user's own key the rest.
    if (u.is_byok !== true) return usd(charged);
    const upstream = usd(asObject(u.cost_details)?.upstream_inference_cost);
    const fee = usd(charged);
    return upstream === undefined || fee === undefined ? undefined : usd(fee + upstream);
  }
  const ticks = u.cost_in_usd_ticks;
  return typeof ticks === 'number' ? usd(ticks / TICKS_PER_USD) : undefined;
}

/**
 * Usage from a parsed JSON reply body or a parsed SSE event payload;
 * undefined when it has none. Never throws on parsed JSON of any shape.
 *
 * Understands `usage` objects of chat completions (and their stream chunks),
 * legacy completions, embeddings, the Responses API (`input_tokens` …),
 * Anthropic's (`cache_creation_input_tokens`, `cache_read_input_tokens`, with
 * `input_tokens` counting only uncached tokens as Anthropic's own API does),
 * DeepSeek's `prompt_cache_hit_tokens` / `prompt_cache_miss_tokens`, Gemini's
 * `usageMetadata` (`cachedContentTokenCount`, `thoughtsTokenCount`,
 * `toolUsePromptTokenCount`, also in snake case), plus the `response.usage` of the terminal Responses stream
 * events (`response.completed`, `response.incomplete`, `response.failed`)
 * and the `x_groq.usage` of Groq's last stream chunk.
 * Reasoning tokens that a provider counts beside its completion (output)
 * count and in its total, not inside the completion count as OpenAI does —
 * xAI's `reasoning_tokens`, and the thinking tokens that only the
 * `total_tokens` of Gemini's OpenAI-compatible endpoint counts — are added to
 * the output (they are billed as output) and read as reasoning.
 * The cost a provider states beside its counts (OpenRouter's `cost`, xAI's
 * `cost_in_usd_ticks`) is read into `statedCostUsd`.
 * Counts that are missing, not non-negative numbers, or above a billion (a
 * broken answer) read as missing: 0 beside counts that are there, no usage
 * when none is; cache reads and writes are capped at the input they are
 * part of, reasoning at the output.
 */
export function usageFromBody(body: unknown): Usage | undefined {
  const b = asObject(body);
  if (b === undefined) return undefined;
  // Groq's stream puts its usage in `x_groq` (on the last chunk).
  let u = asObject(b.usage) ?? asObject(asObject(b.x_groq)?.usage);
  if (u === undefined) {
    const type = b.type;
    if (type === 'response.completed' || type === 'response.incomplete' || type === 'response.failed') {
      u = asObject(asObject(b.response)?.usage);
    }
  }
  if (u !== undefined) return fromUsageObject(u);
  const gemini = asObject(b.usageMetadata) ?? asObject(b.usage_metadata);
  return gemini === undefined ? undefined : fromGeminiMetadata(gemini);
}

function fromUsageObject(u: Obj): Usage | undefined {
  const promptDetails = asObject(u.prompt_tokens_details);
  const inputDetails = asObject(u.input_tokens_details);
  const hit = count(u.prompt_cache_hit_tokens);
  const read = count(promptDetails?.cached_tokens) ?? count(inputDetails?.cached_tokens) ?? count(u.cache_read_input_tokens) ?? hit;
  const write = count(u.cache_creation_input_tokens) ?? count(promptDetails?.cache_write_tokens) ?? count(inputDetails?.cache_write_tokens);
  let input = count(u.prompt_tokens) ?? anthropicInput(u, inputDetails) ?? count(u.input_tokens);
  if (input === undefined && hit !== undefined) input = hit + (count(u.prompt_cache_miss_tokens) ?? 0);
  let output = count(u.output_tokens) ?? count(u.completion_tokens);
  const total = count(u.total_tokens);
  if (input === undefined && output === undefined && total === undefined) return costOnly(u);
  let reasoning = count(asObject(u.completion_tokens_details)?.reasoning_tokens) ?? count(asObject(u.output_tokens_details)?.reasoning_tokens);
  if (input !== undefined && output !== undefined && total !== undefined) {
    const beside = reasoningBeside(total - input - output, output, reasoning ?? 0);
    if (beside > 0) {
      output += beside;
      reasoning = beside;
    }
  }
  const usage = normalised(input ?? 0, output ?? 0, read ?? 0, write ?? 0, reasoning ?? 0, total);
  const stated = statedCost(u);
  if (stated !== undefined) usage.statedCostUsd = stated;
  return usage;
}

/**
 * A usage object that counts no tokens but states a cost (xAI's image and
 * video generation): a usage of 0 tokens at that cost; else undefined.
 */
function costOnly(u: Obj): Usage | undefined {
  const stated = statedCost(u);
  return stated === undefined ? undefined : { ...ZERO_USAGE, statedCostUsd: stated };
}

/**
 * The reasoning tokens a provider counts beside its output count rather than
 * inside it (OpenAI's `completion_tokens` include them), told by a total
 * above input + output (`gap`), else 0. xAI reports them in
 * `reasoning_tokens` and its total (the gap is that count, or the count
 * exceeds the output, impossible were it inside); Google's
 * OpenAI-compatible endpoint counts Gemini's thinking tokens in its total
 * only (a gap and no reasoning count). Both bill them as output. A gap that
 * a reasoning count inside the output does not explain is left alone.
 */
function reasoningBeside(gap: number, output: number, reasoning: number): number {
  if (gap <= 0) return 0;
  if (reasoning === 0) return gap;
  return reasoning === gap || reasoning > output ? reasoning : 0;
}

/**
 * All input of Anthropic's own usage shape, whose `input_tokens` counts only
 * the uncached tokens (its cache reads and writes come on top); undefined for
 * any other shape (the Responses API's `input_tokens` includes cached ones).
 */
function anthropicInput(u: Obj, inputDetails: Obj | undefined): number | undefined {
  const uncached = count(u.input_tokens);
  if (uncached === undefined || inputDetails !== undefined) return undefined;
  if (u.cache_creation_input_tokens === undefined && u.cache_read_input_tokens === undefined) return undefined;
  return uncached + (count(u.cache_creation_input_tokens) ?? 0) + (count(u.cache_read_input_tokens) ?? 0);
}

/**
 * Gemini's native `usageMetadata`: `candidatesTokenCount` leaves out the
 * thinking tokens, which are output too; `promptTokenCount` leaves out the
 * results of a tool the model used (`toolUsePromptTokenCount`: Search
 * grounding, code execution), which are input too.
 */
function fromGeminiMetadata(m: Obj): Usage | undefined {
  const prompt = count(m.promptTokenCount) ?? count(m.prompt_token_count);
  const toolUse = count(m.toolUsePromptTokenCount) ?? count(m.tool_use_prompt_token_count);
  const input = prompt === undefined ? toolUse : prompt + (toolUse ?? 0);
  const candidates = count(m.candidatesTokenCount) ?? count(m.candidates_token_count);
  const thoughts = count(m.thoughtsTokenCount) ?? count(m.thoughts_token_count) ?? 0;
  const total = count(m.totalTokenCount) ?? count(m.total_token_count);
  if (input === undefined && candidates === undefined && total === undefined) return undefined;
  const cached = count(m.cachedContentTokenCount) ?? count(m.cached_content_token_count) ?? 0;
  return normalised(input ?? 0, (candidates ?? 0) + thoughts, cached, 0, thoughts, total);
}

/** A usage with its parts capped at the wholes they belong to (writes after reads). */
function normalised(inputTokens: number, outputTokens: number, read: number, write: number, reasoning: number, total: number | undefined): Usage {
  const cachedInputTokens = read < inputTokens ? read : inputTokens;
  const room = inputTokens - cachedInputTokens;
  return {
    inputTokens,
    outputTokens,
    cachedInputTokens,
    cacheWriteTokens: write < room ? write : room,
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
    cacheWriteTokens: a.cacheWriteTokens + b.cacheWriteTokens,
    reasoningTokens: a.reasoningTokens + b.reasoningTokens,
    totalTokens: a.totalTokens + b.totalTokens,
  };
}

/** What `a` counts beyond `b`, field by field (never below 0). */
export function usageBeyond(a: Usage, b: Usage): Usage {
  return {
    inputTokens: Math.max(0, a.inputTokens - b.inputTokens),
    outputTokens: Math.max(0, a.outputTokens - b.outputTokens),
    cachedInputTokens: Math.max(0, a.cachedInputTokens - b.cachedInputTokens),
    cacheWriteTokens: Math.max(0, a.cacheWriteTokens - b.cacheWriteTokens),
    reasoningTokens: Math.max(0, a.reasoningTokens - b.reasoningTokens),
    totalTokens: Math.max(0, a.totalTokens - b.totalTokens),
  };
}
