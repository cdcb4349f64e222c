/**
 * The sweep with pruned variants, structurally: the testbed profiles each variant of the
 * package (whole, and split at the candidate cuts, with float16/int8 measured against the
 * variant's own tail); the arm with variants and the oracle with variants only ever consider
 * the variants within the accuracy budget, even one that the profile makes the fastest; the
 * report names the variant chosen and the speedup. Variants here are copies of the model (a
 * real prune takes minutes): what is tested is the plumbing, not what pruning gains.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describePlan } from '../../src/planner/index.js';
import { addVariant } from '../../src/package/index.js';
import { measurePoint, plannerFor } from '../../bench/harness/point.js';
import { ENDPOINT, MODELS, Testbed, type PreparedModel } from '../../bench/harness/testbed.js';
import type { VariantSource } from '../../bench/harness/variants.js';
import { runSweep } from '../../bench/sweep.js';
import { sweepMarkdown } from '../../bench/report.js';

const BUDGET = 0.05;
const DROP = 0.01;

/** Two copies of the model as variants: `same` within any budget, `over` costing 20 points. */
const copies: VariantSource = async (dir, _spec, bytes) => {
  const file = join(dir, '..', 'variant-copy.onnx');
  await writeFile(file, bytes);
  await addVariant({ package: dir, model: file, id: 'same', record: { keep: 1, accuracyDrop: 0 } });
  await addVariant({ package: dir, model: file, id: 'over', record: { keep: 0.5, accuracyDrop: 0.2 } });
  return [
    { id: 'same', keep: 1, accuracyDrop: 0, cached: false },
    { id: 'over', keep: 0.5, accuracyDrop: 0.2, cached: false },
  ];
};

/** The profile with variant `over` made nearly free on the edge: any planner allowed it would run it. */
function overIsFastest(m: PreparedModel): PreparedModel {
  const variants = m.profile.variants?.map((v) => (v.id === 'over' ? { ...v, localMs: 0.01, cuts: v.cuts.map((c) => ({ ...c, headMs: 0.01 })) } : v));
  return { ...m, profile: { ...m.profile, ...(variants ? { variants } : {}) } };
}

let testbed: Testbed;
let m: PreparedModel;

beforeAll(async () => {
  testbed = await Testbed.create({ slowdown: 1, maxCuts: 2, models: [MODELS['mobilenetv2']!], profileRuns: 1, calibrationImages: 1, variants: copies });
  m = await testbed.prepare(MODELS['mobilenetv2']!);
}, 180_000);

afterAll(async () => {
  await testbed?.close();
});

describe('the sweep with pruned variants', () => {
  it('profiles each variant whole and at the candidate cuts, with cut encodings measured against its own tail', () => {
    expect(m.variants.map((v) => v.id)).toEqual(['same', 'over']);
    const variants = m.profile.variants ?? [];
    expect(variants.map((v) => v.id).sort()).toEqual(['over', 'same']);
    for (const v of variants) {
      expect(v.localMs).toBeGreaterThan(0);
      expect(v.cuts.map((c) => c.id)).toEqual(m.cuts.map((c) => c.id));
      for (const c of v.cuts) {
        expect(c.headMs).toBeGreaterThan(0);
        expect(c.encodings?.int8?.bytes).toBeLessThan(c.bytes);
        // The same file as the model: the encoding adds the same error as at the model's cut.
        const base = m.profile.cuts.find((b) => b.id === c.id)!;
        expect(c.encodings!.int8!.maxError).toBeCloseTo(base.encodings!.int8!.maxError, 6);
      }
    }
  });

  it('gives the planner the variants within the accuracy budget only, with their compressed cuts', () => {
    const kinds = (drop: number | undefined): string[] => plannerFor(m, BUDGET, { bw: 2, rtt: 50 }, false, drop).rank({ allowedEndpoints: [ENDPOINT] }).map((r) => describePlan(r.plan));
    expect(kinds(undefined).some((k) => k.includes('~'))).toBe(false);
    const within = kinds(DROP);
    expect(within).toContain('local~same');
    expect(within.some((k) => /^split@[^~]+\/int8~same→/.test(k))).toBe(true);
    expect(within.some((k) => k.includes('~over'))).toBe(false);
    expect(kinds(0.5).some((k) => k.includes('~over'))).toBe(true);
  });

  it('measures the arm with variants in the same rounds, and never runs a variant over the budget', async () => {
    testbed.setLink(20e6, 10);
    const doctored = overIsFastest(m);
    // The doctored profile makes `over` the best of all when allowed: the check below can fail.
    expect(describePlan(plannerFor(doctored, BUDGET, { bw: 20, rtt: 10 }, false, 0.5).choose({ allowedEndpoints: [ENDPOINT] }))).toMatch(/~over/);
    const arms = { adaptive: plannerFor(doctored, BUDGET), round1: plannerFor(doctored, BUDGET, undefined, true), variants: plannerFor(doctored, BUDGET, undefined, false, DROP) };
    const p = await measurePoint(testbed, doctored, 20, 10, { staticPlan: { kind: 'local' }, arms, rounds: 3, warmup: 1, maxOutputError: BUDGET, maxAccuracyDrop: DROP });
    expect(p.variantsPlans).toHaveLength(3);
    expect(p.variantsPlans!.some((plan) => plan.includes('~over'))).toBe(false);
    expect(p.oracleVariantsPlan).not.toMatch(/~over/);
    expect(p.oraclePlan).not.toMatch(/~/);
    expect(p.adaptivePlans!.some((plan) => plan.includes('~'))).toBe(false);
    expect(p.variantSpeedup).toBeCloseTo(p.adaptiveMs / p.variantsMs!, 9);
    expect(p.oracleVariantsMs).toBeLessThanOrEqual(p.oracleMs);
    expect(p.variantMaxAccuracyDrop).toBeLessThanOrEqual(DROP);
    if (p.variantChosen !== undefined) expect(p.variantChosen).toBe('same');
    const md = sweepMarkdown({ adaptiveOverOracle: 1, adaptiveOverBestFixed: 1, points: [p], slowdown: 1, quick: true, notes: [], variants: { mobilenetv2: m.variants }, maxAccuracyDrop: DROP });
    expect(md).toMatch(/## Pruned variants/);
    expect(md).toMatch(/\| mobilenetv2 \| over \| 0\.5 \| 20\.0% \| — \| — \| no \|/);
    expect(md).toContain(`| ${p.variantSpeedup!.toFixed(2)}× | ${p.variantsPlan} |`);
  }, 120_000);
});

describe('runSweep with variants', () => {
  it('reports, per point, adaptive with and without variants and the oracle with variants', async () => {
    const { result } = await runSweep({
      models: ['mobilenetv2'], bandwidthsMbit: [20], rttsMs: [10], rounds: 2, adaptiveWarmup: 1, maxCuts: 1, slowdown: 1, reportDir: false, variantSource: copies,
    });
    const p = result.points[0]!;
    expect(result.maxAccuracyDrop).toBe(0.01);
    expect(result.variants?.['mobilenetv2']?.map((v) => v.id)).toEqual(['same', 'over']);
    expect(Number.isFinite(p.variantsMs ?? Number.NaN)).toBe(true);
    expect(p.variantsPlans!.every((plan) => !plan.includes('~over'))).toBe(true);
    expect(result.geomeanVariantSpeedup).toBeCloseTo(p.variantSpeedup ?? Number.NaN, 9);
    expect(result.notes.some((n) => n.startsWith('Pruned variants'))).toBe(true);
  }, 120_000);

  it('runs without variants when none are asked for', async () => {
    const { result } = await runSweep({ models: ['mobilenetv2'], bandwidthsMbit: [20], rttsMs: [10], rounds: 1, adaptiveWarmup: 0, maxCuts: 1, slowdown: 1, reportDir: false, variants: false });
    expect(result.points[0]!.variantsMs).toBeUndefined();
    expect(result.variants).toBeUndefined();
    expect(sweepMarkdown(result)).not.toMatch(/Pruned variants/);
  }, 120_000);
});
