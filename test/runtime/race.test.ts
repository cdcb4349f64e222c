import { getEventListeners } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AbortedError, DeadlineExceededError } from '../../src/runtime/errors.js';
import { raceCaller } from '../../src/runtime/race.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('raceCaller', () => {
  it('is the work itself without a signal or a deadline', () => {
    const work = Promise.resolve(1);
    expect(raceCaller(work, {}, 'x')).toBe(work);
  });

  it('rejects with RUNTIME_DEADLINE_EXCEEDED naming the stage when the deadline passes first, and leaves no timer', async () => {
    vi.useFakeTimers();
    const deadline = Date.now() + 20;
    const raced = raceCaller(new Promise(() => undefined), { deadline }, 'running on the edge');
    const outcome = expect(raced).rejects.toSatisfy((e: unknown) => e instanceof DeadlineExceededError && e.code === 'RUNTIME_DEADLINE_EXCEEDED' && e.details['stage'] === 'running on the edge' && e.details['deadline'] === deadline);
    vi.advanceTimersByTime(20);
    await outcome;
    expect(vi.getTimerCount()).toBe(0);
  });

  it("rejects with RUNTIME_ABORTED carrying the signal's reason when the caller aborts first, and lets go of its signal", async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const raced = raceCaller(new Promise(() => undefined), { signal: controller.signal, deadline: Date.now() + 1_000 }, 'x');
    controller.abort('gone');
    await expect(raced).rejects.toSatisfy((e: unknown) => e instanceof AbortedError && e.cause === 'gone');
    expect(vi.getTimerCount()).toBe(0);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('settles as the work does otherwise, cleaning up the same way', async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    await expect(raceCaller(Promise.resolve(5), { signal: controller.signal, deadline: Date.now() + 1_000 }, 'x')).resolves.toBe(5);
    const failure = new Error('worker failed');
    await expect(raceCaller(Promise.reject(failure), { signal: controller.signal, deadline: Date.now() + 1_000 }, 'x')).rejects.toBe(failure);
    expect(vi.getTimerCount()).toBe(0);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });
});
