/**
 * A cheap estimate of the tokens a request will count against a tokens-per-minute
 * limit, before it is sent. The real count replaces it afterwards
 * ({@link KeyLimiter.reconcile}).
 */
import type { KeyLimiter } from './limiter';

/** Output tokens assumed when a request names no maximum. */
export const DEFAULT_OUTPUT_TOKENS = 256;

/** Fields of a request body whose text is input: chat, completions, responses, embeddings, Anthropic-style. */
const INPUT_FIELDS = ['messages', 'prompt', 'input', 'instructions', 'system', 'tools', 'functions'] as const;
/** Fields naming the most output tokens, by API generation. */
const MAX_FIELDS = ['max_tokens', 'max_completion_tokens', 'max_output_tokens'] as const;
/** Object keys whose string values are never text a tokenizer reads. */
const SKIPPED_KEYS = new Set(['type', 'role', 'id', 'call_id', 'tool_call_id', 'file_id', 'data', 'file_data', 'detail', 'format']);
/** How deep the walk goes; request bodies are shallow, and this bounds a pathological one. */
const MAX_DEPTH = 32;
/** Characters per token, the usual rule of thumb for English and code. */
const CHARS_PER_TOKEN = 4;

/**
 * Estimated tokens of a request body (a parsed JSON object):
 * `ceil(characters of input text / 4)` + the output allowance.
 *
 * - Input text is every string value under `messages`, `prompt`, `input`,
 *   `instructions`, `system`, `tools` and `functions`, walked without
 *   stringifying. Strings under keys that are not prose (`type`, `role`, `id`,
 *   `call_id`, `tool_call_id`, `file_id`, `detail`, `format`, and base64
 *   `data` / `file_data`) and `data:` URLs (inline images and audio) are skipped;
 *   a number under `prompt` or `input` (a token id) counts as one token.
 * - The output allowance is the largest of `max_tokens`,
 *   `max_completion_tokens` and `max_output_tokens` that is a non-negative
 *   number, else `defaultOutput`; times `n` (choices) when `n` is a whole
 *   number above 1, as OpenAI counts it.
 * - No body (multipart uploads, GETs) is just `defaultOutput`.
 *
 * @param defaultOutput Output tokens assumed without a max-tokens field. Default {@link DEFAULT_OUTPUT_TOKENS}.
 */
export function estimateTokens(body: Record<string, unknown> | undefined, defaultOutput: number = DEFAULT_OUTPUT_TOKENS): number {
  return estimateInputTokens(body) + estimateOutputTokens(body, defaultOutput);
}

/** The prompt part of {@link estimateTokens}: characters of input text ÷ 4, plus token ids. 0 without a body. */
export function estimateInputTokens(body: Record<string, unknown> | undefined): number {
  if (typeof body !== 'object' || body === null) return 0;
  const tally: TextTally = { chars: 0, ids: 0 };
  for (const field of INPUT_FIELDS) {
    const value = body[field];
    if (value !== undefined) countText(value, field === 'prompt' || field === 'input', 0, tally);
  }
  return Math.ceil(tally.chars / CHARS_PER_TOKEN) + tally.ids;
}

/** The output part of {@link estimateTokens}: the largest max-tokens field, else `defaultOutput`, times `n`. */
export function estimateOutputTokens(body: Record<string, unknown> | undefined, defaultOutput: number = DEFAULT_OUTPUT_TOKENS): number {
  const fallback = Number.isFinite(defaultOutput) && defaultOutput >= 0 ? defaultOutput : DEFAULT_OUTPUT_TOKENS;
  if (typeof body !== 'object' || body === null) return fallback;
  let output: number | undefined;
  for (const field of MAX_FIELDS) {
    const value = body[field];
    if (typeof value === 'number' && Number.isFinite(value) && value >= 0) output = Math.max(output ?? 0, value);
  }
  const n = body.n;
  const choices = typeof n === 'number' && Number.isInteger(n) && n > 1 ? n : 1;
  return (output ?? fallback) * choices;
}

/** Characters of input text, and token ids, counted so far. */
interface TextTally {
  chars: number;
  ids: number;
}

/**
 * Adds the characters of text (and token ids, when `idsCount`) under `value`
 * to `tally`. Recursive (bodies are shallow, and {@link MAX_DEPTH} bounds it):
 * nothing is allocated per node or per field.
 */
function countText(value: unknown, idsCount: boolean, depth: number, tally: TextTally): void {
  if (typeof value === 'string') {
    if (!value.startsWith('data:')) tally.chars += value.length;
  } else if (typeof value === 'number') {
    if (idsCount) tally.ids += 1;
  } else if (depth < MAX_DEPTH && typeof value === 'object' && value !== null) {
    if (Array.isArray(value)) {
      for (const item of value) countText(item, idsCount, depth + 1, tally);
    } else {
      for (const key in value) {
        if (Object.hasOwn(value, key) && !SKIPPED_KEYS.has(key)) countText((value as Record<string, unknown>)[key], idsCount, depth + 1, tally);
      }
    }
  }
}
