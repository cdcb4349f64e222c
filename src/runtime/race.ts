/**
 * A caller's wait that its signal or deadline can end without ending the work: the edge pool's
 * run, the cloud service's wait for a shared model load. The runtime's errors over the shared
 * deadline helper (src/util/deadline.ts).
 */
import { raceAbort } from '../util/deadline.js';
import { AbortedError, DeadlineExceededError } from './errors.js';

/**
 * Waits for `work` unless the caller's signal or deadline ends first, rejecting then with
 * `AbortedError` or `DeadlineExceededError` (`stage` says what was being waited for). The work
 * itself keeps going to completion (its slot is released then); only the caller stops waiting.
 */
export function raceCaller<T>(work: Promise<T>, options: { signal?: AbortSignal | undefined; deadline?: number | undefined }, stage: string): Promise<T> {
  return raceAbort(work, options, (by, reason) => (by === 'deadline' ? new DeadlineExceededError(options.deadline ?? 0, stage) : new AbortedError(reason)));
}
