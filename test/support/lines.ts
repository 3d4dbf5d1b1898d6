/**
 * Reading a child process's output line by line: the multi-process test and
 * the pacing benchmark talk to their replicas this way.
 */
import type { Readable } from 'node:stream';

/** A reader of `stream`'s lines: each call resolves to the next line (waiting for it when none is buffered). */
export function lineReader(stream: Readable): () => Promise<string> {
  let buffer = '';
  const waiting: ((line: string) => void)[] = [];
  const lines: string[] = [];
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buffer += chunk;
    let index: number;
    while ((index = buffer.indexOf('\n')) !== -1) {
      const line = buffer.slice(0, index);
      buffer = buffer.slice(index + 1);
      const wake = waiting.shift();
      if (wake) wake(line);
      else lines.push(line);
    }
  });
  return () => {
    const line = lines.shift();
    return line !== undefined ? Promise.resolve(line) : new Promise((resolve) => waiting.push(resolve));
  };
}
