/**
 * Which channel classes go: greedily, the cheapest importance (see importance.ts) per FLOP
 * saved first, re-priced as neighbours go, until the region's FLOPs reach the budget. No
 * tensor is thinned below a floor, so no layer is cut away entirely.
 */
import type { OnnxModel } from '../graph/model.js';
import type { TensorShape } from '../graph/shapes.js';
import type { ChannelClass } from './channels.js';
import type { WeightStore } from './weights.js';

export interface SelectionOptions {
  /** Fraction of the region's FLOPs to keep. */
  keep: number;
  /** FLOPs of the region before pruning. */
  regionFlops: number;
  region: ReadonlySet<number>;
  /** Fewest channels a tensor keeps, as a fraction of its original count. */
  minChannels: number;
  /**
   * Channel counts are rounded to multiples of this (1: no rounding): onnxruntime's blocked
   * (NCHWc) convolutions need counts that are multiples of the SIMD width, and a pruned layer
   * that falls off that path runs slower than the unpruned one.
   */
  align: number;
}

const product = (values: readonly number[]): number => values.reduce((a, b) => a * b, 1);

/** Per-node channel counts, updated as classes go, to price each removal at its current cost. */
export class Costs {
  readonly cin = new Map<number, number>();
  readonly cout = new Map<number, number>();
  constructor(
    private readonly model: OnnxModel,
    private readonly shapes: ReadonlyMap<string, TensorShape>,
    private readonly weights: WeightStore,
    private readonly region: ReadonlySet<number>,
  ) {}

  private geometry(node: number): { outElems: number; kernel: number; cin: number; cout: number } {
    const n = this.model.nodes[node]!;
    const out = this.shapes.get(n.outputs[0]!)!.dims;
    const w = this.weights.get(n.proto.input![1]!)!;
    if (n.opType === 'Conv') return { outElems: product(out.slice(2)) * out[0]!, kernel: product(w.dims.slice(2)), cin: w.dims[1]!, cout: w.dims[0]! };
    const x = this.shapes.get(n.proto.input![0]!)!.dims;
    return { outElems: out[0]!, kernel: 1, cin: x[1]!, cout: out[1]! };
  }

  /** FLOPs saved by removing one channel of `cls` now; `commit` records the removal. */
  saving(cls: ChannelClass, commit = false): number {
    let flops = 0;
    for (const s of cls.sources) {
      if (!this.region.has(s.node)) continue;
      const g = this.geometry(s.node);
      const cin = this.cin.get(s.node) ?? g.cin;
      flops += 2 * g.outElems * cin * g.kernel + g.outElems;
      if (commit) this.cout.set(s.node, (this.cout.get(s.node) ?? g.cout) - 1);
    }
    for (const k of cls.consumers) {
      const g = this.geometry(k.node);
      const cout = this.cout.get(k.node) ?? g.cout;
      if (this.region.has(k.node)) flops += 2 * g.outElems * cout * g.kernel;
      if (commit) this.cin.set(k.node, (this.cin.get(k.node) ?? g.cin) - 1);
    }
    // Carried channels: element-wise work per element, depthwise work per kernel tap.
    for (const m of cls.members) {
      const producer = this.model.producer.get(m.tensor);
      if (producer === undefined || !this.region.has(producer) || cls.sources.some((s) => s.node === producer)) continue;
      const dims = this.shapes.get(m.tensor)!.dims;
      const perChannel = product(dims) / dims[1]!;
      const node = this.model.nodes[producer]!;
      const kernel = node.opType === 'Conv' ? product(this.weights.get(node.proto.input![1]!)!.dims.slice(2)) : 1;
      flops += perChannel * (node.opType === 'Conv' ? 2 * kernel + 1 : 1);
    }
    return flops;
  }
}

/** The classes to remove, chosen greedily by importance per FLOP saved. */
export function selectClasses(
  classes: readonly ChannelClass[],
  importance: { score(i: number): number; remove(i: number): void },
  model: OnnxModel,
  shapes: ReadonlyMap<string, TensorShape>,
  weights: WeightStore,
  options: SelectionOptions,
): Set<number> {
  const costs = new Costs(model, shapes, weights, options.region);
  const remaining = new Map<string, number>();
  const floor = new Map<string, number>();
  for (const cls of classes) {
    for (const m of cls.members) {
      if (floor.has(m.tensor)) continue;
      const c = shapes.get(m.tensor)!.dims[1]!;
      remaining.set(m.tensor, c);
      floor.set(m.tensor, Math.max(1, Math.ceil(options.minChannels * c)));
    }
  }
  const target = options.keep * options.regionFlops;
  let flops = options.regionFlops;
  const removed = new Set<number>();
  const open = new Set(classes.map((_, i) => i));
  // Prices change only for classes that share a layer with a removed one: re-price those alone.
  const byNode = new Map<number, number[]>();
  classes.forEach((cls, i) => {
    for (const node of new Set([...cls.sources.map((s) => s.node), ...cls.consumers.map((k) => k.node)])) (byNode.get(node) ?? byNode.set(node, []).get(node)!).push(i);
  });
  const price = new Map<number, number>();
  let dirty = new Set(open);
  while (flops > target && open.size > 0) {
    for (const i of dirty) {
      if (!open.has(i)) continue;
      const saving = costs.saving(classes[i]!);
      price.set(i, saving > 0 ? importance.score(i) / saving : Infinity);
    }
    dirty = new Set();
    const scored = [...open].filter((i) => price.get(i)! < Infinity).sort((a, b) => price.get(a)! - price.get(b)!);
    if (scored.length === 0) break;
    const batch = Math.max(1, Math.ceil(scored.length * 0.02));
    let taken = 0;
    for (const i of scored) {
      if (taken >= batch || flops <= target) break;
      open.delete(i);
      const cls = classes[i]!;
      const tensors = new Set(cls.members.map((m) => m.tensor));
      if ([...tensors].some((t) => remaining.get(t)! - 1 < floor.get(t)!)) continue;
      flops -= costs.saving(cls, true);
      importance.remove(i);
      for (const t of tensors) remaining.set(t, remaining.get(t)! - 1);
      removed.add(i);
      taken++;
      for (const node of [...cls.sources.map((s) => s.node), ...cls.consumers.map((k) => k.node)]) for (const j of byNode.get(node) ?? []) dirty.add(j);
    }
  }
  if (options.align > 1) alignCounts(classes, removed, remaining, shapes, options.align, (i) => importance.score(i));
  return removed;
}

/** The region's FLOPs after removing `removed` (conv and dense work exactly, element-wise approximately). */
export function estimateFlops(classes: readonly ChannelClass[], removed: ReadonlySet<number>, model: OnnxModel, shapes: ReadonlyMap<string, TensorShape>, weights: WeightStore, options: Pick<SelectionOptions, 'region' | 'regionFlops'>): number {
  const costs = new Costs(model, shapes, weights, options.region);
  let flops = options.regionFlops;
  for (const i of removed) flops -= costs.saving(classes[i]!, true);
  return flops;
}

/**
 * Rounds every pruned tensor's channel count up to a multiple of `align` (or back to its
 * original count) by restoring its removed classes, most important first. Restoring is the
 * safe direction: it only gives back accuracy; the FLOPs land a little above the budget.
 */
export function alignCounts(classes: readonly ChannelClass[], removed: Set<number>, remaining: Map<string, number>, shapes: ReadonlyMap<string, TensorShape>, align: number, score: (i: number) => number): void {
  const byTensor = new Map<string, number[]>();
  for (const i of removed) for (const m of classes[i]!.members) (byTensor.get(m.tensor) ?? byTensor.set(m.tensor, []).get(m.tensor)!).push(i);
  for (let round = 0; round < 4; round++) {
    let changed = false;
    for (const [tensor, list] of byTensor) {
      const total = shapes.get(tensor)!.dims[1]!;
      let left = remaining.get(tensor)!;
      if (left === total || left % align === 0) continue;
      const restore = list.filter((i) => removed.has(i)).sort((a, b) => score(b) - score(a));
      for (const i of restore) {
        if (left === total || left % align === 0) break;
        removed.delete(i);
        for (const t of new Set(classes[i]!.members.map((m) => m.tensor))) remaining.set(t, remaining.get(t)! + 1);
        left = remaining.get(tensor)!;
        changed = true;
      }
    }
    if (!changed) break;
  }
}
