import { describe, expect, it } from 'vitest';
import { SlowdownEmulator, runKey } from '../src/runtime/slowdown.js';

const typical = { slowdown: 8, stretchJitter: false };
const stretched = { slowdown: 8, stretchJitter: true };

describe('edge slowdown emulation', () => {
  it('stretches the typical run time and passes a hiccup through once', () => {
    const e = new SlowdownEmulator();
    expect(e.extraMs(typical, 'k', 10)).toBe(70);
    for (let i = 0; i < 4; i++) e.extraMs(typical, 'k', 10);
    // A 40 ms hiccup on a 10 ms run: the emulated run lasts 8 × 10 + 30, not 8 × 40.
    const hiccup = 40 + e.extraMs(typical, 'k', 40);
    expect(hiccup).toBe(110);
  });

  it('stretches each run, hiccup included, when asked', () => {
    const e = new SlowdownEmulator();
    for (let i = 0; i < 5; i++) e.extraMs(stretched, 'k', 10);
    expect(40 + e.extraMs(stretched, 'k', 40)).toBe(320);
  });

  it('follows a lasting change of the run time (median of recent runs)', () => {
    const e = new SlowdownEmulator();
    for (let i = 0; i < 15; i++) e.extraMs(typical, 'k', 10);
    let last = 0;
    for (let i = 0; i < 8; i++) last = e.extraMs(typical, 'k', 20);
    expect(last).toBe(140);
  });

  it('keeps separate typical times per model, fetches and input shape, and bounds what it remembers', () => {
    const e = new SlowdownEmulator();
    const a = runKey({ model: { sha256: 'm' }, inputs: [{ dims: [1, 3, 224, 224] }] }, ['y']);
    const b = runKey({ model: { sha256: 'm' }, inputs: [{ dims: [1, 3, 640, 640] }] }, ['y']);
    expect(a).not.toBe(b);
    for (let i = 0; i < 5; i++) e.extraMs(typical, a, 10);
    expect(e.extraMs(typical, b, 80)).toBe(560);
    expect(e.extraMs(typical, a, 10)).toBe(70);
    for (let i = 0; i < 300; i++) e.extraMs(typical, `k${i}`, 1);
    expect(e.tracked).toBe(256);
  });

  it('waits nothing without a slowdown', () => {
    expect(new SlowdownEmulator().extraMs({ slowdown: 1, stretchJitter: false }, 'k', 10)).toBe(0);
  });
});
