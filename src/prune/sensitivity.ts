/**
 * Measured sensitivity, to give each layer its own keep ratio. The local price of a channel
 * (importance.ts: output energy lost by the layer that reads it) says nothing of how much
 * the model's *output* cares: a late classifier layer and an early edge filter can lose the
 * same energy for very different damage. So every group of channels that go together (the
 * classes spanning the same tensors) is pruned alone, in steps, by its own importance order
 * with the readers compensated as least squares would (weights and bias, shapes unchanged);
 * the model is run on the calibration images at each step and the change of its outputs
 * measured. The holdout set is never seen here.
 *
 * The allocation then takes, group by group, the step with the least measured loss per unit
 * of cost saved (FLOPs, or an estimate of time that charges memory-bound work its bytes),
 * until the region's FLOPs meet the budget; the channels within a group are its first ones in
 * importance order. A loss floor makes every step cost at least that much: steps whose loss
 * the task does not see (a detector's map, thresholded into boxes) are then ranked by the
 * time they save, so the budget is not spent on near-free FLOPs that save little time.
 */
import type { OnnxModel } from '../graph/model.js';
import type { ModelProto } from '../graph/onnx.js';
import type { TensorShape } from '../graph/shapes.js';
import type { Tensor } from '../tensor/index.js';
import type { ChannelClass } from './channels.js';
import { CompensatedImportance, type ChannelGrams } from './importance.js';
import { Costs } from './select.js';
import { ActivationSession, cloneModel } from './session.js';
import { WeightStore } from './weights.js';

export interface SensitivityOptions {
  classes: readonly ChannelClass[];
  model: OnnxModel;
  proto: ModelProto;
  weights: WeightStore;
  grams: ChannelGrams;
  shapes: ReadonlyMap<string, TensorShape>;
  images: () => AsyncIterable<Tensor>;
  /** Calibration images run per measurement (the first ones of the stream). */
  limit: number;
  /** Fewest channels a tensor keeps, as a fraction. */
  minChannels: number;
  /** Fractions of each group measured (default 1/8 … 7/8, capped by `minChannels`). */
  levels?: readonly number[];
  /** Classifier outputs (probabilities): the loss is on log-probabilities, which do not saturate. */
  probabilities: boolean;
  threads: number;
  log: (line: string) => void;
}

/** One group's measured curve: removing its first `counts[k]` classes (in `order`) costs `loss[k]`. */
export interface GroupCurve {
  order: number[];
  counts: number[];
  loss: number[];
}

export interface Sensitivity {
  groups: GroupCurve[];
  /** Model runs the measurement took. */
  runs: number;
}

const DEFAULT_LEVELS = [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875];

/** The classes grouped by the tensors they span: what one layer's keep ratio decides. */
export function channelGroups(classes: readonly ChannelClass[]): number[][] {
  const groups = new Map<string, number[]>();
  classes.forEach((cls, i) => {
    const key = [...new Set(cls.members.map((m) => m.tensor))].sort().join('\n');
    (groups.get(key) ?? groups.set(key, []).get(key)!).push(i);
  });
  return [...groups.values()];
}

/**
 * Curves already measured in this process, by model, calibration set and settings: the same
 * measurement serves every budget (a sweep of --keep measures once).
 */
const measured = new Map<string, Sensitivity>();
const CACHED = 4;

export async function measureSensitivity(options: SensitivityOptions, key?: string): Promise<Sensitivity> {
  const id = key === undefined ? undefined : JSON.stringify([key, options.limit, options.minChannels, options.levels ?? DEFAULT_LEVELS, options.probabilities]);
  const hit = id === undefined ? undefined : measured.get(id);
  if (hit) return hit;
  const result = await measure(options);
  if (id !== undefined) {
    if (measured.size >= CACHED) measured.delete(measured.keys().next().value!);
    measured.set(id, result);
  }
  return result;
}

async function measure(options: SensitivityOptions): Promise<Sensitivity> {
  const reference: Array<Map<string, Float32Array>> = [];
  const base = await ActivationSession.open(options.proto, [], options.threads);
  try {
    for await (const image of options.images()) {
      if (reference.length >= options.limit) break;
      const out = await base.run(image);
      reference.push(new Map([...out].map(([name, t]) => [name, Float32Array.from(t.data)])));
    }
  } finally {
    await base.release();
  }
  const groups: GroupCurve[] = [];
  let runs = reference.length;
  const levels = options.levels ?? DEFAULT_LEVELS;
  for (const [g, members] of channelGroups(options.classes).entries()) {
    const size = members.length;
    const tensors = new Set(options.classes[members[0]!]!.members.map((m) => m.tensor));
    const total = Math.min(...[...tensors].map((t) => options.shapes.get(t)!.dims[1]!));
    const most = total - Math.max(1, Math.ceil(options.minChannels * total)) - (total - size);
    const counts = [...new Set(levels.map((l) => Math.min(most, Math.round(l * size))).filter((c) => c > 0))].sort((a, b) => a - b);
    const importance = new CompensatedImportance(options.classes, options.model, options.weights, options.grams);
    const open = new Set(members);
    const order: number[] = [];
    const loss: number[] = [];
    for (const count of counts) {
      while (order.length < count) {
        let best = -1;
        let price = Infinity;
        for (const i of open) {
          const s = importance.score(i);
          if (s < price || best < 0) [best, price] = [i, s];
        }
        open.delete(best);
        importance.remove(best);
        order.push(best);
      }
      loss.push(await outputLoss(options, importance, reference));
      runs += reference.length;
    }
    groups.push({ order, counts, loss });
    if ((g + 1) % 10 === 0) options.log(`sensitivity of ${g + 1} channel groups measured`);
  }
  return { groups, runs };
}

/** Mean output change over the calibration images with the compensated weights of `importance`. */
async function outputLoss(options: SensitivityOptions, importance: CompensatedImportance, reference: ReadonlyArray<Map<string, Float32Array>>): Promise<number> {
  const proto = cloneModel(options.proto);
  const weights = new WeightStore(proto);
  for (const node of importance.touched()) {
    const c = importance.compensated(node)!;
    const layer = proto.graph!.node![node]!;
    weights.set(layer, 1, c.weight);
    if (layer.opType === 'MatMul') continue;
    const bias = options.weights.get(layer.input![2] ?? undefined);
    const out = c.bias.map((d, o) => d + (bias ? (bias.data.length === 1 ? bias.data[0]! : bias.data[o]!) : 0));
    weights.set(layer, 2, { dims: [out.length], data: out });
  }
  const session = await ActivationSession.open(proto, [], options.threads);
  let [num, den] = [0, 0];
  try {
    let k = 0;
    for await (const image of options.images()) {
      if (k >= reference.length) break;
      const out = await session.run(image);
      for (const [name, want] of reference[k++]!) {
        const got = out.get(name)!.data;
        for (let i = 0; i < want.length; i++) {
          if (options.probabilities) {
            const d = Math.log(Math.max(got[i]!, 1e-6)) - Math.log(Math.max(want[i]!, 1e-6));
            num += d * d;
            den += 1;
          } else {
            const d = got[i]! - want[i]!;
            num += d * d;
            den += want[i]! * want[i]!;
          }
        }
      }
    }
  } finally {
    await session.release();
  }
  return den > 0 ? num / den : 0;
}

/**
 * Which classes go: from every group's curve, the step (to any further measured count) with
 * the least loss per cost saved, until the region's FLOPs reach `target`. The loss is taken
 * as additive across groups; `cost` prices a class's removal (FLOPs or estimated time). A
 * step's loss counts as at least `lossFloor` (0: its measured loss alone).
 */
export function allocate(
  sensitivity: Sensitivity,
  classes: readonly ChannelClass[],
  costs: Pick<Costs, 'saving'>,
  regionFlops: number,
  target: number,
  cost: (cls: ChannelClass, flops: number) => number,
  lossFloor = 0,
): Set<number> {
  const removed = new Set<number>();
  const at = sensitivity.groups.map(() => 0);
  let flops = regionFlops;
  while (flops > target) {
    let best: { group: number; step: number; price: number } | undefined;
    sensitivity.groups.forEach((g, gi) => {
      const from = at[gi]!;
      const fromCount = from === 0 ? 0 : g.counts[from - 1]!;
      const fromLoss = from === 0 ? 0 : g.loss[from - 1]!;
      let saved = 0;
      for (let step = from; step < g.counts.length; step++) {
        const lo = step === from ? fromCount : g.counts[step - 1]!;
        for (const i of g.order.slice(lo, g.counts[step]!)) saved += cost(classes[i]!, costs.saving(classes[i]!));
        if (saved <= 0) continue;
        const price = Math.max(lossFloor, g.loss[step]! - fromLoss) / saved;
        if (!best || price < best.price) best = { group: gi, step: step + 1, price };
      }
    });
    if (!best) break;
    const g = sensitivity.groups[best.group]!;
    const from = at[best.group]! === 0 ? 0 : g.counts[at[best.group]! - 1]!;
    for (const i of g.order.slice(from, g.counts[best.step - 1]!)) {
      flops -= costs.saving(classes[i]!, true);
      removed.add(i);
    }
    at[best.group] = best.step;
  }
  return removed;
}

/**
 * FLOPs-equivalents charged per byte of activation a removed channel no longer moves. Depthwise
 * and element-wise layers are memory-bound: on a CPU core they run at a few GB/s while the
 * blocked convolutions reach tens of GFLOP/s, so a byte costs about as long as 8 FLOPs.
 */
const FLOPS_PER_BYTE = 8;
/** Activations smaller than this stay in a core's cache between layers: moving them costs about nothing extra. */
const CACHE_BYTES = 1024 * 1024;

/**
 * An estimate of the time a class's removal saves, in FLOP-equivalents: its FLOPs, plus the
 * bytes of its channel planes in the region, written once and read by every reader, for
 * activations too large to stay in cache (the detector's high-resolution maps; none of the
 * text-line classifier's, which this prices by FLOPs alone). Pricing
 * by this rather than FLOPs prefers channels of large, memory-bound activations, whose removal
 * shortens the run more than its FLOPs suggest.
 */
export function timeCost(model: OnnxModel, shapes: ReadonlyMap<string, TensorShape>, region: ReadonlySet<number>): (cls: ChannelClass, flops: number) => number {
  const bytes = new Map<string, number>();
  const planeBytes = (tensor: string): number => {
    let b = bytes.get(tensor);
    if (b !== undefined) return b;
    const producer = model.producer.get(tensor);
    const dims = shapes.get(tensor)!.dims;
    const readers = (model.consumers.get(tensor) ?? []).filter((n) => region.has(n)).length;
    const whole = 4 * dims.reduce((p, q) => p * q, 1);
    b = producer === undefined || !region.has(producer) || whole < CACHE_BYTES ? 0 : (whole / dims[1]!) * (1 + readers);
    bytes.set(tensor, b);
    return b;
  };
  return (cls, flops) => flops + FLOPS_PER_BYTE * cls.members.reduce((sum, m) => sum + planeBytes(m.tensor), 0);
}
