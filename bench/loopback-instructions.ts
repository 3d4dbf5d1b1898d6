/**
 * One client for an instruction count on loopback (not part of `npm run
 * bench`): the raw SDK or keyplex (dist/, 3 providers × 10 fake keys,
 * listeners on `request`, `attempt`, `success`) sends `n` chat requests at
 * concurrency `c` through Node's global fetch to a node:http server in a
 * child process on 127.0.0.1, which answers each at once with the JSON
 * reply and OpenAI's six rate-limit headers. Run it under callgrind twice
 * per client (the child is not traced) and take the difference, so that
 * start-up and JIT warm-up cancel out:
 *
 *   npm run build
 *   valgrind --tool=callgrind --callgrind-out-file=/tmp/raw-6k node --single-threaded bench/loopback-instructions.ts raw 6000
 *   valgrind --tool=callgrind --callgrind-out-file=/tmp/raw-14k node --single-threaded bench/loopback-instructions.ts raw 14000
 *   (the same for `wrapped`); per request = (14k total − 6k total) ÷ 8000
 *
 * Instruction counts do not move with the machine's load, where the
 * loopback scenario's CPU times do (cache misses, GC helper threads and the
 * server sharing 2 cores). What it showed (2026-12-01, at concurrency 64,
 * 6,000 → 14,000): raw 1,456,650 instructions per request, keyplex
 * 1,611,250: 1.106×, 154,600 added (in-process the same reply adds ~169,000
 * to the SDK's 546,350). A 2,000 → 6,000 window still counted the JIT's
 * compilations (raw 1.9M, 488K of them compiling).
 *
 *   node bench/loopback-instructions.ts <raw|wrapped> <n> [concurrency, default 64]
 */
import OpenAI from 'openai';
import { managerFrom } from './ab-lib.ts';
import { OPENAI_RATE_HEADERS } from './hotpath.ts';
import { cannedServer, CHAT_BODY, CHAT_JSON, fakeKey, fetchAt } from './lib.ts';

const [variant, nArg, concArg] = process.argv.slice(2);
if ((variant !== 'raw' && variant !== 'wrapped') || !(Number(nArg) > 0)) throw new Error('usage: node bench/loopback-instructions.ts <raw|wrapped> <n> [concurrency]');
const n = Number(nArg);
const concurrency = Number(concArg ?? 64);
const server = await cannedServer(CHAT_JSON, { 'content-type': 'application/json', 'x-request-id': 'req_bench', ...OPENAI_RATE_HEADERS });
const fetch = fetchAt(server.origin);
const manager = variant === 'wrapped' ? await managerFrom(new URL('../dist/index.js', import.meta.url).pathname, fetch) : undefined;
const client = manager ? manager.wrap(new OpenAI({ apiKey: 'managed-by-keyplex', maxRetries: 0 })) : new OpenAI({ apiKey: fakeKey(), baseURL: 'https://raw.bench.invalid/v1', fetch, maxRetries: 0 });
let issued = 0;
await Promise.all(Array.from({ length: concurrency }, async () => {
  while (issued++ < n) await client.chat.completions.create(CHAT_BODY);
}));
await manager?.close();
server.kill();
