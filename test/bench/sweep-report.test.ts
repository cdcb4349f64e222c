/**
 * The sweep report's arithmetic on hand-made points: the goals of issue #28 (each per-point
 * bound names the points that broke it; the geometric mean decides the speedup goal) and the
 * break-even bandwidths, which count a cut's encodings only within the run's error budget.
 */
import { describe, expect, it } from 'vitest';
import { breakEven, sweepGoals, sweepMarkdown, type SweepPoint, type SweepResult } from '../../bench/report.js';
import { geomean } from '../../bench/sweep.js';

function point(over: Partial<SweepPoint>): SweepPoint {
  return {
    model: 'm', bandwidthMbit: 10, rttMs: 10, edgeOnlyMs: 100, cloudOnlyMs: 80, staticMs: 90, adaptiveMs: 80, oracleMs: 80,
    oraclePlan: 'offload→cloud', adaptivePlan: 'offload→cloud', oracleEdgeShare: 0, adaptiveEdgeShare: 0, staticPlan: 'local',
    round1Ms: 160, speedupOverRound1: 2, ...over,
  };
}

function result(points: SweepPoint[], extra: Partial<SweepResult> = {}): SweepResult {
  return {
    adaptiveOverOracle: Math.max(...points.map((p) => p.adaptiveMs / p.oracleMs)),
    adaptiveOverBestFixed: Math.max(...points.map((p) => p.adaptiveMs / Math.min(p.edgeOnlyMs, p.cloudOnlyMs))),
    geomeanSpeedupOverRound1: geomean(points.map((p) => p.speedupOverRound1 ?? Number.NaN)),
    points, slowdown: 8, quick: true, notes: [], ...extra,
  };
}

describe('sweep goals', () => {
  it('are met when every point keeps both bounds and the geometric mean reaches 1.5×', () => {
    const r = result([point({}), point({ bandwidthMbit: 2, adaptiveMs: 84, oracleMs: 81, cloudOnlyMs: 90, speedupOverRound1: 1.2 })]);
    const goals = sweepGoals(r);
    expect(goals.map((g) => g.met)).toEqual([true, true, true]);
    expect(goals[2]!.figure).toBeCloseTo(Math.sqrt(2 * 1.2), 12);
    expect(sweepMarkdown(r)).toMatch(/## Goals\n\n- \*\*met\*\*: adaptive\/oracle ≤ 1\.05/);
  });

  it('name the points over a bound, and miss the speedup under 1.5× or when it was not measured', () => {
    const slow = point({ bandwidthMbit: 2, rttMs: 50, adaptiveMs: 90, oracleMs: 80, edgeOnlyMs: 85, speedupOverRound1: 1 });
    const goals = sweepGoals(result([point({}), slow]));
    expect(goals.map((g) => g.met)).toEqual([false, false, false]);
    expect(goals[0]!.over).toEqual(['m 2 Mbit/s 50 ms: 1.13']);
    expect(goals[1]!.over).toEqual(['m 2 Mbit/s 50 ms: 1.13']);
    expect(goals[2]!.met).toBe(false);
    const unmeasured = sweepGoals(result([point({})], { geomeanSpeedupOverRound1: undefined }));
    expect(unmeasured[2]!.met).toBe(false);
    expect(sweepGoals(result([])).every((g) => !g.met)).toBe(true);
  });
});

describe('break-even bandwidths', () => {
  const model = {
    model: 'm', localMs: 200, remoteMs: 10, inputBytes: 600_000, outputBytes: 4_000, imageBytes: 9_000,
    cuts: [{ id: 'c1', bytes: 100_000, outputBytes: 4_000, headMs: 40, tailMs: 5, encodings: { float16: { bytes: 50_000, maxError: 0.001 }, int8: { bytes: 25_000, maxError: 0.2 } } }],
  };
  const row = (r: SweepResult): string => breakEven(r).find((l) => l.startsWith('| m '))!;

  it('cost the offload as the JPEG and a split in its smallest encoding within the budget', () => {
    const budget = row(result([point({})], { models: [model], maxOutputError: 0.05 }));
    // Offload: 13 KB over 200 − 10 − 10 ms = 0.58 Mbit/s; split: float16 54 KB over 200 − 40 − 10 − 5 ms = 2.98 Mbit/s.
    expect(budget).toContain('| 9 | 0.6 Mbit/s | c1/float16: 3.0 Mbit/s |');
    const loose = row(result([point({})], { models: [model], maxOutputError: 0.5 }));
    expect(loose).toContain('c1/int8: 1.6 Mbit/s');
    const float32 = row(result([point({})], { models: [model] }));
    expect(float32).toContain('c1: 5.7 Mbit/s');
  });
});
