/**
 * A reference model with a chain of `Identity` nodes after its output: as many nodes as a
 * transformer export, with the cut structure of a chain (every prefix is a distinct cut), the
 * shape that made cut discovery quadratic (issue #31). For tests and bench/inspect-scale.ts.
 */
import onnxProto from 'onnx-proto';
import { generateReferenceModel, type ReferenceModelOptions } from './generate.js';

const { onnx } = onnxProto;

/** The reference model (small MobileNetV2 by default) followed by `identities` Identity nodes. */
export function identityChainModel(identities: number, reference: Partial<ReferenceModelOptions> = {}): Uint8Array {
  const model = onnx.ModelProto.decode(generateReferenceModel({ arch: 'mobilenetv2', width: 0.25, classes: 100, ...reference }));
  const graph = model.graph!;
  const output = graph.output![0]!;
  let last = output.name!;
  for (let i = 0; i < identities; i++) {
    const next = `chain_${i}`;
    graph.node!.push(onnx.NodeProto.create({ opType: 'Identity', input: [last], output: [next], name: `identity_${i}` }));
    last = next;
  }
  output.name = last;
  return onnx.ModelProto.encode(model).finish();
}
