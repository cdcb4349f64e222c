/**
 * The Tandem tensor wire format, version 1.
 *
 * A payload is one valid MessagePack document (any msgpack reader can open it), laid out
 * so that the tensor data needs no copy on either side:
 *
 * ```
 * 0x95                                   array of 5
 * 0xc4 0x0c  "TNDM" ver flags 0 0 D(u32 LE)   bin8: magic, version, flags, descriptor length D
 * 0xce  crc32 (u32 BE)                    CRC-32 of the descriptor bytes then the data bytes
 * <descriptor, D bytes>                   msgpack map: tensors[{name,dtype,dims,offset,length,…}], meta
 * 0xc4 p <p zero bytes>                   bin8 padding so that the data starts 64-byte aligned
 * 0xc6 L(u32 BE) <L data bytes>           bin32: every tensor's raw little-endian bytes, 8-aligned
 * ```
 *
 * The fixed prefix is parsed by hand so that limits, truncation and integrity are checked
 * before msgpackr touches the descriptor and before anything is allocated for the tensors.
 */
import { crc32 } from '../util/crc32.js';
import { PREFIX_BYTES, type PayloadDigest } from './checksum.js';
import { endianness } from 'node:os';
import { Packr, Unpackr } from 'msgpackr';
import { z } from 'zod';
import { BYTES_PER_ELEMENT, DTYPES, assertTensor, bytesOf, isDType, setTensor, viewAs, type DType, type Tensor, type TensorMap } from '../tensor/index.js';
import { CodecError } from './errors.js';
import { float16ToFloat32 } from './float16.js';
import { compressFloat16, compressInt8, dequantizeInt8, type CompressionReport } from './quantize.js';

/** The only format version this build writes and reads. */
export const CODEC_VERSION = 1;
/** Media type of a Tandem tensor payload (it is a MessagePack document). */
export const TENSOR_CONTENT_TYPE = 'application/x-msgpack';

const MAGIC = [0x54, 0x4e, 0x44, 0x4d]; // "TNDM"
const DATA_ALIGN = 64;
const TENSOR_ALIGN = 8;

if (endianness() !== 'LE') {
  // Typed-array views are host-endian; the format is little-endian by definition.
  throw new Error('the Tandem codec requires a little-endian host');
}

/** Bounds a decoder enforces before allocating anything for a payload. */
export interface CodecLimits {
  /** Largest whole payload accepted, in bytes. */
  maxBytes: number;
  /** Largest descriptor (the msgpack map of names, dtypes and dims), in bytes. */
  maxDescriptorBytes: number;
  maxTensors: number;
  maxRank: number;
  /** Largest element count of one tensor. */
  maxElements: number;
  /** Largest element count over all tensors (bounds dequantisation output). */
  maxTotalElements: number;
}

export const DEFAULT_LIMITS: Readonly<CodecLimits> = {
  maxBytes: 512 * 1024 * 1024,
  maxDescriptorBytes: 1024 * 1024,
  maxTensors: 1024,
  maxRank: 8,
  maxElements: 256 * 1024 * 1024,
  maxTotalElements: 256 * 1024 * 1024,
};

export type Compression = 'none' | 'float16' | 'int8';

/**
 * A channel's scale and zero point cost about 11 bytes of descriptor: below this many values a
 * channel, per-channel int8 can outweigh the float32 it replaces (a [1, 1280] embedding did).
 */
export const MIN_VALUES_PER_CHANNEL = 64;

function defaultInt8Axis(dims: readonly number[], values: number): 'tensor' | number {
  const channels = dims[1] ?? 0;
  return dims.length >= 2 && channels > 0 && values / channels >= MIN_VALUES_PER_CHANNEL ? 1 : 'tensor';
}

export interface EncodeOptions {
  /** Lossy compression applied to float32 tensors only; other dtypes travel unchanged. */
  compression?: Compression | Record<string, Compression>;
  /**
   * int8 granularity: `'tensor'` (one scale) or a channel axis (one scale per channel).
   * Default: axis 1 for tensors of rank ≥ 2 (NCHW channels) whose channels hold at least
   * {@link MIN_VALUES_PER_CHANNEL} values each, per tensor otherwise.
   */
  int8Axis?: 'tensor' | number;
  /** Small string metadata carried alongside (request id, model, cut). */
  meta?: Record<string, string>;
}

export interface EncodedPayload {
  bytes: Uint8Array;
  /** One entry per tensor that was compressed, with the error it introduced. */
  compression: Record<string, CompressionReport>;
}

export interface DecodedPayload {
  tensors: TensorMap;
  meta: Record<string, string>;
  /** Names of tensors that arrived compressed (and were restored to float32). */
  compressed: string[];
}

interface TensorEntry {
  name: string;
  dtype: DType;
  dims: number[];
  offset: number;
  length: number;
  encoding?: 'float16' | 'int8';
  axis?: number | null;
  scale?: number[];
  zeroPoint?: number[];
}

const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** @internal exported for the tests that hold the hand-written checks to it. */
export const entrySchema = z.object({
  name: z.string().min(1).max(1024),
  dtype: z.string(),
  dims: z.array(z.number()),
  offset: z.number().int().nonnegative(),
  length: z.number().int().nonnegative(),
  encoding: z.enum(['float16', 'int8']).optional(),
  axis: z.number().int().nonnegative().nullable().optional(),
  scale: z.array(z.number()).optional(),
  zeroPoint: z.array(z.number().int().min(-128).max(127)).optional(),
});
/** @internal */
export const descriptorSchema = z.object({
  tensors: z.array(z.unknown()),
  meta: z.record(z.string(), z.string()).optional(),
});

const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
const isFiniteArray = (x: unknown): x is number[] => Array.isArray(x) && x.every((v) => typeof v === 'number' && Number.isFinite(v));
const isPlainObject = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x);

/**
 * The common case of {@link entrySchema}, checked by hand: zod's parse cost ≈ 70 µs per
 * payload on the service's hot path. Everything it accepts the schema accepts too (it is
 * stricter: safe integers, finite numbers); whatever it refuses goes through the schema,
 * which then accepts it or words the error.
 */
export function isWellFormedEntry(x: unknown): x is z.infer<typeof entrySchema> {
  if (!isPlainObject(x)) return false;
  const { name, dtype, dims, offset, length, encoding, axis, scale, zeroPoint } = x;
  return typeof name === 'string' && name.length >= 1 && name.length <= 1024 && typeof dtype === 'string'
    && isFiniteArray(dims) && isCount(offset) && isCount(length)
    && (encoding === undefined || encoding === 'float16' || encoding === 'int8')
    && (axis === undefined || axis === null || isCount(axis))
    && (scale === undefined || isFiniteArray(scale))
    && (zeroPoint === undefined || (isFiniteArray(zeroPoint) && zeroPoint.every((v) => Number.isInteger(v) && v >= -128 && v <= 127)));
}

/** The common case of {@link descriptorSchema}; see {@link isWellFormedEntry}. */
export function isWellFormedDescriptor(x: unknown): x is z.infer<typeof descriptorSchema> {
  if (!isPlainObject(x) || !Array.isArray(x['tensors'])) return false;
  const meta = x['meta'];
  return meta === undefined || (isPlainObject(meta) && Object.values(meta).every((v) => typeof v === 'string'));
}

function align(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

function compressionFor(options: EncodeOptions, name: string): Compression {
  const c = options.compression;
  if (c === undefined) return 'none';
  if (typeof c === 'string') return c;
  // Own entries only: a tensor named "constructor" must not pick up Object.prototype's.
  return (Object.hasOwn(c, name) ? c[name] : undefined) ?? 'none';
}

/**
 * Encodes a tensor map and reports what any lossy compression cost. Synchronous (pure CPU
 * work); throws a {@link CodecError} on an invalid tensor.
 */
export function encodeTensorMapWithReport(tensors: TensorMap, options: EncodeOptions = {}): EncodedPayload {
  const entries: TensorEntry[] = [];
  const chunks: Uint8Array[] = [];
  const report: Record<string, CompressionReport> = {};
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    try {
      assertTensor(name, t);
    } catch (error) {
      const wrongType = (t !== null && typeof t === 'object' && !isDType(t.dtype)) || (error as { code?: unknown } | null)?.code === 'TENSOR_DTYPE';
      throw new CodecError(wrongType ? 'CODEC_DTYPE' : 'CODEC_DIMS_MISMATCH',
        error instanceof Error ? error.message : String(error), { cause: error, details: { tensor: name } });
    }
    const entry: TensorEntry = { name, dtype: t.dtype, dims: [...t.dims], offset, length: 0 };
    let bytes: Uint8Array;
    // An empty tensor has nothing to compress (and its channel layout can be absurdly long).
    const method = t.dtype === 'float32' && t.data.length > 0 ? compressionFor(options, name) : 'none';
    if (method === 'float16') {
      const c = compressFloat16(t.data as Float32Array);
      entry.encoding = 'float16';
      bytes = bytesOf(c.data);
      report[name] = c.report;
    } else if (method === 'int8') {
      const axisOption = options.int8Axis ?? defaultInt8Axis(t.dims, t.data.length);
      const axis = axisOption === 'tensor' ? null : axisOption;
      if (axis !== null && (!Number.isInteger(axis) || axis < 0 || axis >= t.dims.length)) {
        throw new CodecError('CODEC_DIMS_MISMATCH', `int8 channel axis ${axis} is outside tensor "${name}" of rank ${t.dims.length}`);
      }
      const c = compressInt8(t.data as Float32Array, t.dims, axis);
      Object.assign(entry, { encoding: 'int8', axis, scale: c.params.scale, zeroPoint: c.params.zeroPoint });
      bytes = bytesOf(c.data);
      report[name] = c.report;
    } else {
      bytes = bytesOf(t.data);
    }
    entry.length = bytes.byteLength;
    entries.push(entry);
    chunks.push(bytes);
    offset = align(offset + bytes.byteLength, TENSOR_ALIGN);
  }
  const dataLength = entries.length === 0 ? 0 : (entries[entries.length - 1]?.offset ?? 0) + (entries[entries.length - 1]?.length ?? 0);
  const descriptor = packr.pack(options.meta ? { tensors: entries, meta: options.meta } : { tensors: entries });
  const d = descriptor.byteLength;
  const pad = (DATA_ALIGN - ((PREFIX_BYTES + d + 2 + 5) % DATA_ALIGN)) % DATA_ALIGN;
  const dataStart = PREFIX_BYTES + d + 2 + pad + 5;
  const total = dataStart + dataLength;
  // allocUnsafe: every byte is written below; large sizes get their own aligned buffer.
  const out = Buffer.allocUnsafe(total);
  out[0] = 0x95;
  out[1] = 0xc4;
  out[2] = 12;
  out.set(MAGIC, 3);
  out[7] = CODEC_VERSION;
  out[8] = 0;
  out.writeUInt16LE(0, 9);
  out.writeUInt32LE(d, 11);
  out[15] = 0xce;
  out.set(descriptor, PREFIX_BYTES);
  let p = PREFIX_BYTES + d;
  out[p++] = 0xc4;
  out[p++] = pad;
  out.fill(0, p, p + pad);
  p += pad;
  out[p++] = 0xc6;
  out.writeUInt32BE(dataLength, p);
  entries.forEach((entry, i) => {
    const chunk = chunks[i];
    if (!chunk) return;
    out.set(chunk, dataStart + entry.offset);
    const end = dataStart + entry.offset + entry.length;
    const next = entries[i + 1];
    if (next) out.fill(0, end, dataStart + next.offset);
  });
  let crc = crc32(descriptor);
  crc = crc32(out.subarray(dataStart), crc);
  out.writeUInt32BE(crc, 16);
  return { bytes: out, compression: report };
}

/** Encodes a tensor map into one payload. Throws a {@link CodecError} on an invalid tensor. */
export function encodeTensorMap(tensors: TensorMap, options: EncodeOptions = {}): Uint8Array {
  return encodeTensorMapWithReport(tensors, options).bytes;
}

/**
 * Decodes a payload. Tensor data are views into `bytes` when aligned (the caller must not
 * reuse that buffer while the tensors live); compressed tensors are restored to float32.
 * `streamed`: the checksum a `PayloadChecksum` (checksum.ts) took of these bytes as they arrived, used
 * in place of computing it again when its layout is this payload's.
 */
export function decodePayload(bytes: Uint8Array, limits: Partial<CodecLimits> = {}, streamed?: PayloadDigest): DecodedPayload {
  const lim: CodecLimits = { ...DEFAULT_LIMITS, ...limits };
  if (bytes.byteLength > lim.maxBytes) {
    throw new CodecError('CODEC_TOO_LARGE', `payload of ${bytes.byteLength} bytes exceeds the limit of ${lim.maxBytes}`, { details: { bytes: bytes.byteLength, limit: lim.maxBytes } });
  }
  if (bytes.byteLength < PREFIX_BYTES) {
    throw new CodecError('CODEC_TRUNCATED', `payload of ${bytes.byteLength} bytes is shorter than the ${PREFIX_BYTES}-byte header`);
  }
  if (bytes[0] !== 0x95 || bytes[1] !== 0xc4 || bytes[2] !== 12 || MAGIC.some((m, i) => bytes[3 + i] !== m)) {
    throw new CodecError('CODEC_MAGIC', 'not a Tandem tensor payload (bad magic)');
  }
  const version = bytes[7] ?? 0;
  if (version !== CODEC_VERSION) {
    throw new CodecError('CODEC_VERSION', `payload format version ${version} is not supported (this build reads version ${CODEC_VERSION})`, { details: { version } });
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const d = view.getUint32(11, true);
  if (bytes[15] !== 0xce) throw new CodecError('CODEC_MALFORMED', 'payload header has no checksum field');
  const expectedCrc = view.getUint32(16, false);
  if (d > lim.maxDescriptorBytes) {
    throw new CodecError('CODEC_TOO_LARGE', `descriptor of ${d} bytes exceeds the limit of ${lim.maxDescriptorBytes}`);
  }
  let p = PREFIX_BYTES + d;
  if (p + 2 > bytes.byteLength) throw new CodecError('CODEC_TRUNCATED', 'payload ends inside the descriptor');
  if (bytes[p] !== 0xc4) throw new CodecError('CODEC_MALFORMED', 'payload has no padding field after the descriptor');
  const pad = bytes[p + 1] ?? 0;
  p += 2 + pad;
  if (p + 5 > bytes.byteLength) throw new CodecError('CODEC_TRUNCATED', 'payload ends before the data section');
  if (bytes[p] !== 0xc6) throw new CodecError('CODEC_MALFORMED', 'payload has no data section');
  const dataLength = view.getUint32(p + 1, false);
  const dataStart = p + 5;
  if (dataStart + dataLength > bytes.byteLength) {
    throw new CodecError('CODEC_TRUNCATED', `payload declares ${dataLength} data bytes but only ${bytes.byteLength - dataStart} follow`, { details: { declared: dataLength, present: bytes.byteLength - dataStart } });
  }
  if (dataStart + dataLength < bytes.byteLength) {
    throw new CodecError('CODEC_MALFORMED', `${bytes.byteLength - dataStart - dataLength} unexpected bytes after the data section`);
  }
  const descriptorBytes = bytes.subarray(PREFIX_BYTES, PREFIX_BYTES + d);
  const data = bytes.subarray(dataStart, dataStart + dataLength);
  // A checksum taken as these bytes arrived (checksum.ts) counts only over this very layout.
  const crc = streamed !== undefined && streamed.length === bytes.byteLength && streamed.descriptorBytes === d && streamed.dataStart === dataStart
    ? streamed.crc
    : crc32(data, crc32(descriptorBytes));
  if (crc !== expectedCrc) {
    throw new CodecError('CODEC_INTEGRITY', 'payload checksum mismatch (corrupted in transit?)', { details: { expected: expectedCrc, actual: crc } });
  }
  let raw: unknown;
  try {
    raw = unpackr.unpack(descriptorBytes);
  } catch (error) {
    throw new CodecError('CODEC_MALFORMED', `descriptor is not valid MessagePack: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  let descriptor: z.infer<typeof descriptorSchema>;
  if (isWellFormedDescriptor(raw)) {
    descriptor = raw;
  } else {
    const parsed = descriptorSchema.safeParse(raw);
    if (!parsed.success) throw new CodecError('CODEC_MALFORMED', `descriptor is malformed: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    descriptor = parsed.data;
  }
  if (descriptor.tensors.length > lim.maxTensors) {
    throw new CodecError('CODEC_TOO_LARGE', `payload holds ${descriptor.tensors.length} tensors, more than the limit of ${lim.maxTensors}`);
  }
  const entries: TensorEntry[] = [];
  let totalElements = 0;
  let claimed = 0;
  for (const item of descriptor.tensors) {
    let entry: z.infer<typeof entrySchema>;
    if (isWellFormedEntry(item)) {
      entry = item;
    } else {
      const e = entrySchema.safeParse(item);
      if (!e.success) throw new CodecError('CODEC_MALFORMED', `tensor entry is malformed: ${e.error.issues[0]?.path.join('.') ?? ''} ${e.error.issues[0]?.message ?? ''}`);
      entry = e.data;
    }
    if (!isDType(entry.dtype)) {
      throw new CodecError('CODEC_DTYPE', `tensor "${entry.name}" has unknown dtype "${entry.dtype}" (known: ${DTYPES.join(', ')})`, { details: { tensor: entry.name } });
    }
    if (entry.dims.length > lim.maxRank) {
      throw new CodecError('CODEC_TOO_LARGE', `tensor "${entry.name}" has rank ${entry.dims.length}, more than the limit of ${lim.maxRank}`);
    }
    let count = 1;
    for (const dim of entry.dims) {
      if (!Number.isSafeInteger(dim) || dim < 0) throw new CodecError('CODEC_DIMS_MISMATCH', `tensor "${entry.name}" has an invalid dimension ${dim}`);
      count *= dim;
    }
    if (count > lim.maxElements) {
      throw new CodecError('CODEC_TOO_LARGE', `tensor "${entry.name}" has ${count} elements, more than the limit of ${lim.maxElements}`, { details: { tensor: entry.name } });
    }
    totalElements += count;
    if (totalElements > lim.maxTotalElements) {
      throw new CodecError('CODEC_TOO_LARGE', `payload holds more than ${lim.maxTotalElements} elements in total`);
    }
    if (Object.hasOwn(entry, 'encoding') && entry.encoding !== undefined && entry.dtype !== 'float32') {
      throw new CodecError('CODEC_UNSUPPORTED', `tensor "${entry.name}": ${entry.encoding} compression applies to float32 only`);
    }
    const width = entry.encoding === 'float16' ? 2 : entry.encoding === 'int8' ? 1 : BYTES_PER_ELEMENT[entry.dtype];
    if (count * width !== entry.length) {
      throw new CodecError('CODEC_DIMS_MISMATCH', `tensor "${entry.name}" dims [${entry.dims.join(', ')}] need ${count * width} bytes but ${entry.length} are declared`, { details: { tensor: entry.name } });
    }
    if (entry.offset + entry.length > dataLength) {
      throw new CodecError('CODEC_TRUNCATED', `tensor "${entry.name}" extends past the end of the data section`, { details: { tensor: entry.name } });
    }
    // In order and disjoint, as the encoder lays them out: entries sharing bytes would let a
    // small payload decode into many times its size (1024 views of one 256 KiB range: 1 GiB).
    if (entry.offset < claimed) {
      throw new CodecError('CODEC_MALFORMED', `tensor "${entry.name}" overlaps the bytes of the tensor before it (offset ${entry.offset} < ${claimed})`, { details: { tensor: entry.name } });
    }
    claimed = entry.offset + entry.length;
    if (entry.encoding === 'int8') {
      const channels = entry.axis === null || entry.axis === undefined ? 1 : entry.dims[entry.axis];
      if (channels === undefined) throw new CodecError('CODEC_DIMS_MISMATCH', `tensor "${entry.name}": int8 axis ${String(entry.axis)} is outside its rank`);
      if (entry.scale?.length !== channels || entry.zeroPoint?.length !== channels) {
        throw new CodecError('CODEC_DIMS_MISMATCH', `tensor "${entry.name}": int8 needs ${channels} scales and zero points`);
      }
    }
    entries.push(entry as TensorEntry);
  }
  const tensors: TensorMap = {};
  const compressed: string[] = [];
  for (const entry of entries) {
    if (Object.hasOwn(tensors, entry.name)) throw new CodecError('CODEC_MALFORMED', `tensor "${entry.name}" appears twice`);
    const slice = data.subarray(entry.offset, entry.offset + entry.length);
    let t: Tensor;
    if (entry.encoding === 'float16') {
      t = { dtype: 'float32', dims: entry.dims, data: float16ToFloat32(viewAs('float16', slice)) };
      compressed.push(entry.name);
    } else if (entry.encoding === 'int8') {
      const q = viewAs('int8', slice);
      t = { dtype: 'float32', dims: entry.dims, data: dequantizeInt8(q, entry.dims, { axis: entry.axis ?? null, scale: entry.scale ?? [], zeroPoint: entry.zeroPoint ?? [] }) };
      compressed.push(entry.name);
    } else {
      t = { dtype: entry.dtype, dims: entry.dims, data: viewAs(entry.dtype, slice) } as Tensor;
    }
    setTensor(tensors, entry.name, t);
  }
  return { tensors, meta: descriptor.meta ?? {}, compressed };
}

/** Decodes a payload into its tensor map; see {@link decodePayload}. */
export function decodeTensorMap(bytes: Uint8Array, limits: Partial<CodecLimits> = {}): TensorMap {
  return decodePayload(bytes, limits).tensors;
}

/** Quick check used by servers to route a body: does it start like a Tandem payload? */
export function looksLikeTensorPayload(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 7 && bytes[0] === 0x95 && bytes[1] === 0xc4 && MAGIC.every((m, i) => bytes[3 + i] === m);
}
