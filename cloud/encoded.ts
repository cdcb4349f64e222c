/**
 * Encoded offload on the service's side: a request whose body is an image (JPEG, PNG, WebP) as
 * the edge was given it, with the fingerprint of the pipeline that must turn it into the
 * model's input. The service decodes and preprocesses it with the package's own pipeline, under
 * the same limits as the edge (a decompression bomb is refused from its header, with the edge's
 * code), after refusing a fingerprint that is not its package's (400 CLOUD_PIPELINE_MISMATCH:
 * the edge then sends tensors). How each front carries it: docs/reference/wire.md.
 */
import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { decodePayload, looksLikeTensorPayload } from '../src/codec/index.js';
import { httpStatusOf, isTandemError } from '../src/errors/index.js';
import type { PipelineSpec } from '../src/preprocess/index.js';
import { imageToTensor } from '../src/preprocess/index.js';
import {
  decodeOipImageRequest, IMAGE_INPUT_HEADER, IMAGE_INPUT_KEY, IMAGE_META_KEY, isFingerprint, parseContentType, PIPELINE_HEADER, PIPELINE_KEY, pipelineFingerprint, sniffImageType,
} from '../src/providers/index.js';
import type { TensorMap } from '../src/tensor/index.js';
import { badRequest, clientClosed, CloudError } from './errors.js';
import type { ParsedBody, Route } from './front.js';
import type { LoadedPartition, ModelRepository } from './models.js';

/** What a front saw in a request's headers that says its body may be an image. */
export interface ImageHint {
  /** The fingerprint header (or SageMaker custom attribute), if sent. */
  pipeline?: string;
  input?: string;
  /** The body is Vertex REST's JSON `{httpBody}` around the image. */
  json?: boolean;
  /** The body is OIP binary: an image is a BYTES input. */
  oipHeaderLength?: number;
}

/** A route whose front may have seen an image hint. */
export interface ImageRoute extends Route {
  image?: ImageHint;
}

/** An encoded image a request carries, and the parsed body its answer is written from. */
export interface ImageRequest {
  bytes: Uint8Array;
  /** What the bytes' signature says (undefined: not an image the pipelines decode; the decode says why). */
  contentType: string | undefined;
  pipeline: string | undefined;
  input: string | undefined;
  parsed: ParsedBody;
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/**
 * The hint of an HTTP request: the fingerprint header or custom attribute, or an `image/*`
 * content type. `attrs`: SageMaker's custom attributes, parsed.
 */
export function imageHint(req: IncomingMessage, attrs: Readonly<Record<string, string>> = {}): { image?: ImageHint } {
  const pipeline = first(req.headers[PIPELINE_HEADER]) ?? attrs[PIPELINE_KEY];
  const type = parseContentType(first(req.headers['content-type'])).type;
  if (pipeline === undefined && !type.startsWith('image/')) return {};
  const input = first(req.headers[IMAGE_INPUT_HEADER]) ?? attrs[IMAGE_INPUT_KEY];
  return { image: { ...(pipeline !== undefined ? { pipeline } : {}), ...(input !== undefined ? { input } : {}), ...(type.endsWith('json') ? { json: true } : {}) } };
}

/** The hint of an OIP binary request: its header length (a BYTES input is looked for there). */
export function oipImageHint(headerLength: string | undefined): { image?: ImageHint } {
  const n = Number(headerLength);
  return headerLength !== undefined && Number.isSafeInteger(n) && n >= 0 ? { image: { oipHeaderLength: n } } : {};
}

const httpBodySchema = z.object({ httpBody: z.object({ contentType: z.string().optional(), data: z.string().optional() }) });
const PAYLOAD_PREFIX_BYTES = 20;
const IMAGE_MARK = Buffer.from('image/');

/** The answer of an image request that came as raw bytes: a Tandem tensor payload. */
function rawParsed(): ParsedBody {
  return { family: 'tandem', tensors: notTensors };
}

function notTensors(): TensorMap {
  throw new CloudError(500, 'CLOUD_INTERNAL', 'an image request has no tensors of its own');
}

function image(bytes: Uint8Array, pipeline: string | undefined, input: string | undefined, parsed: ParsedBody): ImageRequest {
  return { bytes, contentType: sniffImageType(bytes), pipeline, input, parsed };
}

/**
 * The encoded image `body` carries, or undefined for a tensor request (left to the body
 * formats). Only the route's hint, or a payload descriptor that names an image type, makes it
 * look: a tensor request pays nothing more.
 */
export function imageRequest(r: Route, body: Buffer): ImageRequest | undefined {
  const hint = (r as ImageRoute).image;
  if (looksLikeTensorPayload(body)) return payloadImage(body, r.maxBody);
  if (!hint) return undefined;
  if (hint.oipHeaderLength !== undefined) {
    const oip = decodeOipImageRequest(body, hint.oipHeaderLength);
    if (!oip) return undefined;
    const parsed: ParsedBody = { family: 'oip', tensors: notTensors, binaryOutputs: oip.binaryOutputs, ...(oip.id !== undefined ? { id: oip.id } : {}), ...(oip.cut ? { cut: oip.cut } : {}) };
    return image(oip.bytes, oip.pipeline, oip.input, parsed);
  }
  if (hint.json) {
    if (!r.vertexRaw) return undefined;
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch {
      throw badRequest('CLOUD_UNSUPPORTED_BODY', 'a rawPredict JSON body must be {"httpBody": {"contentType", "data"}}');
    }
    const raw = httpBodySchema.safeParse(json);
    if (!raw.success) throw badRequest('CLOUD_UNSUPPORTED_BODY', 'rawPredict httpBody must hold base64 "data"');
    const inner = Buffer.from(raw.data.httpBody.data ?? '', 'base64');
    // A tensor payload in the httpBody, fingerprint header or not: the body formats' to read.
    if (looksLikeTensorPayload(inner)) return undefined;
    return image(inner, hint.pipeline, hint.input, rawParsed());
  }
  return image(body, hint.pipeline, hint.input, rawParsed());
}

/** A Tandem payload whose meta says `image`: its one uint8 tensor holds the bytes. */
function payloadImage(body: Buffer, maxBytes: number): ImageRequest | undefined {
  if (body.byteLength < PAYLOAD_PREFIX_BYTES) return undefined;
  const d = body.readUInt32LE(11);
  // The descriptor is small; a tensor payload that does not mention an image type is not decoded here.
  if (body.subarray(PAYLOAD_PREFIX_BYTES, Math.min(body.byteLength, PAYLOAD_PREFIX_BYTES + d)).indexOf(IMAGE_MARK) < 0) return undefined;
  const decoded = decodePayload(body, { maxBytes });
  const type = decoded.meta[IMAGE_META_KEY];
  if (type === undefined) return undefined;
  const tensors = Object.entries(decoded.tensors);
  const [name, t] = tensors[0] ?? [];
  if (tensors.length !== 1 || !t || t.dtype !== 'uint8' || t.dims.length !== 1) {
    throw badRequest('CLOUD_IMAGE_REQUEST', 'a payload with meta "image" holds one 1-D uint8 tensor: the encoded image');
  }
  const meta = decoded.meta;
  const parsed: ParsedBody = { family: 'tandem', tensors: notTensors, ...(meta['model'] ? { model: meta['model'] } : {}), ...(meta['cut'] ? { cut: meta['cut'] } : {}) };
  return image(t.data as Uint8Array, meta[PIPELINE_KEY], meta[IMAGE_INPUT_KEY] ?? name, parsed);
}

/** Turns image requests into the tensors a partition takes, with the served package's pipeline. */
export class ImageInputs {
  /** Fingerprints by model and input, computed once (the model's hash is read once anyway). */
  private readonly fingerprints = new Map<string, Promise<string>>();

  constructor(private readonly repo: ModelRepository) {}

  async tensors(req: ImageRequest, model: string, cut: string | null, partition: LoadedPartition, deadline: number, signal: AbortSignal | undefined): Promise<TensorMap> {
    if (cut !== null) throw badRequest('CLOUD_IMAGE_REQUEST', 'an encoded image is the input of the whole model; a split sends its cut tensors');
    if (partition.inputs.length !== 1) throw badRequest('CLOUD_IMAGE_REQUEST', `model "${model}" has ${partition.inputs.length} inputs; an encoded image can feed only a one-input model`);
    const input = req.input ?? partition.inputs[0]?.name ?? '';
    if (partition.inputs[0]?.name !== input) throw badRequest('CLOUD_INPUT_UNKNOWN', `model "${model}" has no input named "${input}"`);
    if (req.pipeline !== undefined && !isFingerprint(req.pipeline)) throw badRequest('CLOUD_IMAGE_REQUEST', 'the pipeline fingerprint must be 64 lower-case hex digits');
    const pipeline = this.repo.package(model)?.manifest.inputs[input]?.pipeline;
    if (!pipeline) {
      throw new CloudError(400, 'CLOUD_PIPELINE_MISMATCH', `model "${model}" declares no image pipeline for input "${input}"; send its tensor instead`, { details: { model, input } });
    }
    // Without a fingerprint the caller takes the package's pipeline as it is (a plain JPEG POST).
    if (req.pipeline !== undefined && req.pipeline !== (await this.fingerprint(model, input, pipeline))) {
      throw new CloudError(400, 'CLOUD_PIPELINE_MISMATCH', `model "${model}": the image was meant for another pipeline or model than this package's (input "${input}"); send its tensor instead`, { details: { model, input } });
    }
    try {
      const tensor = await imageToTensor(req.bytes, pipeline, {
        deadline,
        ...(signal ? { signal } : {}),
        ended: (by, reason) => (by === 'deadline' ? new CloudError(504, 'CLOUD_DEADLINE', 'the request deadline passed while its image was decoded', { retryable: true }) : clientClosed('while its image was decoded', reason)),
      });
      return { [input]: tensor };
    } catch (error) {
      // The edge's codes (IMAGE_TOO_LARGE…), with the status the catalogue gives them.
      if (isTandemError(error) && !(error instanceof CloudError)) throw new CloudError(httpStatusOf(error.code), error.code, error.message, { cause: error, ...(error.details ? { details: error.details } : {}) });
      throw error;
    }
  }

  private fingerprint(model: string, input: string, pipeline: PipelineSpec): Promise<string> {
    const key = `${model}\u0000${input}`;
    let p = this.fingerprints.get(key);
    if (!p) {
      p = this.repo.modelSha256(model).then((sha) => pipelineFingerprint(input, pipeline, sha));
      p.catch(() => this.fingerprints.delete(key));
      this.fingerprints.set(key, p);
    }
    return p;
  }
}
