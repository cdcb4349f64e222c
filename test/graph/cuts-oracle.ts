/**
 * The cut enumeration as it was before the linear sweep (quadratic in time and memory): the
 * oracle the sweep must agree with, cut for cut and in the same order, on small graphs.
 */
import type { OnnxModel } from '../../src/graph/model.js';
import { ancestorClosure, ancestorClosureOfTensors } from '../../src/graph/cuts.js';

const SHAPE_SOURCES = new Set(['Shape', 'Size']);

export function referenceCuts(model: OnnxModel): { id: string; tensors: string[]; headNodes: number[] }[] {
  const { nodes, computeOrder } = model;
  const rank = new Map<number, number>(computeOrder.map((index, position) => [index, position]));
  const shapeOnly = shapeOnlyNodes(model);
  const inputNames = new Set(model.inputNames);

  const candidates: Uint8Array[] = [];
  // Prefixes of the topological order.
  const prefix = new Uint8Array(nodes.length);
  candidates.push(prefix.slice());
  for (const index of computeOrder) {
    prefix[index] = 1;
    candidates.push(prefix.slice());
  }
  // Ancestor closure of each node.
  for (const index of computeOrder) candidates.push(ancestorClosure(model, [index]));

  const byKey = new Map<string, { tensors: string[]; headNodes: number[] }>();
  for (const head of candidates) {
    absorbShapeOnly(model, head, shapeOnly, inputNames);
    const tensors = frontier(model, head, inputNames);
    const key = tensors.join('\u0000');
    if (byKey.has(key)) continue;
    const minimal = ancestorClosureOfTensors(model, tensors);
    const headNodes = computeOrder.filter((i) => minimal[i] === 1);
    byKey.set(key, { tensors, headNodes });
  }

  const sorted = [...byKey.values()].sort((a, b) => {
    if (a.headNodes.length !== b.headNodes.length) return a.headNodes.length - b.headNodes.length;
    const ra = a.headNodes.reduce((s, i) => s + rank.get(i)!, 0);
    const rb = b.headNodes.reduce((s, i) => s + rank.get(i)!, 0);
    if (ra !== rb) return ra - rb;
    return a.tensors.join(',') < b.tensors.join(',') ? -1 : 1;
  });
  return sorted.map((c, i) => ({ id: `c${i}`, tensors: c.tensors, headNodes: c.headNodes }));
}

/** Nodes whose outputs depend only on tensor shapes (and weights), never on tensor values. */
function shapeOnlyNodes(model: OnnxModel): Uint8Array {
  const result = new Uint8Array(model.nodes.length);
  const shapeTensors = new Set<string>();
  for (const index of model.computeOrder) {
    const node = model.nodes[index]!;
    const isSource = SHAPE_SOURCES.has(node.opType) && node.domain === '';
    const derived = !node.hasSubgraph && node.reads.length > 0 && node.reads.every((t) => shapeTensors.has(t) || model.weights.has(t));
    if (isSource || derived) {
      result[index] = 1;
      for (const out of node.outputs) shapeTensors.add(out);
    }
  }
  return result;
}

function isAvailable(model: OnnxModel, head: Uint8Array, tensor: string, inputNames: ReadonlySet<string>): boolean {
  if (model.weights.has(tensor) || inputNames.has(tensor)) return true;
  const p = model.producer.get(tensor);
  return p !== undefined && head[p] === 1;
}

function absorbShapeOnly(model: OnnxModel, head: Uint8Array, shapeOnly: Uint8Array, inputNames: ReadonlySet<string>): void {
  let changed = true;
  while (changed) {
    changed = false;
    for (const index of model.computeOrder) {
      if (head[index] === 1 || shapeOnly[index] !== 1) continue;
      const node = model.nodes[index]!;
      if (node.reads.every((t) => isAvailable(model, head, t, inputNames))) {
        head[index] = 1;
        changed = true;
      }
    }
  }
}

/** Tensors the nodes outside `head` (or the model's outputs) need from inside it, sorted. */
function frontier(model: OnnxModel, head: Uint8Array, inputNames: ReadonlySet<string>): string[] {
  const crossing = new Set<string>();
  for (const index of model.computeOrder) {
    if (head[index] === 1) continue;
    for (const t of model.nodes[index]!.reads) {
      if (model.weights.has(t)) continue;
      if (inputNames.has(t)) crossing.add(t);
      else {
        const p = model.producer.get(t);
        if (p !== undefined && head[p] === 1) crossing.add(t);
      }
    }
  }
  for (const out of model.outputNames) {
    if (model.weights.has(out)) continue;
    const p = model.producer.get(out);
    if (inputNames.has(out) || (p !== undefined && head[p] === 1)) crossing.add(out);
  }
  return [...crossing].sort();
}

