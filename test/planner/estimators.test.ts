import { describe, expect, it } from 'vitest';
import { LinkEstimator, RobustEwma } from '../../src/planner/estimators.js';
import { mulberry32 } from '../../src/util/random.js';

/** Gaussian noise from a seeded PRNG, so failures reproduce. */
const rng = mulberry32;
function gaussian(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

describe('RobustEwma', () => {
  it('converges to the mean of noisy samples and does not declare changes in stationary noise', () => {
    const r = rng(1);
    const e = new RobustEwma();
    for (let i = 0; i < 500; i++) e.update(100 * (1 + 0.2 * gaussian(r)));
    expect(e.value).toBeGreaterThan(90);
    expect(e.value).toBeLessThan(110);
    expect(e.changes).toBeLessThanOrEqual(1);
    expect(e.stdDev).toBeGreaterThan(8);
    expect(e.stdDev).toBeLessThan(30);
  });

  it('adopts a 10× step up within three samples', () => {
    const r = rng(2);
    const e = new RobustEwma();
    for (let i = 0; i < 60; i++) e.update(10 * (1 + 0.1 * gaussian(r)));
    const after: number[] = [];
    for (let i = 0; i < 5; i++) {
      e.update(100 * (1 + 0.1 * gaussian(r)));
      after.push(e.value);
    }
    expect(after[2]).toBeGreaterThan(80);
    expect(after[4]).toBeGreaterThan(85);
    expect(e.changes).toBeGreaterThanOrEqual(1);
  });

  it('adopts a 10× step down within three samples', () => {
    const r = rng(3);
    const e = new RobustEwma();
    for (let i = 0; i < 60; i++) e.update(100 * (1 + 0.1 * gaussian(r)));
    const after: number[] = [];
    for (let i = 0; i < 5; i++) {
      e.update(10 * (1 + 0.1 * gaussian(r)));
      after.push(e.value);
    }
    expect(after[2]).toBeLessThan(13);
  });

  it('is barely moved by a single spike and never treats one as a change', () => {
    const r = rng(4);
    const e = new RobustEwma();
    for (let i = 0; i < 50; i++) e.update(50 * (1 + 0.1 * gaussian(r)));
    const before = e.value;
    e.update(5000);
    expect(e.value).toBeLessThan(before * 1.25);
    for (let i = 0; i < 10; i++) e.update(50 * (1 + 0.1 * gaussian(r)));
    expect(e.changes).toBe(0);
    expect(Math.abs(e.value - 50)).toBeLessThan(5);
  });

  it('replaces a seeded prior with the first real sample', () => {
    const e = new RobustEwma().seed(1000);
    expect(e.value).toBe(1000);
    e.update(10);
    expect(e.value).toBe(10);
  });

  it('ignores non-finite samples', () => {
    const e = new RobustEwma();
    e.update(5);
    e.update(Number.NaN);
    e.update(Number.POSITIVE_INFINITY);
    expect(e.value).toBe(5);
    expect(e.count).toBe(1);
  });
});

describe('LinkEstimator', () => {
  const msFor = (rtt: number, bitsPerSecond: number, bytes: number): number => rtt + (bytes * 8000) / bitsPerSecond;

  it('learns round trip from small transfers and bandwidth from large ones', () => {
    const r = rng(5);
    const link = new LinkEstimator(200, 100e6);
    for (let i = 0; i < 100; i++) {
      const bytes = i % 2 === 0 ? 200 : 1_000_000;
      link.observe(msFor(40, 10e6, bytes) * (1 + 0.05 * gaussian(r)), bytes);
    }
    expect(link.rtt.value).toBeGreaterThan(36);
    expect(link.rtt.value).toBeLessThan(44);
    expect(link.bandwidthBitsPerSecond / 1e6).toBeGreaterThan(9);
    expect(link.bandwidthBitsPerSecond / 1e6).toBeLessThan(11);
    expect(Math.abs(link.predict(500_000) / msFor(40, 10e6, 500_000) - 1)).toBeLessThan(0.05);
  });

  it('predicts within 10% three transfers after a 10× bandwidth drop', () => {
    const r = rng(6);
    const link = new LinkEstimator(20, 50e6);
    const bytes = 400_000;
    for (let i = 0; i < 40; i++) link.observe(msFor(20, 50e6, bytes) * (1 + 0.05 * gaussian(r)), bytes);
    for (let i = 0; i < 3; i++) link.observe(msFor(20, 5e6, bytes) * (1 + 0.05 * gaussian(r)), bytes);
    const truth = msFor(20, 5e6, bytes);
    expect(Math.abs(link.predict(bytes) - truth) / truth).toBeLessThan(0.1);
  });

  it('rejects nonsense observations', () => {
    const link = new LinkEstimator(20, 10e6);
    link.observe(-5, 100);
    link.observe(Number.NaN, 100);
    link.observe(10, -1);
    expect(link.observations).toBe(0);
    expect(link.rtt.value).toBe(20);
  });

  it('does not take a small transfer carried by a burst for a fast link', () => {
    // 2 Mbit/s, 10 ms: probes of 416 B and 128 KB set the estimate; then a 6 KB split tensor
    // goes out inside the shaper's burst allowance in one round trip, as fresh news.
    const link = new LinkEstimator(100, 5e6);
    for (let i = 0; i < 4; i++) {
      link.observe(msFor(10, 2e6, 416), 416, 0, i === 0);
      link.observe(msFor(10, 2e6, 131_232), 131_232, 0, i === 0, false);
    }
    expect(link.bandwidthBitsPerSecond / 1e6).toBeCloseTo(2, 0);
    link.observe(11, 6 * 1024, 0, true);
    expect(link.bandwidthBitsPerSecond / 1e6).toBeGreaterThan(1.6);
    expect(link.bandwidthBitsPerSecond / 1e6).toBeLessThan(2.5);
    // An offload of 588 KB is still predicted at ≈ 2.4 s, not as if the link were free.
    expect(link.predict(602_263)).toBeGreaterThan(2000);
  });
});
