import { getEventListeners } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BoundedQueue, type QueueRefusals } from '../../src/util/bounded-queue.js';

class Refused extends Error {
  constructor(readonly kind: string, readonly detail: unknown) {
    super(kind);
  }
}

const refusals: QueueRefusals = {
  full: (q) => new Refused('full', q),
  aborted: (reason, when) => new Refused(`aborted-${when}`, reason),
  expired: (deadline) => new Refused('expired', deadline),
};

function queue(capacity: number, maxQueue: number): { q: BoundedQueue; changes: [number, number][] } {
  const changes: [number, number][] = [];
  const q = new BoundedQueue({ capacity, maxQueue, refusals, onChange: (queued, active) => changes.push([queued, active]) });
  return { q, changes };
}

/** Whether a promise has settled after pending callbacks ran, and how. */
async function state(p: Promise<unknown>): Promise<string> {
  let out = 'pending';
  p.then(() => (out = 'resolved'), (e: unknown) => (out = e instanceof Refused ? e.kind : 'rejected'));
  await new Promise((r) => setImmediate(r));
  return out;
}

const listeners = (signal: AbortSignal): number => getEventListeners(signal, 'abort').length;

afterEach(() => {
  vi.useRealTimers();
});

describe('BoundedQueue', () => {
  it('grants up to its capacity at once and queues the rest', async () => {
    const { q, changes } = queue(2, 4);
    await q.acquire();
    await q.acquire();
    expect(q.full).toBe(true);
    const third = q.acquire();
    expect([q.queued, q.active]).toEqual([1, 2]);
    expect(await state(third)).toBe('pending');
    q.release();
    expect(await state(third)).toBe('resolved');
    expect([q.queued, q.active]).toEqual([0, 2]);
    q.release();
    q.release();
    expect([q.queued, q.active]).toEqual([0, 0]);
    expect(changes).toEqual([[0, 1], [0, 2], [1, 2], [0, 2], [0, 1], [0, 0]]);
  });

  it('grants waiters in arrival order, each release handing its slot straight on', async () => {
    const { q } = queue(1, 10);
    await q.acquire();
    const order: number[] = [];
    const waiters = [0, 1, 2, 3].map((i) => q.acquire().then(() => order.push(i)));
    for (let i = 0; i < 4; i++) {
      q.release();
      await new Promise((r) => setImmediate(r));
      expect(q.active).toBe(1);
    }
    await Promise.all(waiters);
    expect(order).toEqual([0, 1, 2, 3]);
    q.release();
    expect(q.active).toBe(0);
  });

  it('refuses past maxQueue with the owner\'s typed refusal, or waits when asked to', async () => {
    const { q } = queue(1, 1);
    await q.acquire();
    const queued = q.acquire();
    const refused = q.acquire();
    await expect(refused).rejects.toMatchObject({ kind: 'full', detail: { active: 1, queued: 1, maxQueue: 1 } });
    expect(q.queued).toBe(1);
    const patient = q.acquire({ whenFull: 'wait' });
    expect(q.queued).toBe(2);
    q.release();
    q.release();
    await Promise.all([queued, patient]);
    q.release();
    expect([q.queued, q.active]).toEqual([0, 0]);
  });

  it('a waiter whose signal aborts leaves at once, frees its place, and never gets the slot', async () => {
    const { q, changes } = queue(1, 2);
    await q.acquire();
    const controller = new AbortController();
    const gone = q.acquire({ signal: controller.signal });
    const next = q.acquire();
    expect(q.queued).toBe(2);
    controller.abort('client left');
    await expect(gone).rejects.toMatchObject({ kind: 'aborted-queued', detail: 'client left' });
    expect(q.queued).toBe(1);
    expect(changes.at(-1)).toEqual([1, 1]);
    expect(listeners(controller.signal)).toBe(0);
    // The freed place is usable.
    const third = q.acquire();
    expect(q.queued).toBe(2);
    q.release();
    expect(await state(next)).toBe('resolved');
    expect(await state(third)).toBe('pending');
    q.release();
    q.release();
    expect([q.queued, q.active]).toEqual([0, 0]);
  });

  it('refuses an aborted signal even with a free slot; an abort after the grant changes nothing', async () => {
    const { q } = queue(1, 1);
    await expect(q.acquire({ signal: AbortSignal.abort('early') })).rejects.toMatchObject({ kind: 'aborted-before', detail: 'early' });
    expect(q.active).toBe(0);
    await q.acquire();
    const late = new AbortController();
    const granted = q.acquire({ signal: late.signal });
    q.release();
    await granted;
    expect(listeners(late.signal)).toBe(0);
    late.abort();
    expect([q.queued, q.active]).toEqual([0, 1]);
  });

  it('refuses a waiter still queued at its deadline, and one whose deadline has already passed', async () => {
    vi.useFakeTimers();
    const { q, changes } = queue(1, 4);
    await q.acquire();
    const deadline = Date.now() + 50;
    const waiting = q.acquire({ deadline });
    const outcome = expect(waiting).rejects.toMatchObject({ kind: 'expired', detail: deadline });
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(50);
    await outcome;
    expect(q.queued).toBe(0);
    expect(changes.at(-1)).toEqual([0, 1]);
    expect(vi.getTimerCount()).toBe(0);

    const before = changes.length;
    await expect(q.acquire({ deadline: Date.now() - 1 })).rejects.toMatchObject({ kind: 'expired' });
    expect(changes.length).toBe(before);
    expect(vi.getTimerCount()).toBe(0);
    q.release();
  });

  it('a free slot is granted whatever the deadline says: only waiting is bounded by it', async () => {
    const { q } = queue(1, 1);
    await expect(q.acquire({ deadline: Date.now() - 1 })).resolves.toBeUndefined();
    q.release();
  });

  it('leaves no timer or listener behind once a waiter is granted, aborted or expired', async () => {
    vi.useFakeTimers();
    const { q } = queue(1, 8);
    await q.acquire();
    const signals = [new AbortController(), new AbortController(), new AbortController()];
    const granted = q.acquire({ signal: signals[0]!.signal, deadline: Date.now() + 1_000 });
    const aborted = q.acquire({ signal: signals[1]!.signal, deadline: Date.now() + 1_000 });
    const expired = q.acquire({ signal: signals[2]!.signal, deadline: Date.now() + 10 });
    expect(vi.getTimerCount()).toBe(3);
    q.release();
    await granted;
    signals[1]!.abort();
    await expect(aborted).rejects.toMatchObject({ kind: 'aborted-queued' });
    vi.advanceTimersByTime(10);
    await expect(expired).rejects.toMatchObject({ kind: 'expired' });
    expect(vi.getTimerCount()).toBe(0);
    for (const s of signals) expect(listeners(s.signal)).toBe(0);
    q.release();
  });

  it('rejectWaiting fails every waiter with a fresh error; holders keep their slots', async () => {
    const { q } = queue(1, 4);
    await q.acquire();
    const controller = new AbortController();
    const a = q.acquire({ signal: controller.signal });
    const b = q.acquire();
    q.rejectWaiting(() => new Refused('closed', undefined));
    await expect(a).rejects.toMatchObject({ kind: 'closed' });
    await expect(b).rejects.toMatchObject({ kind: 'closed' });
    expect(listeners(controller.signal)).toBe(0);
    expect([q.queued, q.active]).toEqual([0, 1]);
    q.release();
    expect(q.active).toBe(0);
  });
});
