/**
 * DB (differentiable binarization) post-processing for text detectors such as PP-OCR's:
 * the model outputs a per-pixel text probability map; text boxes are the connected regions
 * above a threshold, scored by their mean probability and grown back ("unclipped") by the
 * margin the model was trained to shrink text regions by.
 *
 * Boxes are axis-aligned: enough for horizontal text, and it keeps this dependency-free
 * (PP-OCR's reference code fits rotated rectangles with OpenCV).
 */
import { ValidationError } from '../errors/index.js';
import { type Tensor } from '../tensor/index.js';

export interface TextBoxOptions {
  /** Pixel probability above which a pixel is text (PP-OCR default 0.3). */
  threshold?: number;
  /** Minimum mean probability of a region to keep it (PP-OCR default 0.6). */
  boxThreshold?: number;
  /** How far to grow a region: area × ratio / perimeter (PP-OCR default 1.5). */
  unclipRatio?: number;
  /** Regions whose shorter side is below this many pixels are dropped (PP-OCR default 3). */
  minSize?: number;
  /** At most this many boxes, highest score first. */
  maxBoxes?: number;
  /** Scale from map coordinates to the original image's (x, y). */
  scale?: [number, number];
}

export interface TextBox {
  /** Left, top, right, bottom in image pixels (right/bottom exclusive). */
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  /** Mean text probability over the region. */
  score: number;
}

/** Finds text boxes in a probability map of dims [1, 1, H, W] (or [H, W]). */
export function textBoxes(map: Tensor, options: TextBoxOptions = {}): TextBox[] {
  if (map.dtype !== 'float32') throw new ValidationError('TEXT_BOXES_DTYPE', `the probability map must be float32, not ${map.dtype}`);
  const dims = map.dims;
  const lead = dims.slice(0, -2);
  if (dims.length < 2 || lead.some((d) => d !== 1)) {
    throw new ValidationError('TEXT_BOXES_SHAPE', `the probability map must be [1, 1, H, W], got [${dims.join(', ')}]`);
  }
  const h = dims[dims.length - 2] ?? 0;
  const w = dims[dims.length - 1] ?? 0;
  const prob = map.data as Float32Array;
  const threshold = options.threshold ?? 0.3;
  const boxThreshold = options.boxThreshold ?? 0.6;
  const unclipRatio = options.unclipRatio ?? 1.5;
  const minSize = options.minSize ?? 3;
  const [sx, sy] = options.scale ?? [1, 1];

  // Connected components (4-connectivity) over the binarised map, with an explicit stack.
  const label = new Int32Array(w * h);
  const stack = new Int32Array(w * h);
  const boxes: TextBox[] = [];
  let next = 0;
  for (let start = 0; start < w * h; start++) {
    if (label[start] !== 0 || (prob[start] ?? 0) <= threshold) continue;
    next++;
    let top = 0;
    stack[top++] = start;
    label[start] = next;
    let x0 = w, y0 = h, x1 = -1, y1 = -1, sum = 0, count = 0;
    while (top > 0) {
      const p = stack[--top] ?? 0;
      const x = p % w;
      const y = (p - x) / w;
      sum += prob[p] ?? 0;
      count++;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
      const push = (q: number): void => {
        if (label[q] === 0 && (prob[q] ?? 0) > threshold) {
          label[q] = next;
          stack[top++] = q;
        }
      };
      if (x > 0) push(p - 1);
      if (x < w - 1) push(p + 1);
      if (y > 0) push(p - w);
      if (y < h - 1) push(p + w);
    }
    const bw = x1 - x0 + 1;
    const bh = y1 - y0 + 1;
    if (Math.min(bw, bh) < minSize) continue;
    const score = sum / count;
    if (score < boxThreshold) continue;
    const d = (bw * bh * unclipRatio) / (2 * (bw + bh));
    const ux0 = Math.max(0, x0 - d);
    const uy0 = Math.max(0, y0 - d);
    const ux1 = Math.min(w, x1 + 1 + d);
    const uy1 = Math.min(h, y1 + 1 + d);
    if (Math.min(ux1 - ux0, uy1 - uy0) < minSize + 2) continue;
    boxes.push({
      x0: Math.round(ux0 * sx),
      y0: Math.round(uy0 * sy),
      x1: Math.round(ux1 * sx),
      y1: Math.round(uy1 * sy),
      score: Math.round(score * 1000) / 1000,
    });
  }
  boxes.sort((a, b) => b.score - a.score);
  return boxes.slice(0, options.maxBoxes ?? 1000);
}

type Rect = Pick<TextBox, 'x0' | 'y0' | 'x1' | 'y1'>;

/** Intersection over union of two boxes (0 when they do not overlap). */
export function boxIou(a: Rect, b: Rect): number {
  const w = Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0);
  const h = Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  return inter / ((a.x1 - a.x0) * (a.y1 - a.y0) + (b.x1 - b.x0) * (b.y1 - b.y0) - inter);
}

/** How many boxes of `found` match boxes of `reference` one to one, greedily by IoU ≥ `minIou`. */
export function matchBoxes(reference: readonly Rect[], found: readonly Rect[], minIou = 0.5): number {
  const pairs: Array<[number, number, number]> = [];
  reference.forEach((r, i) => found.forEach((f, j) => {
    const v = boxIou(r, f);
    if (v >= minIou) pairs.push([v, i, j]);
  }));
  pairs.sort((a, b) => b[0] - a[0]);
  const usedR = new Set<number>();
  const usedF = new Set<number>();
  for (const [, i, j] of pairs) {
    if (usedR.has(i) || usedF.has(j)) continue;
    usedR.add(i);
    usedF.add(j);
  }
  return usedR.size;
}

/** The F1 score of `found` against `reference` (1 when both are empty): how a lossy change moved a detector's boxes. */
export function boxF1(reference: readonly Rect[], found: readonly Rect[], minIou = 0.5): number {
  if (reference.length + found.length === 0) return 1;
  return (2 * matchBoxes(reference, found, minIou)) / (reference.length + found.length);
}
