/**
 * The three body families every inference route takes and answers in: Tandem's tensor
 * payload (msgpack), OIP v2 (JSON, or binary with `Inference-Header-Content-Length`) and Vertex
 * `{"instances": [...]}` JSON. The family is the body's, whatever the route: an answer is
 * written in the family its request came in.
 */
import { z } from 'zod';
import { decodePayload, encodeTensorMap, looksLikeTensorPayload, TENSOR_CONTENT_TYPE, type CodecLimits } from '../src/codec/index.js';
import type { TensorMap } from '../src/tensor/index.js';
import { decodeOipRequest, encodeOipResponse, instancesToTensors, OIP_HEADER_LENGTH, tensorsToPredictions } from '../src/providers/index.js';
import { badRequest, CloudError } from './errors.js';
import type { ParsedBody, Route, VertexAnswer } from './front.js';

const vertexBodySchema = z.object({ instances: z.array(z.unknown()), parameters: z.record(z.string(), z.unknown()).optional() }).passthrough();
const rawHttpBodySchema = z.object({ httpBody: z.object({ contentType: z.string().optional(), data: z.string().optional() }) });

/** What an answer says about its run: the model, the cut and the compute time in ms (3 decimals). */
export interface AnswerAbout {
  model: string;
  cut: string | null;
  compute: string;
}

export class BodyFormats {
  private readonly codecLimits: Partial<CodecLimits>;

  /**
   * `maxBody` bounds decoded sizes too: elements of an OIP or Vertex body, bytes of a payload.
   * `maxJson` bounds the JSON parsed on the event loop, which answers nothing else meanwhile.
   */
  constructor(private readonly maxBody: number, private readonly maxJson: number = maxBody) {
    this.codecLimits = { maxBytes: maxBody };
  }

  /** 413 for JSON over `maxJson`, before it is parsed. */
  private boundJson(bytes: number): void {
    if (bytes > this.maxJson) {
      throw new CloudError(413, 'CLOUD_TOO_LARGE', `a JSON body (or header) of ${bytes} bytes exceeds the JSON limit of ${this.maxJson} bytes; send large tensors as a Tandem tensor payload or OIP binary data`, { retryable: false });
    }
  }

  /** `headerLength`: the OIP binary extension's `Inference-Header-Content-Length`, if sent. */
  parse(body: Buffer, headerLength: string | undefined, r: Route): ParsedBody {
    if (body.byteLength === 0) throw badRequest('CLOUD_EMPTY_BODY', 'the request body is empty');
    if (looksLikeTensorPayload(body)) {
      const decoded = decodePayload(body, this.codecLimits);
      return { family: 'tandem', tensors: () => decoded.tensors, ...(decoded.meta['model'] ? { model: decoded.meta['model'] } : {}), ...(decoded.meta['cut'] ? { cut: decoded.meta['cut'] } : {}) };
    }
    if (headerLength !== undefined) {
      this.boundJson(Number(headerLength) || 0);
      const decoded = decodeOipRequest(body, Number(headerLength), { maxElements: this.maxBody });
      return oipParsed(decoded);
    }
    this.boundJson(body.byteLength);
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch {
      throw badRequest('CLOUD_UNSUPPORTED_BODY', `the body is neither a Tandem tensor payload (${TENSOR_CONTENT_TYPE}), nor OIP v2 JSON/binary, nor Vertex {"instances": [...]} JSON`);
    }
    if (r.vertexRaw && json !== null && typeof json === 'object' && 'httpBody' in json) {
      const raw = rawHttpBodySchema.safeParse(json);
      if (!raw.success) throw badRequest('CLOUD_UNSUPPORTED_BODY', 'rawPredict httpBody must hold base64 "data"');
      const inner = Buffer.from(raw.data.httpBody.data ?? '', 'base64');
      return this.parse(inner, headerLength, { ...r, vertexRaw: false });
    }
    if (json !== null && typeof json === 'object' && 'instances' in json) {
      const v = vertexBodySchema.safeParse(json);
      if (!v.success) {
        const issue = v.error.issues[0];
        throw badRequest('CLOUD_VERTEX_BODY', `a Vertex body is {"instances": [...], "parameters"?: {...}}; "${issue?.path.join('.') || 'body'}" is wrong: ${issue?.message ?? 'invalid'}`);
      }
      return this.vertex(v.data.instances, v.data.parameters ?? {});
    }
    if (json !== null && typeof json === 'object' && 'inputs' in json) {
      return oipParsed(decodeOipRequest(body, undefined, { maxElements: this.maxBody }));
    }
    throw badRequest('CLOUD_UNSUPPORTED_BODY', 'JSON body must be an OIP v2 request ({"inputs": [...]}) or Vertex instances ({"instances": [...]})');
  }

  /** Vertex `instances` and `parameters` (model, cut), from a JSON body or a gRPC PredictRequest. */
  vertex(instances: readonly unknown[], params: Readonly<Record<string, unknown>>): ParsedBody {
    const model = typeof params['model'] === 'string' ? params['model'] : undefined;
    const cut = typeof params['cut'] === 'string' ? params['cut'] : undefined;
    const firstInstance = instances[0];
    const shaped = firstInstance !== null && typeof firstInstance === 'object' && !Array.isArray(firstInstance)
      && Object.values(firstInstance).some((x) => x !== null && typeof x === 'object' && !Array.isArray(x) && 'shape' in x);
    const maxBody = this.maxBody;
    return {
      family: 'vertex',
      shaped,
      tensors: (p) => instancesToTensors(instances, p.inputs, maxBody),
      ...(model ? { model } : {}),
      ...(cut ? { cut } : {}),
    };
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

function oipParsed(decoded: ReturnType<typeof decodeOipRequest>): ParsedBody {
  const cut = typeof decoded.parameters['cut'] === 'string' ? decoded.parameters['cut'] : undefined;
  return { family: 'oip', tensors: () => decoded.tensors, binaryOutputs: decoded.binaryOutputs, ...(decoded.id !== undefined ? { id: decoded.id } : {}), ...(cut ? { cut } : {}) };
}

/** Vertex's PredictResponse as plain JSON (the REST front writes it; the gRPC front makes protobuf of it). */
export function vertexAnswer(outputs: TensorMap, parsed: ParsedBody, model: string, compute: string): VertexAnswer {
  const dtypes = Object.fromEntries(Object.entries(outputs).map(([k, t]) => [k, { dtype: t.dtype, dims: t.dims }]));
  return { predictions: tensorsToPredictions(outputs, parsed.shaped ?? false), deployedModelId: model, metadata: { computeMs: Number(compute), outputs: dtypes } };
}
