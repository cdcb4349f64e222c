/**
 * Work per node, in floating-point operations (a multiply-add counts as two). The heavy
 * operators are counted exactly from their shapes; everything else by output elements,
 * which is what an element-wise kernel costs.
 */
import type { GraphNode, OnnxModel } from './model.js';
import { intAttr, intsAttr } from './onnx.js';
import type { TensorShape } from './shapes.js';

const product = (values: readonly number[]): number => values.reduce((a, b) => a * b, 1);

export function nodeFlops(node: GraphNode, shapes: ReadonlyMap<string, TensorShape>): number {
  const inputs = (node.proto.input ?? []).map((name) => (name ? shapes.get(name)?.dims : undefined));
  const outputs = node.outputs.map((name) => shapes.get(name)?.dims);
  const out0 = outputs[0];
  const outputElements = outputs.reduce((sum, dims) => sum + (dims ? product(dims) : 0), 0);
  if (node.domain !== '' && node.domain !== 'ai.onnx') return outputElements;
  switch (node.opType) {
    case 'Conv': {
      const weight = inputs[1];
      if (!weight || !out0) return outputElements;
      // weight: [Cout, Cin/group, k...]; each output element needs Cin/group × k... MACs.
      const macsPerOutput = product(weight.slice(1));
      return 2 * product(out0) * macsPerOutput + (inputs[2] ? product(out0) : 0);
    }
    case 'ConvTranspose': {
      const x = inputs[0];
      const weight = inputs[1];
      if (!x || !weight) return outputElements;
      // weight: [Cin, Cout/group, k...]; every input element scatters into Cout/group × k... outputs.
      return 2 * product(x) * product(weight.slice(1)) + (inputs[2] && out0 ? product(out0) : 0);
    }
    case 'Gemm': {
      const a = inputs[0];
      const b = inputs[1];
      if (!a || !b || a.length !== 2 || b.length !== 2) return outputElements;
      const k = intAttr(node.proto, 'transA', 0) ? a[0]! : a[1]!;
      const n = intAttr(node.proto, 'transB', 0) ? b[0]! : b[1]!;
      const m = intAttr(node.proto, 'transA', 0) ? a[1]! : a[0]!;
      return 2 * m * n * k + (inputs[2] ? m * n : 0);
    }
    case 'MatMul':
    case 'MatMulInteger': {
      const a = inputs[0];
      if (!a || !out0) return outputElements;
      const k = a.length === 1 ? a[0]! : a[a.length - 1]!;
      return 2 * product(out0) * k;
    }
    case 'Einsum':
      return outputElements;
    default: {
      // Pools read a window per output.
      const kernel = intsAttr(node.proto, 'kernel_shape');
      if (kernel && (node.opType === 'MaxPool' || node.opType === 'AveragePool')) return outputElements * product(kernel);
      if (node.opType === 'GlobalAveragePool' || node.opType === 'GlobalMaxPool') return inputs[0] ? product(inputs[0]) : outputElements;
      return outputElements;
    }
  }
}

/** FLOPs of every compute node, by node index. */
export function flopsByNode(model: OnnxModel, shapes: ReadonlyMap<string, TensorShape>): Float64Array {
  const flops = new Float64Array(model.nodes.length);
  for (const index of model.computeOrder) flops[index] = nodeFlops(model.nodes[index]!, shapes);
  return flops;
}
