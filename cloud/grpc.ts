/**
 * The gRPC front of the emulated Vertex AI API: google.cloud.aiplatform.v1.PredictionService's
 * `Predict` and `RawPredict`, which the Vertex SDK speaks by default (its REST fallback is what
 * the HTTP front's `:predict` and `:rawPredict` routes serve). Every call goes through the
 * service's one inference path (`infer` in server.ts): the same model lookup, limiter,
 * deadline, body limit, bearer token, metrics and log line. Only the framing and the shape of
 * errors are gRPC's: a status code, and google.rpc.Status details (ErrorInfo with the service's
 * code, RetryInfo on overload) in `grpc-status-details-bin`, as Google's fronts send them.
 */
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Metadata, Server, ServerCredentials, status as GrpcStatus, type sendUnaryData, type ServerUnaryCall, type ServiceDefinition } from '@grpc/grpc-js';
import { loadSync, type MessageTypeDefinition, type MethodDefinition } from '@grpc/proto-loader';
import type { Logger } from 'pino';
import { OIP_HEADER_LENGTH } from '../src/providers/wire/oip.js';
import { toProtoValue, VERTEX_MAX_MESSAGE_BYTES } from '../src/providers/wire/vertex.js';
import type { TensorMap } from '../src/tensor.js';
import { verifyBearer } from './auth.js';
import { badRequest, CloudError } from './errors.js';
import { COMPUTE_HEADER, CUT_HEADER, GRPC_STATUS, MODEL_HEADER, RETRY_AFTER_SECONDS, type FrontIO, type GrpcFront, type ParsedBody, type Route, type ServiceCore, type VertexAnswer } from './front.js';

const require = createRequire(import.meta.url);
// The protos the Vertex SDK itself is generated from; google/api, google/rpc and the
// well-known types come with google-gax.
const PROTO_DIRS = [
  join(dirname(require.resolve('@google-cloud/aiplatform/package.json')), 'build', 'protos'),
  join(dirname(require.resolve('google-gax')), '..', 'protos'),
];
const SERVICE = 'google.cloud.aiplatform.v1.PredictionService';

/** google.protobuf.Value as proto-loader hands it over (`oneofs: true` names the field set). */
interface ProtoValue {
  kind?: string;
  nullValue?: unknown;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: { fields?: Record<string, ProtoValue> } | null;
  listValue?: { values?: ProtoValue[] } | null;
}

interface PredictMessage {
  endpoint?: string;
  instances?: ProtoValue[];
  parameters?: ProtoValue | null;
}

interface RawPredictMessage {
  endpoint?: string;
  httpBody?: { contentType?: string; data?: Uint8Array } | null;
}

/**
 * A request as the deserializer leaves it: its wire bytes (the size the body limit and the
 * metrics count), and the message or why it could not be decoded. A decoding failure is the
 * client's malformed request, answered INVALID_ARGUMENT; grpc-js would answer INTERNAL.
 */
interface Incoming {
  raw: Buffer;
  message?: PredictMessage & RawPredictMessage;
  error?: unknown;
}

type Kind = 'predict' | 'rawPredict';

interface Exchange {
  readonly call: ServerUnaryCall<Incoming, Buffer>;
  readonly callback: sendUnaryData<Buffer>;
  readonly kind: Kind;
  readonly message: PredictMessage & RawPredictMessage;
  readonly raw: Buffer;
}

const PATHS: Readonly<Record<Kind, string>> = { predict: `/${SERVICE}/Predict`, rawPredict: `/${SERVICE}/RawPredict` };
const ROUTES: Readonly<Record<Kind, string>> = { predict: 'vertex-grpc-predict', rawPredict: 'vertex-grpc-rawPredict' };
const ENDPOINT_RE = /^projects\/[^/]+\/locations\/[^/]+\/endpoints\/([^/]+)$/;
/**
 * Deepest google.protobuf.Value nesting taken from a PredictRequest: instance, input, `{shape,
 * data}` or nested arrays of the deepest rank JSON tensors may have (16), and some room.
 */
const MAX_VALUE_DEPTH = 32;

/** The first text value of a metadata key, if any. */
function text(md: Metadata, key: string): string | undefined {
  const v = md.get(key)[0];
  return typeof v === 'string' ? v : undefined;
}

function fromValue(v: ProtoValue | null | undefined, depth: number): unknown {
  if (depth > MAX_VALUE_DEPTH) throw badRequest('WIRE_SHAPE', `google.protobuf.Value nesting deeper than ${MAX_VALUE_DEPTH} levels is not a tensor this service takes`);
  switch (v?.kind) {
    case 'numberValue': return v.numberValue;
    case 'stringValue': return v.stringValue;
    case 'boolValue': return v.boolValue;
    case 'listValue': return (v.listValue?.values ?? []).map((x) => fromValue(x, depth + 1));
    case 'structValue': {
      // A null prototype: a field named __proto__ stays an ordinary entry.
      const out = Object.create(null) as Record<string, unknown>;
      for (const [k, x] of Object.entries(v.structValue?.fields ?? {})) out[k] = fromValue(x, depth + 1);
      return out;
    }
    default: return null;
  }
}

function bytesOf(data: Uint8Array | undefined): Buffer {
  if (data === undefined) return Buffer.alloc(0);
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** Starts the gRPC front on `host:port`; resolves once it listens. */
export async function startGrpcFront(core: ServiceCore, options: { port: number; host: string; tls?: { key: string | Buffer; cert: string | Buffer } }): Promise<GrpcFront> {
  const definitions = loadSync(['google/cloud/aiplatform/v1/prediction_service.proto', 'google/rpc/status.proto', 'google/rpc/error_details.proto'], {
    includeDirs: PROTO_DIRS, keepCase: false, longs: String, enums: String, defaults: false, oneofs: true,
  });
  const service = definitions[SERVICE] as Record<string, MethodDefinition<object, object>>;
  const messageType = (name: string): MessageTypeDefinition<object, object> => definitions[name] as MessageTypeDefinition<object, object>;
  const statusType = messageType('google.rpc.Status');
  const errorInfoType = messageType('google.rpc.ErrorInfo');
  const retryInfoType = messageType('google.rpc.RetryInfo');
  const httpBodyType = messageType('google.api.HttpBody');
  const predictResponseType = messageType('google.cloud.aiplatform.v1.PredictResponse');
  // Any keeps its snake_case field names (protobufjs's built-in type), whatever keepCase says.
  const retryInfo = { type_url: 'type.googleapis.com/google.rpc.RetryInfo', value: retryInfoType.serialize({ retryDelay: { seconds: String(RETRY_AFTER_SECONDS), nanos: 0 } }) };

  const method = (name: 'Predict' | 'RawPredict'): MethodDefinition<object, Buffer, Incoming, Buffer> => {
    const m = service[name];
    if (!m) throw new CloudError(500, 'CLOUD_GRPC_PROTOS', `${SERVICE}/${name} is missing from the Vertex AI protos`, { retryable: false });
    return {
      ...m,
      requestDeserialize: (raw: Buffer): Incoming => {
        try {
          return { raw, message: m.requestDeserialize(raw) as PredictMessage & RawPredictMessage };
        } catch (error) {
          return { raw, error };
        }
      },
      // Answers are encoded in the handler, which needs their size for the limit and the log.
      responseSerialize: (b: Buffer): Buffer => b,
      responseDeserialize: (b: Buffer): Buffer => b,
    } as MethodDefinition<object, Buffer, Incoming, Buffer>;
  };

  /** Answers a refusal as the status its HTTP status stands for, with Google's details; returns that HTTP status. */
  function fail(call: ServerUnaryCall<Incoming, Buffer>, callback: sendUnaryData<Buffer>, requestId: string, error: unknown, log: Logger): number {
    const { status, code, message: text } = core.describe(error, log);
    // The client has gone: there is nobody to answer.
    if (call.cancelled) return status;
    const grpcCode = GrpcStatus[(GRPC_STATUS[status] ?? 'UNKNOWN') as keyof typeof GrpcStatus];
    const details = `${code}: ${text}`;
    const errorInfo = { type_url: 'type.googleapis.com/google.rpc.ErrorInfo', value: errorInfoType.serialize({ reason: code, domain: 'tandem.cloud' }) };
    const trailers = new Metadata();
    trailers.set('x-request-id', requestId);
    trailers.set('grpc-status-details-bin', statusType.serialize({ code: grpcCode, message: details, details: status === 429 || status === 503 ? [errorInfo, retryInfo] : [errorInfo] }));
    callback({ code: grpcCode, details, metadata: trailers });
    return status;
  }

  const io: FrontIO<Exchange> = {
    budget(x) {
      // The client's deadline travels as grpc-timeout; grpc-js makes it absolute on arrival.
      const deadline = x.call.getDeadline();
      const at = deadline instanceof Date ? deadline.getTime() : deadline;
      if (!Number.isFinite(at)) return core.timeoutMs;
      const budget = at - Date.now();
      if (budget <= 0) throw new CloudError(504, 'CLOUD_DEADLINE', 'the call\'s deadline had passed when it arrived', { retryable: false });
      return Math.min(budget, core.timeoutMs);
    },
    authorize(x) {
      verifyBearer({ authorization: text(x.call.metadata, 'authorization') }, core.vertexToken);
    },
    body(x, r) {
      const body = x.kind === 'rawPredict' ? bytesOf(x.message.httpBody?.data) : x.raw;
      if (body.byteLength > r.maxBody) throw new CloudError(413, 'CLOUD_TOO_LARGE', `request body of ${body.byteLength} bytes exceeds this route's limit of ${r.maxBody} bytes`, { retryable: false });
      return body;
    },
    verify: () => undefined,
    parse(x, body, r): ParsedBody {
      if (x.kind === 'rawPredict') return core.parseBody(body, text(x.call.metadata, OIP_HEADER_LENGTH), r);
      const instances = (x.message.instances ?? []).map((v) => fromValue(v, 1));
      const parameters = x.message.parameters ? fromValue(x.message.parameters, 1) : {};
      if (parameters === null || typeof parameters !== 'object' || Array.isArray(parameters)) {
        throw badRequest('CLOUD_VERTEX_BODY', 'a PredictRequest\'s "parameters" must be a struct');
      }
      return core.vertexParsed(instances, parameters as Record<string, unknown>);
    },
    signal(x) {
      const controller = new AbortController();
      if (x.call.cancelled) controller.abort();
      else x.call.once('cancelled', () => controller.abort());
      return controller.signal;
    },
    closed: (x) => x.call.cancelled,
    answer(x, _r, requestId, outputs: TensorMap, parsed, model, cut, computeMs) {
      const compute = computeMs.toFixed(3);
      let encoded: Buffer;
      let bytes: number;
      if (x.kind === 'rawPredict') {
        const headers: Record<string, string | number> = {};
        const payload = core.encodeAnswer(outputs, parsed, headers, { model, cut, compute });
        encoded = httpBodyType.serialize({ contentType: String(headers['content-type']), data: payload });
        bytes = payload.byteLength;
      } else {
        const answer: VertexAnswer = core.vertexAnswer(outputs, parsed, model, compute);
        encoded = predictResponseType.serialize({ predictions: answer.predictions.map(toProtoValue), deployedModelId: answer.deployedModelId, metadata: toProtoValue(answer.metadata) });
        bytes = encoded.byteLength;
      }
      if (encoded.byteLength > VERTEX_MAX_MESSAGE_BYTES) {
        throw new CloudError(400, 'CLOUD_ANSWER_TOO_LARGE', `the answer of ${encoded.byteLength} bytes exceeds the gRPC message limit of ${VERTEX_MAX_MESSAGE_BYTES} bytes (Vertex AI's request and answer limit); run a later cut here, or use the REST front`, { retryable: false });
      }
      const md = new Metadata();
      md.set('x-request-id', requestId);
      md.set(COMPUTE_HEADER, compute);
      x.call.sendMetadata(md);
      x.callback(null, encoded);
      return bytes;
    },
  };

  const handler = (kind: Kind) => (call: ServerUnaryCall<Incoming, Buffer>, callback: sendUnaryData<Buffer>): void => {
    // From grpc-js handing over the decoded call: the message has arrived whole by then.
    const started = performance.now();
    const requestId = text(call.metadata, 'x-request-id') ?? randomUUID();
    let child: Logger | undefined;
    const reqLog = (): Logger => (child ??= core.log.child({ requestId }));
    let x: Exchange;
    let r: Route;
    try {
      const incoming = call.request;
      if (!incoming.message) {
        const why = incoming.error instanceof Error ? incoming.error.message : String(incoming.error);
        throw badRequest('CLOUD_GRPC_MESSAGE', `the ${kind === 'predict' ? 'PredictRequest' : 'RawPredictRequest'} could not be decoded: ${why}`);
      }
      x = { call, callback, kind, message: incoming.message, raw: incoming.raw };
      const endpoint = typeof incoming.message.endpoint === 'string' ? incoming.message.endpoint : '';
      const m = ENDPOINT_RE.exec(endpoint);
      if (!m) throw badRequest('CLOUD_ENDPOINT_INVALID', `"endpoint" must be projects/{project}/locations/{location}/endpoints/{endpoint}, got "${endpoint.slice(0, 100)}"`);
      const id = m[1] ?? '';
      const model = text(call.metadata, MODEL_HEADER) ?? (core.repo.has(id) ? id : undefined);
      const cut = text(call.metadata, CUT_HEADER);
      r = { name: ROUTES[kind], front: 'vertex', maxBody: core.maxBody, googleErrors: true, ...(model ? { model } : {}), ...(cut ? { cut } : {}) };
    } catch (error) {
      fail(call, callback, requestId, error, reqLog());
      return;
    }
    if (core.draining()) {
      fail(call, callback, requestId, core.drainingError(), reqLog());
      return;
    }
    core.begin();
    core.infer(io, x, r, PATHS[kind], requestId, started)
      .catch((error: unknown) => {
        const status = fail(call, callback, requestId, error, reqLog());
        core.logRefusal(reqLog(), r.name, status, error);
        return { status, model: core.modelLabel(r) };
      })
      .then(({ status, model }) => core.count(r.name, model, status, started))
      .finally(() => core.end())
      .catch(() => undefined);
  };

  const server = new Server({ 'grpc.max_receive_message_length': VERTEX_MAX_MESSAGE_BYTES, 'grpc.max_send_message_length': VERTEX_MAX_MESSAGE_BYTES });
  const definition: ServiceDefinition = { Predict: method('Predict'), RawPredict: method('RawPredict') };
  server.addService(definition, { Predict: handler('predict'), RawPredict: handler('rawPredict') });
  const credentials = options.tls
    ? ServerCredentials.createSsl(null, [{ private_key: Buffer.from(options.tls.key), cert_chain: Buffer.from(options.tls.cert) }], false)
    : ServerCredentials.createInsecure();
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${options.port}`, credentials, (error, bound) => {
      if (error) reject(new CloudError(500, 'CLOUD_GRPC_LISTEN', `the gRPC front cannot listen on ${host}:${options.port}: ${error.message}`, { cause: error, retryable: false }));
      else resolve(bound);
    });
  });
  return {
    port,
    shutdown: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
    forceShutdown: () => server.forceShutdown(),
  };
}
