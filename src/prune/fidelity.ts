/**
 * How far the pruned model's outputs are from the original's, on holdout images that
 * calibration never saw: top-1 agreement (and accuracy against labels, when given) for a
 * classifier; box F1 against the original's boxes for a DB text detector (a one-channel
 * probability map the size of the input); and always the relative output error.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type { ModelProto } from '../graph/onnx.js';
import type { PipelineSpec } from '../preprocess/index.js';
import { matchBoxes, textBoxes } from '../preprocess/index.js';
import { PruneError } from './errors.js';
import { ActivationSession, loadImage } from './session.js';

export type FidelityKind = 'classification' | 'boxes' | 'error';

export interface Fidelity {
  kind: FidelityKind;
  /** Holdout images measured. */
  images: number;
  /** Share of images whose top-1 class is the original model's. */
  top1Agreement?: number;
  /** Accuracy against the labels file, before and after, and the drop in points (percentage points). */
  accuracy?: { before: number; after: number; dropPoints: number };
  /** F1 of the pruned model's boxes against the original's (IoU ≥ 0.5). */
  boxF1?: number;
  boxes?: { reference: number; found: number; matched: number };
  /** ‖pruned − original‖ / ‖original‖ over each image's outputs. */
  relativeError: { max: number; mean: number };
}

/** Reads `name label` lines; a label is a class index or a name from `classNames`. */
export async function readHoldoutLabels(file: string, classNames: readonly string[] | undefined): Promise<Map<string, number>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new PruneError('PRUNE_LABELS', `cannot read the labels file ${file}`, { cause: error, details: { file } });
  }
  const labels = new Map<string, number>();
  for (const [i, line] of text.split(/\r?\n/).entries()) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const [name, label] = trimmed.split(/\s+/);
    // A class name first (labels such as `0` and `180` are names), then an index.
    const named = classNames?.indexOf(label ?? '') ?? -1;
    const index = named >= 0 ? named : /^\d+$/.test(label ?? '') && (!classNames || Number(label) < classNames.length) ? Number(label) : -1;
    if (!name || index < 0) throw new PruneError('PRUNE_LABELS', `${file}:${i + 1}: "${trimmed}" is not "IMAGE LABEL" with a known class`, { details: { file, line: i + 1 } });
    labels.set(name, index);
  }
  return labels;
}

/**
 * What fidelity is measured as, from the first output's shape: class scores, a DB detector's
 * one-channel probability map the size of the input (its boxes), or only the output error.
 */
export function fidelityKind(output: readonly number[], input: readonly number[], classification: boolean): FidelityKind {
  if (classification || (output.length === 2 && output[1]! > 1)) return 'classification';
  return output.length === 4 && output[1] === 1 && output[2] === input[2] && output[3] === input[3] ? 'boxes' : 'error';
}

const argmax = (v: Float32Array): number => v.reduce((best, x, i) => (x > v[best]! ? i : best), 0);

export async function measureFidelity(options: {
  original: ModelProto;
  pruned: ModelProto;
  files: readonly string[];
  pipeline: PipelineSpec;
  labels?: ReadonlyMap<string, number>;
  classification: boolean;
  threads: number;
}): Promise<Fidelity> {
  const original = await ActivationSession.open(options.original, [], options.threads);
  const pruned = await ActivationSession.open(options.pruned, [], options.threads);
  let kind: FidelityKind | undefined;
  let agree = 0;
  let [correctBefore, correctAfter, labelled] = [0, 0, 0];
  let [reference, found, matched] = [0, 0, 0];
  let [maxError, sumError] = [0, 0];
  try {
    for (const file of options.files) {
      const input = await loadImage(file, options.pipeline);
      const a = await original.run(input);
      const b = await pruned.run(input);
      const name = original.outputNames[0]!;
      const ya = a.get(name)!;
      const yb = b.get(name)!;
      kind ??= fidelityKind(ya.dims, input.dims, options.classification);
      let [diff, norm] = [0, 0];
      for (const [key, t] of a) {
        const u = b.get(key)!;
        for (let i = 0; i < t.data.length; i++) {
          diff += (t.data[i]! - u.data[i]!) ** 2;
          norm += t.data[i]! ** 2;
        }
      }
      const error = Math.sqrt(diff / (norm || 1));
      maxError = Math.max(maxError, error);
      sumError += error;
      if (kind === 'classification') {
        const [ca, cb] = [argmax(ya.data), argmax(yb.data)];
        if (ca === cb) agree++;
        const label = options.labels?.get(basename(file));
        if (options.labels && label === undefined) throw new PruneError('PRUNE_LABELS', `the labels file names no label for ${basename(file)}`, { details: { file } });
        if (label !== undefined) {
          labelled++;
          if (ca === label) correctBefore++;
          if (cb === label) correctAfter++;
        }
      } else if (kind === 'boxes') {
        // Both maps through the serving post-processing: the F1 is what pruning changed in the answer.
        const ra = textBoxes({ dtype: 'float32', dims: [...ya.dims], data: ya.data });
        const rb = textBoxes({ dtype: 'float32', dims: [...yb.dims], data: yb.data });
        reference += ra.length;
        found += rb.length;
        matched += matchBoxes(ra, rb);
      }
    }
  } finally {
    await original.release();
    await pruned.release();
  }
  const images = options.files.length;
  const fidelity: Fidelity = { kind: kind ?? 'error', images, relativeError: { max: maxError, mean: sumError / Math.max(1, images) } };
  if (kind === 'classification') {
    fidelity.top1Agreement = agree / images;
    if (labelled > 0) {
      const before = correctBefore / labelled;
      const after = correctAfter / labelled;
      fidelity.accuracy = { before, after, dropPoints: 100 * (before - after) };
    }
  }
  if (kind === 'boxes') {
    fidelity.boxF1 = reference + found === 0 ? 1 : (2 * matched) / (reference + found);
    fidelity.boxes = { reference, found, matched };
  }
  return fidelity;
}
