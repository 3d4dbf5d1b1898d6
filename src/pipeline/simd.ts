/**
 * The WebAssembly searches over a reply body's bytes, shared by the JSON
 * check (json-body.ts) and the key search (secrets/redact.ts), so that a
 * body is copied into WebAssembly memory once for both.
 *
 * Memory: bytes [0, 64 KiB) are the key table, a byte per 2-byte pair
 * (`first | second << 8`), non-zero when the loaded key holds that pair;
 * the body is staged at {@link BODY}, with zeros after it, and both
 * functions take and give indices into the body.
 */

/** Where the staged body starts in WebAssembly memory. */
const BODY = 65536;
/** Zero bytes after a staged body: every read past its end meets one (`< 0x20`, and no key pair). */
export const PAD = 32;
/** Bodies larger than this are not staged (the memory is kept for the process: it is bounded). */
export const MAX_STAGED = 1 << 20;

/**
 * `next(i)`: the first index from `i` on whose byte is `"`, `\` or below
 * 0x20, 16 bytes a step; the zeros after the body end every search.
 *
 * `probe(j, stop)`: the first of `j`, `j + 7`, ... below `stop` whose pair
 * (bytes at it and after it) the key table marks and that lies in a run of
 * at least 7 marked pairs in a row (as every 8 bytes of the key do), -1
 * when none: four pairs a turn while none is marked.
 *
 * The bytes below are exactly this module, compiled by wabt's
 * `wat2wasm --enable-simd` (npm `wabt`, `parseWat(..., { simd: true }).toBinary()`):
 *
 * ```wat
 * (module
 *   (memory 2)
 *   (export "m" (memory 0))
 *   (export "next" (func $next))
 *   (export "probe" (func $probe))
 *   (func $next (param $i i32) (result i32)
 *     (local $quote v128) (local $backslash v128) (local $space v128) (local $bytes v128) (local $hits i32)
 *     (local.set $quote (i8x16.splat (i32.const 34)))
 *     (local.set $backslash (i8x16.splat (i32.const 92)))
 *     (local.set $space (i8x16.splat (i32.const 32)))
 *     (loop $step
 *       (if (local.tee $hits (i8x16.bitmask (v128.or (v128.or
 *             (i8x16.eq (local.tee $bytes (v128.load offset=65536 align=1 (local.get $i))) (local.get $quote))
 *             (i8x16.eq (local.get $bytes) (local.get $backslash)))
 *             (i8x16.lt_u (local.get $bytes) (local.get $space)))))
 *         (then (return (i32.add (local.get $i) (i32.ctz (local.get $hits))))))
 *       (local.set $i (i32.add (local.get $i) (i32.const 16)))
 *       (br $step))
 *     (unreachable))
 *   (func $probe (param $j i32) (param $stop i32) (result i32)
 *     (local $k i32) (local $run i32)
 *     (loop $search
 *       (block $near
 *         (loop $four
 *           (br_if $near (i32.ge_u (local.get $j) (local.get $stop)))
 *           (br_if $near (i32.or
 *             (i32.or (i32.load8_u (i32.load16_u offset=65536 (local.get $j))) (i32.load8_u (i32.load16_u offset=65543 (local.get $j))))
 *             (i32.or (i32.load8_u (i32.load16_u offset=65550 (local.get $j))) (i32.load8_u (i32.load16_u offset=65557 (local.get $j))))))
 *           (local.set $j (i32.add (local.get $j) (i32.const 28)))
 *           (br $four)))
 *       (loop $one
 *         (if (i32.ge_u (local.get $j) (local.get $stop)) (then (return (i32.const -1))))
 *         (if (i32.eqz (i32.load8_u (i32.load16_u offset=65536 (local.get $j))))
 *           (then (local.set $j (i32.add (local.get $j) (i32.const 7))) (br $one))))
 *       (local.set $run (i32.const 1))
 *       (local.set $k (local.get $j))
 *       (block $right
 *         (loop $r
 *           (br_if $right (i32.ge_u (local.get $run) (i32.const 7)))
 *           (local.set $k (i32.add (local.get $k) (i32.const 1)))
 *           (br_if $right (i32.eqz (i32.load8_u (i32.load16_u offset=65536 (local.get $k)))))
 *           (local.set $run (i32.add (local.get $run) (i32.const 1)))
 *           (br $r)))
 *       (local.set $k (local.get $j))
 *       (block $left
 *         (loop $l
 *           (br_if $left (i32.ge_u (local.get $run) (i32.const 7)))
 *           (br_if $left (i32.eqz (local.get $k)))
 *           (local.set $k (i32.sub (local.get $k) (i32.const 1)))
 *           (br_if $left (i32.eqz (i32.load8_u (i32.load16_u offset=65536 (local.get $k)))))
 *           (local.set $run (i32.add (local.get $run) (i32.const 1)))
 *           (br $l)))
 *       (if (i32.ge_u (local.get $run) (i32.const 7)) (then (return (local.get $j))))
 *       (local.set $j (i32.add (local.get $j) (i32.const 7)))
 *       (br $search))
 *     (unreachable)))
 * ```
 */
const WASM =
  'AGFzbQEAAAABDAJgAX8Bf2ACf38BfwMDAgABBQMBAAIHFAMBbQIABG5leHQAAAVwcm9iZQABCr8CAlICBHsBf0Ei/Q8hAUHcAP0PIQJBIP0PIQMDQCAA/QAAgIAEIgQgAf0jIAQgAv0j/VAgBCAD/Sb9UP1kIgUEQCAAIAVoag8LIABBEGohAAwACwAL6QEBAn8DQAJAA0AgACABTw0BIAAvAYCABC0AACAALwGHgAQtAAByIAAvAY6ABC0AACAALwGVgAQtAABycg0BIABBHGohAAwACwsDQCAAIAFPBEBBfw8LIAAvAYCABC0AAEUEQCAAQQdqIQAMAQsLQQEhAyAAIQICQANAIANBB08NASACQQFqIQIgAi8BgIAELQAARQ0BIANBAWohAwwACwsgACECAkADQCADQQdPDQEgAkUNASACQQFrIQIgAi8BgIAELQAARQ0BIANBAWohAwwACwsgA0EHTwRAIAAPCyAAQQdqIQAMAAsACw==';

/** The little of the WebAssembly API used here (the project's typings leave it out; a runtime may too). */
interface Memory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface Exports {
  next: (i: number) => number;
  probe: (j: number, stop: number) => number;
  m: Memory;
}
interface Wasm {
  Module: new (code: Uint8Array) => object;
  Instance: new (module: object) => { exports: Exports };
}

/** The instance, with views of its memory (made again when the memory grows). */
export interface Simd {
  readonly next: (i: number) => number;
  readonly probe: (j: number, stop: number) => number;
  /** The key table. */
  table: Uint8Array;
  /** The staged body and everything after it. */
  body: Uint8Array;
}

let simd: Simd | null | undefined;
let memory: Memory;
/** What is staged: {@link stage} of the same array again copies nothing. */
let staged: Uint8Array | undefined;

/** The WebAssembly searches, made on first use; null where WebAssembly (or its SIMD) is not available. */
export function wasm(): Simd | null {
  if (simd === undefined) {
    try {
      const api = (globalThis as { WebAssembly?: Wasm }).WebAssembly!;
      const exports = new api.Instance(new api.Module(Uint8Array.from(atob(WASM), (c) => c.charCodeAt(0)))).exports;
      memory = exports.m;
      simd = { next: exports.next, probe: exports.probe, table: new Uint8Array(0), body: new Uint8Array(0) };
      views(simd);
    } catch {
      simd = null;
    }
  }
  return simd;
}

function views(s: Simd): void {
  s.table = new Uint8Array(memory.buffer, 0, BODY);
  s.body = new Uint8Array(memory.buffer, BODY);
}

/**
 * Forgets which array is staged (its copy stays in WebAssembly memory until
 * the next {@link stage}), so that the array is not kept alive by this
 * module: the last reader of a body calls it.
 */
export function unstage(): void {
  staged = undefined;
}

/**
 * `bytes` copied into WebAssembly memory with {@link PAD} zeros after them:
 * the view of them there (indices as in `bytes`, the zeros and more after
 * them), or null (no WebAssembly, more than {@link MAX_STAGED} bytes, no
 * memory). The last array staged is not copied again: callers do not change
 * an array once staged.
 */
export function stage(bytes: Uint8Array): Uint8Array | null {
  const s = wasm();
  const n = bytes.length;
  if (s === null || n > MAX_STAGED) return null;
  if (staged === bytes) return s.body;
  // 64 bytes of reads past the zeros at most.
  const short = n + PAD + 64 - s.body.length;
  if (short > 0) {
    try {
      memory.grow(Math.ceil(short / 65536));
    } catch {
      // No memory for it now: the caller searches it its own way.
      return null;
    }
    views(s);
  }
  const body = s.body;
  body.set(bytes);
  body.fill(0, n, n + PAD);
  staged = bytes;
  return body;
}
