/**
 * What the SSE tap reads from an event once it is parsed: its `data:`
 * payload, the generated text in it, whether it completes the answer.
 */
const LF = 0x0a;
const CR = 0x0d;
const TERMINAL_TYPES = new Set(['response.completed', 'response.incomplete', 'response.failed']);
/**
 * The Responses stream events that carry no output: the response's state
 * before its first output item (OpenAI's `ResponseStreamEvent` list). Every
 * other event adds output (`response.output_item.added`, a delta, a tool
 * call's progress), ends the answer, or is an `error`.
 */
const PRELUDE_TYPES = new Set(['response.created', 'response.in_progress', 'response.queued']);
const ERROR_EVENT = /^event: ?error\r?$/m;

/** True when `text` from `from` on is only line breaks. */
function onlyLineBreaks(text: string, from: number): boolean {
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== LF && c !== CR) return false;
  }
  return true;
}

/**
 * One event's `data` payload joined, as the SDK reads it; undefined when the
 * SDK dispatches none (a comment, a keep-alive, only `id:` or `retry:`). A
 * `data` field without its colon is an empty line of data, and an event with
 * a name but no data is dispatched with empty data (which the SDK fails to
 * parse): both give ''.
 */
export function eventData(event: string): string | undefined {
  // The usual event, one `data:` line and its blank line, needs no split.
  if (event.startsWith('data:')) {
    const lf = event.indexOf('\n');
    const cr = event.indexOf('\r');
    const eol = lf === -1 ? cr : cr === -1 ? lf : Math.min(lf, cr);
    if (eol === -1 || onlyLineBreaks(event, eol)) return event.slice(event.charCodeAt(5) === 32 ? 6 : 5, eol === -1 ? event.length : eol);
  }
  let data: string | undefined;
  let named = false;
  for (const line of event.split(/\r?\n|\r/)) {
    // The field is the line up to its first colon (all of it without one); the value after it, less one space.
    const colon = line.indexOf(':');
    const field = colon === -1 ? line.length : colon;
    const isData = field === 4 && line.startsWith('data');
    if (!isData && !(field === 5 && line.startsWith('event'))) continue;
    const value = colon === -1 ? '' : line.charCodeAt(colon + 1) === 32 ? line.slice(colon + 2) : line.slice(colon + 1);
    if (isData) data = data === undefined ? value : `${data}\n${value}`;
    // The last `event` field names the event; an empty name is none.
    else named = value !== '';
  }
  return data ?? (named ? '' : undefined);
}

/** Estimated tokens of generated text: 4 characters a token, as keyplex estimates prompts. */
export function tokensOfText(chars: number): number {
  return Math.ceil(chars / 4);
}

export type Obj = Record<string, unknown>;
export const isObj = (value: unknown): value is Obj => typeof value === 'object' && value !== null;
const textLength = (value: unknown): number => (typeof value === 'string' ? value.length : 0);

/**
 * Generated text in one parsed event: chat deltas (content, reasoning, tool
 * arguments), legacy completion text, Responses `*.delta` events.
 */
export function generatedChars(parsed: unknown): number {
  if (!isObj(parsed)) return 0;
  const type = parsed.type;
  if (typeof type === 'string') return type.endsWith('.delta') ? textLength(parsed.delta) : 0;
  const choices = parsed.choices;
  if (!Array.isArray(choices)) return 0;
  let chars = 0;
  for (const choice of choices) {
    if (!isObj(choice)) continue;
    chars += textLength(choice.text);
    const delta = choice.delta;
    if (!isObj(delta)) continue;
    chars += textLength(delta.content) + textLength(delta.reasoning_content) + textLength(delta.reasoning) + textLength(delta.refusal);
    if (Array.isArray(delta.tool_calls)) {
      for (const call of delta.tool_calls) if (isObj(call) && isObj(call.function)) chars += textLength(call.function.arguments);
    }
  }
  return chars;
}

/** True for an event that completes the answer: a terminal Responses event, or a chat / legacy choice with its finish reason. */
export function endsAnswer(parsed: Obj): boolean {
  if (typeof parsed.type === 'string') return TERMINAL_TYPES.has(parsed.type);
  const choices = parsed.choices;
  return Array.isArray(choices) && choices.some((choice) => isObj(choice) && typeof choice.finish_reason === 'string');
}

/**
 * The id of the object a stream's event names as the one it creates: a
 * Responses event's `response.id` (`response.created` opens the stream with
 * it), a chat completion chunk's `id` (a stored chat completion's, with
 * `store: true`); undefined for other events.
 */
export function createdId(parsed: Obj): string | undefined {
  const response = parsed.response;
  if (isObj(response)) return typeof response.id === 'string' ? response.id : undefined;
  return parsed.object === 'chat.completion.chunk' && typeof parsed.id === 'string' ? parsed.id : undefined;
}

/**
 * True for an event that carries no output yet: a Responses event of
 * {@link PRELUDE_TYPES}, or a chat completion chunk with no usage whose
 * every choice has no finish reason, no text ({@link generatedChars}) and no
 * tool call — the assistant's role with an empty content, Azure's prompt
 * filter results (`choices: []`).
 */
export function isPrelude(parsed: Obj): boolean {
  const type = parsed.type;
  if (type !== undefined) return typeof type === 'string' && PRELUDE_TYPES.has(type);
  const choices = parsed.choices;
  if (!Array.isArray(choices) || (parsed.usage !== undefined && parsed.usage !== null) || generatedChars(parsed) !== 0) return false;
  return choices.every((choice) => isObj(choice) && (choice.finish_reason === undefined || choice.finish_reason === null) && !carriesCall(choice.delta));
}

/** Whether a chat delta starts or carries a tool call (its name comes before any argument). */
function carriesCall(delta: unknown): boolean {
  return isObj(delta) && ((Array.isArray(delta.tool_calls) && delta.tool_calls.length !== 0) || isObj(delta.function_call));
}

/**
 * The error an event reports, `event` being the whole event when it has
 * lines besides its `data:` line; undefined for none. As the SDK judges it
 * (legacy mode, it raises an `APIError` in the caller's loop): an `error`
 * event, or a payload with a truthy `error` (its object, else the payload).
 * And what the app meets as the end of its answer: a Responses `error` event
 * named by its `type` alone, `response.failed` (its response's `error`,
 * which the SDK hands the app as an event, not an exception), and a chat
 * choice that ends with `finish_reason: "error"`.
 */
export function eventError(parsed: Obj, event: string | undefined): Obj | undefined {
  if (parsed.type === 'response.failed') {
    const error = isObj(parsed.response) ? parsed.response.error : undefined;
    return isObj(error) ? error : parsed;
  }
  if (!parsed.error && parsed.type !== 'error' && (event === undefined || !event.includes('error') || !ERROR_EVENT.test(event))) return choiceError(parsed);
  return isObj(parsed.error) ? parsed.error : parsed;
}

/**
 * The error of a chat chunk's choice that ended with `finish_reason:
 * "error"` (OpenRouter's `StreamingChoice.error`, when the chunk has no
 * top-level `error`): its `error` object, else one saying so. The SDK hands
 * the app that chunk as any other; keyplex judges the answer failed.
 */
function choiceError(parsed: Obj): Obj | undefined {
  const choices = parsed.choices;
  if (!Array.isArray(choices)) return undefined;
  for (const choice of choices) {
    if (!isObj(choice) || choice.finish_reason !== 'error') continue;
    return isObj(choice.error) ? choice.error : { message: 'The upstream ended the answer with finish_reason "error".' };
  }
  return undefined;
}
