/**
 * Deterministic randomness, token counts and text for the provider simulator.
 *
 * Every random choice the simulator makes comes from a {@link mulberry32}
 * generator seeded by hashing the simulator's seed with a label (provider,
 * purpose, request index). Draws for one purpose never shift the draws of
 * another, so adding latency or a fault does not change the generated text.
 */

/** A pseudo-random generator: each call returns a number in `[0, 1)`. */
export type Random = () => number;

/**
 * mulberry32: a small, fast 32-bit seeded PRNG. The same `seed` always gives
 * the same sequence. Not for cryptography.
 */
export function mulberry32(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** A 32-bit FNV-1a hash of `parts` (joined with a separator that cannot be confused with their text). */
export function hash32(...parts: readonly (string | number)[]): number {
  let h = 0x811c9dc5;
  const text = parts.map(String).join('\u0000');
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // A final avalanche so that close inputs give unrelated seeds.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A generator for one purpose: `seed` hashed with `labels`. */
export function randomFor(seed: number, ...labels: readonly (string | number)[]): Random {
  return mulberry32(hash32(seed, ...labels));
}

/** A lower-case hex id of `length` characters drawn from `random`. */
export function hexId(random: Random, length = 24): string {
  let out = '';
  while (out.length < length) out += Math.floor(random() * 0x1_0000_0000).toString(16).padStart(8, '0');
  return out.slice(0, length);
}

/** An integer in `[min, max]` (both inclusive). */
export function randomInt(random: Random, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}

/** A standard normal sample (Box–Muller). */
export function standardNormal(random: Random): number {
  const u = 1 - random(); // (0, 1]: log(u) is finite
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** The z-score of the 99th percentile of the standard normal distribution. */
export const Z_P99 = 2.326;

/**
 * A log-normal sample in milliseconds with the given median and 99th
 * percentile: `median · exp(σ·z)` with `σ = ln(p99 / median) / 2.326`.
 * A median of 0 always gives 0; `p99 = median` always gives the median.
 */
export function sampleLatency(random: Random, medianMs: number, p99Ms: number): number {
  if (medianMs <= 0) return 0;
  const sigma = p99Ms > medianMs ? Math.log(p99Ms / medianMs) / Z_P99 : 0;
  if (sigma === 0) return medianMs;
  return medianMs * Math.exp(sigma * standardNormal(random));
}

/** The words generated text is made of. */
export const WORDS: readonly string[] = Object.freeze([
  'lorem', 'ipsum', 'dolor', 'sit', 'amet', 'consectetur', 'adipiscing', 'elit',
  'sed', 'do', 'eiusmod', 'tempor', 'incididunt', 'ut', 'labore', 'et',
  'dolore', 'magna', 'aliqua', 'enim', 'ad', 'minim', 'veniam', 'quis',
  'nostrud', 'exercitation', 'ullamco', 'laboris', 'nisi', 'aliquip', 'ex', 'ea',
  'commodo', 'consequat', 'duis', 'aute', 'irure', 'in', 'reprehenderit', 'voluptate',
  'velit', 'esse', 'cillum', 'fugiat', 'nulla', 'pariatur', 'excepteur', 'sint',
  'occaecat', 'cupidatat', 'non', 'proident', 'sunt', 'culpa', 'qui', 'officia',
  'deserunt', 'mollit', 'anim', 'id', 'est', 'laborum', 'alpha', 'omega',
]);

/** The smallest number of completion tokens generated (before the max-tokens cap). */
export const MIN_COMPLETION_TOKENS = 16;
/** The largest number of completion tokens generated. */
export const MAX_COMPLETION_TOKENS = 128;

/**
 * The words of a completion: one word per completion token, between
 * {@link MIN_COMPLETION_TOKENS} and {@link MAX_COMPLETION_TOKENS} of them,
 * capped by `maxTokens`.
 */
export function completionWords(random: Random, maxTokens?: number): { words: string[]; truncated: boolean } {
  const wanted = randomInt(random, MIN_COMPLETION_TOKENS, MAX_COMPLETION_TOKENS);
  const count = maxTokens === undefined ? wanted : Math.min(wanted, maxTokens);
  const words: string[] = [];
  for (let i = 0; i < count; i++) words.push(WORDS[Math.floor(random() * WORDS.length)] ?? 'lorem');
  return { words, truncated: count < wanted };
}

/**
 * The simulator's token count of `characters` characters of text: one token
 * per four characters, rounded up (OpenAI's rule of thumb).
 */
export function tokensOfCharacters(characters: number): number {
  return Math.ceil(characters / 4);
}

/**
 * Text and pre-tokenized input found in a request body, for counting prompt
 * tokens: `characters` of text plus `tokens` given as token-id arrays.
 */
export interface PromptSize {
  characters: number;
  tokens: number;
}

function addText(size: PromptSize, value: unknown): void {
  if (typeof value === 'string') size.characters += value.length;
}

/** Text of a message `content`: a string or an array of parts with `text` (or `refusal`). */
function addContent(size: PromptSize, content: unknown): void {
  if (typeof content === 'string') {
    addText(size, content);
    return;
  }
  if (!Array.isArray(content)) return;
  for (const part of content) {
    if (typeof part === 'string') addText(size, part);
    else if (part !== null && typeof part === 'object') {
      const p = part as Record<string, unknown>;
      addText(size, p.text);
      addText(size, p.refusal);
      addText(size, p.output);
    }
  }
}

/** Prompt inputs given as text, text arrays, token arrays or arrays of token arrays (embeddings, legacy completions). */
function addPromptInput(size: PromptSize, input: unknown): void {
  if (typeof input === 'string') {
    addText(size, input);
    return;
  }
  if (!Array.isArray(input)) return;
  if (input.every((x) => typeof x === 'number')) {
    size.tokens += input.length;
    return;
  }
  for (const item of input) {
    if (typeof item === 'string') addText(size, item);
    else if (Array.isArray(item)) size.tokens += item.length;
  }
}

/** Number of inputs of an embeddings request (a string or token array is one input). */
export function embeddingInputs(input: unknown): unknown[] {
  if (typeof input === 'string') return [input];
  if (!Array.isArray(input)) return [];
  if (input.length > 0 && input.every((x) => typeof x === 'number')) return [input];
  return input;
}

/** The endpoints whose prompt the simulator knows how to count. */
export type PromptEndpoint = 'chat' | 'responses' | 'embeddings' | 'completions';

/**
 * Prompt tokens of a request body: `ceil(characters / 4)` of all its message
 * or input text, plus any pre-tokenized input, at least 1.
 */
export function promptTokens(endpoint: PromptEndpoint, body: Record<string, unknown>): number {
  const size: PromptSize = { characters: 0, tokens: 0 };
  switch (endpoint) {
    case 'chat':
      if (Array.isArray(body.messages)) {
        for (const message of body.messages) {
          if (message !== null && typeof message === 'object') addContent(size, (message as Record<string, unknown>).content);
        }
      }
      break;
    case 'responses':
      addText(size, body.instructions);
      if (typeof body.input === 'string') addText(size, body.input);
      else if (Array.isArray(body.input)) {
        for (const item of body.input) {
          if (item === null || typeof item !== 'object') continue;
          const i = item as Record<string, unknown>;
          addContent(size, i.content);
          addText(size, i.output);
        }
      }
      break;
    case 'embeddings':
      addPromptInput(size, body.input);
      break;
    case 'completions':
      addPromptInput(size, body.prompt);
      break;
  }
  return Math.max(1, tokensOfCharacters(size.characters) + size.tokens);
}

/**
 * A deterministic unit-length embedding of `dimensions` floats for `input`:
 * the same seed, model and input always give the same vector.
 */
export function embeddingVector(seed: number, model: string, input: unknown, dimensions: number): number[] {
  const random = randomFor(seed, 'embedding', model, JSON.stringify(input) ?? '');
  const raw = Array.from({ length: dimensions }, () => random() * 2 - 1);
  const norm = Math.hypot(...raw) || 1;
  // Round to float32 so that the float and base64 encodings agree exactly.
  return raw.map((x) => Math.fround(x / norm));
}

/** `vector` as OpenAI's `encoding_format: 'base64'`: little-endian float32 bytes, base64-encoded. */
export function float32Base64(vector: readonly number[]): string {
  const bytes = Buffer.alloc(vector.length * 4);
  vector.forEach((x, i) => bytes.writeFloatLE(x, i * 4));
  return bytes.toString('base64');
}
