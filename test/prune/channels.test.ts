/**
 * Channel classes and structural pruning on the real PP-OCRv4 detector: channels joined
 * across its FPN (Resize → Concat), its residual Adds and squeeze-and-excitation Muls are
 * removed together, and a model pruned that way still runs with the original output shape.
 */
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { DET_MODEL } from '../../bench/prune-data.js';
import { ocrModelPath } from '../../models/ocr-models.js';
import { analyzeModel, loadModel, parseModel } from '../../src/graph/index.js';
import { encodeModel } from '../../src/graph/onnx.js';
import { applyPruning } from '../../src/prune/apply.js';
import { analyzeChannels } from '../../src/prune/channels.js';
import { foldBatchNorms } from '../../src/prune/fold.js';
import { cloneModel } from '../../src/prune/session.js';
import { WeightStore } from '../../src/prune/weights.js';

const SIZE = 64;

async function detector() {
  const model = await loadModel(ocrModelPath(DET_MODEL));
  const analysis = await analyzeModel(model, { x: [1, 3, SIZE, SIZE] });
  const proto = cloneModel(model.proto);
  const weights = new WeightStore(proto);
  const folded = foldBatchNorms(model, proto, weights);
  const base = await parseModel(encodeModel(proto));
  return { model, analysis, proto, weights, folded, base };
}

async function run(bytes: Uint8Array, x: Float32Array): Promise<ort.Tensor> {
  const session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
  try {
    return (await session.run({ x: new ort.Tensor('float32', x, [1, 3, SIZE, SIZE]) }))[session.outputNames[0]!]!;
  } finally {
    await session.release();
  }
}

describe('channel classes of the PP-OCRv4 detector', () => {
  it('joins channels across Concat, residual Add and SE Mul, with producers and readers', async () => {
    const { analysis, weights, folded, base } = await detector();
    expect(folded).toBeGreaterThan(0);
    const { classes } = analyzeChannels(base, analysis.tensorShapes, weights, new Set(base.computeOrder));
    expect(classes.length).toBeGreaterThan(100);
    const concat = classes.filter((c) => c.members.some((m) => m.tensor === 'p2o.Concat.1'));
    // Every Concat channel goes with the upsampled FPN branch it came from.
    expect(concat.length).toBeGreaterThan(0);
    for (const cls of concat) {
      expect(cls.members.some((m) => m.tensor.startsWith('nearest_interp') || m.tensor === 'p2o.Add.277')).toBe(true);
      expect(cls.sources.length).toBeGreaterThan(0);
      expect(cls.consumers.length).toBeGreaterThan(0);
    }
    // SE: x, its gate and x·gate move together, and so does the residual x + x·gate.
    const se = classes.find((c) => c.members.some((m) => m.tensor === 'p2o.Mul.157'));
    expect(se?.members.map((m) => m.tensor)).toEqual(expect.arrayContaining(['conv2d_473.tmp_0', 'hardsigmoid_6.tmp_0', 'p2o.Add.229']));
    // The graph output is never pruned.
    expect(classes.some((c) => c.members.some((m) => m.tensor === 'sigmoid_0.tmp_0'))).toBe(false);
  });

  it('a model with every third class removed still runs and keeps its output shape', async () => {
    const { analysis, proto, weights, base } = await detector();
    const { classes, channels } = analyzeChannels(base, analysis.tensorShapes, weights, new Set(base.computeOrder));
    const gone = new Map<string, Set<number>>();
    classes.forEach((cls, i) => {
      if (i % 3 !== 0) return;
      for (const m of cls.members) (gone.get(m.tensor) ?? gone.set(m.tensor, new Set()).get(m.tensor)!).add(m.channel);
    });
    const kept = new Map([...gone].map(([t, set]) => [t, Array.from({ length: channels.get(t)! }, (_, c) => c).filter((c) => !set.has(c))]));
    const pruned = cloneModel(proto);
    applyPruning(base, pruned, new WeightStore(pruned), kept, channels, analysis.tensorShapes);
    const x = new Float32Array(3 * SIZE * SIZE).map((_, i) => Math.cos(i / 7));
    const [a, b] = [await run(encodeModel(proto), x), await run(encodeModel(pruned), x)];
    expect(b.dims).toEqual(a.dims);
    expect([...(b.data as Float32Array)].every(Number.isFinite)).toBe(true);
    const after = await analyzeModel(await parseModel(encodeModel(pruned)), { x: [1, 3, SIZE, SIZE] });
    expect(after.totalFlops).toBeLessThan(0.9 * analysis.totalFlops);
  }, 60_000);
});
