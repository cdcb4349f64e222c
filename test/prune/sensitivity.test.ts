/**
 * The sensitivity allocation: from measured loss curves, the budget goes to the steps with
 * the least loss per cost saved, non-monotone (noisy) curves may be jumped over, and classes
 * that span the same tensors form one group.
 */
import { describe, expect, it } from 'vitest';
import type { OnnxModel } from '../../src/graph/model.js';
import type { TensorShape } from '../../src/graph/shapes.js';
import type { ChannelClass } from '../../src/prune/channels.js';
import { allocate, channelGroups, timeCost, type Sensitivity } from '../../src/prune/sensitivity.js';

const cls = (tensors: string[], channel: number): ChannelClass => ({ members: tensors.map((tensor) => ({ tensor, channel })), sources: [], consumers: [] });
const classes = Array.from({ length: 12 }, (_, i) => cls([`t${Math.floor(i / 4)}`], i % 4));
/** Every class saves 10 FLOPs whatever went before. */
const flat = { saving: (): number => 10 };

describe('allocate', () => {
  it('takes the cheapest loss per FLOP until the budget is met, not the cheapest first channels', () => {
    const sensitivity: Sensitivity = {
      runs: 0,
      groups: [
        // Cheap to start, then steep: only its first step is worth taking.
        { order: [0, 1, 2, 3], counts: [2, 4], loss: [0.01, 1] },
        { order: [4, 5, 6, 7], counts: [2, 4], loss: [0.1, 0.2] },
        { order: [8, 9, 10, 11], counts: [2, 4], loss: [0.5, 0.9] },
      ],
    };
    const removed = allocate(sensitivity, classes, flat, 120, 60, (_c, flops) => flops);
    expect([...removed].sort((a, b) => a - b)).toEqual([0, 1, 4, 5, 6, 7]);
  });

  it('jumps over a noisy step when the further one is cheaper per FLOP', () => {
    const sensitivity: Sensitivity = { runs: 0, groups: [{ order: [0, 1, 2, 3], counts: [2, 4], loss: [0.5, 0.1] }, { order: [4, 5, 6, 7], counts: [2, 4], loss: [0.2, 0.3] }] };
    const removed = allocate(sensitivity, classes, flat, 80, 40, (_c, flops) => flops);
    expect([...removed].sort((a, b) => a - b)).toEqual([0, 1, 2, 3]);
  });

  it('prices by the cost it is given: a time estimate can pick a different group than FLOPs', () => {
    const sensitivity: Sensitivity = { runs: 0, groups: [{ order: [0, 1], counts: [2], loss: [0.1] }, { order: [4, 5], counts: [2], loss: [0.1] }] };
    // Group t1 moves large planes: its removal saves more time per FLOP.
    const time = (c: ChannelClass, flops: number): number => flops + (c.members[0]!.tensor === 't1' ? 100 : 0);
    expect([...allocate(sensitivity, classes, flat, 100, 80, time)].sort((a, b) => a - b)).toEqual([4, 5]);
  });

  it('with a loss floor, ranks the steps under it by the time they save instead of their tiny losses', () => {
    // t0: almost free in loss, saves little time; t1: a small loss, saves much time.
    const sensitivity: Sensitivity = { runs: 0, groups: [{ order: [0, 1], counts: [2], loss: [1e-9] }, { order: [4, 5], counts: [2], loss: [0.01] }] };
    const time = (c: ChannelClass, flops: number): number => flops + (c.members[0]!.tensor === 't1' ? 1000 : 0);
    expect([...allocate(sensitivity, classes, flat, 100, 80, time)].sort((a, b) => a - b)).toEqual([0, 1]);
    expect([...allocate(sensitivity, classes, flat, 100, 80, time, 0.05)].sort((a, b) => a - b)).toEqual([4, 5]);
    // A step whose loss is over the floor is still priced by its loss: a large one stays last.
    const steep: Sensitivity = { runs: 0, groups: [{ order: [0, 1], counts: [2], loss: [1e-9] }, { order: [4, 5], counts: [2], loss: [50] }] };
    expect([...allocate(steep, classes, flat, 100, 80, time, 0.05)].sort((a, b) => a - b)).toEqual([0, 1]);
  });

  it('stops when no group has a step left', () => {
    const sensitivity: Sensitivity = { runs: 0, groups: [{ order: [0], counts: [1], loss: [0] }] };
    expect([...allocate(sensitivity, classes, flat, 100, 10, (_c, flops) => flops)]).toEqual([0]);
  });
});

describe('channelGroups', () => {
  it('groups the classes that span the same tensors', () => {
    const list = [cls(['a', 'b'], 0), cls(['c'], 0), cls(['b', 'a'], 1), cls(['c'], 1), cls(['a'], 2)];
    expect(channelGroups(list)).toEqual([[0, 2], [1, 3], [4]]);
  });
});

describe('timeCost', () => {
  it('adds the bytes of activations too large for cache, written once and read by each reader in the region', () => {
    const model = {
      producer: new Map([['big', 0], ['small', 1], ['outside', 5]]),
      consumers: new Map([['big', [1, 2, 9]], ['small', [2]], ['outside', [1]]]),
    } as unknown as OnnxModel;
    const shape = (dims: number[]): TensorShape => ({ dtype: 'float32', dims, bytes: 4 * dims.reduce((a, b) => a * b, 1) });
    const shapes = new Map<string, TensorShape>([
      ['big', shape([1, 16, 256, 256])],
      ['small', shape([1, 16, 8, 8])],
      ['outside', shape([1, 16, 256, 256])],
    ]);
    const cost = timeCost(model, shapes, new Set([0, 1, 2]));
    // 4 MiB tensor: a 256 KiB plane, written once and read by the two readers in the region.
    expect(cost(cls(['big'], 0), 100)).toBe(100 + 8 * 4 * 256 * 256 * 3);
    // 4 KiB: stays in cache; produced outside the region: not this pruning's to save.
    expect(cost(cls(['small'], 0), 100)).toBe(100);
    expect(cost(cls(['outside'], 0), 100)).toBe(100);
  });
});
