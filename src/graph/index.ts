/**
 * The graph toolkit: load any ONNX model, list every place it can be cut with the size of
 * what would cross the network and the work done before it, and write heads and tails.
 */
import { writeFile, access, constants } from 'node:fs/promises';
import { ensureDir } from '../util/ensure-dir.js';
import { join } from 'node:path';
import { ValidationError } from '../errors/index.js';
import { cutHeadSums, cutSweepStats, listCuts, type CutStructure, type SweepStats } from './cuts.js';
import { extractPartition, type BoundaryShape, type Partition, type PartitionManifest } from './extract.js';
import { inferShapes } from './infer.js';
import { flopsByNode } from './flops.js';
import { OnnxModel, loadModel, parseModel } from './model.js';
import { GraphError, elemTypeName } from './onnx.js';
import { exactSum, tensorShapes as computeTensorShapes, resolveInputShapes, type InputShapes, type TensorShape } from './shapes.js';

export { OnnxModel, loadModel, parseModel, listCuts, cutHeadSums, cutSweepStats, GraphError };
export type { SweepStats as CutSweepStats };
export type { CutStructure, Partition, PartitionManifest, InputShapes, TensorShape };
export { encodeModel } from './onnx.js';

export interface TensorSpec {
  name: string;
  dtype: string;
  /** Concrete dims for the analysed input shapes. */
  shape: number[];
}

export interface CutInfo {
  id: string;
  tensors: string[];
  /** Bytes of the cut tensors for the analysed input shapes. */
  bytes: number;
  /** FLOPs of the head (everything computed before the cut). */
  headFlops: number;
  /** Number of compute nodes in the head. */
  headNodes: number;
}

export interface ModelAnalysis {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** Nodes in the model file, `Constant` weight nodes included. */
  nodes: number;
  cuts: CutInfo[];
  totalFlops: number;
  /** The input shapes the sizes are for. */
  shapes: Record<string, number[]>;
  /** Every tensor's measured shape, for extraction with concrete boundary shapes. */
  tensorShapes: ReadonlyMap<string, TensorShape>;
}

/** Sizes every cut for the given input shapes (dynamic batch-like dimensions default to 1). */
/**
 * The model's inputs with their declared dtypes and resolved shapes: what a synthetic input needs,
 * without the shape inference (an onnxruntime session) of {@link analyzeModel}.
 */
export function inputSpecs(model: OnnxModel, shapes: InputShapes = {}): TensorSpec[] {
  const resolved = resolveInputShapes(model, shapes);
  return model.inputs.map((i) => ({ name: i.name, dtype: elemTypeName(i.elemType), shape: [...(resolved[i.name] ?? [])] }));
}

export async function analyzeModel(model: OnnxModel, shapes: InputShapes = {}): Promise<ModelAnalysis> {
  const resolved = resolveInputShapes(model, shapes);
  const tensorShapes = await computeTensorShapes(model, resolved);
  const flops = flopsByNode(model, tensorShapes);
  const spec = (name: string, fallbackType: number | undefined): TensorSpec => {
    const measured = tensorShapes.get(name);
    return { name, dtype: measured?.dtype ?? elemTypeName(fallbackType), shape: measured ? [...measured.dims] : [] };
  };
  const headFlops = cutHeadSums(model, flops);
  const cuts = listCuts(model).map((cut, i) => ({
    id: cut.id,
    tensors: [...cut.tensors],
    bytes: exactSum(cut.tensors.map((t) => tensorShapes.get(t)?.bytes ?? 0), `the bytes crossing cut ${cut.id}`),
    headFlops: headFlops[i]!,
    headNodes: cut.headCount,
  }));
  return {
    inputs: model.inputs.map((i) => spec(i.name, i.elemType)),
    outputs: model.outputs.map((o) => spec(o.name, o.elemType)),
    nodes: model.nodes.length,
    cuts,
    totalFlops: model.computeOrder.reduce((sum, i) => sum + flops[i]!, 0),
    shapes: resolved,
    tensorShapes,
  };
}

export function findCut(model: OnnxModel, cutId: string): CutStructure {
  const cuts = listCuts(model);
  const cut = cuts.find((c) => c.id === cutId);
  if (!cut) {
    const last = cuts[cuts.length - 1]?.id ?? 'c0';
    throw new ValidationError('GRAPH_UNKNOWN_CUT', `unknown cut id "${cutId}": ${model.source} has cuts c0 … ${last} (see \`tandem inspect\`)`, { details: { cut: cutId } });
  }
  return cut;
}

/**
 * Extracts the head and tail for a cut. With `analysis`, the boundary tensors are declared
 * with their concrete shapes; without it, with their types and whatever shapes the model
 * declares (the cloud service extracts tails this way, for any input size).
 */
export async function splitModel(model: OnnxModel, cutId: string, analysis?: ModelAnalysis): Promise<Partition> {
  const cut = findCut(model, cutId);
  let shapes = analysis?.tensorShapes ?? symbolic.get(model);
  if (!shapes) symbolic.set(model, (shapes = symbolicShapes(model)));
  return extractPartition(model, cut, shapes);
}

// Two shape inferences over the whole model: once per model, not once per tail a service extracts.
const symbolic = new WeakMap<OnnxModel, ReadonlyMap<string, BoundaryShape>>();

/**
 * Boundary shapes that hold for every input size: static inference runs twice with
 * different values for each dynamic input dimension; a dimension that changes is dynamic
 * (named after the input's dimension when it is that dimension, else after the tensor).
 */
function symbolicShapes(model: OnnxModel): Map<string, BoundaryShape> {
  const a: Record<string, number[]> = {};
  const b: Record<string, number[]> = {};
  const names = new Map<string, string>();
  let k = 0;
  for (const input of model.inputs) {
    if (!input.dims) return new Map();
    a[input.name] = [];
    b[input.name] = [];
    input.dims.forEach((d, axis) => {
      if (typeof d === 'number') {
        a[input.name]!.push(d);
        b[input.name]!.push(d);
        return;
      }
      // Multiples of 32 survive the strided downsampling of vision backbones.
      const [va, vb] = axis === 0 ? [2 + k, 5 + k] : [32 * (10 + k), 32 * (13 + k)];
      k += 1;
      a[input.name]!.push(va);
      b[input.name]!.push(vb);
      if (!d.startsWith('?')) names.set(`${va}/${vb}`, d);
    });
  }
  const first = inferShapes(model, a);
  const second = inferShapes(model, b);
  const result = new Map<string, BoundaryShape>();
  for (const [name, sa] of first) {
    const sb = second.get(name);
    if (!sb || sb.dims.length !== sa.dims.length) continue;
    const dims = sa.dims.map((d, axis) => (d === sb.dims[axis] ? d : names.get(`${d}/${sb.dims[axis]}`) ?? `${name}_d${axis}`));
    result.set(name, { dtype: sa.dtype, dims });
  }
  return result;
}

/** Writes `head.onnx`, `tail.onnx` and `partition.json` into `dir` (created if missing). */
export async function writePartition(partition: Partition, dir: string): Promise<void> {
  try {
    await ensureDir(dir);
    await access(dir, constants.W_OK);
    await writeFile(join(dir, 'head.onnx'), partition.head);
    await writeFile(join(dir, 'tail.onnx'), partition.tail);
    await writeFile(join(dir, 'partition.json'), `${JSON.stringify(partition.manifest, null, 2)}\n`);
  } catch (error) {
    throw new GraphError('GRAPH_OUTPUT_DIR', `cannot write the partition to ${dir}: ${(error as Error).message}`, { cause: error, details: { dir } });
  }
}
