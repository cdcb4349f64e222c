/**
 * Encode+decode throughput of the tensor wire format for one 4 MB float32 tensor (the size
 * of a typical early cut). Throughput = payload bytes / (encode time + decode time).
 */
import { decodeTensorMap, encodeTensorMap } from '../src/codec/index.js';
import { crc32Implementation } from '../src/util/index.js';

export interface CodecBenchResult {
  tensorBytes: number;
  iterations: number;
  encodeMs: number;
  decodeMs: number;
  /** The CRC-32 implementation the payload checks ran on. */
  crc32: string;
  encodeDecodeGBps: number;
}

export function runCodecBench(options: { bytes?: number; iterations?: number } = {}): CodecBenchResult {
  const bytes = options.bytes ?? 4 * 1024 * 1024;
  const iterations = options.iterations ?? 50;
  const data = new Float32Array(bytes / 4);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i);
  const input = { activation: { dtype: 'float32' as const, dims: [1, 32, 128, data.length / (32 * 128)], data } };
  for (let i = 0; i < 5; i++) decodeTensorMap(encodeTensorMap(input));
  let encodeNs = 0n;
  let decodeNs = 0n;
  let checksum = 0;
  for (let i = 0; i < iterations; i++) {
    const t0 = process.hrtime.bigint();
    const payload = encodeTensorMap(input);
    const t1 = process.hrtime.bigint();
    const out = decodeTensorMap(payload);
    const t2 = process.hrtime.bigint();
    encodeNs += t1 - t0;
    decodeNs += t2 - t1;
    checksum += (out['activation']?.data as Float32Array)[i] ?? 0;
  }
  if (!Number.isFinite(checksum)) throw new Error('decoded data corrupted');
  const encodeMs = Number(encodeNs) / 1e6 / iterations;
  const decodeMs = Number(decodeNs) / 1e6 / iterations;
  return { tensorBytes: bytes, iterations, encodeMs, decodeMs, crc32: crc32Implementation, encodeDecodeGBps: bytes / ((encodeMs + decodeMs) * 1e6) };
}
