/**
 * Shape rules for the operators that rearrange elements without computing on them: reshapes,
 * transposes, concatenation and splitting, squeezing, gathering, slicing and tiling. Those that
 * shape arithmetic runs through also fold their values.
 */
import { intAttr, intsAttr } from './onnx.js';
import { broadcast, normAxis, ruleTable, type Dims, type NodeInference, type ShapeRule } from './infer-context.js';

/** Opset 13 moved the `split` and `axes` attributes of Split, Squeeze and Unsqueeze to input 1. */
const attrOrInput1 = ({ p, opset, hasInput, inVals }: NodeInference, attr: string): number[] | undefined =>
  opset >= 13 ? (hasInput(1) ? inVals(1) : undefined) : intsAttr(p, attr);

const flatten: ShapeRule = ({ p, out, set }, x) => {
  const axis = normAxis(intAttr(p, 'axis', 1), x.length);
  const prod = (d: Dims): number => d.reduce((s, v) => s * v, 1);
  set(out, [prod(x.slice(0, axis)), prod(x.slice(axis))]);
};

const reshape: ShapeRule = ({ p, out, set, inVals }, x) => {
  const target = inVals(1);
  if (!target) return;
  const total = x.reduce((a, b) => a * b, 1);
  const allowZero = intAttr(p, 'allowzero', 0) === 1;
  const shape = target.map((d, i) => (d === 0 && !allowZero ? x[i]! : d));
  const known = shape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  set(out, shape.map((d) => (d === -1 ? total / known : d)), inVals(0));
};

const transpose: ShapeRule = ({ p, out, set }, x) => {
  const perm = intsAttr(p, 'perm') ?? x.map((_, i) => x.length - 1 - i);
  set(out, perm.map((i) => x[i]!));
};

const concat: ShapeRule = ({ p, inputNames, out, set, inDims, inVals }, x) => {
  const shapes = inputNames.map((_, i) => inDims(i));
  if (shapes.some((s) => !s)) return;
  const axis = normAxis(intAttr(p, 'axis', 0), x.length);
  const result = [...x];
  result[axis] = (shapes as Dims[]).reduce((s, d) => s + d[axis]!, 0);
  const vals = inputNames.map((_, i) => inVals(i));
  set(out, result, x.length === 1 && vals.every((v) => v) ? (vals as number[][]).flat() : undefined);
};

const split: ShapeRule = (n, x) => {
  const { node, p, set } = n;
  const axis = normAxis(intAttr(p, 'axis', 0), x.length);
  const parts = attrOrInput1(n, 'split') ?? new Array<number>(node.outputs.length).fill(x[axis]! / node.outputs.length);
  node.outputs.forEach((name, i) => {
    const d = [...x];
    d[axis] = parts[i]!;
    set(name, d);
  });
};

const squeeze: ShapeRule = (n, x) => {
  const axes = attrOrInput1(n, 'axes');
  const rank = x.length;
  const drop = axes ? new Set(axes.map((a) => normAxis(a, rank))) : new Set(x.flatMap((d, i) => (d === 1 ? [i] : [])));
  n.set(n.out, x.filter((_, i) => !drop.has(i)), n.inVals(0));
};

const unsqueeze: ShapeRule = (n, x) => {
  const axes = attrOrInput1(n, 'axes');
  if (!axes) return;
  const rank = x.length + axes.length;
  const insert = new Set(axes.map((a) => normAxis(a, rank)));
  const result: Dims = [];
  let j = 0;
  for (let i = 0; i < rank; i++) result.push(insert.has(i) ? 1 : x[j++]!);
  n.set(n.out, result, n.inVals(0));
};

const gather: ShapeRule = ({ p, out, set, inDims, inVals }, x) => {
  const idxDims = inDims(1);
  if (!idxDims) return;
  const axis = normAxis(intAttr(p, 'axis', 0), x.length);
  const result = [...x.slice(0, axis), ...idxDims, ...x.slice(axis + 1)];
  const data = inVals(0);
  const idx = inVals(1);
  let folded: number[] | undefined;
  if (data && idx && x.length === 1) folded = idx.map((i) => data[i < 0 ? i + data.length : i]!);
  set(out, result, folded);
};

const slice: ShapeRule = ({ out, set, inVals, hasInput }, x) => {
  const starts = inVals(1);
  const ends = inVals(2);
  if (!starts || !ends) return;
  const axes = hasInput(3) ? inVals(3) : starts.map((_, i) => i);
  const steps = hasInput(4) ? inVals(4) : starts.map(() => 1);
  if (!axes || !steps) return;
  const result = [...x];
  const ranges = x.map((d) => ({ start: 0, end: d, step: 1 }));
  axes.forEach((a, i) => {
    const axis = normAxis(a, x.length);
    const d = x[axis]!;
    const step = steps[i]!;
    const clamp = (v: number, lo: number, hi: number): number => Math.min(Math.max(v, lo), hi);
    let s = starts[i]!;
    let e = ends[i]!;
    s = s < 0 ? s + d : s;
    e = e < 0 ? e + d : e;
    if (step > 0) { s = clamp(s, 0, d); e = clamp(e, 0, d); } else { s = clamp(s, -1, d - 1); e = clamp(e, -1, d - 1); }
    result[axis] = Math.max(0, Math.ceil((e - s) / step));
    ranges[axis] = { start: s, end: e, step };
  });
  const data = inVals(0);
  let folded: number[] | undefined;
  if (data && x.length === 1) {
    folded = [];
    const r = ranges[0]!;
    for (let i = r.start; r.step > 0 ? i < r.end : i > r.end; i += r.step) folded.push(data[i]!);
  }
  set(out, result, folded);
};

const expand: ShapeRule = ({ out, set, inVals }, x) => {
  const shape = inVals(1);
  if (!shape) return;
  set(out, broadcast([x, shape]));
};

const tile: ShapeRule = ({ out, set, inVals }, x) => {
  const repeats = inVals(1);
  if (!repeats) return;
  set(out, x.map((d, i) => d * repeats[i]!));
};

export const LAYOUT_RULES = ruleTable<ShapeRule>([
  [['Flatten'], flatten],
  [['Reshape'], reshape],
  [['Transpose'], transpose],
  [['Concat'], concat],
  [['Split'], split],
  [['Squeeze'], squeeze],
  [['Unsqueeze'], unsqueeze],
  [['Gather'], gather],
  [['Slice'], slice],
  [['Expand'], expand],
  [['Tile'], tile],
]);
