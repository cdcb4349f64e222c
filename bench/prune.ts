/**
 * `tandem bench prune`: the accuracy/F1-against-FLOPs curve of structured pruning on the
 * shipped PP-OCR models. The direction classifier is pruned whole at --keep 1.0 → 0.3 and
 * measured on holdout lines (accuracy on 0°/180° labels, top-1 agreement); the DB detector's
 * head up to a mid cut likewise (box F1 against the unpruned model, head time, cut bytes).
 * Prints JSON and writes bench/results/prune.{json,svg,png} (prune-quick.* with --quick).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { analyzeModel, loadModel } from '../src/graph/index.js';
import { prunePackage, type PruneReport } from '../src/prune/index.js';
import { ocrModelPath } from '../models/ocr-models.js';
import { CALIBRATION_FONTS, DET_MODEL, HOLDOUT_FONTS, createClsPackage, createDetPackage, writeLines, writePages } from './prune-data.js';
import { RESULTS_DIR, renderChart } from './report.js';

export interface PrunePoint {
  model: 'cls' | 'det';
  keep: number;
  flopsBefore: number;
  flopsAfter: number;
  /** flopsAfter / flopsBefore. */
  flopsKept: number;
  edgeMsBefore: number;
  edgeMsAfter: number;
  /** Accuracy (cls) or box F1 (det), 0–1. */
  quality: number;
  /** Accuracy of the unpruned classifier (1 for the detector's F1 against itself). */
  qualityBefore: number;
  top1Agreement?: number;
  cutBytes?: { before: number; after: number };
  seconds: number;
}

export interface PruneBenchResult {
  points: PrunePoint[];
  /** Largest keep at which the classifier's accuracy is more than 1 point below the unpruned one (undefined: never). */
  clsKnee?: number;
  detCut: string;
  detSize: number;
  summary: string;
  files: { json: string; svg: string; png: string };
}

/** The cut nearest half the model's FLOPs: the head a mid-range edge device would run. */
export async function midCut(modelPath: string, size: number): Promise<string> {
  const model = await loadModel(modelPath);
  const analysis = await analyzeModel(model, { x: [1, 3, size, size] });
  const half = analysis.totalFlops / 2;
  return analysis.cuts.reduce((best, c) => (Math.abs(c.headFlops - half) < Math.abs(best.headFlops - half) ? c : best)).id;
}

export type PruneBenchModel = 'cls' | 'det';

export interface PruneBenchOptions {
  quick: boolean;
  detSize?: number;
  /** Which models to sweep (default both): one model alone is a shorter run to iterate on. */
  models?: readonly PruneBenchModel[];
  /** The keeps to sweep (default 1.0 → 0.3; 1, 0.7, 0.5 with `quick`). */
  keeps?: readonly number[];
  log: (line: string) => void;
}

export async function runPruneBench(options: PruneBenchOptions): Promise<PruneBenchResult> {
  const keeps = options.keeps ?? (options.quick ? [1, 0.7, 0.5] : [1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]);
  const models = new Set(options.models ?? ['cls', 'det']);
  const detSize = options.detSize ?? 640;
  const root = await mkdtemp(join(tmpdir(), 'tandem-prune-bench-'));
  const points: PrunePoint[] = [];
  try {
    const detCut = await midCut(ocrModelPath(DET_MODEL), detSize);
    if (models.has('cls')) {
      const cls = await createClsPackage(join(root, 'cls'));
      // The classifier's late layers see few positions per line: their channel statistics need
      // a few hundred lines (docs/guide/prune.md).
      await writeLines(join(root, 'cls-calib'), options.quick ? 32 : 256, 1000, CALIBRATION_FONTS);
      const labels = await writeLines(join(root, 'cls-holdout'), options.quick ? 100 : 400, 50000, HOLDOUT_FONTS);
      for (const keep of keeps) {
        const started = Date.now();
        options.log(`cls keep ${keep}`);
        const r = await prunePackage({ package: cls, calib: join(root, 'cls-calib'), holdout: join(root, 'cls-holdout'), labels, keep, out: join(root, `cls-${keep}`), log: options.log });
        points.push(point('cls', keep, r, r.fidelity?.accuracy?.after ?? 0, r.fidelity?.accuracy?.before ?? 0, started));
      }
    }
    if (models.has('det')) {
      const det = await createDetPackage(join(root, 'det'), detSize);
      await writePages(join(root, 'det-calib'), options.quick ? 8 : 24, 2000, CALIBRATION_FONTS, detSize);
      await writePages(join(root, 'det-holdout'), options.quick ? 6 : 24, 60000, HOLDOUT_FONTS, detSize);
      for (const keep of keeps) {
        const started = Date.now();
        options.log(`det keep ${keep} up to ${detCut}`);
        const r = await prunePackage({ package: det, calib: join(root, 'det-calib'), holdout: join(root, 'det-holdout'), keep, upto: detCut, out: join(root, `det-${keep}`), timingRuns: 10, minCalibration: 4, log: options.log });
        points.push(point('det', keep, r, r.fidelity?.boxF1 ?? 0, 1, started));
      }
    }
    const clsPoints = points.filter((p) => p.model === 'cls').sort((a, b) => b.keep - a.keep);
    // Rounded: 0.9675 − 0.9575 is 1.0000000000000009 points in floating point, and one line is 0.25.
    const knee = clsPoints.find((p) => Math.round(1e6 * 100 * (p.qualityBefore - p.quality)) / 1e6 > 1);
    // A partial run (one model, chosen keeps) never overwrites the full curve's files.
    const partial = options.models !== undefined || options.keeps !== undefined;
    const files = await writeReport(points, detCut, detSize, options.quick ? 'prune-quick' : partial ? 'prune-partial' : 'prune');
    const summary = [
      'model keep  FLOPs kept  edge ms before→after  quality (acc / box F1)',
      ...points.map((p) => `${p.model.padEnd(5)} ${p.keep.toFixed(2)}  ${(100 * p.flopsKept).toFixed(1).padStart(6)}%  ${p.edgeMsBefore.toFixed(2)} → ${p.edgeMsAfter.toFixed(2)}  ${(100 * p.quality).toFixed(1)}%`),
      `classifier knee (accuracy down > 1 point): ${knee ? `keep ${knee.keep}` : 'none in the sweep'}; detector cut ${detCut} at ${detSize}×${detSize}`,
      `wall time: ${points.map((p) => `${p.model} ${p.keep} ${p.seconds.toFixed(0)} s`).join(', ')}`,
      `files: ${files.json}, ${files.png}`,
    ].join('\n');
    return { points, ...(knee ? { clsKnee: knee.keep } : {}), detCut, detSize, summary, files };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

function point(model: 'cls' | 'det', keep: number, r: PruneReport, quality: number, qualityBefore: number, started: number): PrunePoint {
  return {
    model,
    keep,
    flopsBefore: r.flops.before,
    flopsAfter: r.flops.after,
    flopsKept: r.flops.after / r.flops.before,
    edgeMsBefore: r.edgeMs.before,
    edgeMsAfter: r.edgeMs.after,
    quality,
    qualityBefore,
    ...(r.fidelity?.top1Agreement !== undefined ? { top1Agreement: r.fidelity.top1Agreement } : {}),
    ...(r.cutBytes ? { cutBytes: r.cutBytes } : {}),
    seconds: (Date.now() - started) / 1000,
  };
}

/** `base`: prune-quick for a smoke run, so that it never stands in for the measured curve. */
async function writeReport(points: PrunePoint[], cut: string, size: number, base: string): Promise<{ json: string; svg: string; png: string }> {
  await mkdir(RESULTS_DIR, { recursive: true });
  const json = join(RESULTS_DIR, `${base}.json`);
  await writeFile(json, `${JSON.stringify(points, null, 2)}\n`);
  const values = points.map((p) => ({ series: p.model === 'cls' ? 'classifier: holdout accuracy' : `detector head to ${cut} (${size}²): box F1`, flopsKept: p.flopsKept, quality: p.quality, keep: p.keep }));
  const chart = await renderChart(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      title: { text: 'PP-OCR structured pruning without retraining: quality against FLOPs kept', anchor: 'start' },
      width: 560,
      height: 320,
      data: { values },
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'flopsKept', type: 'quantitative', title: 'FLOPs kept in the pruned region', scale: { domain: [0.2, 1] }, axis: { format: '%' } },
        y: { field: 'quality', type: 'quantitative', title: 'accuracy / box F1', scale: { zero: false }, axis: { format: '%' } },
        color: { field: 'series', type: 'nominal', legend: { orient: 'bottom', labelLimit: 400 } },
      },
      config: { font: 'DejaVu Sans' },
    } as TopLevelSpec,
    join(RESULTS_DIR, base),
  );
  return { json, ...chart };
}
