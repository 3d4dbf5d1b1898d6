/**
 * A reply's headers read once into a flat list, for the readers that look at
 * every one of them (the rate-limit parser, the key search in the envelope):
 * each iteration of a `Headers` makes an iterator result and a pair per
 * header, so two of them cost as much again as one.
 */

/** A `Headers`' entries as `[name, value, name, value, …]`, in its iteration order (sorted, lower-case names, values joined, `set-cookie` kept apart). */
export type HeaderEntries = readonly string[];

/** The entries of `headers` as a {@link HeaderEntries} list. */
export function headerEntries(headers: Headers): HeaderEntries {
  const list: string[] = [];
  for (const [name, value] of headers) list.push(name, value);
  return list;
}
