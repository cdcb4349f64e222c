/**
 * The gRPC front of the emulated Vertex AI API: google.cloud.aiplatform.v1.PredictionService's
 * `Predict` and `RawPredict`, which the Vertex SDK speaks by default (its REST fallback is what
 * the HTTP front's `:predict` and `:rawPredict` routes serve, `vertex-http.ts`). Every call goes
 * through the service's one inference core (`core.ts`): the same model lookup, limiter,
 * deadline, body limit, bearer token, metrics and log line. Only the framing and the shape of
 * errors are gRPC's: a status code, and google.rpc.Status details (ErrorInfo with the service's
 * code, RetryInfo on overload) in `grpc-status-details-bin`, as Google's fronts send them.
 */
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Metadata, Server, ServerCredentials, setLogger, status as GrpcStatus, type sendUnaryData, type ServerUnaryCall, type ServiceDefinition } from '@grpc/grpc-js';
import { loadSync, type MessageTypeDefinition, type MethodDefinition } from '@grpc/proto-loader';
import type { Logger } from 'pino';
import { Reader } from 'protobufjs';
import type { TensorMap } from '../../src/tensor/index.js';
import { IMAGE_INPUT_HEADER, OIP_HEADER_LENGTH, PIPELINE_HEADER, toProtoValue, VERTEX_MAX_MESSAGE_BYTES } from '../../src/providers/index.js';
import { verifyBearer } from '../auth.js';
import type { ImageHint } from '../encoded.js';
import { badRequest, CloudError, describeError } from '../errors.js';
import { vertexAnswer } from '../formats.js';
import { COMPUTE_HEADER, CUT_HEADER, DEADLINE_HEADER, DRAIN_GRACE_MS, GRPC_STATUS, MODEL_HEADER, requestBudget, RETRY_AFTER_SECONDS, type FrontIO, type GrpcFront, type ParsedBody, type Route, type VertexAnswer } from '../front.js';
import type { FrontContext } from './http-front.js';

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

type Kind = 'predict' | 'rawPredict';

type Message = PredictMessage & RawPredictMessage;

/**
 * One call. `raw` is the request's wire bytes (the size the body limit and the metrics count);
 * `message` is decoded from them only once the bearer token has been checked (see
 * {@link endpointOf}).
 */
interface Exchange {
  readonly call: ServerUnaryCall<Buffer, Buffer>;
  readonly callback: sendUnaryData<Buffer>;
  readonly kind: Kind;
  readonly raw: Buffer;
  message: Message;
}

const PATHS: Readonly<Record<Kind, string>> = { predict: `/${SERVICE}/Predict`, rawPredict: `/${SERVICE}/RawPredict` };
const ROUTES: Readonly<Record<Kind, string>> = { predict: 'vertex-grpc-predict', rawPredict: 'vertex-grpc-rawPredict' };
const ENDPOINT_RE = /^projects\/[^/]+\/locations\/[^/]+\/endpoints\/([^/]+)$/;
/**
 * Deepest google.protobuf.Value nesting taken from a PredictRequest: instance, input, `{shape,
 * data}` or nested arrays of the deepest rank JSON tensors may have (16), and some room.
 */
const MAX_VALUE_DEPTH = 32;

/**
 * A cancellation this close to the call's deadline (or past it) is grpc-js answering
 * DEADLINE_EXCEEDED, not the client leaving: grpc-js arms its deadline timer from the event
 * loop's cached clock, which can run that much behind the deadline it computed.
 */
const DEADLINE_SLACK_MS = 50;

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

/**
 * The `endpoint` field (1) of a PredictRequest or RawPredictRequest, read by skipping over the
 * other fields undecoded (the last occurrence wins, as in protobuf). Decoding the whole message
 * before the token is checked would let anyone make the service build the decoded form, tens of
 * times larger than the wire bytes (5 M empty Values in a 10 MiB message: ≈ 600 MB of heap and
 * 1.7 s of the event loop).
 */
function endpointOf(raw: Buffer): string {
  const reader = Reader.create(raw);
  let endpoint = '';
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if (tag === 0x0a) endpoint = reader.string();
    else reader.skipType(tag & 7);
  }
  return endpoint;
}

/** The call's deadline as epoch ms (it travels as grpc-timeout; grpc-js makes it absolute on arrival); Infinity for none. */
function deadlineOf(call: ServerUnaryCall<Buffer, Buffer>): number {
  const deadline = call.getDeadline();
  return deadline instanceof Date ? deadline.getTime() : deadline;
}

/** Whether the call was cancelled because its deadline passed (see {@link DEADLINE_SLACK_MS}). */
function expired(call: ServerUnaryCall<Buffer, Buffer>): boolean {
  const at = deadlineOf(call);
  return Number.isFinite(at) && Date.now() >= at - DEADLINE_SLACK_MS;
}

/** A request message protobuf cannot decode: the client's malformed request (grpc-js would answer INTERNAL). */
function undecodable(kind: Kind, error: unknown): CloudError {
  return new CloudError(400, 'CLOUD_GRPC_MESSAGE', `the ${kind === 'predict' ? 'PredictRequest' : 'RawPredictRequest'} could not be decoded: ${error instanceof Error ? error.message : String(error)}`, { cause: error, retryable: false });
}

function bytesOf(data: Uint8Array | undefined): Buffer {
  if (data === undefined) return Buffer.alloc(0);
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** What grpc-js says a client's call carried that gRPC does not allow (a non-ASCII metadata value…). */
const CLIENT_METADATA_RE = /^Failed to add metadata entry /;

/**
 * grpc-js logs through one process-wide logger, the console by default: every call whose
 * metadata held a value gRPC does not allow printed an unstructured `E Failed to add metadata
 * entry …` line on stderr, at error level, for the client's mistake. Its lines join the
 * service's log instead, that one at info (in a process running several services, the one
 * started last).
 */
function useServiceLog(log: Logger): void {
  const line = (args: unknown[]): { grpc: string } => ({ grpc: args.map(String).join(' ') });
  setLogger({
    error: (...args: unknown[]) => {
      const fields = line(args);
      if (CLIENT_METADATA_RE.test(fields.grpc)) log.info(fields, 'grpc-js dropped a metadata entry of a call');
      else log.error(fields, 'grpc-js');
    },
    info: (...args: unknown[]) => log.info(line(args), 'grpc-js'),
    debug: (...args: unknown[]) => log.debug(line(args), 'grpc-js'),
  });
}

/** Starts the gRPC front on `host:port`; resolves once it listens. */
export async function startGrpcFront(ctx: FrontContext, options: { port: number; host: string; tls?: { key: string | Buffer; cert: string | Buffer } }): Promise<GrpcFront> {
  const { settings, repo, core, formats } = ctx;
  const log = settings.log;
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

  const decoders = {} as Record<Kind, (raw: Buffer) => Message>;
  const method = (name: 'Predict' | 'RawPredict', kind: Kind): MethodDefinition<object, Buffer, Buffer, Buffer> => {
    const m = service[name];
    if (!m) throw new CloudError(500, 'CLOUD_GRPC_PROTOS', `${SERVICE}/${name} is missing from the Vertex AI protos`, { retryable: false });
    decoders[kind] = (raw) => m.requestDeserialize(raw) as Message;
    return {
      ...m,
      // Decoded in the inference path, after the token check (see endpointOf); a decoding
      // failure is then the client's malformed request, INVALID_ARGUMENT (grpc-js would answer INTERNAL).
      requestDeserialize: (raw: Buffer): Buffer => raw,
      // Answers are encoded in the handler, which needs their size for the limit and the log.
      responseSerialize: (b: Buffer): Buffer => b,
      responseDeserialize: (b: Buffer): Buffer => b,
    } as MethodDefinition<object, Buffer, Buffer, Buffer>;
  };

  /** Answers a refusal as the status its HTTP status stands for, with Google's details; returns that HTTP status. */
  function fail(call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>, requestId: string, error: unknown, log: Logger): number {
    const { status, code, message: text } = describeError(error, log);
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
      // Tandem's own budget, as metadata, as on HTTP; the call's deadline bounds it too.
      const tandem = requestBudget(text(x.call.metadata, DEADLINE_HEADER), settings.timeoutMs);
      const at = deadlineOf(x.call);
      if (!Number.isFinite(at)) return tandem;
      const budget = at - Date.now();
      if (budget <= 0) throw new CloudError(504, 'CLOUD_DEADLINE', 'the call\'s deadline had passed when it arrived', { retryable: false });
      return Math.min(budget, tandem);
    },
    authorize(x) {
      verifyBearer({ authorization: text(x.call.metadata, 'authorization') }, settings.credentials.vertexToken);
    },
    body(x, r) {
      const tooLarge = (bytes: number): CloudError => new CloudError(413, 'CLOUD_TOO_LARGE', `request body of ${bytes} bytes exceeds this route's limit of ${r.maxBody} bytes`, { retryable: false });
      if (x.kind === 'predict' && x.raw.byteLength > r.maxBody) throw tooLarge(x.raw.byteLength);
      try {
        x.message = decoders[x.kind](x.raw);
      } catch (error) {
        throw undecodable(x.kind, error);
      }
      const body = x.kind === 'rawPredict' ? bytesOf(x.message.httpBody?.data) : x.raw;
      if (body.byteLength > r.maxBody) throw tooLarge(body.byteLength);
      return body;
    },
    verify: () => undefined,
    parse(x, body, r, until): ParsedBody | Promise<ParsedBody> {
      if (x.kind === 'rawPredict') return formats.parse(body, text(x.call.metadata, OIP_HEADER_LENGTH), r, until);
      const instances = (x.message.instances ?? []).map((v) => fromValue(v, 1));
      const parameters = x.message.parameters ? fromValue(x.message.parameters, 1) : {};
      if (parameters === null || typeof parameters !== 'object' || Array.isArray(parameters)) {
        throw badRequest('CLOUD_VERTEX_BODY', 'a PredictRequest\'s "parameters" must be a struct');
      }
      return formats.vertex(instances, parameters as Record<string, unknown>);
    },
    // A call cancelled at its deadline is left to the service's own deadline, which ends at the
    // same moment: it is counted and logged as the deadline's 504, as on the HTTP front.
    signal(x) {
      const controller = new AbortController();
      const left = (): void => {
        if (!expired(x.call)) controller.abort();
      };
      if (x.call.cancelled) left();
      else x.call.once('cancelled', left);
      return controller.signal;
    },
    closed: (x) => x.call.cancelled && !expired(x.call),
    answer(x, _r, requestId, outputs: TensorMap, parsed, model, cut, computeMs) {
      const compute = computeMs.toFixed(3);
      let encoded: Buffer;
      let bytes: number;
      if (x.kind === 'rawPredict') {
        const headers: Record<string, string | number> = {};
        const payload = formats.encode(outputs, parsed, headers, { model, cut, compute });
        encoded = httpBodyType.serialize({ contentType: String(headers['content-type']), data: payload });
        bytes = payload.byteLength;
      } else {
        const answer: VertexAnswer = vertexAnswer(outputs, parsed, model, compute);
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

  const handler = (kind: Kind) => (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>): void => {
    // From grpc-js handing over the call: the message has arrived whole by then.
    const started = performance.now();
    const requestId = text(call.metadata, 'x-request-id') ?? randomUUID();
    let child: Logger | undefined;
    const reqLog = (): Logger => (child ??= log.child({ requestId }));
    let x: Exchange;
    let r: Route;
    try {
      let endpoint: string;
      try {
        endpoint = endpointOf(call.request);
      } catch (error) {
        throw undecodable(kind, error);
      }
      const m = ENDPOINT_RE.exec(endpoint);
      if (!m) throw badRequest('CLOUD_ENDPOINT_INVALID', `"endpoint" must be projects/{project}/locations/{location}/endpoints/{endpoint}, got "${endpoint.slice(0, 100)}"`);
      x = { call, callback, kind, raw: call.request, message: {} };
      const id = m[1] ?? '';
      const model = text(call.metadata, MODEL_HEADER) ?? (repo.has(id) ? id : undefined);
      const cut = text(call.metadata, CUT_HEADER);
      // Encoded offload (RawPredict): the fingerprint in call metadata, the image in the httpBody.
      const pipeline = kind === 'rawPredict' ? text(call.metadata, PIPELINE_HEADER) : undefined;
      const input = text(call.metadata, IMAGE_INPUT_HEADER);
      const image: ImageHint | undefined = pipeline !== undefined ? { pipeline, ...(input !== undefined ? { input } : {}) } : undefined;
      r = { name: ROUTES[kind], front: 'vertex', maxBody: settings.maxBody, ...(model ? { model } : {}), ...(cut ? { cut } : {}), ...(image ? { image } : {}) } as Route;
    } catch (error) {
      fail(call, callback, requestId, error, reqLog());
      return;
    }
    core.serve(io, x, r, PATHS[kind], requestId, started, (error) => fail(call, callback, requestId, error, reqLog()), reqLog);
  };

  useServiceLog(log);
  const server = new Server({
    'grpc.max_receive_message_length': VERTEX_MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': VERTEX_MAX_MESSAGE_BYTES,
    // grpc-js has no counterpart of node:http's requestTimeout: a call whose message never
    // arrives whole (slowloris) would hold its buffered part, up to 10 MiB, for as long as the
    // client keeps the connection open. A connection is told to go (GOAWAY) once it is a
    // request timeout old and closed a drain bound (request timeout + 1 s) later, so a call
    // accepted before the GOAWAY has what a drain would give it. Clients reconnect for their
    // next call.
    'grpc.max_connection_age_ms': settings.timeoutMs,
    'grpc.max_connection_age_grace_ms': settings.timeoutMs + DRAIN_GRACE_MS,
  });
  const definition: ServiceDefinition = { Predict: method('Predict', 'predict'), RawPredict: method('RawPredict', 'rawPredict') };
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
