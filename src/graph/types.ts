/**
 * Element types of every tensor, inferred statically. A partition's boundary tensors must be
 * declared with their type even when no shapes are known (a tail extracted in the cloud
 * service), so this pass needs no input values.
 */
import type { OnnxModel } from './model.js';
import { attribute, onnx, toNumber, intAttr } from './onnx.js';

const DataType = onnx.TensorProto.DataType;

const ALWAYS_INT64 = new Set(['Shape', 'Size', 'NonZero', 'ArgMax', 'ArgMin', 'NonMaxSuppression']);
const ALWAYS_BOOL = new Set(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'Not', 'And', 'Or', 'Xor', 'IsNaN', 'IsInf']);

/** Maps every tensor name to its ONNX element type where it can be determined. */
export function inferElemTypes(model: OnnxModel): Map<string, number> {
  const types = new Map<string, number>();
  for (const [name, decl] of model.declaredTypes) if (decl.elemType !== undefined && decl.elemType !== 0) types.set(name, decl.elemType);
  for (const [name, t] of model.initializers) if (t.dataType) types.set(name, t.dataType);

  const ordered = [...model.nodes].sort((a, b) => a.index - b.index);
  const order = [...model.nodes.filter((n) => n.isWeight).map((n) => n.index), ...model.computeOrder];
  const seen = new Set(order);
  for (const n of ordered) if (!seen.has(n.index)) order.push(n.index);

  for (const index of order) {
    const node = model.nodes[index]!;
    const proto = node.proto;
    const inputs = (proto.input ?? []);
    const typeOf = (i: number): number | undefined => {
      const name = inputs[i];
      return name ? types.get(name) : undefined;
    };
    node.outputs.forEach((out, position) => {
      if (types.has(out)) return;
      const t = outputType(node.opType, node.domain, position, proto, typeOf, inputs.length);
      if (t !== undefined) types.set(out, t);
    });
  }
  return types;
}

function outputType(
  op: string,
  domain: string,
  position: number,
  proto: OnnxModel['nodes'][number]['proto'],
  typeOf: (i: number) => number | undefined,
  inputCount: number,
): number | undefined {
  if (domain !== '' && domain !== 'ai.onnx') return typeOf(0);
  if (ALWAYS_INT64.has(op)) return DataType.INT64;
  if (ALWAYS_BOOL.has(op)) return DataType.BOOL;
  switch (op) {
    case 'Constant': {
      const value = attribute(proto, 'value');
      if (value?.t?.dataType) return value.t.dataType;
      if (attribute(proto, 'value_int') || attribute(proto, 'value_ints')) return DataType.INT64;
      if (attribute(proto, 'value_float') || attribute(proto, 'value_floats')) return DataType.FLOAT;
      return undefined;
    }
    case 'Cast':
      return intAttr(proto, 'to', DataType.FLOAT);
    case 'CastLike':
      return typeOf(1);
    case 'ConstantOfShape': {
      const value = attribute(proto, 'value');
      return value?.t?.dataType ?? DataType.FLOAT;
    }
    case 'EyeLike':
    case 'RandomNormalLike':
    case 'RandomUniformLike': {
      const dtype = attribute(proto, 'dtype');
      return dtype ? toNumber(dtype.i) : typeOf(0);
    }
    case 'RandomNormal':
    case 'RandomUniform':
      return intAttr(proto, 'dtype', DataType.FLOAT);
    case 'QuantizeLinear':
    case 'DynamicQuantizeLinear':
      if (op === 'DynamicQuantizeLinear') return position === 0 ? DataType.UINT8 : position === 1 ? DataType.FLOAT : DataType.UINT8;
      return inputCount > 2 ? (typeOf(2) ?? DataType.UINT8) : DataType.UINT8;
    case 'DequantizeLinear':
      return typeOf(1) ?? DataType.FLOAT;
    case 'Where':
      return typeOf(1);
    case 'TopK':
    case 'MaxPool':
      return position === 1 ? DataType.INT64 : typeOf(0);
    case 'Dropout':
      return position === 1 ? DataType.BOOL : typeOf(0);
    case 'Unique':
      return position === 0 ? typeOf(0) : DataType.INT64;
    case 'If':
    case 'Loop':
    case 'Scan': {
      const branch = attribute(proto, op === 'If' ? 'then_branch' : 'body')?.g;
      // Loop's body outputs start with the condition.
      const offset = op === 'Loop' ? 1 : 0;
      return branch?.output?.[position + offset]?.type?.tensorType?.elemType ?? undefined;
    }
    default:
      return typeOf(0);
  }
}
