/**
 * A pruned variant end to end: `prunePackage({ variant })` records it in the source package;
 * the runtime runs its head and an in-process `tandem cloud serve` its tail (served as
 * `cls@p70`), and the split's outputs are the pruned model's own; `tandem profile` times it.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CALIBRATION_FONTS, HOLDOUT_FONTS, createClsPackage, writeLines } from '../../bench/prune-data.js';
import type { CloudService } from '../../cloud/server.js';
import { parseEdgeConfig } from '../../edge/config.js';
import { createServiceFromConfig } from '../../edge/service-factory.js';
import { analyzeModel, loadModel } from '../../src/graph/index.js';
import { addVariant, readPackage, verifyListedFiles } from '../../src/package/index.js';
import { createProviderClient } from '../../src/providers/index.js';
import type { ProviderClient } from '../../src/providers/types.js';
import { prunePackage, type PruneReport } from '../../src/prune/index.js';
import { createRuntime, profileModel } from '../../src/runtime/index.js';
import { expectSameOutputs, startService } from '../helpers/cloud.js';
import { cloneMap, randomInput, referenceRun } from '../helpers/runtime-fixtures.js';

const DIMS = [1, 3, 48, 192];
let root: string;
let models: string;
let cls: string;
let report: PruneReport;
let svc: CloudService;
let client: ProviderClient;
/** A cut inside the pruned region whose tensors lost channels. */
let thinCut: { id: string; before: number; after: number };

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tandem-prune-variant-'));
  models = join(root, 'models');
  cls = join(models, 'cls');
  await createClsPackage(cls);
  await writeLines(join(root, 'calib'), 12, 1000, CALIBRATION_FONTS);
  const labels = await writeLines(join(root, 'holdout'), 24, 50000, HOLDOUT_FONTS);
  // No --out: the pruned model goes into the package as variant p70 only.
  report = await prunePackage({ package: cls, calib: join(root, 'calib'), holdout: join(root, 'holdout'), labels, keep: 0.7, variant: 'p70', minCalibration: 8, timingRuns: 1 });
  const shapes = { x: DIMS };
  const [base, pruned] = await Promise.all([analyzeModel(await loadModel(join(cls, 'model.onnx')), shapes), analyzeModel(await loadModel(join(cls, 'variants', 'p70.onnx')), shapes)]);
  const after = new Map(pruned.cuts.map((c) => [c.id, c.bytes]));
  const thin = base.cuts.filter((c) => c.id !== 'c0' && (after.get(c.id) ?? c.bytes) < c.bytes);
  const mid = thin[Math.floor(thin.length / 2)]!;
  thinCut = { id: mid.id, before: mid.bytes, after: after.get(mid.id)! };
  svc = await startService(models);
  client = createProviderClient({ name: 'oip', kind: 'oip', region: 'local', url: svc.url });
}, 300_000);

afterAll(async () => {
  await client?.close();
  await svc?.drain();
  await rm(root, { recursive: true, force: true });
});

describe('pruned variants of a package', () => {
  it('records the variant, its file checksum and its measured accuracy drop in the source package', async () => {
    const pkg = await readPackage(cls);
    await verifyListedFiles(pkg);
    const v = pkg.manifest.variants?.['p70'];
    expect(v?.model).toBe('variants/p70.onnx');
    expect(pkg.sha256['variants/p70.onnx']).toMatch(/^[0-9a-f]{64}$/);
    expect(v?.keep).toBe(0.7);
    expect(v?.accuracyDrop).toBeCloseTo(Math.max(0, report.fidelity!.accuracy!.dropPoints / 100), 12);
    expect(report.variant).toEqual({ id: 'p70', accuracyDrop: v?.accuracyDrop });
    // The scratch package it was written to is gone, and nothing was written beside the source package.
    expect((await readdir(tmpdir())).filter((f) => f.startsWith(`tandem-variant-${process.pid}-`))).toEqual([]);
    expect((await readdir(models)).filter((f) => f.startsWith('.') || f.includes('variant'))).toEqual([]);
    // A second variant of the same id is refused.
    await expect(addVariant({ package: cls, model: join(cls, 'variants', 'p70.onnx'), id: 'p70', record: {} })).rejects.toMatchObject({ code: 'RUNTIME_PACKAGE_VARIANT' });
    await expect(addVariant({ package: cls, model: join(cls, 'variants', 'p70.onnx'), id: 'bad id', record: {} })).rejects.toMatchObject({ code: 'RUNTIME_PACKAGE_VARIANT' });
  });

  it('refuses, before any work, a variant it could not record: a taken or bad id, or no holdout to measure accuracy on', async () => {
    const base = { package: cls, calib: join(root, 'calib'), holdout: join(root, 'holdout'), keep: 0.5, minCalibration: 8, timingRuns: 1 };
    await expect(prunePackage({ ...base, variant: 'p70' })).rejects.toMatchObject({ code: 'PRUNE_VARIANT' });
    await expect(prunePackage({ ...base, variant: 'p 50' })).rejects.toMatchObject({ code: 'PRUNE_VARIANT' });
    const { holdout: _holdout, ...noHoldout } = base;
    await expect(prunePackage({ ...noHoldout, variant: 'p50' })).rejects.toMatchObject({ code: 'PRUNE_VARIANT' });
    expect(Object.keys((await readPackage(cls)).manifest.variants ?? {})).toEqual(['p70']);
  });

  it('a pruned split through tandem cloud serve gives the pruned model\'s outputs, sending the thinner cut', async () => {
    expect(thinCut.after).toBeLessThan(thinCut.before);
    const input = randomInput(DIMS, 5);
    const want = await referenceRun(join(cls, 'variants', 'p70.onnx'), cloneMap(input));
    const unpruned = await referenceRun(join(cls, 'model.onnx'), cloneMap(input));
    const runtime = await createRuntime({ model: cls, endpoints: [client], planner: { kind: 'split', cut: thinCut.id, endpoint: 'oip', variant: 'p70' }, warmup: false });
    try {
      const result = await runtime.infer({ x: cloneMap(input)['x']! });
      // A fallback would also give the pruned outputs: the tail must have run in the service.
      expect(result.fellBack).toBe(false);
      expect(result.timing.remoteMs).toBeGreaterThan(0);
      expectSameOutputs(result.outputs, want, 1e-4);
      // Not the unpruned model's outputs (the test can tell the two apart).
      const name = Object.keys(want)[0]!;
      const differs = (want[name]!.data as Float32Array).some((x, i) => Math.abs(x - (unpruned[name]!.data as Float32Array)[i]!) > 1e-4);
      expect(differs).toBe(true);
      // The payload carries the pruned cut: fewer bytes than the unpruned one.
      expect(result.bytesSent).toBeLessThan(thinCut.before);
    } finally {
      await runtime.close();
    }
  });

  it('runs the variant whole on the edge for a local plan naming it, and refuses an unknown variant', async () => {
    const input = randomInput(DIMS, 9);
    const want = await referenceRun(join(cls, 'variants', 'p70.onnx'), cloneMap(input));
    const runtime = await createRuntime({ model: cls, planner: { kind: 'local', variant: 'p70' }, warmup: false });
    try {
      expectSameOutputs((await runtime.infer({ x: cloneMap(input)['x']! })).outputs, want, 1e-5);
    } finally {
      await runtime.close();
    }
    await expect(createRuntime({ model: cls, planner: { kind: 'local', variant: 'p99' }, warmup: false })).rejects.toMatchObject({ code: 'RUNTIME_PACKAGE_VARIANT' });
  });

  it('tandem profile times the variant: whole, per cut on the edge and its tails at the endpoint', async () => {
    const profile = await profileModel({ model: cls, endpoints: [client], maxCuts: 4, warmup: 0, runs: 1, encodings: false });
    const [v] = profile.variants ?? [];
    expect(v?.id).toBe('p70');
    expect(v?.accuracyDrop).toBeCloseTo(Math.max(0, report.fidelity!.accuracy!.dropPoints / 100), 12);
    expect(v!.localMs).toBeGreaterThan(0);
    expect(v!.remoteMs['oip']).toBeGreaterThan(0);
    expect(v!.cuts.map((c) => c.id)).toEqual(profile.cuts.map((c) => c.id));
    // Its cut sizes are its own, and at least one measured tail ran at the service as cls@p70.
    expect(v!.cuts.find((c) => c.id === thinCut.id)!.bytes).toBe(thinCut.after);
    expect(v!.cuts.some((c) => c.id !== 'c0' && c.tailMs['oip'] !== undefined)).toBe(true);
  });

  it("edge.yaml's planner.maxAccuracyDrop reaches the agent's planner: a variant the package lacks is refused at start only under a budget", async () => {
    const measured = await profileModel({ model: cls, maxCuts: 2, warmup: 0, runs: 1, encodings: false });
    const [p70] = measured.variants ?? [];
    // The profile claims a second variant that the package does not hold.
    await writeFile(join(root, 'profile.json'), JSON.stringify({ ...measured, variants: [p70, { ...p70!, id: 'p99', modelSha256: 'f'.repeat(64) }] }));
    const start = async (planner: Record<string, unknown>): Promise<void> => {
      const { config } = parseEdgeConfig(JSON.stringify({ models: [{ name: 'cls', path: cls, profile: join(root, 'profile.json'), workers: 1, warmup: false }], planner, outbox: { dir: join(root, 'outbox') }, http: { port: 0 } }), join(root, 'edge.yaml'));
      const { service } = await createServiceFromConfig(config, { logger: pino({ level: 'silent' }) });
      await service.close();
    };
    // Without a budget no variant is an option, so the profile's extra one does not matter.
    await expect(start({})).resolves.toBeUndefined();
    await expect(start({ maxAccuracyDrop: 1 })).rejects.toMatchObject({ code: 'RUNTIME_PACKAGE_VARIANT' });
    await expect(start({ maxAccuracyDrop: -0.1 })).rejects.toMatchObject({ code: 'EDGE_CONFIG_INVALID' });
  });
});
