/**
 * Bounded concurrency with a bounded queue. When both are full a request is refused at
 * once (the caller answers 429) instead of waiting and holding its body in memory.
 */
import { CloudError } from './errors.js';

interface Waiter {
  resolve: (release: () => void) => void;
  reject: (error: unknown) => void;
  timer: NodeJS.Timeout | undefined;
}

export class Limiter {
  private active = 0;
  private readonly waiting: Waiter[] = [];

  constructor(readonly maxConcurrent: number, readonly maxQueue: number, private readonly onChange: (queued: number, active: number) => void = () => undefined) {}

  get queued(): number {
    return this.waiting.length;
  }

  get running(): number {
    return this.active;
  }

  /**
   * Resolves to a release function once a slot is free. Rejects with 429 when the queue is
   * full and with 504 when `deadline` (epoch ms) passes while queued.
   */
  acquire(deadline: number): Promise<() => void> {
    if (this.active < this.maxConcurrent) {
      this.active += 1;
      this.onChange(this.waiting.length, this.active);
      return Promise.resolve(this.releaser());
    }
    if (this.waiting.length >= this.maxQueue) {
      return Promise.reject(new CloudError(429, 'CLOUD_OVERLOADED', `model is busy (${this.active} running, ${this.waiting.length} queued); retry later`, { retryable: true }));
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, timer: undefined };
      const wait = deadline - Date.now();
      waiter.timer = setTimeout(() => {
        const i = this.waiting.indexOf(waiter);
        if (i >= 0) this.waiting.splice(i, 1);
        this.onChange(this.waiting.length, this.active);
        reject(new CloudError(504, 'CLOUD_DEADLINE', 'the request deadline passed while it was queued', { retryable: true }));
      }, Math.max(0, wait));
      this.waiting.push(waiter);
      this.onChange(this.waiting.length, this.active);
    });
  }

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiting.shift();
      if (next) {
        clearTimeout(next.timer);
        next.resolve(this.releaser());
      } else {
        this.active -= 1;
      }
      this.onChange(this.waiting.length, this.active);
    };
  }
}
