/**
 * The agent's message format, shared by every front. A request is a JSON or msgpack map:
 *
 * ```
 * { requestId, model, dataClass?, image? | tensors?, replyTo?, deadlineMs?, includeOutputs? }
 * ```
 *
 * `image` is the encoded image (binary in msgpack, base64 in JSON). `tensors` maps input
 * names to `{ dtype, dims, data }` where data is binary little-endian (msgpack), base64 or a
 * number array (JSON). Replies use the request's encoding. Everything here is pure so that
 * every front validates identically.
 */
import { Packr } from 'msgpackr';
import { z } from 'zod';
import { TandemError, ValidationError, httpStatusOf, isTandemError } from '../src/errors/index.js';
import { DTYPES, allocate, assertTensor, bytesOf, viewAs, type DType, type Tensor, type TensorMap } from '../src/tensor/index.js';
import { describePlan } from '../src/planner/index.js';
import { checkReplyTopic, replyTopicProblem } from './reply-topic.js';
import type { ServiceRequest, ServiceResult } from './service.js';

export type Encoding = 'json' | 'msgpack';

export const CONTENT_TYPES: Readonly<Record<Encoding, string>> = {
  json: 'application/json',
  msgpack: 'application/msgpack',
};

/** Plain maps and binary only, so that any msgpack library can talk to the agent. */
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, int64AsType: 'bigint' });

/** A message that cannot be understood; answered with an error reply and counted. */
export class MalformedMessageError extends ValidationError {
  constructor(message: string, details: Record<string, unknown> = {}, cause?: unknown) {
    super('MESSAGE_MALFORMED', message, { details, cause });
  }
}

/** A message over the configured payload limit; refused before it is decoded. */
export class PayloadTooLargeError extends ValidationError {
  constructor(bytes: number, limit: number) {
    super('PAYLOAD_TOO_LARGE', `the request is ${bytes} bytes; the limit is ${limit}`, { details: { bytes, limit } });
  }
}

const BytesSchema = z.union([
  z.instanceof(Uint8Array),
  z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64'),
]);

const TensorSchema = z
  .object({
    dtype: z.enum(DTYPES),
    dims: z.array(z.number().int().nonnegative()).max(8),
    data: z.union([BytesSchema, z.array(z.union([z.number(), z.boolean()]))]),
  })
  .strict();

const RequestSchema = z
  .object({
    requestId: z.string().min(1).max(128).regex(/^[\w.:@-]+$/, 'letters, digits and _ . : @ - only'),
    model: z.string().min(1).max(128),
    dataClass: z.string().min(1).max(128).optional(),
    image: BytesSchema.optional(),
    tensors: z.record(z.string().min(1), TensorSchema).optional(),
    replyTo: z.string().min(1).max(1024).optional(),
    deadlineMs: z.number().int().positive().max(3_600_000).optional(),
    includeOutputs: z.boolean().optional(),
  })
  .strict()
  .refine((r) => (r.image === undefined) !== (r.tensors === undefined), { message: 'exactly one of "image" and "tensors" is required' });

/** A decoded, validated request plus the transport-level details the reply needs. */
export interface AgentRequest extends ServiceRequest {
  encoding: Encoding;
  replyTo?: string;
  deadlineMs?: number;
  includeOutputs?: boolean;
}

/** Picks the encoding from the content type when given, else from the first byte. */
export function detectEncoding(payload: Uint8Array, contentType?: string): Encoding {
  if (contentType !== undefined) {
    if (/json/i.test(contentType)) return 'json';
    if (/msgpack/i.test(contentType)) return 'msgpack';
  }
  // A JSON request is an object; msgpack maps start with 0x80–0x8f, 0xde or 0xdf.
  let i = 0;
  while (i < payload.length && (payload[i] === 0x20 || payload[i] === 0x0a || payload[i] === 0x0d || payload[i] === 0x09)) i++;
  return payload[i] === 0x7b ? 'json' : 'msgpack';
}

/**
 * Best-effort extraction of routing fields from a message that failed validation, so the
 * error reply can still reach the requester.
 */
export interface PartialRouting {
  requestId?: string;
  replyTo?: string;
  encoding: Encoding;
}

function decodeRaw(payload: Uint8Array, encoding: Encoding): unknown {
  try {
    if (encoding === 'json') return JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8'));
    return packr.unpack(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength));
  } catch (error) {
    throw new MalformedMessageError(`the payload is not valid ${encoding}: ${(error as Error).message}`, { encoding }, error);
  }
}

function toBytes(value: Uint8Array | string): Uint8Array {
  return typeof value === 'string' ? new Uint8Array(Buffer.from(value, 'base64')) : value;
}

function decodeTensor(name: string, spec: z.infer<typeof TensorSchema>): Tensor {
  const dtype: DType = spec.dtype;
  let data: Tensor['data'];
  if (Array.isArray(spec.data)) {
    const values = spec.data;
    const arr = allocate(dtype, values.length);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      const num = typeof v === 'boolean' ? Number(v) : (v as number);
      if (arr instanceof BigInt64Array || arr instanceof BigUint64Array) {
        if (!Number.isInteger(num)) throw new MalformedMessageError(`tensor "${name}" element ${i} is not an integer`);
        arr[i] = BigInt(num);
      } else {
        arr[i] = num;
      }
    }
    data = arr;
  } else {
    try {
      data = viewAs(dtype, toBytes(spec.data));
    } catch (error) {
      throw new MalformedMessageError(`tensor "${name}": ${(error as Error).message}`, { tensor: name }, error);
    }
  }
  const t: Tensor = { dtype, dims: spec.dims, data };
  try {
    assertTensor(name, t);
  } catch (error) {
    throw new MalformedMessageError((error as Error).message, { tensor: name }, error);
  }
  return t;
}

/** Reads routing fields from anything that decoded to an object, ignoring their validity. */
export function routingOf(payload: Uint8Array, contentType?: string): PartialRouting {
  const encoding = detectEncoding(payload, contentType);
  try {
    const raw = decodeRaw(payload, encoding);
    if (raw !== null && typeof raw === 'object') {
      const r = raw as Record<string, unknown>;
      return {
        encoding,
        requestId: typeof r['requestId'] === 'string' && r['requestId'].length <= 128 ? r['requestId'] : undefined,
        // An invalid reply topic is dropped here, so the error reply goes to the results topic.
        replyTo: typeof r['replyTo'] === 'string' && replyTopicProblem(r['replyTo']) === undefined ? r['replyTo'] : undefined,
      };
    }
  } catch {
    // Not decodable at all: there is nothing to route by.
  }
  return { encoding };
}

/**
 * Decodes and validates one request. Throws {@link MalformedMessageError},
 * {@link PayloadTooLargeError} or, for a reply topic no broker accepts, ReplyTopicError;
 * callers at async boundaries turn that into a rejection.
 */
export function decodeRequest(payload: Uint8Array, options: { maxBytes: number; contentType?: string }): AgentRequest {
  if (payload.byteLength > options.maxBytes) throw new PayloadTooLargeError(payload.byteLength, options.maxBytes);
  if (payload.byteLength === 0) throw new MalformedMessageError('the payload is empty');
  const encoding = detectEncoding(payload, options.contentType);
  const raw = decodeRaw(payload, encoding);
  const parsed = RequestSchema.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const where = first && first.path.length > 0 ? first.path.map(String).join('.') : 'request';
    throw new MalformedMessageError(`${where}: ${first?.message ?? 'invalid request'}`, {
      issues: parsed.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
    });
  }
  const r = parsed.data;
  // Refused before inference: publishing to such a topic would cost the front its connection.
  if (r.replyTo !== undefined) checkReplyTopic(r.replyTo);
  const input: ServiceRequest['input'] =
    r.image !== undefined
      ? { kind: 'image', image: toBytes(r.image) }
      : { kind: 'tensors', tensors: Object.fromEntries(Object.entries(r.tensors ?? {}).map(([n, s]) => [n, decodeTensor(n, s)])) };
  if (input.kind === 'image' && input.image.byteLength === 0) throw new MalformedMessageError('image: the image is empty');
  return {
    requestId: r.requestId,
    model: r.model,
    dataClass: r.dataClass,
    input,
    encoding,
    replyTo: r.replyTo,
    deadlineMs: r.deadlineMs,
    includeOutputs: r.includeOutputs,
  };
}

/** The reply body, before encoding. */
export type ReplyBody =
  | {
      requestId: string;
      ok: true;
      model: string;
      plan: ServiceResult['plan'];
      planLabel: string;
      fellBack: boolean;
      fallback?: ServiceResult['fallback'];
      timing: ServiceResult['timing'];
      stored?: ServiceResult['stored'];
      compression?: ServiceResult['compression'];
      result?: unknown;
      outputs?: Record<string, { dtype: string; dims: number[]; data: Uint8Array | string }>;
    }
  | { requestId: string | null; ok: false; error: { code: string; message: string; retryable: boolean; status: number } };

export function successBody(result: ServiceResult, request: Pick<AgentRequest, 'includeOutputs' | 'encoding'>): ReplyBody {
  const include = request.includeOutputs ?? result.result === undefined;
  const body: ReplyBody = {
    requestId: result.requestId,
    ok: true,
    model: result.model,
    plan: result.plan,
    planLabel: describePlan(result.plan),
    fellBack: result.fellBack,
    timing: result.timing,
  };
  if (result.fallback) body.fallback = result.fallback;
  if (result.stored) body.stored = result.stored;
  if (result.compression) body.compression = result.compression;
  if (result.result !== undefined) body.result = result.result;
  if (include) body.outputs = encodeTensors(result.outputs, request.encoding);
  return body;
}

export function encodeTensors(tensors: TensorMap, encoding: Encoding): Record<string, { dtype: string; dims: number[]; data: Uint8Array | string }> {
  const out: Record<string, { dtype: string; dims: number[]; data: Uint8Array | string }> = {};
  for (const [name, t] of Object.entries(tensors)) {
    // Copy so that the reply owns aligned bytes independent of the runtime's buffers.
    const bytes = new Uint8Array(bytesOf(t.data));
    out[name] = { dtype: t.dtype, dims: [...t.dims], data: encoding === 'json' ? Buffer.from(bytes).toString('base64') : bytes };
  }
  return out;
}

export function errorBody(requestId: string | undefined, error: unknown): ReplyBody {
  const e = isTandemError(error) ? error : new TandemError('INTERNAL', error instanceof Error ? error.message : String(error));
  // The catalogue's status travels in the body too, so MQTT and Greengrass replies carry what the HTTP front answers.
  return { requestId: requestId ?? null, ok: false, error: { code: e.code, message: e.message, retryable: e.retryable, status: httpStatusOf(e.code) } };
}

export function encodeBody(body: ReplyBody | Record<string, unknown>, encoding: Encoding): Buffer {
  return encoding === 'json' ? Buffer.from(JSON.stringify(body)) : packr.pack(body);
}

/** Decodes a reply (used by clients, tests and the demo). */
export function decodeReply(payload: Uint8Array, contentType?: string): ReplyBody {
  return decodeRaw(payload, detectEncoding(payload, contentType)) as ReplyBody;
}

/** Encodes a request (used by clients, tests and the demo). */
export function encodeRequest(
  request: {
    requestId: string;
    model: string;
    dataClass?: string;
    image?: Uint8Array;
    tensors?: TensorMap;
    replyTo?: string;
    deadlineMs?: number;
    includeOutputs?: boolean;
  },
  encoding: Encoding,
): Buffer {
  const body: Record<string, unknown> = { ...request };
  if (request.image) body['image'] = encoding === 'json' ? Buffer.from(request.image).toString('base64') : request.image;
  if (request.tensors) body['tensors'] = encodeTensors(request.tensors, encoding);
  for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
  return encodeBody(body, encoding);
}
