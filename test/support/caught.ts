/** What the app catches from `run`: the error, or a failure of the test if none. */
export async function caught(run: () => Promise<unknown>): Promise<Error> {
  try {
    await run();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the call to fail');
}

/** `run` `n` times: how many threw, and the first error's message. */
export async function failures(n: number, run: () => Promise<unknown>): Promise<{ failed: number; first?: string }> {
  let failed = 0;
  let first: string | undefined;
  for (let i = 0; i < n; i++) {
    try {
      await run();
    } catch (error) {
      failed++;
      first ??= (error as Error).message;
    }
  }
  return { failed, first };
}

/** Settles with what the call gave, the reply or the error; `done()` says whether it has. */
export function settle<T>(promise: Promise<T>): { done: () => boolean; result: Promise<T | Error> } {
  let done = false;
  const result = promise.then(
    (value) => ((done = true), value),
    (error: Error) => ((done = true), error),
  );
  return { done: () => done, result };
}
