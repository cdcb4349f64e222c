/**
 * Cut discovery at scale (issue #31 item 2): the linear sweeps find the same cuts, in the same
 * order, as the quadratic enumeration they replaced, and their work stays linear in the model
 * on the MobileNetV2 + Identity chain that used to take minutes and gigabytes.
 */
import { describe, expect, it } from 'vitest';
import onnxProto from 'onnx-proto';
import { cutAnalysesRun, cutHeadSums, cutSweepStats, listCuts } from '../../src/graph/cuts.js';
import { loadModel, parseModel, type OnnxModel } from '../../src/graph/index.js';
import { mulberry32 } from '../../src/util/index.js';
import { ensureReferenceModel } from '../../models/generate.js';
import { identityChainModel } from '../../models/identity-chain.js';
import { customDomainModel, encode, ifModel } from '../fixtures/graphs.js';
import { PPOCR_CLS, PPOCR_DET } from '../helpers/models.js';
import { referenceCuts } from './cuts-oracle.js';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;

/** Cut for cut, the same ids, tensors, heads and head sums as the quadratic enumeration. */
function expectSameAsReference(model: OnnxModel): void {
  const expected = referenceCuts(model);
  const actual = listCuts(model);
  expect(actual.map((c) => `${c.id}=${c.tensors.join('+')}`)).toEqual(expected.map((c) => `${c.id}=${c.tensors.join('+')}`));
  const flops = model.nodes.map((_, i) => (i * 7919) % 1000);
  const sums = cutHeadSums(model, flops);
  expected.forEach((cut, i) => {
    expect(actual[i]!.headNodes).toEqual(cut.headNodes);
    expect(actual[i]!.headCount).toBe(cut.headNodes.length);
    expect(sums[i]).toBe(cut.headNodes.reduce((s, n) => s + flops[n]!, 0));
  });
}

/**
 * A random valid graph: element-wise, multi-input and two-output nodes, `Shape` and shape
 * arithmetic (the absorbed kind), weights and a `Constant`, unused results, several outputs
 * (one of them sometimes a model input), and a file order that is sometimes not topological.
 */
function randomGraph(seed: number): onnxProto.onnx.IModelProto {
  const random = mulberry32(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const activations = ['x0'];
  const shapes: string[] = [];
  const nodes: onnxProto.onnx.INodeProto[] = [{ opType: 'Constant', input: [], output: ['k'], attribute: [{ name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t: { name: 'k', dims: [1], dataType: FLOAT, floatData: [1] } }] }];
  const inputs = random() < 0.4 ? ['x0', 'x1'] : ['x0'];
  if (inputs.length > 1) activations.push('x1');
  const count = 4 + Math.floor(random() * 36);
  for (let i = 0; i < count; i++) {
    const out = `t${i}`;
    const roll = random();
    if (roll < 0.15) {
      nodes.push({ opType: 'Shape', input: [pick(activations)], output: [out] });
      shapes.push(out);
    } else if (roll < 0.25 && shapes.length > 0) {
      nodes.push({ opType: 'Concat', input: [pick(shapes), pick([...shapes, 'w'])], output: [out] });
      shapes.push(out);
    } else if (roll < 0.35 && shapes.length > 0) {
      nodes.push({ opType: 'Reshape', input: [pick(activations), pick(shapes)], output: [out] });
      activations.push(out);
    } else if (roll < 0.5) {
      nodes.push({ opType: 'Split', input: [pick(activations)], output: [out, `${out}b`] });
      activations.push(out, `${out}b`);
    } else if (roll < 0.75) {
      nodes.push({ opType: 'Add', input: [pick(activations), pick([...activations, 'w', 'k'])], output: [out] });
      activations.push(out);
    } else {
      // Recent tensors more often: long chains as well as wide fans.
      nodes.push({ opType: 'Relu', input: [activations[Math.max(0, activations.length - 1 - Math.floor(random() * 3))]!], output: [out] });
      activations.push(out);
    }
  }
  const outputs = new Set([activations[activations.length - 1]!]);
  for (let i = 0; i < 2; i++) if (random() < 0.5) outputs.add(pick([...activations, ...shapes]));
  if (random() < 0.3) for (let i = nodes.length - 1; i > 1; i--) if (random() < 0.3) [nodes[i], nodes[i - 1]] = [nodes[i - 1]!, nodes[i]!];
  const io = (name: string): onnxProto.onnx.IValueInfoProto => ({ name, type: { tensorType: { elemType: FLOAT } } });
  return {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    graph: { name: `random_${seed}`, node: nodes, initializer: [{ name: 'w', dims: [1], dataType: FLOAT, floatData: [2] }], input: inputs.map(io), output: [...outputs].map(io) },
  };
}

describe('cut discovery agrees with the quadratic enumeration it replaced', () => {
  it('on 120 random graphs with branches, shape arithmetic, dead ends and several outputs', async () => {
    for (let seed = 1; seed <= 120; seed++) {
      const model = await parseModel(encode(randomGraph(seed)), `random-${seed}`);
      expectSameAsReference(model);
    }
  });

  it('on the reference models, the PP-OCR models and the control-flow and custom-domain fixtures', async () => {
    const paths = [PPOCR_DET, PPOCR_CLS, await ensureReferenceModel({ arch: 'mobilenetv2', width: 0.25, classes: 100 }), await ensureReferenceModel({ arch: 'resnet18', width: 0.25, classes: 100 })];
    for (const path of paths) expectSameAsReference(await loadModel(path));
    expectSameAsReference(await parseModel(encode(ifModel()), 'if.onnx'));
    expectSameAsReference(await parseModel(encode(customDomainModel()), 'custom.onnx'));
  });
});

/**
 * The model with its node list, topological order and producer map counting every read: the
 * analysis may look at each node a bounded number of times, not once per candidate cut.
 */
function countingModel(model: OnnxModel, limit: number): { model: OnnxModel; reads: () => number } {
  let reads = 0;
  const count = (): void => {
    if (++reads > limit) throw new Error(`cut discovery read the model's nodes more than ${limit} times: it is not linear`);
  };
  const counted = <T extends object>(target: T): T => new Proxy(target, {
    get(t, key, receiver) {
      if (typeof key === 'string' && /^\d+$/.test(key)) count();
      return Reflect.get(t, key, receiver) as unknown;
    },
  });
  const producer = new Map(model.producer);
  const producerGet = producer.get.bind(producer);
  producer.get = (key: string) => {
    count();
    return producerGet(key);
  };
  const proxy = Object.create(model, {
    nodes: { value: counted([...model.nodes]) },
    computeOrder: { value: counted([...model.computeOrder]) },
    producer: { value: producer },
  }) as OnnxModel;
  return { model: proxy, reads: () => reads };
}

describe('cut discovery on a 50k-node Identity chain (used to be quadratic)', () => {
  it('reads each node a bounded number of times and does linear work', async () => {
    const chain = 50_000;
    const model = await parseModel(identityChainModel(chain), 'chain.onnx');
    const nodes = model.nodes.length;
    expect(nodes).toBeGreaterThan(chain);
    // The quadratic enumeration read every node once per candidate (2 × nodes candidates).
    const { model: counted, reads } = countingModel(model, 20 * nodes);
    const before = cutAnalysesRun();
    const cuts = listCuts(counted);
    expect(cutAnalysesRun()).toBe(before + 1);
    expect(reads()).toBeLessThanOrEqual(20 * nodes);

    const stats = cutSweepStats(counted);
    expect(stats.candidates).toBe(2 * counted.computeOrder.length + 1);
    expect(stats.work).toBeLessThan(16 * nodes);
    // The live set at any point of a chain is one or two tensors (a residual's skip and branch).
    expect(stats.maxFrontier).toBeLessThanOrEqual(2);
    expect(stats.walkTooLong + stats.tooWide + stats.overBudget).toBe(0);

    // Every prefix of the chain is a cut; ids run from the input to the output.
    expect(cuts.length).toBeGreaterThan(chain);
    expect(cuts[0]!.tensors).toEqual(['input']);
    expect(cuts[cuts.length - 1]!.tensors).toEqual([`chain_${chain - 1}`]);
    expect(cuts[cuts.length - 1]!.headCount).toBe(counted.computeOrder.length);
    expect(cuts[cuts.length - 2]!.tensors).toEqual([`chain_${chain - 2}`]);
    const ones = cutHeadSums(counted, new Float64Array(nodes).fill(1));
    expect(Array.from(ones.subarray(cuts.length - 3))).toEqual(cuts.slice(-3).map((c) => c.headCount));
    expect(cuts[cuts.length - 2]!.headNodes.length).toBe(counted.computeOrder.length - 1);
  });
});
