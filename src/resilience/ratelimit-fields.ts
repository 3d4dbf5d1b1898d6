/**
 * The IETF `RateLimit` header fields (draft-ietf-httpapi-ratelimit-headers),
 * in each of the forms servers send, read into windows for the one header
 * reader (headers.ts), which bounds and merges them:
 *
 * - drafts 00–06: `RateLimit-Limit: 100` (drafts 00–03 may list the policies
 *   after it: `100, 100;w=60`), `RateLimit-Remaining: 50`,
 *   `RateLimit-Reset: 30` (seconds), `RateLimit-Policy: 100;w=60`
 *   (Kong, GitLab, express-rate-limit's `draft-6`);
 * - drafts 07–08: `RateLimit: limit=100, remaining=50, reset=30`, with
 *   `RateLimit-Policy: 100;w=60`;
 * - drafts 09 on: `RateLimit: "default";r=50;t=30` and
 *   `RateLimit-Policy: "default";q=100;w=60` (a list each, joined by the
 *   policy's name; Cloudflare's API).
 *
 * A policy's window (`w`, seconds) is the period the limit holds over. The
 * quota unit (`qu`) is requests unless it says `tokens`; other units
 * (content bytes, concurrent requests) are not rate windows keyplex keeps.
 * Only read when one of the fields is there: never on the common path.
 */
import { isDecimal } from './header-values';

/** Receives one window: a dimension and its fields (`undefined`: not stated), reset and period in ms, uncapped. */
export type WindowSink = (dimension: 'requests' | 'tokens', limit: number | undefined, remaining: number | undefined, resetMs: number | undefined, periodMs: number | undefined) => void;

/** One item of a structured field list: its bare value (a name or a number, quotes removed) and its parameters. */
interface Item {
  value: string;
  named: boolean;
  params: Map<string, string>;
}

/** A non-negative whole or decimal number, else undefined. */
function count(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const trimmed = text.trim();
  return isDecimal(trimmed) ? Number(trimmed) : undefined;
}

/** Splits `text` at `separator`, never inside a quoted string. */
function split(text: string, separator: string): string[] {
  const parts: string[] = [];
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"' && text[i - 1] !== '\\') quoted = !quoted;
    else if (c === separator && !quoted) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

const unquote = (text: string) => (text.length >= 2 && text.startsWith('"') && text.endsWith('"') ? text.slice(1, -1) : text);

/** The items of a structured field list (`"a";q=1;w=2, 10;w=60`). */
function items(field: string): Item[] {
  const list: Item[] = [];
  for (const member of split(field, ',')) {
    const [head = '', ...rest] = split(member, ';').map((part) => part.trim());
    if (head === '') continue;
    const params = new Map<string, string>();
    for (const param of rest) {
      const eq = param.indexOf('=');
      if (eq > 0) params.set(param.slice(0, eq).trim().toLowerCase(), unquote(param.slice(eq + 1).trim()));
    }
    // A name is a string (drafts 09 on), or a token from a lax server; a quota (drafts 05–08) is a number.
    list.push({ value: unquote(head), named: head.startsWith('"') || (!isDecimal(head) && !head.includes('=')), params });
  }
  return list;
}

/** A policy's window in ms (its `w`, seconds), when stated. */
const windowMs = (item: Item | undefined): number | undefined => {
  const w = count(item?.params.get('w'));
  return w === undefined || w <= 0 ? undefined : w * 1000;
};

/** The dimension a draft-09 policy's quota unit counts in; undefined for units that are not rate windows. */
function unitOf(item: Item | undefined): 'requests' | 'tokens' | undefined {
  const unit = item?.params.get('qu');
  return unit === undefined || unit === 'requests' ? 'requests' : unit === 'tokens' ? 'tokens' : undefined;
}

/** The period of the policy (an unnamed `quota;w=…` item) whose quota is `limit`, among `policies`. */
function periodOfQuota(policies: readonly Item[], limit: number | undefined): number | undefined {
  if (limit === undefined) return undefined;
  return windowMs(policies.find((policy) => !policy.named && count(policy.value) === limit));
}

/** Drafts 09 on: each `RateLimit` item joined to its policy by name; policies no item names, alone. */
function readNamed(field: readonly Item[], policies: readonly Item[], emit: WindowSink): void {
  const byName = new Map(policies.filter((policy) => policy.named).map((policy) => [policy.value, policy]));
  for (const item of field) {
    if (!item.named) continue;
    const policy = byName.get(item.value);
    byName.delete(item.value);
    const dimension = unitOf(policy);
    const t = count(item.params.get('t'));
    if (dimension !== undefined) emit(dimension, count(policy?.params.get('q')), count(item.params.get('r')), t === undefined ? undefined : t * 1000, windowMs(policy));
  }
  for (const policy of byName.values()) {
    const dimension = unitOf(policy);
    if (dimension !== undefined) emit(dimension, count(policy.params.get('q')), undefined, undefined, windowMs(policy));
  }
}

/** Drafts 07–08: `RateLimit: limit=…, remaining=…, reset=…` (a dictionary). */
function readDictionary(field: readonly Item[], policies: readonly Item[], emit: WindowSink): void {
  const member = (key: string) => {
    const found = field.find((item) => item.value.startsWith(`${key}=`));
    return found === undefined ? undefined : count(found.value.slice(key.length + 1));
  };
  const limit = member('limit');
  const reset = member('reset');
  emit('requests', limit, member('remaining'), reset === undefined ? undefined : reset * 1000, periodOfQuota(policies, limit));
}

/**
 * Reads the IETF fields' values (`null` when absent) and hands each window
 * they describe to `emit` (several when several policies are stated).
 */
export function readRateLimitFields(limitValue: string | null, remainingValue: string | null, resetValue: string | null, field: string | null, policy: string | null, emit: WindowSink): void {
  const policies = policy === null ? [] : items(policy);
  if (limitValue !== null || remainingValue !== null || resetValue !== null) {
    // Drafts 00–03 list the policies after the limit: `RateLimit-Limit: 10, 10;w=1, 50;w=60`.
    const inline = limitValue === null ? [] : items(limitValue);
    const limit = count(inline[0]?.params.size === 0 ? inline[0].value : undefined);
    const reset = count(resetValue ?? undefined);
    emit('requests', limit, count(remainingValue ?? undefined), reset === undefined ? undefined : reset * 1000, periodOfQuota(inline.slice(1), limit) ?? periodOfQuota(policies, limit));
  }
  if (field === null) {
    if (limitValue === null && remainingValue === null && resetValue === null) readNamed([], policies, emit);
    return;
  }
  const list = items(field);
  if (list.some((item) => item.named)) readNamed(list, policies, emit);
  else readDictionary(list, policies, emit);
}
