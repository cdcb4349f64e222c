import { getEventListeners } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { deadlineSignal, raceAbort, watchDeadline } from '../../src/util/deadline.js';

/** How a promise has settled by now: pending, or its value or error. */
async function settled<T>(p: Promise<T>): Promise<{ state: 'pending' } | { state: 'resolved'; value: T } | { state: 'rejected'; error: unknown }> {
  const pending = Symbol('pending');
  const out = await Promise.race([p.then((value) => ({ state: 'resolved' as const, value }), (error: unknown) => ({ state: 'rejected' as const, error })), Promise.resolve().then(() => Promise.resolve()).then(() => pending)]);
  return out === pending ? { state: 'pending' } : (out as { state: 'resolved'; value: T } | { state: 'rejected'; error: unknown });
}

const listeners = (signal: AbortSignal): number => getEventListeners(signal, 'abort').length;

describe('deadlineSignal', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('aborts at the deadline, marked expired, with a TimeoutError by default, and leaves nothing behind', () => {
    const caller = new AbortController();
    const scope = deadlineSignal({ signal: caller.signal, deadline: Date.now() + 100 });
    expect(scope.signal.aborted).toBe(false);
    expect(scope.remaining()).toBe(100);
    expect(vi.getTimerCount()).toBe(1);
    expect(listeners(caller.signal)).toBe(1);

    vi.advanceTimersByTime(99);
    expect(scope.signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(scope.signal.aborted).toBe(true);
    expect(scope.expired).toBe(true);
    expect(scope.signal.reason).toMatchObject({ name: 'TimeoutError' });
    // The deadline firing already let go of the caller's signal.
    expect(listeners(caller.signal)).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    // A later abort of the caller changes nothing.
    caller.abort(new Error('late'));
    expect(scope.expired).toBe(true);
    scope.dispose();
  });

  it("aborts with the caller's reason when the caller aborts first, and clears the timer at once", () => {
    const caller = new AbortController();
    const scope = deadlineSignal({ signal: caller.signal, deadline: Date.now() + 1_000 });
    const reason = new Error('client left');
    caller.abort(reason);
    expect(scope.signal.aborted).toBe(true);
    expect(scope.signal.reason).toBe(reason);
    expect(scope.expired).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(2_000);
    expect(scope.expired).toBe(false);
    scope.dispose();
  });

  it('dispose before either removes the listener and the timer', () => {
    const caller = new AbortController();
    const scope = deadlineSignal({ signal: caller.signal, deadline: Date.now() + 1_000, timeoutReason: () => new Error('custom') });
    scope.dispose();
    expect(listeners(caller.signal)).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    caller.abort();
    vi.advanceTimersByTime(2_000);
    expect(scope.signal.aborted).toBe(false);
  });

  it('is aborted at once for a caller already aborted (the caller winning over a past deadline) or a past deadline', () => {
    const gone = deadlineSignal({ signal: AbortSignal.abort('gone'), deadline: Date.now() - 1 });
    expect(gone.signal.aborted).toBe(true);
    expect(gone.signal.reason).toBe('gone');
    expect(gone.expired).toBe(false);

    const late = deadlineSignal({ deadline: Date.now(), timeoutReason: () => new Error('too late') });
    expect(late.signal.aborted).toBe(true);
    expect(late.expired).toBe(true);
    expect((late.signal.reason as Error).message).toBe('too late');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('without a deadline never expires and has Infinity remaining; the signal is its own, not the caller\'s', () => {
    const caller = new AbortController();
    const scope = deadlineSignal({ signal: caller.signal });
    expect(scope.remaining()).toBe(Infinity);
    expect(scope.signal).not.toBe(caller.signal);
    expect(vi.getTimerCount()).toBe(0);
    const bare = deadlineSignal({});
    expect(bare.signal.aborted).toBe(false);
    bare.dispose();
    scope.dispose();
    expect(listeners(caller.signal)).toBe(0);
  });
});

describe('raceAbort', () => {
  it("settles as the work does, and removes its listener then", async () => {
    const controller = new AbortController();
    await expect(raceAbort(Promise.resolve(7), { signal: controller.signal })).resolves.toBe(7);
    expect(listeners(controller.signal)).toBe(0);
    const failure = new Error('work failed');
    await expect(raceAbort(Promise.reject(failure), { signal: controller.signal })).rejects.toBe(failure);
    expect(listeners(controller.signal)).toBe(0);
    // A non-Error rejection becomes an Error.
    await expect(raceAbort(Promise.reject('plain'), { signal: controller.signal })).rejects.toThrow('plain');
  });

  it('rejects at the abort with onAbort(reason), leaving the work to go on', async () => {
    const controller = new AbortController();
    let finish!: (v: number) => void;
    const work = new Promise<number>((resolve) => (finish = resolve));
    const raced = raceAbort(work, { signal: controller.signal }, (by, reason) => new Error(`stopped by ${by}: ${String(reason)}`));
    expect((await settled(raced)).state).toBe('pending');
    controller.abort('bye');
    await expect(raced).rejects.toThrow('stopped by abort: bye');
    expect(listeners(controller.signal)).toBe(0);
    finish(1);
    await expect(work).resolves.toBe(1);
  });

  it('rejects at once for an aborted signal, with its reason when it is an Error, and never leaves the work unhandled', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on('unhandledRejection', onUnhandled);
    try {
      const reason = new Error('already');
      await expect(raceAbort(Promise.reject(new Error('abandoned')), { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
      await expect(raceAbort(Promise.resolve(1), { signal: AbortSignal.abort('text') })).rejects.toThrow('aborted');
      await new Promise((r) => setImmediate(r));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('without a signal or a deadline is the work itself', () => {
    const work = Promise.resolve(1);
    expect(raceAbort(work, {})).toBe(work);
  });

  it('rejects at the deadline with onEnd("deadline"), a TimeoutError by default, leaving no timer', async () => {
    vi.useFakeTimers();
    try {
      const never = new Promise<number>(() => undefined);
      const raced = raceAbort(never, { deadline: Date.now() + 30 });
      const outcome = expect(raced).rejects.toMatchObject({ name: 'TimeoutError' });
      vi.advanceTimersByTime(30);
      await outcome;
      const custom = raceAbort(never, { deadline: Date.now() + 30 }, (by) => new Error(`ended by ${by}`));
      const told = expect(custom).rejects.toThrow('ended by deadline');
      vi.advanceTimersByTime(30);
      await told;
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('watchDeadline', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('calls back once, at whichever comes first, and removes the other', () => {
    const caller = new AbortController();
    const ends: [string, unknown][] = [];
    watchDeadline({ signal: caller.signal, deadline: Date.now() + 10 }, (by, reason) => ends.push([by, reason]));
    vi.advanceTimersByTime(10);
    caller.abort('late');
    expect(ends).toEqual([['deadline', undefined]]);
    expect(listeners(caller.signal)).toBe(0);

    const other = new AbortController();
    watchDeadline({ signal: other.signal, deadline: Date.now() + 10 }, (by, reason) => ends.push([by, reason]));
    other.abort('first');
    vi.advanceTimersByTime(10);
    expect(ends).toEqual([['deadline', undefined], ['abort', 'first']]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('calls back before returning when either already holds, the abort winning, and holds nothing then', () => {
    const ends: string[] = [];
    watchDeadline({ signal: AbortSignal.abort(), deadline: Date.now() - 1 }, (by) => ends.push(by));
    watchDeadline({ deadline: Date.now() }, (by) => ends.push(by));
    expect(ends).toEqual(['abort', 'deadline']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('stopping it removes the timer and the listener; with neither it holds nothing', () => {
    const caller = new AbortController();
    const stop = watchDeadline({ signal: caller.signal, deadline: Date.now() + 10 }, () => {
      throw new Error('must not be called');
    });
    expect([vi.getTimerCount(), listeners(caller.signal)]).toEqual([1, 1]);
    stop();
    expect([vi.getTimerCount(), listeners(caller.signal)]).toEqual([0, 0]);
    caller.abort();
    vi.advanceTimersByTime(20);
    watchDeadline({}, () => undefined)();
    expect(vi.getTimerCount()).toBe(0);
  });
});
