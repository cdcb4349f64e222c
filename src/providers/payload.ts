/**
 * Request and response bodies shared by the provider clients: Tandem msgpack payloads or
 * OIP v2 JSON/binary, and the server-reported compute time wherever it travels.
 */
import { decodePayload, encodeTensorMapWithReport, looksLikeTensorPayload, TENSOR_CONTENT_TYPE, type CompressionReport } from '../codec/index.js';
import type { CutEncoding } from '../planner/plan.js';
import type { TensorMap } from '../tensor/index.js';
import { ProviderError } from './errors.js';
import { MAX_ANSWER_BYTES } from './http.js';
import type { EndpointConfig, InferRequest, InferResponse } from './types.js';
import { IMAGE_INPUT_HEADER, PIPELINE_HEADER } from './wire/image.js';
import { decodeOipResponse, encodeOipRequest, OIP_HEADER_LENGTH } from './wire/oip.js';

/** Header the Tandem cloud service sets to its compute time in ms. */
export const COMPUTE_HEADER = 'x-tandem-compute-ms';

export interface EncodedRequest {
  body: Uint8Array;
  contentType: string;
  /** Set for an OIP binary-extension body. */
  headerLength?: number;
  /** What lossy compression cost, per compressed tensor (the codec's report). */
  compression?: Record<string, CompressionReport>;
}

/**
 * The lossy cut encodings an endpoint's wire carries: the Tandem tensor payload (SageMaker,
 * Vertex rawPredict and PAI-EAS with `wire: binary`) carries float16 and int8; OIP bodies
 * and JSON carry float32 only.
 */
export function cutEncodingsOf(endpoint: Pick<EndpointConfig, 'kind' | 'wire'>): CutEncoding[] {
  return endpoint.kind !== 'oip' && (endpoint.wire ?? 'binary') === 'binary' ? ['float16', 'int8'] : [];
}

/**
 * An encoded offload's body where the wire carries raw bytes (SageMaker, Vertex rawPredict,
 * PAI-EAS): the image itself, typed as what it is. Undefined when the request carries no image
 * or is a split's (cut tensors are features, not images).
 */
export function encodeImageRequest(request: InferRequest): EncodedRequest | undefined {
  const image = request.image;
  if (!image || request.cut) return undefined;
  return { body: image.bytes, contentType: image.contentType };
}

/** Headers (or gRPC metadata) that go with an image body: its pipeline's fingerprint, its input and the model. */
export function imageHeaders(request: InferRequest): Record<string, string> {
  const image = request.image;
  return image ? { [PIPELINE_HEADER]: image.pipelineSha256, [IMAGE_INPUT_HEADER]: image.input, 'x-tandem-model': request.model } : {};
}

export function encodeRequest(request: InferRequest, wire: 'binary' | 'json'): EncodedRequest {
  if (wire === 'json') {
    const enc = encodeOipRequest(request.inputs, { binary: false, ...(request.requestId ? { id: request.requestId } : {}), ...(request.cut ? { parameters: { cut: request.cut } } : {}) });
    return { body: enc.body, contentType: enc.contentType };
  }
  const meta: Record<string, string> = { model: request.model };
  if (request.cut) meta['cut'] = request.cut;
  if (request.requestId) meta['requestId'] = request.requestId;
  const compression = request.compression ?? 'none';
  const enc = encodeTensorMapWithReport(request.inputs, { compression, meta });
  return { body: enc.bytes, contentType: TENSOR_CONTENT_TYPE, ...(Object.keys(enc.compression).length > 0 ? { compression: enc.compression } : {}) };
}

export interface DecodedResponse {
  outputs: TensorMap;
  /** Compute time reported inside the body (ms), when it is there. */
  remoteMs?: number;
}

const LIMITS = { maxBytes: MAX_ANSWER_BYTES, maxElements: 512 * 1024 * 1024 };

export function decodeResponse(endpoint: string, body: Uint8Array, headerLength?: number): DecodedResponse {
  try {
    if (looksLikeTensorPayload(body)) {
      const p = decodePayload(body, { maxBytes: LIMITS.maxBytes });
      const ms = Number(p.meta['computeMs']);
      return { outputs: p.tensors, ...(Number.isFinite(ms) ? { remoteMs: ms } : {}) };
    }
    const r = decodeOipResponse(body, headerLength, { maxElements: LIMITS.maxElements });
    const ms = r.parameters['compute_ms'];
    return { outputs: r.tensors, ...(typeof ms === 'number' ? { remoteMs: ms } : {}) };
  } catch (error) {
    throw new ProviderError('PROVIDER_RESPONSE', `endpoint "${endpoint}" sent a response that cannot be decoded: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

/** A `k=v;k=v` custom-attributes string's `tandem-compute-ms`, if any. */
export function computeFromAttributes(attrs: string | undefined): number | undefined {
  const m = /tandem-compute-ms=([0-9.]+)/.exec(attrs ?? '');
  return m ? Number(m[1]) : undefined;
}

/** A server's compute-time report, where it is a usable number of milliseconds. */
function reportedMs(value: string | number | null | undefined): number | undefined {
  const ms = typeof value === 'string' ? (value.trim() === '' ? NaN : Number(value)) : value ?? NaN;
  return Number.isFinite(ms) && ms >= 0 ? ms : undefined;
}

/**
 * Builds the timing breakdown from the marks a client took. A remote time that is not a
 * non-negative number ("n/a", -50) counts as unreported, and none exceeds the wire time.
 */
export function timing(marks: { start: number; encoded: number; received: number; decoded: number }, remoteMs: number | undefined) {
  const wire = marks.received - marks.encoded;
  const remote = Math.min(reportedMs(remoteMs) ?? 0, Math.max(0, wire));
  return {
    encodeMs: marks.encoded - marks.start,
    networkMs: Math.max(0, wire - remote),
    remoteMs: remote,
    decodeMs: marks.decoded - marks.received,
    totalMs: marks.decoded - marks.start,
  };
}

/**
 * The response of an HTTP provider call: outputs decoded from whichever body the service
 * sent, the compute time it reported (header first, else inside the body), and the timing.
 */
export function httpInferResponse(
  endpoint: string,
  res: { headers: Headers; body: Uint8Array },
  bytesSent: number,
  marks: { start: number; encoded: number; received: number },
  compression?: Record<string, CompressionReport>,
): InferResponse {
  const headerLength = res.headers.get(OIP_HEADER_LENGTH);
  const decoded = decodeResponse(endpoint, res.body, headerLength === null ? undefined : Number(headerLength));
  const header = reportedMs(res.headers.get(COMPUTE_HEADER));
  const remote = header ?? decoded.remoteMs;
  return { outputs: decoded.outputs, timing: timing({ ...marks, decoded: performance.now() }, remote), bytesSent, bytesReceived: res.body.byteLength, ...(compression ? { compression } : {}) };
}
