/**
 * Pruning the real PP-OCRv4 DB detector's head up to its mid cut, on pages rendered with sharp
 * (calibration and holdout pages differ in strings and fonts). Box F1 is measured on the
 * holdout pages against the unpruned model's boxes. Edge time is a benchmark figure
 * (`tandem bench prune`), not asserted here.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { midCut } from '../../bench/prune.js';
import { CALIBRATION_FONTS, DET_MODEL, HOLDOUT_FONTS, createDetPackage, writePages } from '../../bench/prune-data.js';
import { ocrModelPath } from '../../models/ocr-models.js';
import { prunePackage, type PruneReport } from '../../src/prune/index.js';

const SIZE = 192;
let root: string;
let report: PruneReport;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tandem-prune-det-'));
  await createDetPackage(join(root, 'det'), SIZE);
  await writePages(join(root, 'calib'), 8, 2000, CALIBRATION_FONTS, SIZE);
  await writePages(join(root, 'holdout'), 8, 60000, HOLDOUT_FONTS, SIZE);
  const upto = await midCut(ocrModelPath(DET_MODEL), SIZE);
  report = await prunePackage({ package: join(root, 'det'), calib: join(root, 'calib'), holdout: join(root, 'holdout'), keep: 0.7, upto, out: join(root, 'det-pruned'), timingRuns: 3, minCalibration: 4, sensitivityImages: 4, rows: 1024 });
}, 300_000);

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('tandem prune on the PP-OCRv4 detector head', () => {
  it('meets the FLOPs budget with box F1 ≥ 0.97 on holdout pages', () => {
    expect(report.flops.after / report.flops.before).toBeLessThanOrEqual(0.7 * 1.01);
    expect(report.fidelity?.kind).toBe('boxes');
    expect(report.fidelity?.boxes?.reference).toBeGreaterThan(0);
    expect(report.fidelity?.boxF1).toBeGreaterThanOrEqual(0.97);
    // The cut tensors lost channels too: a split sends fewer bytes.
    expect(report.cutBytes!.after).toBeLessThan(report.cutBytes!.before);
  });

  it('takes the detector\'s loss floor by default and records it', () => {
    expect(report.allocation).toEqual({ method: 'sensitivity', cost: 'time', lossFloor: 0.1 });
    // Under the floor, the time-heavy high-resolution layers are pruned too, not only the cheap late ones.
    const first = report.layers.find((l) => l.outChannels && l.op === 'Conv');
    expect(first?.outChannels?.[1]).toBeLessThan(first!.outChannels![0]);
  });
});
