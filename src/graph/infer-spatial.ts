/** Shape rules for the operators that change spatial size: convolutions, pooling, resizing and padding. */
import type { GraphNode } from './model.js';
import { attribute, intAttr, intsAttr, stringAttr } from './onnx.js';
import { normAxis, ruleTable, type Dims, type ShapeRule } from './infer-context.js';

const convOrPool: ShapeRule = ({ node, p, op, out, set, inDims }, x) => {
  const w = inDims(1);
  const kernel = intsAttr(p, 'kernel_shape') ?? (w ? w.slice(2) : undefined);
  if (!kernel) return;
  const spatial = spatialOut(p, x.slice(2), kernel, op !== 'Conv' && intAttr(p, 'ceil_mode', 0) === 1);
  const channels = op === 'Conv' ? w![0]! : x[1]!;
  set(out, [x[0]!, channels, ...spatial]);
  if (op === 'MaxPool' && node.outputs[1]) set(node.outputs[1], [x[0]!, channels, ...spatial]);
};

const convTranspose: ShapeRule = ({ p, out, set, inDims }, x) => {
  const w = inDims(1);
  if (!w) return;
  const group = intAttr(p, 'group', 1);
  const kernel = intsAttr(p, 'kernel_shape') ?? w.slice(2);
  const n = kernel.length;
  const strides = intsAttr(p, 'strides') ?? new Array<number>(n).fill(1);
  const dilations = intsAttr(p, 'dilations') ?? new Array<number>(n).fill(1);
  const outputPadding = intsAttr(p, 'output_padding') ?? new Array<number>(n).fill(0);
  const outputShape = intsAttr(p, 'output_shape');
  const autoPad = stringAttr(p, 'auto_pad') ?? 'NOTSET';
  const pads = intsAttr(p, 'pads') ?? new Array<number>(2 * n).fill(0);
  const spatial = x.slice(2).map((size, i) => {
    if (outputShape) return outputShape[outputShape.length - n + i]!;
    const full = strides[i]! * (size - 1) + outputPadding[i]! + ((kernel[i]! - 1) * dilations[i]! + 1);
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') return size * strides[i]!;
    return full - pads[i]! - pads[i + n]!;
  });
  set(out, [x[0]!, w[1]! * group, ...spatial]);
};

const globalPool: ShapeRule = ({ out, set }, x) => {
  set(out, [x[0]!, x[1]!, ...x.slice(2).map(() => 1)]);
};

const resize: ShapeRule = ({ p, op, opset, out, set, inVals, hasInput }, x) => {
  const rank = x.length;
  let scales: number[] | undefined;
  let sizes: number[] | undefined;
  if (op === 'Upsample') scales = opset >= 9 ? inVals(1) : (attribute(p, 'scales')?.floats ?? undefined) as number[] | undefined;
  else if (opset >= 11) {
    sizes = hasInput(3) ? inVals(3) : undefined;
    scales = !sizes && hasInput(2) ? inVals(2) : undefined;
  } else scales = inVals(1);
  const axes = intsAttr(p, 'axes');
  if (sizes && sizes.length > 0) {
    const result = [...x];
    (axes ?? x.map((_, i) => i)).forEach((a, i) => { result[normAxis(a, rank)] = sizes![i]!; });
    set(out, result);
  } else if (scales && scales.length > 0) {
    const result = [...x];
    (axes ?? x.map((_, i) => i)).forEach((a, i) => {
      const axis = normAxis(a, rank);
      result[axis] = Math.floor(x[axis]! * scales![i]! + 1e-6);
    });
    set(out, result);
  }
};

const pad: ShapeRule = ({ p, opset, out, set, inVals, hasInput }, x) => {
  const pads = opset >= 11 ? inVals(1) : intsAttr(p, 'pads');
  if (!pads) return;
  const rank = x.length;
  const axes = hasInput(3) ? inVals(3) : undefined;
  const result = [...x];
  const axisList = axes ? axes.map((a) => normAxis(a, rank)) : x.map((_, i) => i);
  axisList.forEach((axis, i) => { result[axis] = result[axis]! + pads[i]! + pads[i + axisList.length]!; });
  set(out, result);
};

export const SPATIAL_RULES = ruleTable<ShapeRule>([
  [['Conv', 'MaxPool', 'AveragePool', 'LpPool'], convOrPool],
  [['ConvTranspose'], convTranspose],
  [['GlobalAveragePool', 'GlobalMaxPool', 'GlobalLpPool'], globalPool],
  [['Resize', 'Upsample'], resize],
  [['Pad'], pad],
]);

function spatialOut(p: GraphNode['proto'], input: Dims, kernel: number[], ceil: boolean): Dims {
  const n = kernel.length;
  const strides = intsAttr(p, 'strides') ?? new Array<number>(n).fill(1);
  const dilations = intsAttr(p, 'dilations') ?? new Array<number>(n).fill(1);
  const autoPad = stringAttr(p, 'auto_pad') ?? 'NOTSET';
  const pads = intsAttr(p, 'pads') ?? new Array<number>(2 * n).fill(0);
  return input.map((size, i) => {
    const effective = (kernel[i]! - 1) * dilations[i]! + 1;
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') return Math.ceil(size / strides[i]!);
    if (autoPad === 'VALID') return Math.ceil((size - effective + 1) / strides[i]!);
    const span = size + pads[i]! + pads[i + n]! - effective;
    return (ceil ? Math.ceil(span / strides[i]!) : Math.floor(span / strides[i]!)) + 1;
  });
}
