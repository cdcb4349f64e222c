/**
 * Head and tail extraction. Each side keeps exactly the nodes and weights it needs, keeps
 * tensor names, and declares its boundary tensors with their types (and shapes when known),
 * so that each file loads alone in onnxruntime.
 */
import type { onnx as OnnxNs } from 'onnx-proto';
import type { OnnxModel } from './model.js';
import { nodesNeeded, type CutStructure } from './cuts.js';
import { encodeModel, sha256Hex, valueInfo, type ValueInfoProto } from './onnx.js';
/** What a boundary tensor is declared as: dtype and dims, symbolic names for dynamic dims. */
export interface BoundaryShape {
  readonly dtype: string;
  readonly dims: readonly (number | string)[];
}
import { inferElemTypes } from './types.js';
import { elemTypeOfDtype } from './onnx.js';
import { isDType } from '../tensor/index.js';

/** The `partition.json` written beside `head.onnx` and `tail.onnx`. */
export interface PartitionManifest {
  cut: { id: string; tensors: string[] };
  head: { inputs: string[]; outputs: string[] };
  tail: { inputs: string[]; outputs: string[] };
  sha256: { head: string; tail: string };
  source: { sha256: string };
}

export interface Partition {
  head: Uint8Array;
  tail: Uint8Array;
  manifest: PartitionManifest;
}

interface SideSpec {
  role: 'head' | 'tail';
  inputs: string[];
  outputs: string[];
}

export function extractPartition(model: OnnxModel, cut: CutStructure, shapes?: ReadonlyMap<string, BoundaryShape>): Partition {
  const elemTypes = inferElemTypes(model);
  const inputNames = new Set(model.inputNames);
  const cutTensors = [...cut.tensors];

  const headNeeded = nodesNeeded(model, cutTensors, inputNames);
  const headReads = readsOf(model, headNeeded);
  const headInputs = model.inputNames.filter((name) => headReads.has(name) || cutTensors.includes(name));
  const head = buildSide(model, { role: 'head', inputs: headInputs, outputs: cutTensors }, headNeeded, elemTypes, shapes, cut.id);

  const tailNeeded = nodesNeeded(model, model.outputNames, new Set(cutTensors));
  const tail = buildSide(model, { role: 'tail', inputs: cutTensors, outputs: model.outputNames }, tailNeeded, elemTypes, shapes, cut.id);

  return {
    head,
    tail,
    manifest: {
      cut: { id: cut.id, tensors: cutTensors },
      head: { inputs: headInputs, outputs: cutTensors },
      tail: { inputs: cutTensors, outputs: model.outputNames },
      sha256: { head: sha256Hex(head), tail: sha256Hex(tail) },
      source: { sha256: model.sha256 },
    },
  };
}

function readsOf(model: OnnxModel, marked: Uint8Array): Set<string> {
  const reads = new Set<string>();
  marked.forEach((flag, index) => {
    if (flag === 1) for (const t of model.nodes[index]!.reads) reads.add(t);
  });
  return reads;
}

function buildSide(
  model: OnnxModel,
  side: SideSpec,
  needed: Uint8Array,
  elemTypes: ReadonlyMap<string, number>,
  shapes: ReadonlyMap<string, BoundaryShape> | undefined,
  cutId: string,
): Uint8Array {
  const graph = model.proto.graph!;
  const nodes = model.topologicalOrder.filter((i) => needed[i] === 1).map((i) => model.nodes[i]!.proto);
  const reads = readsOf(model, needed);
  for (const out of side.outputs) reads.add(out);

  const declare = (name: string): ValueInfoProto => {
    const original = model.declaredTypes.get(name);
    const measured = shapes?.get(name);
    const elemType = measured && isDType(measured.dtype) ? elemTypeOfDtype(measured.dtype) : elemTypes.get(name) ?? original?.elemType;
    const dims = measured ? measured.dims : original?.dims?.map((d) => (typeof d === 'string' && d.startsWith('?') ? `${name}_dim${d.slice(1)}` : d));
    return valueInfo(name, elemType, dims);
  };

  const produced = new Set<string>();
  for (const proto of nodes) for (const out of proto.output ?? []) if (out) produced.add(out);
  const boundary = new Set([...side.inputs, ...side.outputs]);
  const sideGraph: OnnxNs.IGraphProto = {
    name: `${graph.name || 'graph'}_${side.role}`,
    node: nodes,
    input: side.inputs.map(declare),
    output: side.outputs.map(declare),
    initializer: (graph.initializer ?? []).filter((t) => reads.has(t.name ?? '')),
    sparseInitializer: (graph.sparseInitializer ?? []).filter((t) => reads.has(t.values?.name ?? '')),
    valueInfo: (graph.valueInfo ?? []).filter((v) => produced.has(v.name ?? '') && !boundary.has(v.name ?? '')),
  };
  if (graph.docString) sideGraph.docString = graph.docString;
  const metadata = (model.proto.metadataProps ?? []).filter((p) => !p.key?.startsWith('tandem.'));
  metadata.push({ key: 'tandem.partition', value: side.role }, { key: 'tandem.cut', value: cutId }, { key: 'tandem.source_sha256', value: model.sha256 });
  return encodeModel({ ...model.proto, graph: sideGraph, metadataProps: metadata });
}
