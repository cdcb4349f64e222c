/**
 * The model's compute nodes and activations as flat integer arrays, for cut discovery
 * (cut-sweep.ts): nodes are numbered by their position in the topological order (their
 * rank), tensors densely; weights are left out, since they never cross a cut.
 */
import { mulberry32 } from '../util/random.js';
import type { OnnxModel } from './model.js';

const SHAPE_SOURCES = new Set(['Shape', 'Size']);

/** Compressed rows: the items of row `i` are `items[start[i]] … items[start[i + 1] - 1]`. */
export interface Rows {
  readonly start: Int32Array;
  readonly items: Int32Array;
}

export interface CutGraph {
  /** Compute nodes, numbered by rank. */
  readonly size: number;
  /** Rank → index into the model's node list. */
  readonly nodeIndex: Int32Array;
  readonly tensorNames: readonly string[];
  /** Per node: the activations and inputs it reads, and those it writes. */
  readonly reads: Rows;
  readonly writes: Rows;
  /** Per node: distinct producers of what it reads, and distinct readers of what it writes. */
  readonly parents: Rows;
  readonly children: Rows;
  /** Per tensor: its readers, and its producer's rank (-1 for a model input). */
  readonly readers: Rows;
  readonly producer: Int32Array;
  readonly isInput: Uint8Array;
  readonly isOutput: Uint8Array;
  /** Nodes whose outputs depend only on shapes (and weights), absorbed into any head that can compute them. */
  readonly shapeOnly: Uint8Array;
  /** Nodes that a model output depends on (a head keeps every one of them it holds). */
  readonly feedsOutput: Uint8Array;
  /** Highest rank among a node and its descendants, and among its children (-1: none). */
  readonly lastDescendant: Int32Array;
  readonly lastChild: Int32Array;
  /** Two independent random 32-bit keys per tensor: a frontier's hash is their XOR over its tensors. */
  readonly keyA: Int32Array;
  readonly keyB: Int32Array;
}

/** Rows from a flat list of items and the row lengths, as Int32Arrays. */
function packed(start: number[], items: number[]): Rows {
  return { start: Int32Array.from(start), items: Int32Array.from(items) };
}

/** The transpose of `forward` (rows of `count` items → rows of `items` listing the rows that hold them). */
function transpose(forward: Rows, count: number): Rows {
  const start = new Int32Array(count + 1);
  for (let i = 0; i < forward.items.length; i++) start[forward.items[i]! + 1]!++;
  for (let i = 0; i < count; i++) start[i + 1]! += start[i]!;
  const at = start.slice(0, count);
  const items = new Int32Array(forward.items.length);
  const rowsCount = forward.start.length - 1;
  for (let r = 0; r < rowsCount; r++) for (let i = forward.start[r]!; i < forward.start[r + 1]!; i++) items[at[forward.items[i]!]!++] = r;
  return { start, items };
}

export function compileCutGraph(model: OnnxModel): CutGraph {
  const order = model.computeOrder;
  const size = order.length;
  const nodeIndex = Int32Array.from(order);
  const rankOf = new Int32Array(model.nodes.length).fill(-1);
  order.forEach((index, rank) => (rankOf[index] = rank));

  const tensorId = new Map<string, number>();
  const tensorNames: string[] = [];
  const idOf = (name: string): number => {
    let id = tensorId.get(name);
    if (id === undefined) {
      id = tensorNames.length;
      tensorId.set(name, id);
      tensorNames.push(name);
    }
    return id;
  };
  for (const name of model.inputNames) idOf(name);
  for (const index of order) {
    const node = model.nodes[index]!;
    for (const t of node.reads) if (!model.weights.has(t)) idOf(t);
    for (const t of node.outputs) idOf(t);
  }
  for (const name of model.outputNames) if (!model.weights.has(name)) idOf(name);
  const tensors = tensorNames.length;

  const producer = new Int32Array(tensors).fill(-1);
  const isInput = new Uint8Array(tensors);
  const isOutput = new Uint8Array(tensors);
  for (const name of model.inputNames) isInput[tensorId.get(name)!] = 1;
  for (const name of model.outputNames) if (!model.weights.has(name)) isOutput[tensorId.get(name)!] = 1;

  // One pass over the nodes: flat read and write lists (weights left out).
  const readStart = [0];
  const readItems: number[] = [];
  const writeStart = [0];
  const writeItems: number[] = [];
  for (let r = 0; r < size; r++) {
    const node = model.nodes[order[r]!]!;
    for (const t of node.reads) if (!model.weights.has(t)) readItems.push(tensorId.get(t)!);
    for (const t of node.outputs) writeItems.push(tensorId.get(t)!);
    readStart.push(readItems.length);
    writeStart.push(writeItems.length);
  }
  const reads = packed(readStart, readItems);
  const writes = packed(writeStart, writeItems);
  for (let r = 0; r < size; r++) for (let i = writes.start[r]!; i < writes.start[r + 1]!; i++) producer[writes.items[i]!] = r;
  // A name that is both a model input and produced is treated as the input, as before.
  for (let t = 0; t < tensors; t++) if (isInput[t]) producer[t] = -1;
  const readers = transpose(reads, tensors);
  // Distinct neighbours: `seen[x] === r` marks x as already listed for row r.
  const seen = new Int32Array(size).fill(-1);
  const parentStart = [0];
  const parentItems: number[] = [];
  for (let r = 0; r < size; r++) {
    for (let i = reads.start[r]!; i < reads.start[r + 1]!; i++) {
      const p = producer[reads.items[i]!]!;
      if (p < 0 || seen[p] === r) continue;
      seen[p] = r;
      parentItems.push(p);
    }
    parentStart.push(parentItems.length);
  }
  const parents = packed(parentStart, parentItems);
  const children = transpose(parents, size);

  const shapeOnly = new Uint8Array(size);
  const shapeTensors = new Set<string>();
  for (let r = 0; r < size; r++) {
    const node = model.nodes[order[r]!]!;
    const isSource = SHAPE_SOURCES.has(node.opType) && node.domain === '';
    const derived = !node.hasSubgraph && node.reads.length > 0 && node.reads.every((t) => shapeTensors.has(t) || model.weights.has(t));
    if (isSource || derived) {
      shapeOnly[r] = 1;
      for (const out of node.outputs) shapeTensors.add(out);
    }
  }

  const feedsOutput = new Uint8Array(size);
  const lastDescendant = new Int32Array(size);
  const lastChild = new Int32Array(size).fill(-1);
  for (let r = size - 1; r >= 0; r--) {
    let last = r;
    let feeds = 0;
    for (let i = writes.start[r]!; i < writes.start[r + 1]!; i++) if (isOutput[writes.items[i]!] && !isInput[writes.items[i]!]) feeds = 1;
    for (let i = children.start[r]!; i < children.start[r + 1]!; i++) {
      const c = children.items[i]!;
      if (lastDescendant[c]! > last) last = lastDescendant[c]!;
      if (c > lastChild[r]!) lastChild[r] = c;
      if (feedsOutput[c]) feeds = 1;
    }
    lastDescendant[r] = last;
    feedsOutput[r] = feeds;
  }

  const random = mulberry32(0x7a3d_c071);
  const keyA = new Int32Array(tensors);
  const keyB = new Int32Array(tensors);
  for (let t = 0; t < tensors; t++) {
    keyA[t] = (random() * 4294967296) | 0;
    keyB[t] = (random() * 4294967296) | 0;
  }
  return { size, nodeIndex, tensorNames, reads, writes, parents, children, readers, producer, isInput, isOutput, shapeOnly, feedsOutput, lastDescendant, lastChild, keyA, keyB };
}
