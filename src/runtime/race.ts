/**
 * A caller's wait that its signal or deadline can end without ending the work: the edge pool's
 * queue and run, the cloud service's wait for a shared model load.
 */
import { AbortedError, DeadlineExceededError } from './errors.js';

/**
 * Waits for `work` unless the caller's signal or deadline ends first. The work itself keeps
 * going to completion (its slot is released then); only the caller stops waiting.
 */
export function raceCaller<T>(work: Promise<T>, options: { signal?: AbortSignal; deadline?: number }, stage: string): Promise<T> {
  const { signal, deadline } = options;
  if (!signal && deadline === undefined) return work;
  return new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const done = (): void => {
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = (): void => {
      done();
      reject(new AbortedError(signal?.reason));
    };
    if (signal?.aborted) {
      onAbort();
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    if (deadline !== undefined) {
      timer = setTimeout(() => {
        done();
        reject(new DeadlineExceededError(deadline, stage));
      }, Math.max(0, deadline - Date.now()));
    }
    work.then(
      (value) => {
        done();
        resolve(value);
      },
      (error: unknown) => {
        done();
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
