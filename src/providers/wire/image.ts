/**
 * Encoded offload: an image request sent as its original bytes (JPEG, PNG, WebP) with the
 * fingerprint of the pipeline that must turn them into the model's input, instead of the
 * preprocessed tensor (≈ 10× the JPEG for the PP-OCR classifier, ≈ 80× for the detector).
 * The edge and the cloud compute the fingerprint the same way; the cloud refuses a request
 * whose fingerprint is not its package's (400 `CLOUD_PIPELINE_MISMATCH`).
 */
import { createHash } from 'node:crypto';
import { ValidationError } from '../../errors/index.js';

export type ImageContentType = 'image/jpeg' | 'image/png' | 'image/webp';

/** An image to offload as it was given, with what the receiving package must match. */
export interface EncodedImage {
  bytes: Uint8Array;
  contentType: ImageContentType;
  /** The model input the image is for. */
  input: string;
  /** {@link pipelineFingerprint} of the edge package's pipeline for that input. */
  pipelineSha256: string;
}

/** Header (HTTP) or call metadata (gRPC) carrying the fingerprint; the EAS and Vertex clients send it. */
export const PIPELINE_HEADER = 'x-tandem-pipeline';
/** Header naming the input the image is for (optional: a one-input model's only input). */
export const IMAGE_INPUT_HEADER = 'x-tandem-input';
/** Keys of the same in SageMaker CustomAttributes, Tandem payload meta and OIP request parameters. */
export const PIPELINE_KEY = 'pipeline';
export const IMAGE_INPUT_KEY = 'input';
export const OIP_PIPELINE_PARAMETER = 'tandem_pipeline';
/** Tandem payload meta key giving the image's content type (its uint8 tensor holds the bytes). */
export const IMAGE_META_KEY = 'image';

const SHA256_RE = /^[0-9a-f]{64}$/;

/** Whether `value` has the form of a fingerprint (64 lower-case hex digits). */
export function isFingerprint(value: unknown): value is string {
  return typeof value === 'string' && SHA256_RE.test(value);
}

/** The image type the bytes' signature says, if it is one the pipelines decode. */
export function sniffImageType(bytes: Uint8Array): ImageContentType | undefined {
  if (bytes.byteLength >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'image/jpeg';
  if (bytes.byteLength >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return 'image/png';
  if (bytes.byteLength >= 12 && ascii(bytes, 0, 4) === 'RIFF' && ascii(bytes, 8, 12) === 'WEBP') return 'image/webp';
  return undefined;
}

function ascii(bytes: Uint8Array, from: number, to: number): string {
  return String.fromCharCode(...bytes.subarray(from, to));
}

/** JSON with object keys sorted at every level: the same value always gives the same text. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/**
 * The fingerprint of what turns an image into input `input` of the model whose bytes hash to
 * `modelSha256`: SHA-256 of the canonical JSON of the validated pipeline (defaults filled, so
 * limits included), the input name and the model hash. Equal fingerprints: the cloud's tensor
 * is the edge's.
 */
export function pipelineFingerprint(input: string, pipeline: unknown, modelSha256: string): string {
  return createHash('sha256').update(canonicalJson({ v: 1, input, model: modelSha256, pipeline })).digest('hex');
}

/**
 * `image/jpeg; tandem-pipeline=…` parameters of a content type (lower-cased type, raw values),
 * for a client that can only set the content type.
 */
export function parseContentType(value: string | undefined): { type: string; params: Record<string, string> } {
  const [type = '', ...rest] = (value ?? '').split(';');
  const params: Record<string, string> = {};
  for (const part of rest) {
    const i = part.indexOf('=');
    if (i > 0) params[part.slice(0, i).trim().toLowerCase()] = part.slice(i + 1).trim().replace(/^"|"$/g, '');
  }
  return { type: type.trim().toLowerCase(), params };
}

/**
 * The 4-byte little-endian length prefix OIP's binary extension puts before each BYTES element:
 * one element, the image.
 */
export function oipBytesElement(bytes: Uint8Array): Uint8Array[] {
  const prefix = new Uint8Array(4);
  new DataView(prefix.buffer).setUint32(0, bytes.byteLength, true);
  return [prefix, bytes];
}

/** The one element of a BYTES tensor's binary data (length-prefixed); refuses anything else. */
export function oipBytesSingle(data: Uint8Array, what: string): Uint8Array {
  if (data.byteLength < 4) throw new ValidationError('OIP_BINARY', `${what}: a BYTES element needs its 4-byte length`);
  const length = new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true);
  if (length !== data.byteLength - 4) throw new ValidationError('OIP_BINARY', `${what}: a BYTES tensor of one element of ${length} bytes does not fill its ${data.byteLength - 4} bytes of data`);
  return data.subarray(4);
}
