/**
 * The three body families every inference route takes and answers in: Tandem's tensor
 * payload (msgpack), OIP v2 (JSON, or binary with `Inference-Header-Content-Length`) and Vertex
 * `{"instances": [...]}` JSON. The family is the body's, whatever the route: an answer is
 * written in the family its request came in.
 */
import { encodeTensorMap, TENSOR_CONTENT_TYPE } from '../src/codec/index.js';
import type { TensorMap } from '../src/tensor/index.js';
import { encodeOipResponse, instancesToTensors, OIP_HEADER_LENGTH, tensorsToPredictions } from '../src/providers/index.js';
import type { BodyReader } from './body.js';
import { decodeBody, jsonBytes, vertexDecoded, type DecodedBody, type DecodeOptions } from './body-decode.js';
import { badRequest, CloudError } from './errors.js';
import type { ParsedBody, Route, VertexAnswer } from './front.js';
import type { DecodeUntil, JsonThread } from './json-thread.js';
import { DEFAULT_INLINE_JSON_BYTES } from './options.js';

/** What an answer says about its run: the model, the cut and the compute time in ms (3 decimals). */
export interface AnswerAbout {
  model: string;
  cut: string | null;
  compute: string;
}

/** Where large bodies are decoded: the JSON thread, and the reader that knows which bodies may move there. */
export interface Offload {
  thread: JsonThread;
  bodies?: BodyReader;
  /** JSON bytes parsed on the event loop (default {@link DEFAULT_INLINE_JSON_BYTES}). */
  inlineBytes?: number;
}

export class BodyFormats {
  /**
   * `maxBody` bounds decoded sizes too: elements of an OIP or Vertex body, bytes of a payload.
   * `maxJson` bounds the JSON parsed. With `offload`, a body with more JSON than its
   * `inlineBytes` is decoded in the JSON thread.
   */
  constructor(private readonly maxBody: number, private readonly maxJson: number = maxBody, private readonly offload?: Offload) {}

  /** 413 for JSON over `maxJson`, before it is parsed. */
  private boundJson(bytes: number): void {
    if (bytes > this.maxJson) {
      throw new CloudError(413, 'CLOUD_TOO_LARGE', `a JSON body (or header) of ${bytes} bytes exceeds the JSON limit of ${this.maxJson} bytes; send large tensors as a Tandem tensor payload or OIP binary data`, { retryable: false });
    }
  }

  /**
   * The body's family and contents. `headerLength`: the OIP binary extension's
   * `Inference-Header-Content-Length`, if sent. Small bodies are parsed at once, large JSON in
   * the JSON thread (a promise); a refusal is thrown, or the promise rejects. `until`: when
   * a body waiting for the JSON thread is no longer wanted.
   */
  parse(body: Buffer, headerLength: string | undefined, r: Route, until?: DecodeUntil): ParsedBody | Promise<ParsedBody> {
    if (body.byteLength === 0) throw badRequest('CLOUD_EMPTY_BODY', 'the request body is empty');
    const options: DecodeOptions = { headerLength: headerLength === undefined ? undefined : Number(headerLength), vertexRaw: r.vertexRaw === true, maxBody: this.maxBody };
    const digest = this.offload?.bodies?.digest(body);
    if (digest) options.digest = digest;
    const json = jsonBytes(body, options.headerLength);
    this.boundJson(headerLength !== undefined && json > 0 ? Number(headerLength) || 0 : json);
    const offload = this.offload;
    if (offload === undefined || json <= (offload.inlineBytes ?? DEFAULT_INLINE_JSON_BYTES)) return this.parsed(decodeBody(body, options));
    return offload.thread.decode(body, offload.bodies?.give(body) ?? false, options, until).then(({ decoded, handle }) => {
      if (handle === undefined) return this.parsed(decoded);
      const thread = offload.thread;
      const maxBody = this.maxBody;
      return { ...this.parsed(decoded), tensors: (p) => thread.tensors(handle, p.inputs, maxBody), release: () => thread.drop(handle) };
    });
  }

  /** Vertex `instances` and `parameters` (model, cut), from a JSON body or a gRPC PredictRequest. */
  vertex(instances: readonly unknown[], params: Readonly<Record<string, unknown>>): ParsedBody {
    return this.parsed(vertexDecoded(instances, params));
  }

  private parsed(d: DecodedBody): ParsedBody {
    const { tensors, instances } = d;
    const maxBody = this.maxBody;
    const parsed: ParsedBody = { family: d.family, tensors: instances ? (p) => instancesToTensors(instances, p.inputs, maxBody) : () => tensors ?? {} };
    // Set one by one rather than spread: this is every request's path.
    if (d.model !== undefined) parsed.model = d.model;
    if (d.cut !== undefined) parsed.cut = d.cut;
    if (d.binaryOutputs !== undefined) parsed.binaryOutputs = d.binaryOutputs;
    if (d.shaped !== undefined) parsed.shaped = d.shaped;
    if (d.id !== undefined) parsed.id = d.id;
    return parsed;
  }

  /** The answer in the request's own family; sets the content type (and OIP's header length). */
  encode(outputs: TensorMap, parsed: ParsedBody, headers: Record<string, string | number>, about: AnswerAbout): Uint8Array {
    const { model, cut, compute } = about;
    if (parsed.family === 'tandem') {
      headers['content-type'] = TENSOR_CONTENT_TYPE;
      return encodeTensorMap(outputs, { meta: { computeMs: compute, model, ...(cut ? { cut } : {}) } });
    }
    if (parsed.family === 'oip') {
      const enc = encodeOipResponse(model, outputs, { binary: parsed.binaryOutputs ?? false, ...(parsed.id !== undefined ? { id: parsed.id } : {}), ...(cut ? { version: cut } : {}), parameters: { compute_ms: Number(compute) } });
      headers['content-type'] = enc.contentType;
      if (enc.headerLength !== undefined) headers[OIP_HEADER_LENGTH] = enc.headerLength;
      return enc.body;
    }
    headers['content-type'] = 'application/json';
    return Buffer.from(JSON.stringify(vertexAnswer(outputs, parsed, model, compute)));
  }
}

/** Vertex's PredictResponse as plain JSON (the REST front writes it; the gRPC front makes protobuf of it). */
export function vertexAnswer(outputs: TensorMap, parsed: ParsedBody, model: string, compute: string): VertexAnswer {
  const dtypes = Object.fromEntries(Object.entries(outputs).map(([k, t]) => [k, { dtype: t.dtype, dims: t.dims }]));
  return { predictions: tensorsToPredictions(outputs, parsed.shaped ?? false), deployedModelId: model, metadata: { computeMs: Number(compute), outputs: dtypes } };
}
