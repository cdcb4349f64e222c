/**
 * A partition's declared inputs and outputs, and the checks a request's tensors pass before
 * they reach onnxruntime: all inputs there, no others, dtypes and static dims as declared.
 */
import * as ort from 'onnxruntime-node';
import { isDType, type DType, type Tensor, type TensorMap } from '../src/tensor/index.js';
import type { ValueInfo } from '../src/runtime/index.js';
import { CloudError, badRequest } from './errors.js';

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: (number | string)[];
}

const ORT_TYPES: Record<string, DType> = {
  float32: 'float32', float16: 'float16', float64: 'float64', int64: 'int64', int32: 'int32', int16: 'int16', int8: 'int8',
  uint8: 'uint8', uint16: 'uint16', uint32: 'uint32', uint64: 'uint64', bool: 'bool',
};

export function tensorInfo(meta: readonly (ort.InferenceSession.ValueMetadata | ValueInfo)[]): TensorInfo[] {
  return meta.map((m) => {
    if (!m.isTensor) return { name: m.name, dtype: 'float32', shape: [] };
    const dtype = ORT_TYPES[m.type] ?? 'float32';
    return { name: m.name, dtype, shape: m.shape.map((d) => (typeof d === 'number' ? d : String(d))) };
  });
}

export function toOrt(tensor: Tensor): ort.Tensor {
  return new ort.Tensor(tensor.dtype, tensor.data as ort.Tensor.DataType, tensor.dims as number[]);
}

export function fromOrt(t: ort.Tensor): Tensor {
  if (!isDType(t.type)) throw new CloudError(500, 'CLOUD_OUTPUT_DTYPE', `the model produced an unsupported output type ${t.type}`);
  return { dtype: t.type, dims: [...t.dims], data: t.data as Tensor['data'] };
}

/**
 * Checks a request's tensors against the partition's declared inputs (all there, no others,
 * dtypes and static dims) and returns them in the inputs' order, each as `as` makes it.
 */
export function pickFeeds<T>(feeds: TensorMap, inputs: readonly TensorInfo[], label: string, as: (t: Tensor) => T): Record<string, T> {
  const picked: Record<string, T> = {};
  for (const info of inputs) {
    const t = feeds[info.name];
    if (!t) throw badRequest('CLOUD_INPUT_MISSING', `${label} needs input "${info.name}" (inputs: ${inputs.map((i) => i.name).join(', ')})`);
    if (t.dtype !== info.dtype) throw badRequest('CLOUD_INPUT_DTYPE', `${label}: input "${info.name}" must be ${info.dtype}, got ${t.dtype}`);
    // An empty declared shape also means "unknown" (tails cut from shape-less graphs); onnxruntime checks those.
    if (info.shape.length > 0 && (info.shape.length !== t.dims.length || info.shape.some((d, i) => typeof d === 'number' && d !== t.dims[i]))) {
      throw badRequest('CLOUD_INPUT_SHAPE', `${label}: input "${info.name}" has shape [${t.dims.join(', ')}] but the model expects [${info.shape.join(', ')}]`);
    }
    picked[info.name] = as(t);
  }
  const extra = Object.keys(feeds).filter((n) => !inputs.some((i) => i.name === n));
  if (extra.length > 0) throw badRequest('CLOUD_INPUT_UNKNOWN', `${label} has no input named ${extra.map((e) => `"${e}"`).join(', ')}`);
  return picked;
}
