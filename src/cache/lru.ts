/**
 * A bounded least-recently-used map of strings with a time to live per
 * entry: at most `maxEntries` entries and about `maxBytes` bytes (UTF-16
 * length × 2 of key and value); the least recently used go first, expired
 * ones when met.
 */
interface Entry {
  readonly value: string;
  readonly expiresAt: number;
  readonly bytes: number;
}

export class Lru {
  readonly #entries = new Map<string, Entry>();
  #bytes = 0;

  constructor(
    readonly maxEntries: number,
    readonly maxBytes: number,
  ) {}

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** The value, unless absent or expired at `now`; a hit becomes the most recently used. */
  get(key: string, now: number): string | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    this.#entries.delete(key);
    if (entry.expiresAt <= now) {
      this.#bytes -= entry.bytes;
      return undefined;
    }
    this.#entries.set(key, entry);
    return entry.value;
  }

  /** Stores `value` until `now + ttlMs`; a value larger than the whole budget is not kept. */
  set(key: string, value: string, ttlMs: number, now: number): void {
    const bytes = 2 * (key.length + value.length);
    const old = this.#entries.get(key);
    if (old !== undefined) {
      this.#entries.delete(key);
      this.#bytes -= old.bytes;
    }
    if (bytes > this.maxBytes || ttlMs <= 0) return;
    this.#entries.set(key, { value, expiresAt: now + ttlMs, bytes });
    this.#bytes += bytes;
    for (const [oldest, entry] of this.#entries) {
      if (this.#entries.size <= this.maxEntries && this.#bytes <= this.maxBytes) break;
      this.#entries.delete(oldest);
      this.#bytes -= entry.bytes;
    }
  }
}
