/**
 * The dependency graph of an ONNX model: which node produces and which nodes read every
 * tensor, with weights told apart from activations and control-flow subgraphs folded into
 * their parent node.
 */
import { readModelFile, decodeModel, dimNumber, GraphError, sha256Hex, toNumber, dtypeOfElemType, type GraphProto, type ModelProto, type NodeProto } from './onnx.js';
import type { DType } from '../tensor/index.js';

export interface GraphNode {
  /** Position in the model file's node list. */
  readonly index: number;
  readonly name: string;
  readonly opType: string;
  readonly domain: string;
  /** Declared inputs followed by tensors read implicitly from inside subgraphs. */
  readonly reads: readonly string[];
  readonly outputs: readonly string[];
  /** Produces weights only: every input is itself a weight (a `Constant`, or folding of constants). */
  readonly isWeight: boolean;
  readonly hasSubgraph: boolean;
  readonly proto: NodeProto;
}

export interface TensorDecl {
  readonly name: string;
  readonly dtype: DType | undefined;
  readonly elemType: number | undefined;
  /** Static dims: numbers, symbolic names, or `undefined` for an unknown rank. */
  readonly dims: readonly (number | string)[] | undefined;
}

/** A loaded, validated ONNX model. Treat as opaque outside `src/graph`. */
export class OnnxModel {
  readonly nodes: readonly GraphNode[];
  readonly inputs: readonly TensorDecl[];
  readonly outputs: readonly TensorDecl[];
  readonly initializers: ReadonlyMap<string, NonNullable<GraphProto['initializer']>[number]>;
  /** Tensors that are weights: initializers, `Constant` outputs and anything folded from them. */
  readonly weights: ReadonlySet<string>;
  readonly producer: ReadonlyMap<string, number>;
  readonly consumers: ReadonlyMap<string, readonly number[]>;
  /** Nodes that compute activations, in a topological order (the file's order where valid). */
  readonly computeOrder: readonly number[];
  /** Every node, weights included, in a topological order. */
  readonly topologicalOrder: readonly number[];
  readonly declaredTypes: ReadonlyMap<string, TensorDecl>;

  constructor(
    readonly proto: ModelProto,
    readonly sha256: string,
    readonly source: string,
  ) {
    const graph = proto.graph!;
    const initializers = new Map((graph.initializer ?? []).map((t) => [t.name ?? '', t]));
    for (const sparse of graph.sparseInitializer ?? []) {
      const name = sparse.values?.name;
      if (name) initializers.set(name, sparse.values!);
    }
    this.initializers = initializers;
    this.inputs = (graph.input ?? []).filter((v) => !initializers.has(v.name ?? '')).map(declOf);
    this.outputs = (graph.output ?? []).map(declOf);
    const declared = new Map<string, TensorDecl>();
    for (const v of [...(graph.input ?? []), ...(graph.valueInfo ?? []), ...(graph.output ?? [])]) declared.set(v.name ?? '', declOf(v));
    this.declaredTypes = declared;

    const nodes: GraphNode[] = [];
    const producer = new Map<string, number>();
    const weights = new Set<string>(initializers.keys());
    (graph.node ?? []).forEach((proto, index) => {
      const declaredInputs = (proto.input ?? []).filter((name) => name !== '');
      const implicit = proto.attribute?.some((a) => a.g || (a.graphs?.length ?? 0) > 0) ? implicitReads(proto) : [];
      const reads = [...new Set([...declaredInputs, ...implicit])];
      const outputs = (proto.output ?? []).filter((name) => name !== '');
      for (const out of outputs) {
        if (producer.has(out)) throw new GraphError('GRAPH_INVALID', `${this.source}: tensor "${out}" is produced twice`);
        producer.set(out, index);
      }
      nodes.push({
        index,
        name: proto.name || `${proto.opType ?? 'node'}_${index}`,
        opType: proto.opType ?? '',
        domain: proto.domain ?? '',
        reads,
        outputs,
        isWeight: false,
        hasSubgraph: implicit.length > 0 || (proto.attribute?.some((a) => a.g || (a.graphs?.length ?? 0) > 0) ?? false),
        proto,
      });
    });
    this.producer = producer;

    const consumers = new Map<string, number[]>();
    for (const node of nodes) {
      for (const t of node.reads) {
        let list = consumers.get(t);
        if (!list) consumers.set(t, (list = []));
        list.push(node.index);
      }
    }
    this.consumers = consumers;

    const inputNames = new Set(this.inputs.map((i) => i.name));
    for (const node of nodes) {
      for (const t of node.reads) {
        if (!producer.has(t) && !initializers.has(t) && !inputNames.has(t)) {
          throw new GraphError('GRAPH_INVALID', `${this.source}: node "${node.name}" reads "${t}", which no node, input or initializer provides`);
        }
      }
    }
    for (const out of this.outputs) {
      if (!producer.has(out.name) && !inputNames.has(out.name) && !initializers.has(out.name)) {
        throw new GraphError('GRAPH_INVALID', `${this.source}: output "${out.name}" is never produced`);
      }
    }

    const order = topologicalOrder(nodes, producer, this.source);
    // Weights fold forward: a node reading only weights (and not random) yields weights. Such
    // nodes are copied into whichever partition needs them instead of crossing a cut.
    for (const index of order) {
      const node = nodes[index]!;
      const deterministic = !/^Random/.test(node.opType) && node.opType !== 'Multinomial';
      if (deterministic && !node.hasSubgraph && node.outputs.length > 0 && node.reads.every((t) => weights.has(t))) {
        nodes[index] = { ...node, isWeight: true };
        for (const out of node.outputs) weights.add(out);
      }
    }
    this.nodes = nodes;
    this.weights = weights;
    this.computeOrder = order.filter((i) => !nodes[i]!.isWeight);
    this.topologicalOrder = order;
  }

  get inputNames(): string[] {
    return this.inputs.map((i) => i.name);
  }

  get outputNames(): string[] {
    return this.outputs.map((o) => o.name);
  }

  /** Opset version of the default ONNX domain. */
  get opset(): number {
    const entry = (this.proto.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
    return toNumber(entry?.version);
  }
}

function declOf(v: { name?: string | null; type?: { tensorType?: { elemType?: number | null; shape?: { dim?: { dimValue?: number | { toNumber(): number; toString(): string } | null; dimParam?: string | null }[] | null } | null } | null } | null }): TensorDecl {
  const tensorType = v.type?.tensorType;
  const elemType = tensorType?.elemType ?? undefined;
  const dimOf = (d: { dimValue?: number | { toNumber(): number; toString(): string } | null; dimParam?: string | null }, axis: number): number | string => {
    if (d.dimParam) return d.dimParam;
    // Zero or negative: unknown, as before; a positive value must be exact.
    if (d.dimValue == null || toNumber(d.dimValue) <= 0) return `?${axis}`;
    return dimNumber(d.dimValue, `dimension ${axis} of "${v.name ?? ''}"`);
  };
  const dims = tensorType?.shape ? (tensorType.shape.dim ?? []).map(dimOf) : undefined;
  return { name: v.name ?? '', dtype: dtypeOfElemType(elemType), elemType: elemType ?? undefined, dims };
}

/** Tensors a subgraph reads from enclosing scopes without declaring them. */
function implicitReads(node: NodeProto): string[] {
  const found = new Set<string>();
  const visit = (graph: GraphProto, outerDefined: ReadonlySet<string>): void => {
    const defined = new Set<string>([
      ...(graph.input ?? []).map((i) => i.name ?? ''),
      ...(graph.initializer ?? []).map((i) => i.name ?? ''),
      ...(graph.sparseInitializer ?? []).map((i) => i.values?.name ?? ''),
    ]);
    for (const inner of graph.node ?? []) {
      for (const t of inner.input ?? []) if (t && !defined.has(t) && !outerDefined.has(t)) found.add(t);
      for (const attr of inner.attribute ?? []) {
        const scope = new Set([...outerDefined, ...defined]);
        if (attr.g) visit(attr.g, scope);
        for (const g of attr.graphs ?? []) visit(g, scope);
      }
      for (const t of inner.output ?? []) if (t) defined.add(t);
    }
    for (const out of graph.output ?? []) if (out.name && !defined.has(out.name) && !outerDefined.has(out.name)) found.add(out.name);
  };
  for (const attr of node.attribute ?? []) {
    if (attr.g) visit(attr.g, new Set());
    for (const g of attr.graphs ?? []) visit(g, new Set());
  }
  return [...found];
}

function topologicalOrder(nodes: readonly GraphNode[], producer: ReadonlyMap<string, number>, source: string): number[] {
  const pending = new Array<number>(nodes.length).fill(0);
  const dependents: number[][] = nodes.map(() => []);
  for (const node of nodes) {
    const deps = new Set<number>();
    for (const t of node.reads) {
      const p = producer.get(t);
      if (p !== undefined && p !== node.index) deps.add(p);
      if (p === node.index) throw new GraphError('GRAPH_INVALID', `${source}: node "${node.name}" reads its own output "${t}"`);
    }
    pending[node.index] = deps.size;
    for (const d of deps) dependents[d]!.push(node.index);
  }
  // Kahn's algorithm, always taking the lowest file index that is ready, so a file that is
  // already sorted (as the ONNX spec asks) keeps its order and cut ids stay stable.
  const ready: number[] = [];
  for (let i = 0; i < nodes.length; i++) if (pending[i] === 0) ready.push(i);
  const order: number[] = [];
  while (ready.length > 0) {
    let best = 0;
    for (let i = 1; i < ready.length; i++) if (ready[i]! < ready[best]!) best = i;
    const index = ready.splice(best, 1)[0]!;
    order.push(index);
    for (const dep of dependents[index]!) if (--pending[dep]! === 0) ready.push(dep);
  }
  if (order.length !== nodes.length) throw new GraphError('GRAPH_INVALID', `${source}: the graph has a cycle`);
  return order;
}

/** Loads a model from disk, including external data files beside it. */
export async function loadModel(path: string): Promise<OnnxModel> {
  const { model, bytes } = await readModelFile(path);
  return new OnnxModel(model, sha256Hex(bytes), path);
}

/** Parses a model held in memory. Models with external data need {@link loadModel}. */
export async function parseModel(bytes: Uint8Array, source = 'model'): Promise<OnnxModel> {
  const model = await decodeModel(bytes, source);
  return new OnnxModel(model, sha256Hex(bytes), source);
}
