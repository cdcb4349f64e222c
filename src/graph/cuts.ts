/**
 * Cut discovery. A head is a set of compute nodes closed under "depends on"; its cut is every
 * tensor the rest of the model still needs from it (plus the model inputs the rest reads).
 * Enumerating every closed set is exponential, so we take the ones a planner can use:
 * every prefix of the topological order, and the ancestor closure of every node (which is
 * what exposes the multi-tensor cuts across residuals and branches), each then tidied by
 * absorbing shape-only computations so that a `Shape` of an early tensor does not pin that
 * tensor into every later cut.
 */
import type { OnnxModel } from './model.js';

export interface CutStructure {
  /** `c0` (the model inputs) … `cN` (the model outputs). Stable for a given model file. */
  readonly id: string;
  /** Tensors that cross the cut, sorted: computed activations and model inputs the tail reads. */
  readonly tensors: readonly string[];
  /** Compute nodes of the minimal head (indices into the model's node list), in topological order. */
  readonly headNodes: readonly number[];
}

const SHAPE_SOURCES = new Set(['Shape', 'Size']);

const cache = new WeakMap<OnnxModel, CutStructure[]>();

/** Every cut of the model, from the input side to the output side. */
export function listCuts(model: OnnxModel): CutStructure[] {
  let cuts = cache.get(model);
  if (!cuts) {
    cuts = enumerate(model);
    cache.set(model, cuts);
  }
  return cuts;
}

function enumerate(model: OnnxModel): CutStructure[] {
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

/** Marks `seeds` and every compute node they depend on. */
export function ancestorClosure(model: OnnxModel, seeds: readonly number[]): Uint8Array {
  const marked = new Uint8Array(model.nodes.length);
  const stack = [...seeds];
  while (stack.length > 0) {
    const index = stack.pop()!;
    if (marked[index] === 1) continue;
    const node = model.nodes[index]!;
    if (node.isWeight) continue;
    marked[index] = 1;
    for (const t of node.reads) {
      const p = model.producer.get(t);
      if (p !== undefined && marked[p] !== 1) stack.push(p);
    }
  }
  return marked;
}

export function ancestorClosureOfTensors(model: OnnxModel, tensors: readonly string[]): Uint8Array {
  const seeds: number[] = [];
  for (const t of tensors) {
    const p = model.producer.get(t);
    if (p !== undefined) seeds.push(p);
  }
  return ancestorClosure(model, seeds);
}

/**
 * Compute nodes needed to produce `targets` when `available` tensors are given: the
 * backward closure that stops at the available tensors.
 */
export function nodesNeeded(model: OnnxModel, targets: readonly string[], available: ReadonlySet<string>): Uint8Array {
  const marked = new Uint8Array(model.nodes.length);
  const stack: number[] = [];
  const want = (t: string): void => {
    if (available.has(t)) return;
    const p = model.producer.get(t);
    if (p !== undefined && marked[p] !== 1) stack.push(p);
  };
  targets.forEach(want);
  while (stack.length > 0) {
    const index = stack.pop()!;
    if (marked[index] === 1) continue;
    marked[index] = 1;
    model.nodes[index]!.reads.forEach(want);
  }
  return marked;
}
