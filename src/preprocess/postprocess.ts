/**
 * Output post-processing declared in a manifest: softmax and top-k with labels for
 * classifiers; other models get their raw tensors.
 */
import type { Tensor, TensorMap } from '../tensor/index.js';
import { PipelineSpecError } from './errors.js';
import type { PostprocessSpec } from './schema.js';

/** One ranked class of a classifier's output row. */
export interface ClassScore {
  index: number;
  label?: string;
  score: number;
}

/** Top-k classes per batch row, or undefined when the spec asks for raw outputs. */
export function postprocess(outputs: TensorMap, spec: PostprocessSpec | undefined, labels?: readonly string[]): ClassScore[][] | undefined {
  if (!spec || spec.kind === 'raw') return undefined;
  const name = spec.output ?? Object.keys(outputs)[0];
  const scores = name === undefined ? undefined : outputs[name];
  if (!scores || name === undefined) throw new PipelineSpecError('POSTPROCESS_OUTPUT', `classification output "${spec.output ?? '(first)'}" is not among the model outputs`);
  const values = toNumbers(scores, name);
  const classes = scores.dims[scores.dims.length - 1] ?? 0;
  if (classes === 0) return [];
  const rows = values.length / classes;
  const result: ClassScore[][] = [];
  for (let r = 0; r < rows; r++) {
    let row = Array.from(values.subarray(r * classes, (r + 1) * classes));
    if (spec.softmax) row = softmax(row);
    const ranked = row
      .map((score, index) => ({ index, score }))
      .sort((x, y) => y.score - x.score)
      .slice(0, spec.topK)
      .map(({ index, score }) => {
        const label = labels?.[index];
        return label === undefined ? { index, score } : { index, label, score };
      });
    result.push(ranked);
  }
  return result;
}

export function softmax(row: readonly number[]): number[] {
  const max = Math.max(...row);
  const exps = row.map((v) => Math.exp(v - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((v) => v / sum);
}

function toNumbers(t: Tensor, name: string): Float64Array {
  switch (t.dtype) {
    case 'float32':
    case 'float64':
    case 'int32':
    case 'int16':
    case 'int8':
    case 'uint8':
    case 'uint16':
    case 'uint32':
      return Float64Array.from(t.data as ArrayLike<number>);
    case 'float16':
      return Float64Array.from(t.data as Uint16Array, fromFloat16Bits);
    default:
      throw new PipelineSpecError('POSTPROCESS_DTYPE', `classification output "${name}" has dtype ${t.dtype}; scores must be numeric`);
  }
}

export function fromFloat16Bits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (mant / 1024);
  if (exp === 0x1f) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exp - 15) * (1 + mant / 1024);
}
