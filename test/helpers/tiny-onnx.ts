/** Builds tiny ONNX graphs for tests that need a model the PP-OCR files do not provide. */
import { onnx } from 'onnx-proto';

/** y = a·x + b elementwise, for a float32 input `input` of shape `dims`, output `output`. */
export function affineModel(input: string, output: string, dims: number[], a: number, b: number): Uint8Array {
  const valueInfo = (name: string) => ({
    name,
    type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: dims.map((d) => ({ dimValue: d })) } } },
  });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    producerName: 'tandem-test',
    graph: {
      name: 'affine',
      node: [
        { opType: 'Mul', input: [input, 'a'], output: ['ax'], name: 'mul' },
        { opType: 'Add', input: ['ax', 'b'], output: [output], name: 'add' },
      ],
      initializer: [
        { name: 'a', dataType: onnx.TensorProto.DataType.FLOAT, dims: [], floatData: [a] },
        { name: 'b', dataType: onnx.TensorProto.DataType.FLOAT, dims: [], floatData: [b] },
      ],
      input: [valueInfo(input)],
      output: [valueInfo(output)],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}
