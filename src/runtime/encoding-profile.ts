/**
 * What each lossy encoding of a cut's tensors costs: the bytes it sends, its encode and
 * decode times, and the error it causes in the model's outputs. The error is measured end to
 * end, on calibration inputs: the tail runs once on the float32 cut tensors and once on the
 * decoded ones, and the outputs are compared. The codec's own report (error in the cut
 * tensors) says little about the outputs: a tail may amplify or absorb it.
 */
import { performance } from 'node:perf_hooks';
import { decodePayload, encodeTensorMapWithReport, type Compression } from '../codec/index.js';
import { LOSSY_ENCODINGS } from '../planner/plan.js';
import type { EncodingProfile } from '../planner/profile.js';
import { cloneTensorMap, type TensorMap } from '../tensor/index.js';
import { median } from '../util/stats.js';
import type { EdgePool } from './pool.js';
import type { ModelRef } from './protocol.js';

export interface EncodingMeasurement {
  /** float32's encode + decode time, ms (the lossy encodings' reference). */
  codecMs: number;
  encodings: Partial<Record<(typeof LOSSY_ENCODINGS)[number], EncodingProfile>>;
}

/**
 * Measures every lossy encoding on `samples`, the tail's inputs computed from calibration
 * inputs (float32, as the head produced them). Times are medians over the samples.
 */
export async function measureEncodings(pool: EdgePool, tail: ModelRef, samples: readonly TensorMap[]): Promise<EncodingMeasurement> {
  const reference: TensorMap[] = [];
  const plainMs: number[] = [];
  if (samples[0]) codecRoundTrip(samples[0], 'none');
  for (const sample of samples) {
    plainMs.push(codecRoundTrip(sample, 'none').ms);
    // Runs take their inputs' buffers (transferred to the worker): each gets a copy.
    reference.push((await pool.run(tail, cloneTensorMap(sample))).outputs);
  }
  const encodings: EncodingMeasurement['encodings'] = {};
  for (const encoding of LOSSY_ENCODINGS) {
    const encodeMs: number[] = [];
    const decodeMs: number[] = [];
    const errors: number[] = [];
    let bytes = 0;
    if (samples[0]) codecRoundTrip(samples[0], encoding); // untimed: the first call compiles the codec's loops
    for (const [i, sample] of samples.entries()) {
      const trip = codecRoundTrip(sample, encoding);
      encodeMs.push(trip.encodeMs);
      decodeMs.push(trip.decodeMs);
      bytes = trip.bytes;
      const outputs = (await pool.run(tail, trip.decoded)).outputs;
      errors.push(outputError(outputs, reference[i] ?? {}));
    }
    encodings[encoding] = {
      bytes,
      encodeMs: median(encodeMs),
      decodeMs: median(decodeMs),
      maxError: Math.max(0, ...errors),
      meanError: errors.reduce((a, b) => a + b, 0) / Math.max(1, errors.length),
    };
  }
  return { codecMs: median(plainMs), encodings };
}

/** Encodes and decodes once, as a split request does on each side. */
function codecRoundTrip(tensors: TensorMap, compression: Compression): { ms: number; encodeMs: number; decodeMs: number; bytes: number; decoded: TensorMap } {
  const t0 = performance.now();
  const encoded = encodeTensorMapWithReport(tensors, { compression });
  const t1 = performance.now();
  // Decoded views alias the payload; copied so the tail run may transfer them.
  const decoded = decodePayload(encoded.bytes).tensors;
  const t2 = performance.now();
  return { ms: t2 - t0, encodeMs: t1 - t0, decodeMs: t2 - t1, bytes: encoded.bytes.byteLength, decoded: cloneTensorMap(decoded) };
}

/**
 * Per output, the largest absolute difference over the largest absolute reference value
 * (absolute difference for an all-zero reference); the largest over outputs.
 */
export function outputError(actual: TensorMap, reference: TensorMap): number {
  let worst = 0;
  for (const [name, ref] of Object.entries(reference)) {
    const got = actual[name];
    if (!got || got.data.length !== ref.data.length) return Number.POSITIVE_INFINITY;
    let scale = 0;
    let diff = 0;
    for (let i = 0; i < ref.data.length; i++) {
      const r = Number(ref.data[i]);
      scale = Math.max(scale, Math.abs(r));
      diff = Math.max(diff, Math.abs(Number(got.data[i]) - r));
    }
    worst = Math.max(worst, scale > 0 ? diff / scale : diff);
  }
  return worst;
}
