/**
 * What an `auto` strategy knows of a request: {@link RequestFeatures}, read
 * cheaply from its JSON body.
 */

/** What an {@link AutoStrategy} knows of a request, read cheaply from its body by {@link requestFeatures}. */
export interface RequestFeatures {
  /** Estimated input tokens. */
  inputTokens: number;
  /** Number of messages (chat `messages`, or Responses `input` items; a string input counts 1). */
  messages: number;
  /** Whether the request offers tools (or legacy `functions`). */
  hasTools: boolean;
  /** Whether any message carries an image part. */
  hasImages: boolean;
  /** `max_completion_tokens`, `max_tokens` or `max_output_tokens`, when set. */
  maxOutputTokens: number | undefined;
  /** Text of the last user message, truncated to {@link MAX_FEATURE_TEXT} characters. */
  text: string;
}

/** Characters of the last user message kept in {@link RequestFeatures.text}. */
export const MAX_FEATURE_TEXT = 2000;

const IMAGE_PART_TYPES = new Set(['image_url', 'input_image', 'image']);
const TEXT_PART_TYPES = new Set(['text', 'input_text']);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function hasParts(content: unknown, types: ReadonlySet<string>): boolean {
  if (!Array.isArray(content)) return false;
  for (const part of content) if (isRecord(part) && types.has(part.type as string)) return true;
  return false;
}

/** The text of a message content (a string, or the text parts of an array), at most MAX_FEATURE_TEXT characters. */
function contentText(content: unknown): string {
  if (typeof content === 'string') return content.length > MAX_FEATURE_TEXT ? content.slice(0, MAX_FEATURE_TEXT) : content;
  if (!Array.isArray(content)) return '';
  let text = '';
  for (const part of content) {
    if (!isRecord(part) || !TEXT_PART_TYPES.has(part.type as string) || typeof part.text !== 'string') continue;
    text = text === '' ? part.text : `${text}\n${part.text}`;
    if (text.length >= MAX_FEATURE_TEXT) return text.slice(0, MAX_FEATURE_TEXT);
  }
  return text;
}

function tokenCount(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/**
 * The {@link RequestFeatures} of a JSON request body: chat completions
 * (`messages`), Responses (`input`, a string or items) and legacy completions
 * (`prompt`). Cheap: one pass over the messages and their content parts, no
 * serialisation; only the last user message's text is copied (truncated).
 * A missing or unrecognised body yields zero messages, no tools or images and
 * empty text.
 */
export function requestFeatures(body: Record<string, unknown> | undefined, inputTokens: number): RequestFeatures {
  const features: RequestFeatures = { inputTokens, messages: 0, hasTools: false, hasImages: false, maxOutputTokens: undefined, text: '' };
  if (body === undefined) return features;
  const tools = Array.isArray(body.tools) ? body.tools : body.functions;
  features.hasTools = Array.isArray(tools) && tools.length > 0;
  features.maxOutputTokens = tokenCount(body.max_completion_tokens) ?? tokenCount(body.max_tokens) ?? tokenCount(body.max_output_tokens);
  const items = body.messages ?? body.input ?? body.prompt;
  if (typeof items === 'string') {
    features.messages = 1;
    features.text = contentText(items);
  } else if (Array.isArray(items)) {
    features.messages = items.length;
    let lastUser: unknown;
    let found = false;
    for (const item of items) {
      if (!isRecord(item)) continue;
      if (!features.hasImages && hasParts(item.content, IMAGE_PART_TYPES)) features.hasImages = true;
      if (item.role === 'user') {
        lastUser = item.content;
        found = true;
      }
    }
    if (found) features.text = contentText(lastUser);
    else if (items.length > 0 && typeof items[items.length - 1] === 'string') features.text = contentText(items[items.length - 1]);
  }
  return features;
}

