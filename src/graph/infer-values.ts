/**
 * Shape rules for the operators that produce the small integer tensors shape arithmetic runs on
 * (Constant, Shape, Size, ConstantOfShape, Range); their values are folded so that a Reshape or
 * Resize fed by them can be sized.
 */
import { attribute, intAttr, intsAttr, tensorDims, toNumber } from './onnx.js';
import { foldTensor, MAX_FOLDED_ELEMENTS, normAxis, ruleTable, type NodeInference, type ShapeRule } from './infer-context.js';

function inferConstant({ p, out, set }: NodeInference): void {
  const value = attribute(p, 'value')?.t;
  if (value) set(out, tensorDims(value), foldTensor(value));
  else {
    const ints = intsAttr(p, 'value_ints');
    const int = attribute(p, 'value_int');
    const floats = attribute(p, 'value_floats')?.floats;
    const float = attribute(p, 'value_float');
    if (ints) set(out, [ints.length], ints);
    else if (int) set(out, [], [toNumber(int.i)]);
    else if (floats) set(out, [floats.length], [...floats]);
    else if (float) set(out, [], [float.f ?? 0]);
  }
}

function inferConstantOfShape({ p, out, set, inVals }: NodeInference): void {
  const shape = inVals(0);
  if (!shape) return;
  const value = attribute(p, 'value')?.t;
  const fill = value ? foldTensor(value)?.[0] ?? 0 : 0;
  const count = shape.reduce((a, b) => a * b, 1);
  set(out, shape, count <= MAX_FOLDED_ELEMENTS ? new Array<number>(count).fill(fill) : undefined);
}

function inferRange({ out, set, inVals }: NodeInference): void {
  const [start, limit, delta] = [inVals(0)?.[0], inVals(1)?.[0], inVals(2)?.[0]];
  if (start === undefined || limit === undefined || delta === undefined) return;
  set(out, [Math.max(0, Math.ceil((limit - start) / delta))]);
}

/** Rules whose inputs, if any, are values rather than the first input's dims. */
export const SOURCE_RULES = ruleTable<(n: NodeInference) => void>([
  [['Constant'], inferConstant],
  [['ConstantOfShape'], inferConstantOfShape],
  [['Range'], inferRange],
]);

const inferShape: ShapeRule = ({ p, out, set }, x) => {
  const rank = x.length;
  let start = intAttr(p, 'start', 0);
  let end = attribute(p, 'end') ? intAttr(p, 'end', rank) : rank;
  start = Math.min(Math.max(normAxis(start, rank), 0), rank);
  end = Math.min(Math.max(normAxis(end, rank), 0), rank);
  const v = x.slice(start, Math.max(start, end));
  set(out, [v.length], v);
};

const inferSize: ShapeRule = ({ out, set }, x) => {
  set(out, [], [x.reduce((a, b) => a * b, 1)]);
};

export const SHAPE_VALUE_RULES = ruleTable<ShapeRule>([
  [['Shape'], inferShape],
  [['Size'], inferSize],
]);
