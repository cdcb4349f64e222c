/**
 * Static shape inference for the operators real vision models are made of, with folding of
 * the small integer tensors that shape arithmetic produces (Shape → Gather → Concat →
 * Reshape and the like). Running the model to learn its shapes costs seconds at full
 * resolution on a small device; this costs milliseconds. Whatever it cannot infer is left
 * out, and the caller falls back to a measured run for those tensors only.
 */
import type { GraphNode, OnnxModel } from './model.js';
import { attribute, dtypeOfElemType, intAttr, intsAttr, onnx, stringAttr, tensorDims, toNumber, type TensorProto } from './onnx.js';
import { inferElemTypes } from './types.js';

export interface InferredShape {
  dtype: string;
  dims: number[];
}

type Dims = number[];
/** Values of small integer tensors, folded at analysis time. */
type Values = Map<string, number[]>;

const MAX_FOLDED_ELEMENTS = 64;

const SAME_AS_INPUT = new Set([
  'Relu', 'Sigmoid', 'Clip', 'HardSigmoid', 'HardSwish', 'Tanh', 'Exp', 'Log', 'Sqrt', 'Neg', 'Abs', 'Erf', 'LeakyRelu',
  'Elu', 'Selu', 'Softplus', 'Softsign', 'Identity', 'Dropout', 'Cast', 'CastLike', 'Not', 'Floor', 'Ceil', 'Round', 'Reciprocal',
  'BatchNormalization', 'InstanceNormalization', 'LayerNormalization', 'Softmax', 'LogSoftmax', 'LRN', 'Sign', 'Mish', 'Gelu',
  'QuantizeLinear', 'DequantizeLinear', 'ThresholdedRelu', 'Celu', 'Sin', 'Cos', 'IsNaN', 'IsInf', 'Hardmax', 'Shrink',
  'MeanVarianceNormalization', 'GroupNormalization', 'Trilu',
]);
const BROADCAST = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Mean', 'Sum', 'Equal', 'Less', 'Greater',
  'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Xor', 'Where', 'PRelu', 'Mod', 'BitShift']);
const REDUCE = /^Reduce(Sum|Mean|Max|Min|Prod|L1|L2|LogSum|LogSumExp|SumSquare)$/;

/** Infers dtype and dims of every tensor it can, for concrete input shapes. */
export function inferShapes(model: OnnxModel, inputShapes: Readonly<Record<string, readonly number[]>>): Map<string, InferredShape> {
  const elemTypes = inferElemTypes(model);
  const dims = new Map<string, Dims>();
  const values: Values = new Map();
  const opset = model.opset;

  for (const [name, t] of model.initializers) {
    dims.set(name, tensorDims(t));
    const folded = foldTensor(t);
    if (folded) values.set(name, folded);
  }
  for (const [name, shape] of Object.entries(inputShapes)) dims.set(name, [...shape]);

  for (const index of model.topologicalOrder) {
    const node = model.nodes[index]!;
    try {
      inferNode(node, dims, values, opset);
    } catch {
      // An operator we cannot reason about statically: its outputs stay unknown.
    }
  }

  const result = new Map<string, InferredShape>();
  for (const [name, d] of dims) {
    const dtype = dtypeOfElemType(elemTypes.get(name));
    if (dtype && d.every((x) => Number.isInteger(x) && x >= 0)) result.set(name, { dtype, dims: d });
  }
  return result;
}

function foldTensor(t: TensorProto): number[] | undefined {
  const count = tensorDims(t).reduce((a, b) => a * b, 1);
  if (count > MAX_FOLDED_ELEMENTS) return undefined;
  const type = t.dataType;
  const DataType = onnx.TensorProto.DataType;
  if (t.int64Data && t.int64Data.length > 0) return t.int64Data.map((v) => toNumber(v));
  if (t.int32Data && t.int32Data.length > 0) return [...t.int32Data];
  if (t.floatData && t.floatData.length > 0) return [...t.floatData];
  const raw = t.rawData;
  if (!raw || raw.byteLength === 0) return count === 0 ? [] : undefined;
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    switch (type) {
      case DataType.INT64: out.push(Number(view.getBigInt64(i * 8, true))); break;
      case DataType.INT32: out.push(view.getInt32(i * 4, true)); break;
      case DataType.FLOAT: out.push(view.getFloat32(i * 4, true)); break;
      case DataType.DOUBLE: out.push(view.getFloat64(i * 8, true)); break;
      case DataType.UINT8: out.push(view.getUint8(i)); break;
      case DataType.INT8: out.push(view.getInt8(i)); break;
      default: return undefined;
    }
  }
  return out;
}

function broadcast(shapes: Dims[]): Dims {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: Dims = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const v = s[s.length - rank + i] ?? 1;
      if (v !== 1) {
        if (d !== 1 && d !== v) throw new Error('incompatible broadcast');
        d = v;
      }
    }
    out.push(d);
  }
  return out;
}

const normAxis = (axis: number, rank: number): number => (axis < 0 ? axis + rank : axis);

function inferNode(node: GraphNode, dims: Map<string, Dims>, values: Values, opset: number): void {
  const p = node.proto;
  const inputNames = p.input ?? [];
  const inDims = (i: number): Dims | undefined => {
    const name = inputNames[i];
    return name ? dims.get(name) : undefined;
  };
  const inVals = (i: number): number[] | undefined => {
    const name = inputNames[i];
    return name ? values.get(name) : undefined;
  };
  const hasInput = (i: number): boolean => Boolean(inputNames[i]);
  const out = node.outputs[0];
  const set = (name: string | undefined, d: Dims, v?: number[]): void => {
    if (!name) return;
    dims.set(name, d);
    if (v && v.length <= MAX_FOLDED_ELEMENTS) values.set(name, v);
  };
  if (node.domain !== '' && node.domain !== 'ai.onnx') return;
  const op = node.opType;

  if (op === 'Constant') {
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
    return;
  }
  const x = inDims(0);
  if (SAME_AS_INPUT.has(op)) {
    if (!x) return;
    set(out, [...x], op === 'Cast' || op === 'Identity' ? inVals(0) : undefined);
    // BatchNormalization in training mode and Dropout have extra outputs we do not size.
    if (op === 'Dropout' && node.outputs[1]) set(node.outputs[1], [...x]);
    return;
  }
  if (BROADCAST.has(op)) {
    const shapes = inputNames.map((_, i) => inDims(i));
    if (shapes.some((s) => !s)) return;
    const result = broadcast(shapes as Dims[]);
    const vals = inputNames.map((_, i) => inVals(i));
    let folded: number[] | undefined;
    const count = result.reduce((a, b) => a * b, 1);
    if (vals.every((v) => v) && vals.length === 2 && count <= MAX_FOLDED_ELEMENTS && ['Add', 'Sub', 'Mul', 'Div'].includes(op)) {
      const [a, b] = vals as [number[], number[]];
      folded = [];
      for (let i = 0; i < count; i++) {
        const u = a.length === 1 ? a[0]! : a[i]!;
        const w = b.length === 1 ? b[0]! : b[i]!;
        folded.push(op === 'Add' ? u + w : op === 'Sub' ? u - w : op === 'Mul' ? u * w : Math.trunc(u / w));
      }
      if (folded.some((v) => v === undefined || Number.isNaN(v))) folded = undefined;
    }
    set(out, result, folded);
    return;
  }
  if (!x && op !== 'ConstantOfShape' && op !== 'Range') return;
  switch (op) {
    case 'Shape': {
      const rank = x!.length;
      let start = intAttr(p, 'start', 0);
      let end = attribute(p, 'end') ? intAttr(p, 'end', rank) : rank;
      start = Math.min(Math.max(normAxis(start, rank), 0), rank);
      end = Math.min(Math.max(normAxis(end, rank), 0), rank);
      const v = x!.slice(start, Math.max(start, end));
      set(out, [v.length], v);
      return;
    }
    case 'Size': {
      set(out, [], [x!.reduce((a, b) => a * b, 1)]);
      return;
    }
    case 'Conv':
    case 'MaxPool':
    case 'AveragePool':
    case 'LpPool': {
      const w = inDims(1);
      const kernel = intsAttr(p, 'kernel_shape') ?? (w ? w.slice(2) : undefined);
      if (!kernel) return;
      const spatial = spatialOut(p, x!.slice(2), kernel, op !== 'Conv' && intAttr(p, 'ceil_mode', 0) === 1);
      const channels = op === 'Conv' ? w![0]! : x![1]!;
      set(out, [x![0]!, channels, ...spatial]);
      if (op === 'MaxPool' && node.outputs[1]) set(node.outputs[1], [x![0]!, channels, ...spatial]);
      return;
    }
    case 'ConvTranspose': {
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
      const spatial = x!.slice(2).map((size, i) => {
        if (outputShape) return outputShape[outputShape.length - n + i]!;
        const full = strides[i]! * (size - 1) + outputPadding[i]! + ((kernel[i]! - 1) * dilations[i]! + 1);
        if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') return size * strides[i]!;
        return full - pads[i]! - pads[i + n]!;
      });
      set(out, [x![0]!, w[1]! * group, ...spatial]);
      return;
    }
    case 'GlobalAveragePool':
    case 'GlobalMaxPool':
    case 'GlobalLpPool':
      set(out, [x![0]!, x![1]!, ...x!.slice(2).map(() => 1)]);
      return;
    case 'Gemm': {
      const b = inDims(1);
      if (!b) return;
      const m = intAttr(p, 'transA', 0) ? x![1]! : x![0]!;
      const n = intAttr(p, 'transB', 0) ? b[0]! : b[1]!;
      set(out, [m, n]);
      return;
    }
    case 'MatMul':
    case 'MatMulInteger': {
      const b = inDims(1);
      if (!b) return;
      const a = x!;
      if (a.length === 1 && b.length === 1) return set(out, []);
      const aa = a.length === 1 ? [1, a[0]!] : a;
      const bb = b.length === 1 ? [b[0]!, 1] : b;
      const batch = broadcast([aa.slice(0, -2), bb.slice(0, -2)]);
      const result = [...batch, aa[aa.length - 2]!, bb[bb.length - 1]!];
      if (a.length === 1) result.splice(result.length - 2, 1);
      if (b.length === 1) result.splice(result.length - 1, 1);
      set(out, result);
      return;
    }
    case 'Flatten': {
      const axis = normAxis(intAttr(p, 'axis', 1), x!.length);
      const prod = (d: Dims): number => d.reduce((s, v) => s * v, 1);
      set(out, [prod(x!.slice(0, axis)), prod(x!.slice(axis))]);
      return;
    }
    case 'Reshape': {
      const target = inVals(1);
      if (!target) return;
      const total = x!.reduce((a, b) => a * b, 1);
      const allowZero = intAttr(p, 'allowzero', 0) === 1;
      const shape = target.map((d, i) => (d === 0 && !allowZero ? x![i]! : d));
      const known = shape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
      set(out, shape.map((d) => (d === -1 ? total / known : d)), inVals(0));
      return;
    }
    case 'Transpose': {
      const perm = intsAttr(p, 'perm') ?? x!.map((_, i) => x!.length - 1 - i);
      set(out, perm.map((i) => x![i]!));
      return;
    }
    case 'Concat': {
      const shapes = inputNames.map((_, i) => inDims(i));
      if (shapes.some((s) => !s)) return;
      const axis = normAxis(intAttr(p, 'axis', 0), x!.length);
      const result = [...x!];
      result[axis] = (shapes as Dims[]).reduce((s, d) => s + d[axis]!, 0);
      const vals = inputNames.map((_, i) => inVals(i));
      set(out, result, x!.length === 1 && vals.every((v) => v) ? (vals as number[][]).flat() : undefined);
      return;
    }
    case 'Split': {
      const axis = normAxis(intAttr(p, 'axis', 0), x!.length);
      const parts = (opset >= 13 ? (hasInput(1) ? inVals(1) : undefined) : intsAttr(p, 'split'))
        ?? new Array<number>(node.outputs.length).fill(x![axis]! / node.outputs.length);
      node.outputs.forEach((name, i) => {
        const d = [...x!];
        d[axis] = parts[i]!;
        set(name, d);
      });
      return;
    }
    case 'Squeeze':
    case 'Unsqueeze': {
      const axes = opset >= 13 ? (hasInput(1) ? inVals(1) : undefined) : intsAttr(p, 'axes');
      if (op === 'Squeeze') {
        const rank = x!.length;
        const drop = axes ? new Set(axes.map((a) => normAxis(a, rank))) : new Set(x!.flatMap((d, i) => (d === 1 ? [i] : [])));
        set(out, x!.filter((_, i) => !drop.has(i)), inVals(0));
      } else {
        if (!axes) return;
        const rank = x!.length + axes.length;
        const insert = new Set(axes.map((a) => normAxis(a, rank)));
        const result: Dims = [];
        let j = 0;
        for (let i = 0; i < rank; i++) result.push(insert.has(i) ? 1 : x![j++]!);
        set(out, result, inVals(0));
      }
      return;
    }
    case 'Gather': {
      const idxDims = inDims(1);
      if (!idxDims) return;
      const axis = normAxis(intAttr(p, 'axis', 0), x!.length);
      const result = [...x!.slice(0, axis), ...idxDims, ...x!.slice(axis + 1)];
      const data = inVals(0);
      const idx = inVals(1);
      let folded: number[] | undefined;
      if (data && idx && x!.length === 1) folded = idx.map((i) => data[i < 0 ? i + data.length : i]!);
      set(out, result, folded);
      return;
    }
    case 'Slice': {
      const starts = inVals(1);
      const ends = inVals(2);
      if (!starts || !ends) return;
      const axes = hasInput(3) ? inVals(3) : starts.map((_, i) => i);
      const steps = hasInput(4) ? inVals(4) : starts.map(() => 1);
      if (!axes || !steps) return;
      const result = [...x!];
      const ranges = x!.map((d) => ({ start: 0, end: d, step: 1 }));
      axes.forEach((a, i) => {
        const axis = normAxis(a, x!.length);
        const d = x![axis]!;
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
      if (data && x!.length === 1) {
        folded = [];
        const r = ranges[0]!;
        for (let i = r.start; r.step > 0 ? i < r.end : i > r.end; i += r.step) folded.push(data[i]!);
      }
      set(out, result, folded);
      return;
    }
    case 'Resize':
    case 'Upsample': {
      const rank = x!.length;
      let scales: number[] | undefined;
      let sizes: number[] | undefined;
      if (op === 'Upsample') scales = opset >= 9 ? inVals(1) : (attribute(p, 'scales')?.floats ?? undefined) as number[] | undefined;
      else if (opset >= 11) {
        sizes = hasInput(3) ? inVals(3) : undefined;
        scales = !sizes && hasInput(2) ? inVals(2) : undefined;
      } else scales = inVals(1);
      const axes = intsAttr(p, 'axes');
      if (sizes && sizes.length > 0) {
        const result = [...x!];
        (axes ?? x!.map((_, i) => i)).forEach((a, i) => { result[normAxis(a, rank)] = sizes![i]!; });
        set(out, result);
      } else if (scales && scales.length > 0) {
        const result = [...x!];
        (axes ?? x!.map((_, i) => i)).forEach((a, i) => {
          const axis = normAxis(a, rank);
          result[axis] = Math.floor(x![axis]! * scales![i]! + 1e-6);
        });
        set(out, result);
      }
      return;
    }
    case 'Pad': {
      const pads = opset >= 11 ? inVals(1) : intsAttr(p, 'pads');
      if (!pads) return;
      const rank = x!.length;
      const axes = hasInput(3) ? inVals(3) : undefined;
      const result = [...x!];
      const axisList = axes ? axes.map((a) => normAxis(a, rank)) : x!.map((_, i) => i);
      axisList.forEach((axis, i) => { result[axis] = result[axis]! + pads[i]! + pads[i + axisList.length]!; });
      set(out, result);
      return;
    }
    case 'Expand': {
      const shape = inVals(1);
      if (!shape) return;
      set(out, broadcast([x!, shape]));
      return;
    }
    case 'Tile': {
      const repeats = inVals(1);
      if (!repeats) return;
      set(out, x!.map((d, i) => d * repeats[i]!));
      return;
    }
    case 'ConstantOfShape': {
      const shape = inVals(0);
      if (!shape) return;
      const value = attribute(p, 'value')?.t;
      const fill = value ? foldTensor(value)?.[0] ?? 0 : 0;
      const count = shape.reduce((a, b) => a * b, 1);
      set(out, shape, count <= MAX_FOLDED_ELEMENTS ? new Array<number>(count).fill(fill) : undefined);
      return;
    }
    case 'Range': {
      const [start, limit, delta] = [inVals(0)?.[0], inVals(1)?.[0], inVals(2)?.[0]];
      if (start === undefined || limit === undefined || delta === undefined) return;
      set(out, [Math.max(0, Math.ceil((limit - start) / delta))]);
      return;
    }
    case 'ArgMax':
    case 'ArgMin':
    case 'ReduceMean':
    default: {
      if (REDUCE.test(op) || op === 'ArgMax' || op === 'ArgMin') {
        const rank = x!.length;
        const keep = intAttr(p, 'keepdims', 1) === 1;
        let axes: number[] | undefined;
        if (op === 'ArgMax' || op === 'ArgMin') axes = [intAttr(p, 'axis', 0)];
        else if ((op === 'ReduceSum' && opset >= 13) || opset >= 18) axes = hasInput(1) ? inVals(1) : undefined;
        else axes = intsAttr(p, 'axes');
        if (hasInput(1) && !axes && op !== 'ArgMax' && op !== 'ArgMin') return;
        const set_ = new Set((axes ?? x!.map((_, i) => i)).map((a) => normAxis(a, rank)));
        if (axes && axes.length === 0 && intAttr(p, 'noop_with_empty_axes', 0) === 1) return set(out, [...x!]);
        set(out, keep ? x!.map((d, i) => (set_.has(i) ? 1 : d)) : x!.filter((_, i) => !set_.has(i)));
      }
    }
  }
}

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
