/**
 * Open Inference Protocol v2 (KServe, Triton) bodies: JSON, and the binary tensor
 * extension where a JSON header of `Inference-Header-Content-Length` bytes is followed by
 * the raw little-endian tensor data of every entry that declares `binary_data_size`.
 */
import { z } from 'zod';
import { ValidationError } from '../../errors/index.js';
import { BYTES_PER_ELEMENT, bytesOf, setTensor, viewAs, type DType, type Tensor, type TensorMap } from '../../tensor/index.js';
import { flatten, nestedShape, tensorFromValues, valuesOf } from './json-tensors.js';
import { oipBytesElement, oipBytesSingle, OIP_PIPELINE_PARAMETER, type EncodedImage } from './image.js';

export const OIP_HEADER_LENGTH = 'inference-header-content-length';

/**
 * Tandem's extension route for out-of-band link probes: the body is read whole and dropped,
 * and the answer is an empty 204, so a probe's time is the link's alone.
 */
export const LINK_PROBE_PATH = '/v2/tandem/link-probe';

/** The largest link probe body the service reads (larger ones get 413). */
export const LINK_PROBE_MAX_BYTES = 1024 * 1024;

const TO_OIP: Record<DType, string> = {
  float32: 'FP32', float16: 'FP16', float64: 'FP64', int64: 'INT64', int32: 'INT32', int16: 'INT16', int8: 'INT8',
  uint8: 'UINT8', uint16: 'UINT16', uint32: 'UINT32', uint64: 'UINT64', bool: 'BOOL',
};
// A Map: the datatype is the client's string, and an object would answer "constructor".
const FROM_OIP = new Map<string, DType>(Object.entries(TO_OIP).map(([k, v]) => [v, k as DType]));

export function oipDatatype(dtype: DType): string {
  return TO_OIP[dtype];
}

const tensorEntry = z.object({
  name: z.string().min(1),
  shape: z.array(z.number().int().nonnegative()).max(16),
  datatype: z.string(),
  parameters: z.record(z.string(), z.unknown()).optional(),
  data: z.unknown().optional(),
});
const requestSchema = z.object({
  id: z.string().optional(),
  parameters: z.record(z.string(), z.unknown()).optional(),
  inputs: z.array(tensorEntry).min(1),
  outputs: z.array(z.object({ name: z.string(), parameters: z.record(z.string(), z.unknown()).optional() })).optional(),
});
const responseSchema = z.object({
  model_name: z.string().optional(),
  model_version: z.string().optional(),
  id: z.string().optional(),
  parameters: z.record(z.string(), z.unknown()).optional(),
  outputs: z.array(tensorEntry),
});

export interface OipLimits {
  maxElements: number;
}

export interface OipDecoded {
  id?: string;
  parameters: Record<string, unknown>;
  tensors: TensorMap;
  /** Whether the caller asked for binary outputs (any output with `binary_data`, or `binary_data_output`). */
  binaryOutputs: boolean;
}

export interface OipEncoded {
  body: Uint8Array;
  /** Set when the body uses the binary extension. */
  headerLength?: number;
  contentType: string;
}

function parseEntries(entries: z.infer<typeof tensorEntry>[], binary: Uint8Array, limits: OipLimits, what: string): TensorMap {
  const out: TensorMap = {};
  let offset = 0;
  for (const e of entries) {
    // A second entry of the same name would silently replace the first.
    if (Object.hasOwn(out, e.name)) throw new ValidationError('OIP_DUPLICATE', `${what} "${e.name}" appears twice`);
    const dtype = FROM_OIP.get(e.datatype);
    if (!dtype) throw new ValidationError('OIP_DATATYPE', `${what} "${e.name}": datatype ${e.datatype} is not supported (use one of ${[...FROM_OIP.keys()].join(', ')})`);
    let count = 1;
    for (const d of e.shape) count *= d;
    if (count > limits.maxElements) throw new ValidationError('OIP_TOO_LARGE', `${what} "${e.name}": ${count} elements exceed the limit of ${limits.maxElements}`);
    const size = e.parameters?.['binary_data_size'];
    if (size !== undefined) {
      if (typeof size !== 'number' || !Number.isInteger(size) || size < 0) throw new ValidationError('OIP_BINARY', `${what} "${e.name}": binary_data_size must be a non-negative integer`);
      if (size !== count * BYTES_PER_ELEMENT[dtype]) {
        throw new ValidationError('OIP_DIMS_MISMATCH', `${what} "${e.name}": shape [${e.shape.join(', ')}] of ${e.datatype} needs ${count * BYTES_PER_ELEMENT[dtype]} bytes but binary_data_size is ${size}`);
      }
      if (offset + size > binary.byteLength) throw new ValidationError('OIP_TRUNCATED', `${what} "${e.name}": the binary section ends before its ${size} bytes`);
      setTensor(out, e.name, { dtype, dims: e.shape, data: viewAs(dtype, binary.subarray(offset, offset + size)) } as Tensor);
      offset += size;
    } else {
      if (e.data === undefined) throw new ValidationError('OIP_DATA', `${what} "${e.name}" has neither data nor binary_data_size`);
      const values = nestedShape(e.data).length > 1 ? flatten(e.data, e.shape, `${what} "${e.name}"`) : e.data;
      if (!Array.isArray(values)) throw new ValidationError('OIP_DATA', `${what} "${e.name}": data must be an array`);
      setTensor(out, e.name, tensorFromValues(dtype, e.shape, values, `${what} "${e.name}"`));
    }
  }
  if (offset !== binary.byteLength) throw new ValidationError('OIP_BINARY', `${binary.byteLength - offset} binary bytes are not claimed by any tensor`);
  return out;
}

function splitBody(body: Uint8Array, headerLength: number | undefined): { json: unknown; binary: Uint8Array } {
  const length = headerLength ?? body.byteLength;
  if (!Number.isInteger(length) || length < 0 || length > body.byteLength) {
    throw new ValidationError('OIP_BINARY', `Inference-Header-Content-Length ${String(headerLength)} is outside the ${body.byteLength}-byte body`);
  }
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(body.buffer, body.byteOffset, length).toString('utf8'));
  } catch (error) {
    throw new ValidationError('OIP_JSON', `the request is not valid JSON: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  return { json, binary: body.subarray(length) };
}

function issues(error: z.ZodError): string {
  return error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}

/** Parses an inference request (JSON or binary extension). */
export function decodeOipRequest(body: Uint8Array, headerLength: number | undefined, limits: OipLimits): OipDecoded {
  const { json, binary } = splitBody(body, headerLength);
  const parsed = requestSchema.safeParse(json);
  if (!parsed.success) throw new ValidationError('OIP_REQUEST', `not an OIP v2 inference request: ${issues(parsed.error)}`);
  const r = parsed.data;
  const binaryOutputs = r.parameters?.['binary_data_output'] === true || (r.outputs ?? []).some((o) => o.parameters?.['binary_data'] === true);
  return { ...(r.id !== undefined ? { id: r.id } : {}), parameters: r.parameters ?? {}, tensors: parseEntries(r.inputs, binary, limits, 'input'), binaryOutputs };
}

function encodeEntries(tensors: TensorMap, binary: boolean): { entries: Record<string, unknown>[]; chunks: Uint8Array[] } {
  const entries: Record<string, unknown>[] = [];
  const chunks: Uint8Array[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    const base = { name, shape: [...t.dims], datatype: TO_OIP[t.dtype] };
    if (binary) {
      const bytes = bytesOf(t.data);
      entries.push({ ...base, parameters: { binary_data_size: bytes.byteLength } });
      chunks.push(bytes);
    } else {
      entries.push({ ...base, data: valuesOf(t) });
    }
  }
  return { entries, chunks };
}

function assemble(header: Record<string, unknown>, chunks: Uint8Array[], binary: boolean): OipEncoded {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  if (!binary) return { body: json, contentType: 'application/json' };
  return { body: Buffer.concat([json, ...chunks]), headerLength: json.byteLength, contentType: 'application/octet-stream' };
}

export function encodeOipRequest(tensors: TensorMap, options: { binary: boolean; id?: string; parameters?: Record<string, unknown> }): OipEncoded {
  const { entries, chunks } = encodeEntries(tensors, options.binary);
  const header: Record<string, unknown> = { inputs: entries };
  if (options.id !== undefined) header['id'] = options.id;
  const parameters = { ...(options.parameters ?? {}), ...(options.binary ? { binary_data_output: true } : {}) };
  if (Object.keys(parameters).length > 0) header['parameters'] = parameters;
  return assemble(header, chunks, options.binary);
}

export function encodeOipResponse(model: string, tensors: TensorMap, options: { binary: boolean; id?: string; version?: string; parameters?: Record<string, unknown> }): OipEncoded {
  const { entries, chunks } = encodeEntries(tensors, options.binary);
  const header: Record<string, unknown> = { model_name: model, outputs: entries };
  if (options.version !== undefined) header['model_version'] = options.version;
  if (options.id !== undefined) header['id'] = options.id;
  if (options.parameters) header['parameters'] = options.parameters;
  return assemble(header, chunks, options.binary);
}

export function decodeOipResponse(body: Uint8Array, headerLength: number | undefined, limits: OipLimits): { tensors: TensorMap; parameters: Record<string, unknown> } {
  const { json, binary } = splitBody(body, headerLength);
  const parsed = responseSchema.safeParse(json);
  if (!parsed.success) throw new ValidationError('OIP_RESPONSE', `not an OIP v2 inference response: ${issues(parsed.error)}`);
  return { tensors: parseEntries(parsed.data.outputs, binary, limits, 'output'), parameters: parsed.data.parameters ?? {} };
}

/**
 * An OIP binary request carrying one encoded image (encoded offload): a BYTES tensor of one
 * element, its `content_type` in the input's parameters and the pipeline fingerprint in the
 * request's (`tandem_pipeline`).
 */
export function encodeOipImageRequest(image: EncodedImage, options: { id?: string } = {}): OipEncoded {
  const chunks = oipBytesElement(image.bytes);
  const size = chunks.reduce((n, c) => n + c.byteLength, 0);
  const header: Record<string, unknown> = {
    inputs: [{ name: image.input, shape: [1], datatype: 'BYTES', parameters: { binary_data_size: size, content_type: image.contentType } }],
    parameters: { binary_data_output: true, [OIP_PIPELINE_PARAMETER]: image.pipelineSha256 },
  };
  if (options.id !== undefined) header['id'] = options.id;
  return assemble(header, chunks, true);
}

/** An encoded image an OIP request carries (see {@link encodeOipImageRequest}). */
export interface OipImageRequest {
  input: string;
  bytes: Uint8Array;
  /** The input's `content_type` parameter, if given. */
  contentType?: string;
  /** The request's `tandem_pipeline` parameter, if given. */
  pipeline?: string;
  id?: string;
  cut?: string;
  binaryOutputs: boolean;
}

/**
 * The image of an OIP binary request whose input is a BYTES tensor; undefined for any other
 * request (left to {@link decodeOipRequest}). A header that does not mention BYTES is not parsed.
 */
export function decodeOipImageRequest(body: Uint8Array, headerLength: number | undefined): OipImageRequest | undefined {
  if (headerLength === undefined || !Number.isInteger(headerLength) || headerLength < 0 || headerLength > body.byteLength) return undefined;
  if (Buffer.from(body.buffer, body.byteOffset, headerLength).indexOf('"BYTES"') < 0) return undefined;
  const { json, binary } = splitBody(body, headerLength);
  const parsed = requestSchema.safeParse(json);
  if (!parsed.success) throw new ValidationError('OIP_REQUEST', `not an OIP v2 inference request: ${issues(parsed.error)}`);
  const r = parsed.data;
  if (!r.inputs.some((e) => e.datatype === 'BYTES')) return undefined;
  const e = r.inputs[0];
  if (r.inputs.length !== 1 || !e) throw new ValidationError('OIP_DATATYPE', 'a BYTES input (an encoded image) must be the request\'s only input');
  if (e.shape.reduce((a, b) => a * b, 1) !== 1) throw new ValidationError('OIP_DATATYPE', `input "${e.name}": a BYTES input holds one encoded image (shape [1]), got [${e.shape.join(', ')}]`);
  if (e.parameters?.['binary_data_size'] !== binary.byteLength) throw new ValidationError('OIP_BINARY', `input "${e.name}": binary_data_size must be the ${binary.byteLength} bytes after the header`);
  const contentType = e.parameters['content_type'];
  const pipeline = r.parameters?.[OIP_PIPELINE_PARAMETER];
  const cut = r.parameters?.['cut'];
  return {
    input: e.name,
    bytes: oipBytesSingle(binary, `input "${e.name}"`),
    ...(typeof contentType === 'string' ? { contentType } : {}),
    ...(typeof pipeline === 'string' ? { pipeline } : {}),
    ...(r.id !== undefined ? { id: r.id } : {}),
    ...(typeof cut === 'string' ? { cut } : {}),
    binaryOutputs: r.parameters?.['binary_data_output'] === true || (r.outputs ?? []).some((o) => o.parameters?.['binary_data'] === true),
  };
}
