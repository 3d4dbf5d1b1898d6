/**
 * Micro-benchmark of key redaction (src/secrets): the cost of scanning a
 * reply for pieces of the attempt's key, at 8 KiB and 64 KiB, against
 * `JSON.parse` of the same text (which keyplex does anyway for usage).
 * Internal modules, so bundled first:
 *
 *   npx esbuild bench/redact.ts --bundle --platform=node --format=esm --outfile=/tmp/redact-bench.mjs && node /tmp/redact-bench.mjs
 */
import { randomBytes } from 'node:crypto';
import { headerEntries } from '../src/header-list.ts';
import { parseJsonSummary } from '../src/pipeline/json-body.ts';
import { KeyRedactor, redactEnvelope } from '../src/secrets/redact.ts';

const key = `sk-proj-${randomBytes(36).toString('base64url')}`;
const redactor = new KeyRedactor(key, 'fp_0123456789');
const words = 'the quick brown fox jumps over the lazy dog while a model streams tokens to the caller'.split(' ');

function chatJson(bytes: number): string {
  let content = '';
  for (let i = 0; content.length < bytes - 400; i++) content += `${words[i % words.length]} `;
  return JSON.stringify({ id: 'chatcmpl-abc', object: 'chat.completion', created: 1, model: 'gpt-4.1', choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }], usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 } });
}

function base64Json(bytes: number): string {
  return JSON.stringify({ object: 'list', data: [{ object: 'embedding', index: 0, embedding: randomBytes(Math.floor(bytes * 0.74)).toString('base64') }] });
}

/** Median CPU µs per call of `run` over rounds (CPU time: the machine may be shared). */
function time(run: () => unknown, iterations: number): number {
  const rounds: number[] = [];
  for (let r = 0; r < 15; r++) {
    const t0 = process.cpuUsage();
    for (let i = 0; i < iterations; i++) run();
    const used = process.cpuUsage(t0);
    rounds.push((used.user + used.system) / iterations);
  }
  rounds.sort((a, b) => a - b);
  return rounds[Math.floor(rounds.length / 2)]!;
}

const rows: string[] = ['| body | size | scan text (µs) | scan bytes (µs) | scan bytes + JSON check (µs) | JSON.parse (µs) |', '|---|---:|---:|---:|---:|---:|'];
for (const [name, make] of [['chat JSON (English)', chatJson], ['embedding JSON (base64)', base64Json]] as const) {
  for (const size of [8 * 1024, 64 * 1024]) {
    const text = make(size);
    // Two arrays in turn, as every reply is a new one: a long one is copied into WebAssembly memory each time.
    const arrays = [new TextEncoder().encode(text), new TextEncoder().encode(text)];
    let turn = 0;
    const n = size > 10_000 ? 500 : 4000;
    const scanText = time(() => redactor.text(text), n);
    const scanBytes = time(() => redactor.bytes(arrays[turn++ & 1]!), n);
    const checked = time(() => parseJsonSummary(redactor.bytes(arrays[turn++ & 1]!)), n);
    const parse = time(() => JSON.parse(text), n);
    rows.push(`| ${name} | ${(text.length / 1024).toFixed(0)} KiB | ${scanText.toFixed(1)} | ${scanBytes.toFixed(1)} | ${checked.toFixed(1)} | ${parse.toFixed(1)} |`);
  }
}
const response = new Response('{}', {
  headers: {
    'content-type': 'application/json',
    'x-request-id': 'req_0123456789abcdef',
    'openai-processing-ms': '321',
    'x-ratelimit-limit-requests': '10000',
    'x-ratelimit-remaining-requests': '9999',
    'x-ratelimit-reset-requests': '6ms',
    'x-ratelimit-limit-tokens': '2000000',
    'x-ratelimit-remaining-tokens': '1999000',
    'x-ratelimit-reset-tokens': '30ms',
    date: new Date().toUTCString(),
    'cf-ray': '8a1b2c3d4e5f6a7b-AMS',
  },
});
const envelope = time(() => redactEnvelope(response, redactor, headerEntries(response.headers)), 20_000);
console.log(rows.join('\n'));
console.log(`\nstatus text + 11 headers checked (no echo): ${envelope.toFixed(2)} µs per reply`);
