/** Shape rules for reductions (Reduce*, ArgMax, ArgMin). */
import { intAttr, intsAttr } from './onnx.js';
import { normAxis, ruleTable, type ShapeRule } from './infer-context.js';

const REDUCE = ['ReduceSum', 'ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceSumSquare'];

const reduce: ShapeRule = ({ p, op, opset, out, set, inVals, hasInput }, x) => {
  const rank = x.length;
  const keep = intAttr(p, 'keepdims', 1) === 1;
  let axes: number[] | undefined;
  if (op === 'ArgMax' || op === 'ArgMin') axes = [intAttr(p, 'axis', 0)];
  // ReduceSum takes its axes as an input from opset 13, the other reductions from opset 18.
  else if ((op === 'ReduceSum' && opset >= 13) || opset >= 18) axes = hasInput(1) ? inVals(1) : undefined;
  else axes = intsAttr(p, 'axes');
  if (hasInput(1) && !axes && op !== 'ArgMax' && op !== 'ArgMin') return;
  const reduced = new Set((axes ?? x.map((_, i) => i)).map((a) => normAxis(a, rank)));
  if (axes && axes.length === 0 && intAttr(p, 'noop_with_empty_axes', 0) === 1) return set(out, [...x]);
  set(out, keep ? x.map((d, i) => (reduced.has(i) ? 1 : d)) : x.filter((_, i) => !reduced.has(i)));
};

export const REDUCE_RULES = ruleTable<ShapeRule>([[[...REDUCE, 'ArgMax', 'ArgMin'], reduce]]);
