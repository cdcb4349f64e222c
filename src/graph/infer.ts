/**
 * Static shape inference for the operators real vision models are made of, with folding of
 * the small integer tensors that shape arithmetic produces (Shape → Gather → Concat →
 * Reshape and the like). Running the model to learn its shapes costs seconds at full
 * resolution on a small device; this costs milliseconds. Whatever it cannot infer is left
 * out, and the caller falls back to a measured run for those tensors only.
 *
 * This file is the driver; the rules per operator family are in the infer-*.ts files.
 */
import type { GraphNode, OnnxModel } from './model.js';
import { dtypeOfElemType, tensorDims } from './onnx.js';
import { inferElemTypes } from './types.js';
import { foldTensor, nodeInference, type Dims, type NodeInference, type ShapeRule, type Values } from './infer-context.js';
import { BROADCAST_RULES, UNARY_RULES } from './infer-elementwise.js';
import { LAYOUT_RULES } from './infer-layout.js';
import { MATMUL_RULES } from './infer-matmul.js';
import { REDUCE_RULES } from './infer-reduce.js';
import { SPATIAL_RULES } from './infer-spatial.js';
import { SHAPE_VALUE_RULES, SOURCE_RULES } from './infer-values.js';

export interface InferredShape {
  dtype: string;
  dims: number[];
}

/** Rules that run whatever is known of the first input. */
const INPUT_FREE_RULES = new Map<string, (n: NodeInference) => void>([...SOURCE_RULES, ...BROADCAST_RULES]);
/** Rules that need the first input's dims: without them the node's outputs stay unknown. */
const SHAPE_RULES = new Map<string, ShapeRule>([...UNARY_RULES, ...SHAPE_VALUE_RULES, ...SPATIAL_RULES, ...MATMUL_RULES, ...LAYOUT_RULES, ...REDUCE_RULES]);

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

function inferNode(node: GraphNode, dims: Map<string, Dims>, values: Values, opset: number): void {
  if (node.domain !== '' && node.domain !== 'ai.onnx') return;
  const n = nodeInference(node, dims, values, opset);
  const inputFree = INPUT_FREE_RULES.get(node.opType);
  if (inputFree) return inputFree(n);
  const x = n.inDims(0);
  if (!x) return;
  SHAPE_RULES.get(node.opType)?.(n, x);
}
