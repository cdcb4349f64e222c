/**
 * Encoded offload on the edge: an offloaded request whose input was an encoded image (JPEG,
 * PNG, WebP) sends those bytes, with its pipeline's fingerprint, instead of the preprocessed
 * tensor (10× the JPEG for the PP-OCR classifier, 80× for the detector). An endpoint that
 * refuses it (another pipeline or model, no pipeline, a server that takes no images) gets the
 * tensor at once, and only tensors from then on. Splits send their cut tensors as before.
 */
import type { PipelineSpec } from '../preprocess/schema.js';
import { ProviderError } from '../providers/errors.js';
import type { EncodedImage, InferOptions, InferRequest, InferResponse, ProviderClient } from '../providers/types.js';
import { pipelineFingerprint, sniffImageType } from '../providers/wire/image.js';

/** The manifest inputs and model identity {@link encodedImageOf} reads. */
interface ImagePackage {
  manifest: { inputs: Readonly<Record<string, { pipeline?: PipelineSpec } | undefined>> };
  model: { sha256: string };
}

// The fingerprint of a pipeline object of a loaded package never changes: hashed once.
const fingerprints = new WeakMap<PipelineSpec, string>();

/**
 * The encoded image a request may offload: its one input given as encoded bytes whose pipeline
 * the manifest declares. Undefined for tensors, raw pixels, or a model of several inputs.
 */
export function encodedImageOf(input: unknown, inputNames: readonly string[], pkg: ImagePackage): EncodedImage | undefined {
  if (inputNames.length !== 1) return undefined;
  const name = inputNames[0] as string;
  const value = input instanceof Uint8Array ? input : typeof input === 'object' && input !== null ? (input as Record<string, unknown>)[name] : undefined;
  if (!(value instanceof Uint8Array)) return undefined;
  const pipeline = pkg.manifest.inputs[name]?.pipeline;
  const contentType = sniffImageType(value);
  if (!pipeline || !contentType) return undefined;
  let pipelineSha256 = fingerprints.get(pipeline);
  if (pipelineSha256 === undefined) {
    pipelineSha256 = pipelineFingerprint(name, pipeline, pkg.model.sha256);
    fingerprints.set(pipeline, pipelineSha256);
  }
  return { bytes: value, contentType, input: name, pipelineSha256 };
}

/**
 * Statuses of a refusal that says the endpoint cannot take this image: another pipeline
 * (400 CLOUD_PIPELINE_MISMATCH), or a server that reads no image bodies.
 */
const REFUSES_IMAGE = new Set([400, 409, 412, 415, 422]);

/** Whether `error`, the answer to an encoded image, says to send the tensor instead. */
export function refusesImage(error: unknown): boolean {
  if (!(error instanceof ProviderError)) return false;
  if (error.details['serverCode'] === 'CLOUD_PIPELINE_MISMATCH') return true;
  return error.status !== undefined && REFUSES_IMAGE.has(error.status);
}

/** Which endpoints take encoded images, learnt from their refusals. */
export class EncodedOffload {
  private readonly tensorsOnly = new Set<string>();

  /** {@link encodedImageOf}, for the runtime that holds this executor's package. */
  imageOf(input: unknown, inputNames: readonly string[], pkg: ImagePackage): EncodedImage | undefined {
    return encodedImageOf(input, inputNames, pkg);
  }

  /**
   * What the planner is told an offload sends (`PlanContext.inputBytes`): the image's size when
   * every endpoint it may choose takes images; else nothing (the profile's tensors).
   */
  planBytes(image: EncodedImage | undefined, endpoints: readonly string[]): { inputBytes?: number } {
    if (!image || endpoints.some((e) => this.tensorsOnly.has(e))) return {};
    return { inputBytes: image.bytes.byteLength };
  }

  /** Whether an offload to `endpoint` would send `image` encoded. */
  sendsEncoded(endpoint: string, image: EncodedImage | undefined): boolean {
    return image !== undefined && !this.tensorsOnly.has(endpoint);
  }

  /**
   * `client` as an offload of this request sees it: the image first when the endpoint may
   * take it, then, on a refusal of the image, the tensor (and the endpoint is remembered).
   */
  via(client: ProviderClient, image: EncodedImage | undefined): ProviderClient {
    const name = client.endpoint.name;
    if (!image || this.tensorsOnly.has(name)) return client;
    const infer = async (request: InferRequest, options?: InferOptions): Promise<InferResponse> => {
      try {
        return await client.infer({ ...request, image }, options);
      } catch (error) {
        if (!refusesImage(error) || options?.signal?.aborted) throw error;
        this.tensorsOnly.add(name);
        return client.infer(request, options);
      }
    };
    return { endpoint: client.endpoint, infer, close: () => client.close() };
  }
}
