/**
 * Lossy compression of float32 cut tensors: float16, and int8 with an affine scale per
 * tensor or per channel. Every compression reports the error it introduced so that the
 * planner and users can judge whether the bandwidth saved is worth it.
 */
import { CodecError } from './errors.js';
import { float16ToFloat32, float32ToFloat16 } from './float16.js';

/** What compressing one tensor cost in accuracy (measured against the original values). */
export interface CompressionReport {
  method: 'float16' | 'int8';
  /** `null` for per-tensor int8 and float16; the channel axis for per-channel int8. */
  axis: number | null;
  /** Largest absolute difference between an original and its decoded value. */
  maxAbsError: number;
  /** Root-mean-square difference. */
  rmse: number;
  /** `maxAbsError` over the largest absolute original value (0 for an all-zero tensor). */
  relativeError: number;
  bytesBefore: number;
  bytesAfter: number;
}

export interface Int8Params {
  axis: number | null;
  scale: number[];
  zeroPoint: number[];
}

function errorStats(original: Float32Array, decoded: Float32Array): { maxAbsError: number; rmse: number; relativeError: number } {
  let maxErr = 0;
  let sumSq = 0;
  let maxAbs = 0;
  for (let i = 0; i < original.length; i++) {
    const o = original[i] ?? 0;
    const r = decoded[i] ?? 0;
    // Inf restored as the same Inf and NaN as NaN are exact; any other non-finite pair is an
    // unbounded error (NaN differences would otherwise drop out of every comparison).
    const d = Object.is(o, r) || o === r ? 0 : Number.isFinite(o) && Number.isFinite(r) ? Math.abs(o - r) : Infinity;
    if (d > maxErr) maxErr = d;
    sumSq += d * d;
    const a = Math.abs(o);
    if (Number.isFinite(a) && a > maxAbs) maxAbs = a;
  }
  const rmse = original.length === 0 ? 0 : Math.sqrt(sumSq / original.length);
  return { maxAbsError: maxErr, rmse, relativeError: maxAbs === 0 ? 0 : maxErr / maxAbs };
}

export function compressFloat16(src: Float32Array): { data: Uint16Array; report: CompressionReport } {
  const data = float32ToFloat16(src);
  const stats = errorStats(src, float16ToFloat32(data));
  return { data, report: { method: 'float16', axis: null, ...stats, bytesBefore: src.byteLength, bytesAfter: data.byteLength } };
}

/** Splits a flat index space into (outer, channel, inner) around `axis` of `dims`. */
function channelLayout(dims: readonly number[], axis: number | null): { outer: number; channels: number; inner: number } {
  if (axis === null) return { outer: 1, channels: 1, inner: dims.reduce((a, b) => a * b, 1) };
  let outer = 1;
  let inner = 1;
  for (let i = 0; i < axis; i++) outer *= dims[i] ?? 1;
  for (let i = axis + 1; i < dims.length; i++) inner *= dims[i] ?? 1;
  return { outer, channels: dims[axis] ?? 1, inner };
}

/**
 * Affine int8: q = clamp(round(x / scale) + zeroPoint, -128, 127). The range always
 * includes 0 so that zero (padding, ReLU output) is represented exactly.
 */
export function compressInt8(src: Float32Array, dims: readonly number[], axis: number | null): { data: Int8Array; params: Int8Params; report: CompressionReport } {
  for (let i = 0; i < src.length; i++) {
    // An affine int8 range cannot hold Inf, and NaN would come back as a number.
    if (!Number.isFinite(src[i] ?? 0)) throw new CodecError('CODEC_VALUE', `int8 compression needs finite values; element ${i} is ${String(src[i])} (use float16 or no compression)`, { details: { index: i } });
  }
  const { outer, channels, inner } = channelLayout(dims, axis);
  const min = new Float64Array(channels);
  const max = new Float64Array(channels);
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < channels; c++) {
      const base = (o * channels + c) * inner;
      let lo = min[c] ?? 0;
      let hi = max[c] ?? 0;
      for (let i = 0; i < inner; i++) {
        const v = src[base + i] ?? 0;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      min[c] = lo;
      max[c] = hi;
    }
  }
  const scale: number[] = [];
  const zeroPoint: number[] = [];
  for (let c = 0; c < channels; c++) {
    const lo = min[c] ?? 0;
    const hi = max[c] ?? 0;
    const s = hi > lo ? (hi - lo) / 255 : 1;
    scale.push(s);
    zeroPoint.push(Math.max(-128, Math.min(127, Math.round(-128 - lo / s))));
  }
  const data = new Int8Array(src.length);
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < channels; c++) {
      const base = (o * channels + c) * inner;
      const inv = 1 / (scale[c] ?? 1);
      const zp = zeroPoint[c] ?? 0;
      for (let i = 0; i < inner; i++) {
        const q = Math.round((src[base + i] ?? 0) * inv) + zp;
        data[base + i] = q < -128 ? -128 : q > 127 ? 127 : q;
      }
    }
  }
  const params: Int8Params = { axis, scale, zeroPoint };
  const stats = errorStats(src, dequantizeInt8(data, dims, params));
  return { data, params, report: { method: 'int8', axis, ...stats, bytesBefore: src.byteLength, bytesAfter: data.byteLength } };
}

export function dequantizeInt8(data: Int8Array, dims: readonly number[], params: Int8Params, out: Float32Array = new Float32Array(data.length)): Float32Array {
  // With no elements, outer × channels can still be 2^52 loops of nothing (dims [2^52, 1, 0]).
  if (data.length === 0) return out;
  const { outer, channels, inner } = channelLayout(dims, params.axis);
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < channels; c++) {
      const base = (o * channels + c) * inner;
      const s = params.scale[c] ?? 1;
      const zp = params.zeroPoint[c] ?? 0;
      for (let i = 0; i < inner; i++) out[base + i] = ((data[base + i] ?? 0) - zp) * s;
    }
  }
  return out;
}
