// For tests: what a promise settled with, as a worker error code.
import { WorkerError } from '../errors.ts';

/** The WorkerError code the promise rejected with; `OTHER:<error>` for another error, `NONE` when it resolved. */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (error) {
    return error instanceof WorkerError ? error.code : `OTHER:${String(error)}`;
  }
  return 'NONE';
}
