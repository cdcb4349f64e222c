/**
 * Reading and writing ONNX protobuf. Everything that touches the generated protobuf classes
 * lives here, so the rest of the graph toolkit works on plain, validated structures.
 */
import { readFile, realpath, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, relative, sep } from 'node:path';
import onnxProto from 'onnx-proto';
import { TandemError, ValidationError } from '../errors/index.js';
import type { DType } from '../tensor/index.js';

export const { onnx } = onnxProto;
export type ModelProto = onnxProto.onnx.ModelProto;
export type GraphProto = onnxProto.onnx.IGraphProto;
export type NodeProto = onnxProto.onnx.INodeProto;
export type TensorProto = onnxProto.onnx.ITensorProto;
export type ValueInfoProto = onnxProto.onnx.IValueInfoProto;
export type AttributeProto = onnxProto.onnx.IAttributeProto;

/** Errors from reading, analysing and partitioning models. */
export class GraphError extends TandemError {}

const DataType = onnx.TensorProto.DataType;

const DTYPE_BY_ELEM_TYPE = new Map<number, DType>([
  [DataType.FLOAT, 'float32'],
  [DataType.FLOAT16, 'float16'],
  [DataType.DOUBLE, 'float64'],
  [DataType.INT64, 'int64'],
  [DataType.INT32, 'int32'],
  [DataType.INT16, 'int16'],
  [DataType.INT8, 'int8'],
  [DataType.UINT8, 'uint8'],
  [DataType.UINT16, 'uint16'],
  [DataType.UINT32, 'uint32'],
  [DataType.UINT64, 'uint64'],
  [DataType.BOOL, 'bool'],
]);
const ELEM_TYPE_BY_DTYPE = new Map<DType, number>([...DTYPE_BY_ELEM_TYPE].map(([k, v]) => [v, k]));

/** Tandem's dtype name for an ONNX element type, or `undefined` for types we do not carry (string, complex, bfloat16). */
export function dtypeOfElemType(elemType: number | null | undefined): DType | undefined {
  return elemType == null ? undefined : DTYPE_BY_ELEM_TYPE.get(elemType);
}

export function elemTypeOfDtype(dtype: DType): number {
  const value = ELEM_TYPE_BY_DTYPE.get(dtype);
  if (value === undefined) throw new GraphError('GRAPH_DTYPE', `no ONNX element type for ${dtype}`);
  return value;
}

/** Human name of an element type, including the ones Tandem does not carry. */
export function elemTypeName(elemType: number | null | undefined): string {
  const known = dtypeOfElemType(elemType);
  if (known) return known;
  const name = elemType == null ? undefined : (DataType as unknown as Record<number, string>)[elemType];
  return (name ?? 'undefined').toLowerCase();
}

/** protobufjs yields int64 fields as Long objects or numbers depending on the value. */
export function toNumber(value: number | { toNumber(): number } | null | undefined): number {
  if (value == null) return 0;
  return typeof value === 'number' ? value : value.toNumber();
}

/**
 * A tensor dimension as a number, refused when it lies past 2^53 - 1: beyond that a JS number
 * rounds it, and a rounded 2^63 - 1 writes back as -2^63 (protobufjs wraps it). Sizes that big
 * cannot exist in memory anyway; refusing keeps every printed and written size exact.
 */
export function dimNumber(value: number | { toNumber(): number; toString(): string } | null | undefined, what: string): number {
  const n = toNumber(value);
  if (!Number.isSafeInteger(n)) throw dimTooLarge(what, value == null ? '0' : String(value));
  return n;
}

/** `GRAPH_SIZE_TOO_LARGE`: a dimension or size Tandem cannot count exactly (past 2^53 - 1). */
export function dimTooLarge(what: string, value: string | number | bigint): GraphError {
  const text = typeof value === 'number' && !Number.isSafeInteger(value) ? `about ${value}` : String(value);
  return new GraphError('GRAPH_SIZE_TOO_LARGE', `${what} is ${text}, past 2^53 - 1 (${Number.MAX_SAFE_INTEGER}): Tandem refuses sizes it cannot count exactly`, { details: { what, value: String(value) } });
}

export { sha256Hex } from '../util/sha256.js';

/**
 * Decodes ONNX bytes. Weights kept in external data files are read from `baseDir`
 * (the model file's folder) and inlined, so everything downstream sees self-contained tensors.
 * `externalFiles`, when given, receives each external data file read, by its real path: the
 * bytes that were inlined, for a caller that checks them.
 */
export async function decodeModel(bytes: Uint8Array, source: string, baseDir?: string, externalFiles?: Map<string, Buffer>): Promise<ModelProto> {
  let model: ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // protobufjs decodes nested messages recursively: only absurd nesting exhausts the stack.
    if (error instanceof RangeError && /call stack/i.test(message)) throw nestingTooDeep(source, error);
    if (/index out of range/i.test(message)) {
      throw new GraphError('GRAPH_TRUNCATED', `${source} is truncated: the ONNX protobuf ends before its data does`, { cause: error });
    }
    throw new GraphError('GRAPH_NOT_ONNX', `${source} is not an ONNX model (${message})`, { cause: error });
  }
  const graph = model.graph;
  if (!graph || toNumber(model.irVersion) <= 0 || (graph.node?.length ?? 0) === 0 || (graph.output?.length ?? 0) === 0) {
    throw new GraphError('GRAPH_NOT_ONNX', `${source} is not an ONNX model: it has no graph with nodes and outputs`);
  }
  checkSubgraphDepth(model, source);
  await inlineExternalData(model, source, baseDir, externalFiles);
  return model;
}

export async function readModelFile(path: string): Promise<{ model: ModelProto; bytes: Uint8Array }> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new GraphError(
      code === 'ENOENT' ? 'GRAPH_FILE_NOT_FOUND' : 'GRAPH_FILE_UNREADABLE',
      code === 'ENOENT' ? `model file not found: ${path}` : `cannot read model file ${path}: ${(error as Error).message}`,
      { cause: error, details: { path } },
    );
  }
  const model = await decodeModel(bytes, path, dirname(path));
  return { model, bytes };
}

/**
 * How deep control-flow subgraphs (an If's branches, a Loop's body) may nest: as deep as
 * onnxruntime loads (its protobuf parser stops at 100 nested messages, three per level).
 * Exported models nest a few levels; a file nesting thousands would exhaust the stack of every
 * recursive walk and fail with no code.
 */
export const MAX_SUBGRAPH_DEPTH = 31;

function subgraphsOf(graph: GraphProto): GraphProto[] {
  const found: GraphProto[] = [];
  for (const node of graph.node ?? []) {
    for (const attr of node.attribute ?? []) {
      if (attr.g) found.push(attr.g);
      for (const g of attr.graphs ?? []) found.push(g);
    }
  }
  return found;
}

/** Refuses (`GRAPH_NESTING_TOO_DEEP`) subgraphs nested past {@link MAX_SUBGRAPH_DEPTH}; walks without recursion. */
export function checkSubgraphDepth(model: onnxProto.onnx.IModelProto, source: string): void {
  const roots: GraphProto[] = [...(model.graph ? [model.graph] : []), ...(model.functions ?? []).map((fn) => ({ node: fn.node ?? [] }))];
  const stack = roots.map((graph) => ({ graph, depth: 0 }));
  for (let next = stack.pop(); next; next = stack.pop()) {
    for (const sub of subgraphsOf(next.graph)) {
      if (next.depth + 1 > MAX_SUBGRAPH_DEPTH) throw nestingTooDeep(source);
      stack.push({ graph: sub, depth: next.depth + 1 });
    }
  }
}

function nestingTooDeep(source: string, cause?: unknown): GraphError {
  return new GraphError('GRAPH_NESTING_TOO_DEEP', `${source} nests control-flow subgraphs (If, Loop, Scan) deeper than ${MAX_SUBGRAPH_DEPTH} levels`, { cause, details: { limit: MAX_SUBGRAPH_DEPTH } });
}

/** Every tensor of the graph and its subgraphs, walked without recursion. */
function* allTensors(root: GraphProto): Generator<TensorProto> {
  const graphs = [root];
  for (let graph = graphs.pop(); graph; graph = graphs.pop()) {
    for (const t of graph.initializer ?? []) yield t;
    for (const sparse of graph.sparseInitializer ?? []) {
      if (sparse.values) yield sparse.values;
      if (sparse.indices) yield sparse.indices;
    }
    for (const node of graph.node ?? []) {
      for (const attr of node.attribute ?? []) {
        if (attr.t) yield attr.t;
        for (const t of attr.tensors ?? []) yield t;
      }
    }
    graphs.push(...subgraphsOf(graph));
  }
}

async function inlineExternalData(model: ModelProto, source: string, baseDir: string | undefined, externalFiles: Map<string, Buffer> | undefined): Promise<void> {
  const cache = new Map<string, Buffer>();
  let folder: string | undefined;
  for (const tensor of allTensors(model.graph!)) {
    if (tensor.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) continue;
    const entries = new Map((tensor.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
    const location = entries.get('location');
    if (!location) {
      throw new GraphError('GRAPH_EXTERNAL_DATA_INVALID', `tensor "${tensor.name}" in ${source} is external but names no location`);
    }
    if (!baseDir) {
      throw new GraphError('GRAPH_EXTERNAL_DATA_MISSING', `tensor "${tensor.name}" is stored in external file "${location}", but the model was given as bytes with no folder to find it in`);
    }
    if (isAbsolute(location) || normalize(location).startsWith('..')) {
      throw new GraphError('GRAPH_EXTERNAL_DATA_INVALID', `external data location "${location}" in ${source} escapes the model's folder`);
    }
    // `.`, `sub/..` or `sub/` name a folder, not a file: said so, before the symbolic-link check
    // below would take the folder itself for a link out of it.
    if (['.', `.${sep}`].includes(normalize(location)) || /[\\/]$/.test(location)) {
      throw new GraphError('GRAPH_EXTERNAL_DATA_INVALID', `external data location "${location}" in ${source} names a folder, not a file`, { details: { location } });
    }
    const file = join(baseDir, location);
    let data = cache.get(file);
    if (!data) {
      const missing = (error: unknown): GraphError =>
        new GraphError('GRAPH_EXTERNAL_DATA_MISSING', `external data file "${location}" for tensor "${tensor.name}" of ${source} is missing (looked for ${file})`, { cause: error, details: { file } });
      folder ??= await realpath(baseDir).catch((error: unknown) => { throw missing(error); });
      const real = await realpath(file).catch((error: unknown) => { throw missing(error); });
      // The lexical check above cannot see symbolic links: the file, or a folder on its way,
      // may lead anywhere on the host. onnxruntime refuses such a path; so does this.
      const inside = relative(folder, real);
      if (inside === '') {
        throw new GraphError('GRAPH_EXTERNAL_DATA_INVALID', `external data location "${location}" in ${source} leads to the model's folder itself, not a file`, { details: { file, real } });
      }
      if (inside === '..' || inside.startsWith(`..${sep}`) || isAbsolute(inside)) {
        throw new GraphError('GRAPH_EXTERNAL_DATA_INVALID', `external data location "${location}" in ${source} escapes the model's folder through a symbolic link`, { details: { file, real } });
      }
      // A FIFO would hold the read forever, a device would never end it.
      if (!(await stat(real).catch((error: unknown) => { throw missing(error); })).isFile()) {
        throw new GraphError('GRAPH_EXTERNAL_DATA_INVALID', `external data location "${location}" in ${source} is not a regular file`);
      }
      try {
        data = await readFile(real);
      } catch (error) {
        throw missing(error);
      }
      cache.set(file, data);
      externalFiles?.set(real, data);
    }
    const offset = Number(entries.get('offset') ?? '0');
    const length = entries.has('length') ? Number(entries.get('length')) : data.byteLength - offset;
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > data.byteLength) {
      throw new GraphError('GRAPH_EXTERNAL_DATA_INVALID', `external data for tensor "${tensor.name}" (offset ${offset}, length ${length}) lies outside ${file} (${data.byteLength} bytes)`);
    }
    tensor.rawData = data.subarray(offset, offset + length);
    tensor.dataLocation = onnx.TensorProto.DataLocation.DEFAULT;
    tensor.externalData = [];
  }
}

export function encodeModel(model: onnxProto.onnx.IModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

/** Whether a path exists and is a directory (used to validate output folders early). */
export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

export function attribute(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute?.find((a) => a.name === name);
}

export function intAttr(node: NodeProto, name: string, fallback: number): number {
  const attr = attribute(node, name);
  return attr ? toNumber(attr.i) : fallback;
}

export function intsAttr(node: NodeProto, name: string): number[] | undefined {
  const attr = attribute(node, name);
  return attr?.ints ? attr.ints.map((v) => toNumber(v)) : undefined;
}

export function stringAttr(node: NodeProto, name: string): string | undefined {
  const attr = attribute(node, name);
  return attr?.s ? Buffer.from(attr.s).toString('utf8') : undefined;
}

export function tensorDims(tensor: TensorProto): number[] {
  return (tensor.dims ?? []).map((d, axis) => dimNumber(d, `dimension ${axis} of tensor "${tensor.name ?? ''}"`));
}

/** Builds a ValueInfoProto for a tensor of known dtype and (optionally) shape. */
export function valueInfo(name: string, elemType: number | undefined, dims?: readonly (number | string)[]): ValueInfoProto {
  const tensorType: onnxProto.onnx.TypeProto.ITensor = {};
  if (elemType !== undefined) tensorType.elemType = elemType;
  // An unsafe number would be written rounded, or wrapped negative: refuse it instead.
  const unsafe = dims?.find((d) => typeof d === 'number' && !Number.isSafeInteger(d));
  if (unsafe !== undefined) throw dimTooLarge(`a dimension of "${name}"`, unsafe);
  if (dims) tensorType.shape = { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) };
  return { name, type: { tensorType } };
}

/** An input the model was not given enough information to size. */
export function unknownDimension(input: string, index: number, dim: string): ValidationError {
  return new ValidationError('GRAPH_SHAPE_DYNAMIC', `input "${input}" has a dynamic dimension "${dim}" (axis ${index}) with no value: pass --shape ${input}=…`, { details: { input, axis: index, dim } });
}
