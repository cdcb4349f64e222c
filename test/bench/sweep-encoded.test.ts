/**
 * The sweep with encoded offload and compressed cuts, structurally: the testbed starts every
 * request from a real JPEG and the cloud decodes an offloaded one; the cut encodings are
 * profiled and chosen only by the current configuration; the first release's configuration
 * (round-1) never sends the image or a non-float32 cut; a sweep point reports round-1, the
 * speedup over it and the accuracy of what adaptive chose. Nothing here is timed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describePlan } from '../../src/planner/index.js';
import { measurePoint, plannerFor, predictedBest } from '../../bench/harness/point.js';
import { ENDPOINT, MODELS, Testbed, type PreparedModel } from '../../bench/harness/testbed.js';
import { geomean } from '../../bench/sweep.js';
import { sweepMarkdown } from '../../bench/report.js';

const BUDGET = 0.05;
let testbed: Testbed;
let m: PreparedModel;

beforeAll(async () => {
  testbed = await Testbed.create({ slowdown: 1, maxCuts: 2, models: [MODELS['mobilenetv2']!], profileRuns: 1, calibrationImages: 1 });
  m = await testbed.prepare(MODELS['mobilenetv2']!);
}, 120_000);

afterAll(async () => {
  await testbed?.close();
});

describe('the sweep testbed with encoded images and cut encodings', () => {
  it('offloads the JPEG itself, and the cloud answers it as it answers the tensor', async () => {
    testbed.setLink(50e6, 10);
    const image = await testbed.request(m.name, { kind: 'offload', endpoint: ENDPOINT }, 'image');
    const tensor = await testbed.request(m.name, { kind: 'offload', endpoint: ENDPOINT }, 'tensor');
    expect(image.obs.fellBack).toBe(false);
    expect(m.jpeg.subarray(0, 2)).toEqual(new Uint8Array([0xff, 0xd8]));
    // The JPEG plus the request's headers, not the 602 KB tensor.
    expect(image.obs.bytesSent).toBeLessThan(m.jpeg.byteLength + 2048);
    expect(tensor.obs.bytesSent).toBeGreaterThanOrEqual(m.tensorBytes);
    // Same pipeline on both sides: the cloud's outputs match the edge's float32 run.
    expect(image.outputError).toBeLessThan(1e-3);
    expect(testbed.fallbacks).toBe(0);
  }, 60_000);

  it('profiles float16 and int8 at each candidate cut, smaller than float32, with their output error', () => {
    expect(m.encodings).toEqual(['float16', 'int8']);
    const measured = m.profile.cuts.filter((c) => c.encodings?.int8 && c.encodings.float16);
    expect(measured).toHaveLength(m.cuts.length);
    const big = measured.find((c) => c.bytes > 20_000)!;
    expect(big.encodings!.float16!.bytes).toBeLessThan(big.bytes * 0.6);
    expect(big.encodings!.int8!.bytes).toBeLessThan(big.bytes * 0.35);
    expect(big.encodings!.int8!.maxError).toBeGreaterThan(0);
    expect(Number.isFinite(big.codecMs ?? Number.NaN)).toBe(true);
  });

  it('gives adaptive the cut encodings and round-1 float32 only', () => {
    const kinds = (round1: boolean): string[] => plannerFor(m, BUDGET, { bw: 2, rtt: 50 }, round1).rank({ allowedEndpoints: [ENDPOINT] }).map((r) => describePlan(r.plan));
    expect(kinds(false).some((k) => k.includes('/int8'))).toBe(true);
    expect(kinds(true).some((k) => k.includes('/'))).toBe(false);
    // The static plan is one of the current configuration's options.
    expect(kinds(false)).toContain(describePlan(predictedBest(m, BUDGET, 2, 50)));
  });

  it('measures a point with round-1 in the same rounds, which never sends the image or a compressed cut', async () => {
    testbed.setLink(1e9, 1);
    // Round-1 told the edge is hopelessly slow, so that it offloads: its offloads must carry the tensor.
    const slowEdge = { ...m, profile: { ...m.profile, localMs: 1e6, cuts: m.profile.cuts.map((c) => ({ ...c, headMs: 1e6 })) } };
    const arms = { adaptive: plannerFor(m, BUDGET), round1: plannerFor(slowEdge, BUDGET, { bw: 1000, rtt: 1 }, true) };
    const staticPlan = { kind: 'offload', endpoint: ENDPOINT } as const;
    const p = await measurePoint(testbed, m, 1000, 1, { staticPlan, arms, rounds: 3, warmup: 1, maxOutputError: BUDGET });
    for (const key of ['round1Ms', 'speedupOverRound1', 'adaptiveOutputError', 'oracleOutputError', 'round1OutputError', 'adaptiveBytesSent', 'round1BytesSent', 'cloudOnlyBytesSent'] as const) {
      expect(Number.isFinite(p[key] ?? Number.NaN), key).toBe(true);
    }
    expect(p.round1Plans).toHaveLength(3);
    expect(p.round1Plans!.every((plan) => !plan.includes('/'))).toBe(true);
    expect(p.round1Offloads!.length).toBeGreaterThan(0);
    for (const bytes of p.round1Offloads!) expect(bytes).toBeGreaterThanOrEqual(m.tensorBytes);
    expect(p.cloudOnlyBytesSent).toBeLessThan(m.jpeg.byteLength + 2048);
    expect(p.speedupOverRound1).toBeCloseTo((p.round1Ms ?? 0) / p.adaptiveMs, 9);
    const md = sweepMarkdown({ adaptiveOverOracle: p.adaptiveMs / p.oracleMs, adaptiveOverBestFixed: 1, geomeanSpeedupOverRound1: p.speedupOverRound1!, adaptiveOutputError: p.adaptiveOutputError!, maxOutputError: BUDGET, points: [p], slowdown: 1, quick: true, notes: [] });
    expect(md).toMatch(/speedup over round-1/);
    expect(md).toMatch(/geometric mean over the points/);
  }, 120_000);

  it('takes the geometric mean of the speedups', () => {
    expect(geomean([2, 0.5])).toBeCloseTo(1, 12);
    expect(geomean([1.5, 1.5, 1.5])).toBeCloseTo(1.5, 12);
  });
});
