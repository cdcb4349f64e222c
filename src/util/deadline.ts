/**
 * The one way Tandem ends a wait at a caller's abort or at a deadline, whichever comes first.
 * `watchDeadline` is the primitive: one listener on the caller's signal and one timer, both
 * removed when the watch ends or is stopped. On it: `raceAbort`, a race of a promise against
 * the two (the edge pool's run, the cloud service's shared loads, SDK calls), `deadlineSignal`,
 * one AbortSignal for the two (a transport that takes a signal: the providers, the executor's
 * endpoint cutoff), and the bounded queue's waiters (src/util/bounded-queue.ts).
 *
 * Not `AbortSignal.any` with `AbortSignal.timeout`: on Node 20 a signal made by `any` stays
 * referenced by a long-lived source signal (an agent's shutdown signal, say) for as long as
 * that source lives, the timer of `timeout` cannot be cancelled (each settled call would leave
 * one behind until its deadline), and every AbortSignal costs microseconds to create, which a
 * race that needs no signal of its own should not pay. See docs/design/concurrency.md.
 */

export interface DeadlineOptions {
  /** The caller's signal: its abort ends the wait. */
  signal?: AbortSignal | undefined;
  /** Absolute deadline, epoch milliseconds. */
  deadline?: number | undefined;
}

/** What ended a wait: the caller's signal, or the deadline. */
export type EndedBy = 'abort' | 'deadline';

const noop = (): void => undefined;

/**
 * Calls `onEnd` once, when the caller's signal aborts (with its reason) or the deadline passes,
 * whichever comes first; at once, before returning, when either already holds (the abort
 * winning). Returns a function that stops watching: call it when the guarded wait settles.
 * Whichever ends the watch, the other's timer or listener is removed with it.
 */
export function watchDeadline(options: DeadlineOptions, onEnd: (by: EndedBy, reason: unknown) => void): () => void {
  const { signal, deadline } = options;
  if (!signal && deadline === undefined) return noop;
  if (signal?.aborted) {
    onEnd('abort', signal.reason);
    return noop;
  }
  if (deadline !== undefined && deadline <= Date.now()) {
    onEnd('deadline', undefined);
    return noop;
  }
  let timer: NodeJS.Timeout | undefined;
  const onAbort = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    onEnd('abort', signal?.reason);
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  if (deadline !== undefined) {
    timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      onEnd('deadline', undefined);
    }, deadline - Date.now());
  }
  return () => {
    if (timer !== undefined) clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  };
}

const timeoutError = (): DOMException => new DOMException('The operation was aborted due to timeout', 'TimeoutError');

/** What `raceAbort` rejects with by default: the abort's reason when it is an Error, else a plain one. */
function endError(by: EndedBy, reason: unknown): Error {
  if (by === 'deadline') return timeoutError();
  return reason instanceof Error ? reason : new Error('aborted');
}

/**
 * Settles as `work` does unless the caller's signal or deadline ends first; then rejects with
 * `onEnd(by, reason)`. The work itself goes on (work that cannot be cancelled: an SDK call, a
 * shared load, a worker's run); only the wait ends, and a failure of the abandoned work is not
 * left unhandled. Without a signal or a deadline it is `work` itself.
 */
export function raceAbort<T>(work: Promise<T>, options: DeadlineOptions, onEnd: (by: EndedBy, reason: unknown) => Error = endError): Promise<T> {
  if (!options.signal && options.deadline === undefined) return work;
  return new Promise<T>((resolve, reject) => {
    const stop = watchDeadline(options, (by, reason) => reject(onEnd(by, reason)));
    work.then(
      (value) => {
        stop();
        resolve(value);
      },
      (error: unknown) => {
        stop();
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

export interface DeadlineScope {
  /** Aborts at the caller's abort (with its reason) or at the deadline. Owned by the scope. */
  readonly signal: AbortSignal;
  /** Whether the deadline, not the caller, ended the scope. */
  readonly expired: boolean;
  /** Milliseconds left before the deadline (Infinity without one). */
  remaining(): number;
  /** Removes the timer and the listener on the caller's signal. Call once the guarded work settles. */
  dispose(): void;
}

/**
 * One AbortSignal for a transport that takes one: it aborts when the caller's signal does or
 * when the deadline passes, at once when either already holds. The deadline's reason is
 * `timeoutReason()` (default: a `TimeoutError` DOMException, as `AbortSignal.timeout` gives).
 */
export function deadlineSignal(options: DeadlineOptions & { timeoutReason?: () => unknown }): DeadlineScope {
  const controller = new AbortController();
  let expired = false;
  const dispose = watchDeadline(options, (by, reason) => {
    expired = by === 'deadline';
    controller.abort(expired ? (options.timeoutReason ?? timeoutError)() : reason);
  });
  const { deadline } = options;
  return {
    signal: controller.signal,
    get expired() {
      return expired;
    },
    remaining: () => (deadline === undefined ? Infinity : deadline - Date.now()),
    dispose,
  };
}
