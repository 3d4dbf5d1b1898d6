/**
 * The Response the SDK gets for a reply whose body keyplex has read already.
 */

type Method = 'arrayBuffer' | 'blob' | 'bytes' | 'formData';
const DELEGATED: readonly Method[] = ['arrayBuffer', 'blob', 'bytes', 'formData'];

/**
 * A Response holding a body keyplex read as text. It is made without a body
 * stream (making one, for the SDK to read back and decode, cost as much as
 * the rest of the reply): `text()` and `json()` take the text as it is;
 * `body`, `arrayBuffer()`, `bytes()`, `blob()`, `formData()` and `clone()`
 * work from a Response made on first use. Like any body, it reads once.
 */
export class BufferedReply extends Response {
  readonly #text: string;
  #used = false;
  #inner: Response | undefined;

  constructor(text: string, init: ResponseInit) {
    super(null, init);
    this.#text = text;
  }

  /** The body as an ordinary Response, made on first use. */
  #full(): Response {
    return (this.#inner ??= new Response(this.#text, { headers: { 'content-type': this.headers.get('content-type') ?? 'text/plain;charset=UTF-8' } }));
  }

  /** The text, once; a rejection when the body was read. */
  #take(): Promise<string> {
    if (this.#inner) return this.#inner.text();
    if (this.#used) return Promise.reject(new TypeError('Body is unusable: Body has already been read'));
    this.#used = true;
    return Promise.resolve(this.#text);
  }

  static {
    // On the prototype: the DOM typings declare Response's members as properties, which a class cannot override.
    const proto = BufferedReply.prototype;
    const props: PropertyDescriptorMap = {
      text: { configurable: true, writable: true, value: function text(this: BufferedReply) { return this.#take(); } },
      json: {
        configurable: true,
        writable: true,
        value: function json(this: BufferedReply) {
          return this.#take().then((text) => JSON.parse(text) as unknown);
        },
      },
      body: { configurable: true, get: function body(this: BufferedReply) { return this.#used ? null : this.#full().body; } },
      bodyUsed: { configurable: true, get: function bodyUsed(this: BufferedReply) { return this.#used || (this.#inner?.bodyUsed ?? false); } },
      clone: {
        configurable: true,
        writable: true,
        value: function clone(this: BufferedReply) {
          if (this.bodyUsed) throw new TypeError('Response.clone: Body has already been consumed.');
          return new BufferedReply(this.#text, { status: this.status, statusText: this.statusText, headers: this.headers });
        },
      },
    };
    for (const name of DELEGATED) {
      props[name] = {
        configurable: true,
        writable: true,
        value(this: BufferedReply) {
          if (this.#used) return Promise.reject(new TypeError('Body is unusable: Body has already been read'));
          const full = this.#full();
          return ((full as unknown as Record<Method, () => Promise<unknown>>)[name]).call(full);
        },
      };
    }
    Object.defineProperties(proto, props);
  }
}
