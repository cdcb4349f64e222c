import { describe, expect, it } from 'vitest';
import { SlowdownEmulator, runKey } from '../../src/runtime/slowdown.js';

const undisturbed = { slowdown: 8, stretchJitter: false };
const stretched = { slowdown: 8, stretchJitter: true };

describe('edge slowdown emulation', () => {
  it('stretches the undisturbed run time and passes a hiccup through once', () => {
    const e = new SlowdownEmulator();
    expect(e.extraMs(undisturbed, 'k', 10)).toBe(70);
    for (let i = 0; i < 4; i++) e.extraMs(undisturbed, 'k', 10);
    // A 40 ms hiccup on a 10 ms run: the emulated run lasts 8 × 10 + 30, not 8 × 40.
    expect(40 + e.extraMs(undisturbed, 'k', 40)).toBe(110);
  });

  it('does not carry slow warm-up runs into the following ones', () => {
    const e = new SlowdownEmulator();
    e.extraMs(undisturbed, 'k', 50);
    e.extraMs(undisturbed, 'k', 30);
    expect(10 + e.extraMs(undisturbed, 'k', 10)).toBe(80);
  });

  it('stretches each run, hiccup included, when asked', () => {
    const e = new SlowdownEmulator();
    for (let i = 0; i < 5; i++) e.extraMs(stretched, 'k', 10);
    expect(40 + e.extraMs(stretched, 'k', 40)).toBe(320);
  });

  it('follows a lasting slowdown of the host once it fills the recent window', () => {
    const e = new SlowdownEmulator();
    for (let i = 0; i < 15; i++) e.extraMs(undisturbed, 'k', 10);
    const early = e.extraMs(undisturbed, 'k', 20);
    let last = 0;
    for (let i = 0; i < 15; i++) last = e.extraMs(undisturbed, 'k', 20);
    expect(early).toBe(70);
    expect(last).toBe(140);
  });

  it('keeps separate times per model, fetches and input shape, and bounds what it remembers', () => {
    const e = new SlowdownEmulator();
    const a = runKey({ model: { sha256: 'm' }, inputs: [{ dims: [1, 3, 224, 224] }] }, ['y']);
    const b = runKey({ model: { sha256: 'm' }, inputs: [{ dims: [1, 3, 640, 640] }] }, ['y']);
    expect(a).not.toBe(b);
    for (let i = 0; i < 5; i++) e.extraMs(undisturbed, a, 10);
    expect(e.extraMs(undisturbed, b, 80)).toBe(560);
    expect(e.extraMs(undisturbed, a, 10)).toBe(70);
    for (let i = 0; i < 300; i++) e.extraMs(undisturbed, `k${i}`, 1);
    expect(e.tracked).toBe(256);
  });

  it('waits nothing without a slowdown', () => {
    expect(new SlowdownEmulator().extraMs({ slowdown: 1, stretchJitter: false }, 'k', 10)).toBe(0);
  });
});
