/** Shape rules for matrix products (Gemm, MatMul). */
import { intAttr } from './onnx.js';
import { broadcast, ruleTable, type ShapeRule } from './infer-context.js';

const gemm: ShapeRule = ({ p, out, set, inDims }, x) => {
  const b = inDims(1);
  if (!b) return;
  const m = intAttr(p, 'transA', 0) ? x[1]! : x[0]!;
  const n = intAttr(p, 'transB', 0) ? b[0]! : b[1]!;
  set(out, [m, n]);
};

/** numpy matmul: a 1-D operand is promoted to a matrix and the added axis dropped again. */
const matMul: ShapeRule = ({ out, set, inDims }, x) => {
  const b = inDims(1);
  if (!b) return;
  const a = x;
  if (a.length === 1 && b.length === 1) return set(out, []);
  const aa = a.length === 1 ? [1, a[0]!] : a;
  const bb = b.length === 1 ? [b[0]!, 1] : b;
  const batch = broadcast([aa.slice(0, -2), bb.slice(0, -2)]);
  const result = [...batch, aa[aa.length - 2]!, bb[bb.length - 1]!];
  if (a.length === 1) result.splice(result.length - 2, 1);
  if (b.length === 1) result.splice(result.length - 1, 1);
  set(out, result);
};

export const MATMUL_RULES = ruleTable<ShapeRule>([
  [['Gemm'], gemm],
  [['MatMul', 'MatMulInteger'], matMul],
]);
