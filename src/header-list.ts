/**
 * A reply's headers read once, for the readers that look at every one of
 * them (the rate-limit parser, the key search in the envelope, the headers
 * the SDK iterates): each iteration of a `Headers` makes an iterator result
 * and a pair per header, so two of them cost as much again as one. The pairs
 * that iteration made are kept as they are (no second list of the names and
 * values); keyplex only reads them, and once they are read, the first
 * listing of the reply's headers hands them on to its reader (each pair to
 * one reader only, as a Headers' iterator makes its own: reply-headers.ts).
 */

/** A `Headers`' entries as its iterator gives them: `[name, value]` pairs in its order (sorted, lower-case names, values joined, `set-cookie` kept apart). */
export type HeaderEntries = readonly (readonly [string, string])[];

/** The entries of `headers` as a {@link HeaderEntries} list. */
export function headerEntries(headers: Headers): HeaderEntries {
  const list: (readonly [string, string])[] = [];
  for (const entry of headers) list.push(entry);
  return list;
}
