/**
 * The harness's wire format between the emulated edge and the stand-in service: a msgpack
 * map of tensors with raw little-endian bytes. Kept minimal on purpose; the real codec
 * (src/codec) replaces it once the runtime and cloud service are wired in.
 */
import { Packr } from 'msgpackr';
import * as ort from 'onnxruntime-node';
import { ValidationError } from '../../src/errors.js';

const packr = new Packr({ useRecords: false });

export interface WireTensor {
  dtype: string;
  dims: number[];
  data: Uint8Array;
}

export type OrtFeeds = Record<string, ort.Tensor>;

export function encodeTensors(tensors: OrtFeeds, extra: Record<string, unknown> = {}): Buffer {
  const out: Record<string, WireTensor> = {};
  for (const [name, t] of Object.entries(tensors)) {
    const data = t.data as Float32Array;
    out[name] = { dtype: t.type, dims: [...t.dims], data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  }
  return packr.pack({ ...extra, tensors: out });
}

export function decodeTensors(bytes: Uint8Array): { tensors: OrtFeeds; fields: Record<string, unknown> } {
  const raw = packr.unpack(bytes) as { tensors?: Record<string, WireTensor> } & Record<string, unknown>;
  if (typeof raw !== 'object' || raw === null || typeof raw.tensors !== 'object' || raw.tensors === null) {
    throw new ValidationError('HARNESS_BAD_PAYLOAD', 'payload has no tensor map');
  }
  const tensors: OrtFeeds = {};
  for (const [name, t] of Object.entries(raw.tensors)) {
    if (t.dtype !== 'float32') throw new ValidationError('HARNESS_BAD_PAYLOAD', `tensor ${name}: only float32 is used by the harness, got ${t.dtype}`);
    const copy = new Uint8Array(t.data.byteLength);
    copy.set(t.data);
    tensors[name] = new ort.Tensor('float32', new Float32Array(copy.buffer), t.dims);
  }
  const { tensors: _t, ...fields } = raw;
  return { tensors, fields };
}
