import { afterEach, describe, expect, it, vi } from 'vitest';
import { CloudError } from '../../cloud/errors.js';
import { Limiter } from '../../cloud/limiter.js';

const FAR = (): number => Date.now() + 60_000;

/** How a promise has settled by now: pending, or its value or error. */
async function settled<T>(p: Promise<T>): Promise<{ state: 'pending' } | { state: 'resolved'; value: T } | { state: 'rejected'; error: unknown }> {
  const pending = Symbol('pending');
  const out = await Promise.race([p.then((value) => ({ state: 'resolved' as const, value }), (error: unknown) => ({ state: 'rejected' as const, error })), new Promise<symbol>((r) => setImmediate(() => r(pending)))]);
  return out === pending ? { state: 'pending' } : (out as { state: 'resolved'; value: T } | { state: 'rejected'; error: unknown });
}

describe('Limiter', () => {
  it('a queued waiter whose signal aborts leaves the queue at once with 499 CLOUD_CLIENT_CLOSED, and never gets the slot', async () => {
    const changes: [number, number][] = [];
    const limiter = new Limiter(1, 2, (queued, active) => changes.push([queued, active]));
    const first = await limiter.acquire(FAR());
    const controller = new AbortController();
    const gone = limiter.acquire(FAR(), controller.signal);
    const next = limiter.acquire(FAR());
    expect(limiter.queued).toBe(2);

    controller.abort();
    const outcome = await settled(gone);
    expect(outcome.state).toBe('rejected');
    const error = (outcome as { error: unknown }).error;
    expect(error).toBeInstanceOf(CloudError);
    expect(error).toMatchObject({ status: 499, code: 'CLOUD_CLIENT_CLOSED', retryable: false });
    expect((error as Error).cause).toBe(controller.signal.reason);
    expect(limiter.queued).toBe(1);
    expect(changes.at(-1)).toEqual([1, 1]);

    // The freed place is usable: with the queue bound at 2, two more may wait.
    const third = limiter.acquire(FAR());
    expect(limiter.queued).toBe(2);
    first();
    expect((await settled(next)).state).toBe('resolved');
    expect((await settled(third)).state).toBe('pending');
    (await next)();
    (await third)();
    expect([limiter.queued, limiter.running]).toEqual([0, 0]);
    expect(changes.at(-1)).toEqual([0, 0]);
  });

  it('an aborted signal is refused even with a free slot; an abort after the grant changes nothing', async () => {
    const limiter = new Limiter(1, 1);
    const early = new AbortController();
    early.abort();
    await expect(limiter.acquire(FAR(), early.signal)).rejects.toMatchObject({ status: 499, code: 'CLOUD_CLIENT_CLOSED' });
    expect(limiter.running).toBe(0);

    const first = await limiter.acquire(FAR());
    const late = new AbortController();
    const granted = limiter.acquire(FAR(), late.signal);
    first();
    const release = await granted;
    late.abort();
    expect([limiter.queued, limiter.running]).toEqual([0, 1]);
    release();
    expect(limiter.running).toBe(0);
  });

  it('refuses past its queue bound with 429 CLOUD_OVERLOADED, and a release counts once', async () => {
    const limiter = new Limiter(1, 1);
    const first = await limiter.acquire(FAR());
    const queued = limiter.acquire(FAR());
    await expect(limiter.acquire(FAR())).rejects.toMatchObject({ status: 429, code: 'CLOUD_OVERLOADED', retryable: true, message: 'model is busy (1 running, 1 queued); retry later' });
    first();
    first();
    const second = await queued;
    expect([limiter.queued, limiter.running]).toEqual([0, 1]);
    second();
    expect(limiter.running).toBe(0);
  });

  describe('with fake timers', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it('refuses a request still queued at its deadline with 504 CLOUD_DEADLINE, and leaves no timer', async () => {
      vi.useFakeTimers();
      const changes: [number, number][] = [];
      const limiter = new Limiter(1, 2, (queued, active) => changes.push([queued, active]));
      const first = await limiter.acquire(Date.now() + 1_000);
      const late = limiter.acquire(Date.now() + 100);
      const outcome = expect(late).rejects.toMatchObject({ status: 504, code: 'CLOUD_DEADLINE', retryable: true });
      vi.advanceTimersByTime(100);
      await outcome;
      expect(changes.at(-1)).toEqual([0, 1]);
      expect(vi.getTimerCount()).toBe(0);
      first();
      expect(limiter.running).toBe(0);
    });
  });
});
