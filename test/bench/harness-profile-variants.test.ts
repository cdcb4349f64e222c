/**
 * `tandem profile` (profileModel) measures the lossy cut encodings at a variant's cuts too, the
 * error against the variant's own float32 tail, and the planner then offers a variant's
 * compressed cuts within the output-error budget, and never over it. The variant is a copy of
 * the model (what is tested is the measurement's plumbing): its encodings must cost what the
 * model's do at the same cut.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateReferenceModel } from '../../models/generate.js';
import { AdaptivePlanner, describePlan, type Profile } from '../../src/planner/index.js';
import { addVariant } from '../../src/package/index.js';
import { profileModel } from '../../src/runtime/index.js';

let root: string;
let profile: Profile;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tandem-profile-variants-'));
  const pkg = join(root, 'm');
  const bytes = generateReferenceModel({ arch: 'mobilenetv2', resolution: 64 });
  await mkdir(pkg);
  await writeFile(join(pkg, 'model.onnx'), bytes);
  await writeFile(join(pkg, 'manifest.json'), JSON.stringify({ name: 'm', model: 'model.onnx', shapes: { input: [1, 3, 64, 64] } }));
  await writeFile(join(root, 'copy.onnx'), bytes);
  await addVariant({ package: pkg, model: join(root, 'copy.onnx'), id: 'copy', record: { keep: 1, accuracyDrop: 0 } });
  profile = await profileModel({ model: pkg, maxCuts: 4, warmup: 0, runs: 1, intraOpThreads: 1 });
}, 120_000);

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe('profiling a variant with cut encodings', () => {
  it('measures float16 and int8 at the variant\'s measured cuts, as at the model\'s (and not with encodings: false)', async () => {
    const [v] = profile.variants ?? [];
    expect(v?.id).toBe('copy');
    const measured = v!.cuts.filter((c) => c.encodings?.int8);
    expect(measured.length).toBeGreaterThan(0);
    for (const c of measured) {
      const base = profile.cuts.find((b) => b.id === c.id)!;
      expect(c.encodings!.int8!.bytes).toBe(base.encodings!.int8!.bytes);
      expect(c.encodings!.int8!.bytes).toBeLessThan(c.bytes);
      expect(c.encodings!.float16!.maxError).toBeCloseTo(base.encodings!.float16!.maxError, 6);
    }
    const plain = await profileModel({ model: join(root, 'm'), maxCuts: 2, warmup: 0, runs: 1, encodings: false });
    expect(plain.variants?.[0]?.cuts.some((c) => c.encodings)).toBe(false);
  });

  it('lets the planner send a variant\'s cut compressed only within the output-error budget', () => {
    const v = profile.variants![0]!;
    const errors = v.cuts.flatMap((c) => (c.encodings?.int8 ? [c.encodings.int8.maxError] : []));
    const plans = (maxOutputError: number): string[] =>
      new AdaptivePlanner({ profile, endpoints: [{ name: 'cloud', encodings: ['float16', 'int8'] }], maxOutputError, maxAccuracyDrop: 0.01 }).rank({ allowedEndpoints: ['cloud'] }).map((r) => describePlan(r.plan));
    expect(plans(Math.max(...errors)).some((p) => /\/int8~copy→/.test(p))).toBe(true);
    // Under every measured error, no compressed cut of the variant (nor of the model) is an option.
    const none = plans(Math.min(...errors, ...v.cuts.flatMap((c) => (c.encodings?.float16 ? [c.encodings.float16.maxError] : []))) / 2);
    expect(none.some((p) => /\/(int8|float16)~copy→/.test(p))).toBe(false);
    expect(none.some((p) => /~copy/.test(p))).toBe(true);
  });
});
