/**
 * Cut discovery. A head is a set of compute nodes closed under "depends on"; its cut is every
 * tensor the rest of the model still needs from it (plus the model inputs the rest reads).
 * Enumerating every closed set is exponential, so we take the ones a planner can use:
 * every prefix of the topological order, and the ancestor closure of every node (which is
 * what exposes the multi-tensor cuts across residuals and branches), each then tidied by
 * absorbing shape-only computations so that a `Shape` of an early tensor does not pin that
 * tensor into every later cut. The sweeps that find them in linear time and memory are in
 * cut-sweep.ts (docs/design/cuts.md).
 */
import { compileCutGraph, type CutGraph } from './cut-graph.js';
import { sweepCuts, type FoundCut, type SweepResult, type SweepStats } from './cut-sweep.js';
import type { OnnxModel } from './model.js';

export { MAX_ANCESTOR_WINDOW, MAX_CUT_TENSORS, type SweepStats } from './cut-sweep.js';

export interface CutStructure {
  /** `c0` (the model inputs) … `cN` (the model outputs). Stable for a given model file. */
  readonly id: string;
  /** Tensors that cross the cut, sorted: computed activations and model inputs the tail reads. */
  readonly tensors: readonly string[];
  /** Number of compute nodes in the minimal head. */
  readonly headCount: number;
  /**
   * Compute nodes of the minimal head (indices into the model's node list), in topological
   * order. Built on each read, in time linear in the model: sum over heads with
   * {@link cutHeadSums} rather than reading this for every cut.
   */
  readonly headNodes: readonly number[];
}

class Cut implements CutStructure {
  constructor(
    readonly id: string,
    readonly tensors: readonly string[],
    readonly headCount: number,
    private readonly model: OnnxModel,
  ) {}

  get headNodes(): number[] {
    const marked = ancestorClosureOfTensors(this.model, this.tensors);
    return this.model.computeOrder.filter((i) => marked[i] === 1);
  }
}

interface Analysis {
  graph: CutGraph;
  sweep: SweepResult;
  /** The found cuts in id order. */
  ordered: FoundCut[];
  cuts: CutStructure[];
}

const cache = new WeakMap<OnnxModel, Analysis>();
/** Cut analyses run in this thread (the cloud service checks that requests do not run them). */
let analyses = 0;

function analysis(model: OnnxModel): Analysis {
  let found = cache.get(model);
  if (!found) {
    found = enumerate(model);
    cache.set(model, found);
  }
  return found;
}

/** Every cut of the model, from the input side to the output side. */
export function listCuts(model: OnnxModel): CutStructure[] {
  return analysis(model).cuts;
}

/** How many cut analyses this thread has run (each model once). */
export function cutAnalysesRun(): number {
  return analyses;
}

/** What the analysis of `model` did: candidates, distinct cuts, what the caps left out, work. */
export function cutSweepStats(model: OnnxModel): Readonly<SweepStats> {
  return analysis(model).sweep.stats;
}

/**
 * Sum of `perNode` (indexed like the model's node list) over each cut's minimal head, in
 * {@link listCuts} order: one pass over the sweeps' logs for every cut at once.
 */
export function cutHeadSums(model: OnnxModel, perNode: ArrayLike<number>): Float64Array {
  const { graph, ordered, sweep } = analysis(model);
  const weights = new Float64Array(graph.size);
  for (let r = 0; r < graph.size; r++) weights[r] = perNode[graph.nodeIndex[r]!] ?? 0;
  return headSums(sweep, ordered, weights);
}

function headSums(sweep: SweepResult, cuts: readonly FoundCut[], weights: Float64Array): Float64Array {
  const running = sweep.logs.map((log) => {
    const sums = new Float64Array(log.length + 1);
    for (let i = 0; i < log.length; i++) sums[i + 1] = sums[i]! + change(log[i]!, weights);
    return sums;
  });
  const out = new Float64Array(cuts.length);
  cuts.forEach((cut, i) => {
    let sum = running[cut.sweep]![cut.logEnd]!;
    for (let k = cut.adjustStart; k < cut.adjustEnd; k++) sum += change(sweep.adjustments[k]!, weights);
    out[i] = sum;
  });
  return out;
}

const change = (entry: number, weights: Float64Array): number => (entry > 0 ? weights[entry - 1]! : -weights[-entry - 1]!);

function enumerate(model: OnnxModel): Analysis {
  analyses++;
  const graph = compileCutGraph(model);
  const sweep = sweepCuts(graph);
  const found = sweep.cuts;
  const counts = headSums(sweep, found, new Float64Array(graph.size).fill(1));
  const ranks = headSums(sweep, found, Float64Array.from({ length: graph.size }, (_, r) => r));
  const names = found.map((c) => c.tensors.map((t) => graph.tensorNames[t]!).sort());
  // Fewest head nodes first, then the earliest ones, then by name: the order ids have always had.
  const order = found.map((_, i) => i).sort((a, b) => {
    if (counts[a] !== counts[b]) return counts[a]! - counts[b]!;
    if (ranks[a] !== ranks[b]) return ranks[a]! - ranks[b]!;
    return names[a]!.join(',') < names[b]!.join(',') ? -1 : 1;
  });
  return {
    graph,
    sweep,
    ordered: order.map((i) => found[i]!),
    cuts: order.map((i, position) => new Cut(`c${position}`, names[i]!, counts[i]!, model)),
  };
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
