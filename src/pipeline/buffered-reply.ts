/**
 * The Response the SDK gets for a reply whose body keyplex has read already.
 */

type Method = 'arrayBuffer' | 'blob' | 'bytes' | 'formData';
const DELEGATED: readonly Method[] = ['arrayBuffer', 'blob', 'bytes', 'formData'];

const decoder = new TextDecoder();

/**
 * A Response holding a body keyplex read whole, as text or as bytes (UTF-8,
 * decoded as `Response.text()` decodes them when first read: a large reply's
 * text is not made until the SDK asks for it, so it is not copied about by
 * the garbage collector meanwhile). It is made without a body
 * stream (making one, for the SDK to read back and decode, cost as much as
 * the rest of the reply): `text()` and `json()` take the text as it is;
 * `body`, `arrayBuffer()`, `bytes()`, `blob()`, `formData()` and `clone()`
 * work from a Response made on first use. Like any body, it reads once.
 */
export class BufferedReply extends Response {
  /** The body until it is read: then let go (it reads once), so a reply the SDK keeps holds no copy of it. */
  #body: string | Uint8Array;
  readonly #headers: Headers;
  #used = false;
  #inner: Response | undefined;

  /** @param headers - the reply's headers, kept as given (`headers` answers with them; nothing is copied). */
  constructor(body: string | Uint8Array, status: number, statusText: string, headers: Headers) {
    super(null, { status, statusText });
    this.#body = body;
    this.#headers = headers;
  }

  /** The body as an ordinary Response, made on first use. */
  #full(): Response {
    return (this.#inner ??= new Response(this.#body, { headers: { 'content-type': this.headers.get('content-type') ?? 'text/plain;charset=UTF-8' } }));
  }

  /** The text, once; a rejection when the body was read. */
  #take(): Promise<string> {
    if (this.#inner) return this.#inner.text();
    if (this.#used) return Promise.reject(new TypeError('Body is unusable: Body has already been read'));
    this.#used = true;
    const body = this.#body;
    this.#body = '';
    return Promise.resolve(typeof body === 'string' ? body : decoder.decode(body));
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
      headers: { configurable: true, get: function headers(this: BufferedReply) { return this.#headers; } },
      body: { configurable: true, get: function body(this: BufferedReply) { return this.#used ? null : this.#full().body; } },
      bodyUsed: { configurable: true, get: function bodyUsed(this: BufferedReply) { return this.#used || (this.#inner?.bodyUsed ?? false); } },
      clone: {
        configurable: true,
        writable: true,
        value: function clone(this: BufferedReply) {
          if (this.bodyUsed) throw new TypeError('Response.clone: Body has already been consumed.');
          return new BufferedReply(this.#body, this.status, this.statusText, new Headers(this.#headers));
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

/**
 * A Response for a reply whose body keyplex passes on as a stream (tapped
 * events, redacted text, bytes), with headers kept as given: `headers`
 * answers with them (the base Response holds only the content type, for
 * `blob()` and `formData()`); `clone()` gives a plain Response.
 */
export class StreamedReply extends Response {
  readonly #headers: Headers;

  constructor(body: ReadableStream<Uint8Array> | null, status: number, statusText: string, headers: Headers) {
    const type = headers.get('content-type');
    super(body, { status, statusText, headers: type === null ? undefined : { 'content-type': type } });
    this.#headers = headers;
  }

  static {
    Object.defineProperties(StreamedReply.prototype, {
      headers: { configurable: true, get: function headers(this: StreamedReply) { return this.#headers; } },
      clone: {
        configurable: true,
        writable: true,
        value: function clone(this: StreamedReply) {
          const copy = Response.prototype.clone.call(this);
          return new Response(copy.body, { status: this.status, statusText: this.statusText, headers: this.#headers });
        },
      },
    });
  }
}
