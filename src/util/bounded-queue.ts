/**
 * Bounded concurrency with a bounded FIFO queue: at most `capacity` holders at once, at most
 * `maxQueue` waiters behind them. The edge pool's workers and the cloud service's per-model
 * limit both queue here; each supplies its own errors (`QueueRefusals`), so that a refusal
 * keeps the code and shape its callers already branch on.
 */
import { watchDeadline } from './deadline.js';

/** The errors a queue rejects with, made by its owner. */
export interface QueueRefusals {
  /** The queue holds `maxQueue` waiters and the caller asked not to wait for room. */
  full(queue: { active: number; queued: number; maxQueue: number }): Error;
  /** The caller's signal aborted: before it queued (`before`) or while it waited (`queued`). */
  aborted(reason: unknown, when: 'before' | 'queued'): Error;
  /** The deadline passed while the caller waited. */
  expired(deadline: number): Error;
}

export interface BoundedQueueOptions {
  /** Holders allowed at once (≥ 1). */
  capacity: number;
  /** Waiters allowed when refusing rather than waiting for room (≥ 0). */
  maxQueue: number;
  refusals: QueueRefusals;
  /** Called whenever the number of waiters or holders changes. */
  onChange?: (queued: number, active: number) => void;
}

export interface QueueAcquireOptions {
  signal?: AbortSignal | undefined;
  /** Absolute deadline, epoch milliseconds: a waiter still queued then is refused. */
  deadline?: number | undefined;
  /** With the queue at `maxQueue`: refuse at once (default), or wait anyway. */
  whenFull?: 'wait' | 'reject' | undefined;
}

interface Waiter {
  grant(): void;
  fail(error: Error): void;
}

export class BoundedQueue {
  readonly capacity: number;
  readonly maxQueue: number;
  private readonly refusals: QueueRefusals;
  private readonly onChange: (queued: number, active: number) => void;
  private readonly waiters: Waiter[] = [];
  private holders = 0;

  constructor(options: BoundedQueueOptions) {
    this.capacity = options.capacity;
    this.maxQueue = options.maxQueue;
    this.refusals = options.refusals;
    this.onChange = options.onChange ?? (() => undefined);
  }

  /** Callers waiting for a slot. */
  get queued(): number {
    return this.waiters.length;
  }

  /** Callers holding a slot. */
  get active(): number {
    return this.holders;
  }

  /** Whether `acquire` would not resolve at once (it would queue, or refuse). */
  get full(): boolean {
    return this.holders >= this.capacity;
  }

  /**
   * Resolves once the caller holds a slot, which it gives back with `release()`. Rejects with
   * the owner's refusal when the queue is full (`whenFull: 'reject'`), when `signal` aborts
   * before the grant (or had already), or when `deadline` passes while queued. A waiter that
   * leaves gives its place up at once: the bound counts only callers that will run.
   */
  acquire(options: QueueAcquireOptions = {}): Promise<void> {
    const { signal, deadline } = options;
    if (signal?.aborted) return Promise.reject(this.refusals.aborted(signal.reason, 'before'));
    if (this.holders < this.capacity && this.waiters.length === 0) {
      this.holders++;
      this.onChange(this.waiters.length, this.holders);
      return Promise.resolve();
    }
    if ((options.whenFull ?? 'reject') === 'reject' && this.waiters.length >= this.maxQueue) {
      return Promise.reject(this.refusals.full({ active: this.holders, queued: this.waiters.length, maxQueue: this.maxQueue }));
    }
    return new Promise<void>((resolve, reject) => {
      let refused = false;
      const waiter: Waiter = {
        grant: () => {
          stop();
          resolve();
        },
        fail: (error) => {
          stop();
          reject(error);
        },
      };
      // Called at once, before the waiter is queued, for a deadline already past.
      const stop = watchDeadline({ signal, deadline }, (by, reason) => {
        refused = true;
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) {
          this.waiters.splice(i, 1);
          this.onChange(this.waiters.length, this.holders);
        }
        reject(by === 'deadline' ? this.refusals.expired(deadline ?? 0) : this.refusals.aborted(reason, 'queued'));
      });
      if (refused) return;
      this.waiters.push(waiter);
      this.onChange(this.waiters.length, this.holders);
    });
  }

  /** Gives a slot back: it passes straight to the first waiter, or is freed. */
  release(): void {
    const next = this.waiters.shift();
    if (next) next.grant();
    else this.holders--;
    this.onChange(this.waiters.length, this.holders);
  }

  /** Rejects every waiter with `error()` (a closing owner); holders keep their slots. */
  rejectWaiting(error: () => Error): void {
    const waiting = this.waiters.splice(0);
    for (const w of waiting) w.fail(error());
    if (waiting.length > 0) this.onChange(this.waiters.length, this.holders);
  }
}
