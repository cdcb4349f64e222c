/**
 * The Tandem cloud service: one node:http server that honours the SageMaker and Vertex AI
 * container contracts, the Open Inference Protocol v2 and Tandem's msgpack fast path, and
 * emulates the SageMaker runtime, Vertex AI and PAI-EAS front APIs so that each provider's
 * real SDK can reach it unchanged; optionally a gRPC server for Vertex AI's PredictionService
 * (`grpc.ts`), the transport the Vertex SDK uses by default. Both fronts run every request
 * through the one inference path, {@link infer}.
 */
import { randomUUID } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { InferenceSession } from 'onnxruntime-node';
import { pino, type Logger } from 'pino';
import { z } from 'zod';
import { decodePayload, encodeTensorMap, looksLikeTensorPayload, TENSOR_CONTENT_TYPE, type CodecLimits } from '../src/codec/index.js';
import { isTandemError } from '../src/errors.js';
import { AbortedError, DeadlineExceededError } from '../src/runtime/errors.js';
import { isTransferable } from '../src/runtime/protocol.js';
import { raceCaller } from '../src/runtime/race.js';
import { decodeOipRequest, encodeOipResponse, LINK_PROBE_MAX_BYTES, LINK_PROBE_PATH, OIP_HEADER_LENGTH, oipDatatype } from '../src/providers/wire/oip.js';
import { instancesToTensors, tensorsToPredictions } from '../src/providers/wire/vertex.js';
import type { TensorMap } from '../src/tensor.js';
import { verifyBearer, verifyEas, verifySigV4, type AwsCredentials } from './auth.js';
import { badRequest, clientClosed, CloudError } from './errors.js';
import { Limiter } from './limiter.js';
import { CloudMetrics } from './metrics.js';
import { DEFAULT_MAX_PARTITIONS, discoverModels, ModelRepository, threadingOf, type LoadedPartition, type ModelPackage, type TailExtractor } from './models.js';
import { COMPUTE_HEADER, CUT_HEADER, DEADLINE_HEADER, DRAIN_GRACE_MS, GRPC_STATUS, MODEL_HEADER, requestBudget, RETRY_AFTER_SECONDS, type ErrorSummary, type FrontIO, type GrpcFront, type ParsedBody, type Route, type ServiceCore, type VertexAnswer } from './front.js';

export { COMPUTE_HEADER, CUT_HEADER, DEADLINE_HEADER, MODEL_HEADER } from './front.js';

/** SageMaker's own request limit for real-time endpoints. */
export const SAGEMAKER_MAX_BODY_BYTES = 6 * 1024 * 1024;

export interface CloudServiceOptions {
  /** A model directory, or packages already discovered. */
  models: string | readonly ModelPackage[];
  /** 0 picks a free port. */
  port: number;
  host?: string;
  /** PEM key and certificate: serve HTTPS (and gRPC over TLS). */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /**
   * Port of the gRPC front for Vertex AI's PredictionService (`Predict`, `RawPredict`), on
   * `host` as well; 0 picks a free port. Absent: no gRPC front.
   */
  grpcPort?: number;
  /** Runs allowed at once per model (default 2) and requests allowed to wait (default 16). */
  maxConcurrent?: number;
  maxQueue?: number;
  /** Largest body on non-SageMaker routes (default 64 MiB). */
  maxBodyBytes?: number;
  /** Default per-request deadline (default 60 s, SageMaker's). */
  requestTimeoutMs?: number;
  /** Credentials the emulated fronts accept; default from the environment (see the README's cloud section). */
  credentials?: { aws?: AwsCredentials; vertexToken?: string; easToken?: string; easSigning?: { keyId: string; secret: string } };
  /** Extracts tails for split inference (the graph toolkit's `splitModel`). */
  extractTail?: TailExtractor;
  /** Vertex custom-container routes (default from AIP_HEALTH_ROUTE / AIP_PREDICT_ROUTE). */
  vertexRoutes?: { health: string; predict: string };
  logger?: Logger;
  /** Collect process metrics (CPU, memory, event loop) too. */
  processMetrics?: boolean;
  /** onnxruntime session options for every partition (threads, spinning, optimisation level). */
  sessionOptions?: InferenceSession.SessionOptions;
  /**
   * Worker threads that run the partitions (default 0: they run on the event loop's thread,
   * which is the fastest at batch 1 but answers nothing else, `/ping` included, while a run
   * lasts). With workers, each holds its own sessions with `intraOpNumThreads` (default:
   * cores ÷ workers) and the spinning choice of `sessionOptions`; other session options
   * are the pool's.
   */
  workers?: number;
  /**
   * Partitions (whole models and tails) kept loaded, least recently used evicted beyond
   * (default {@link DEFAULT_MAX_PARTITIONS}); with workers, each worker holds as many sessions.
   */
  maxPartitions?: number;
}

export interface CloudService {
  readonly url: string;
  readonly port: number;
  readonly server: Server;
  /** The gRPC front's port and URL (`https://` with TLS, else `http://`), when it runs. */
  readonly grpcPort: number | undefined;
  readonly grpcUrl: string | undefined;
  readonly metrics: CloudMetrics;
  readonly models: ModelRepository;
  /** Stops accepting, lets in-flight requests finish (on both fronts), then releases the sessions. */
  drain(): Promise<void>;
}


/**
 * Aborts once the client has gone. node:http emits 'close' on a response when it is finished
 * and also when its socket closes first, so 'close' before `writableFinished` means nobody
 * will read the answer. The request's own 'close' only says its body was read, and a
 * keep-alive socket outlives the request: the response is the one to watch.
 */
function clientSignal(res: ServerResponse): AbortSignal {
  const controller = new AbortController();
  if (res.destroyed) controller.abort();
  else res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}

/**
 * Waits for a partition's load until the request's deadline or its client's leaving, whichever
 * comes first; the load, which other requests may share, goes on.
 */
async function untilLoaded(loading: Promise<LoadedPartition>, deadline: number, signal: AbortSignal): Promise<LoadedPartition> {
  try {
    return await raceCaller(loading, { deadline, signal }, 'its model loaded');
  } catch (error) {
    if (error instanceof AbortedError) throw clientClosed('while the model was loading; the request was not run', error);
    if (error instanceof DeadlineExceededError) throw new CloudError(504, 'CLOUD_DEADLINE', 'the request deadline passed while its model or tail was loading; the load goes on for the requests after it', { cause: error, retryable: true });
    throw error;
  }
}

/** The `reason` label of a request refused before it ran. */
function rejectionReason(error: unknown): string {
  const status = error instanceof CloudError ? error.status : 0;
  return status === 429 ? 'queue_full' : status === 499 ? 'client_closed' : 'deadline';
}

/** A percent-decoded path segment; a malformed escape is the client's error, not a crash. */
function pathSegment(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch (error) {
    throw new CloudError(400, 'CLOUD_PATH_INVALID', `the request path has a malformed percent-escape in "${raw.slice(0, 100)}"`, { cause: error, retryable: false });
  }
}

function envCredentials(): NonNullable<CloudServiceOptions['credentials']> {
  const env = process.env;
  const aws = env['AWS_ACCESS_KEY_ID'] && env['AWS_SECRET_ACCESS_KEY']
    ? { accessKeyId: env['AWS_ACCESS_KEY_ID'], secretAccessKey: env['AWS_SECRET_ACCESS_KEY'], ...(env['AWS_SESSION_TOKEN'] ? { sessionToken: env['AWS_SESSION_TOKEN'] } : {}) }
    : undefined;
  const easSigning = env['TANDEM_EAS_ACCESS_KEY_ID'] && env['TANDEM_EAS_ACCESS_KEY_SECRET'] ? { keyId: env['TANDEM_EAS_ACCESS_KEY_ID'], secret: env['TANDEM_EAS_ACCESS_KEY_SECRET'] } : undefined;
  return {
    ...(aws ? { aws } : {}),
    ...(env['TANDEM_VERTEX_TOKEN'] ? { vertexToken: env['TANDEM_VERTEX_TOKEN'] } : {}),
    ...(env['TANDEM_EAS_TOKEN'] ? { easToken: env['TANDEM_EAS_TOKEN'] } : {}),
    ...(easSigning ? { easSigning } : {}),
  };
}

/** `k=v` pairs of the SageMaker custom attributes header (`;` or `,` separated). */
function customAttributes(value: string | string[] | undefined): Record<string, string> {
  const text = Array.isArray(value) ? value.join(';') : value ?? '';
  const out: Record<string, string> = {};
  for (const part of text.split(/[;,]/)) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

const header = (req: IncomingMessage, name: string): string | undefined => {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

const AWS_ERROR_TYPE: Record<number, string> = {
  400: 'ValidationError', 401: 'UnrecognizedClientException', 403: 'InvalidSignatureException', 404: 'ValidationError', 413: 'ValidationError',
  429: 'ThrottlingException', 500: 'InternalFailure', 501: 'InternalFailure', 503: 'ServiceUnavailable', 504: 'InternalDependencyException',
};

const vertexBodySchema = z.object({ instances: z.array(z.unknown()), parameters: z.record(z.string(), z.unknown()).optional() }).passthrough();
const rawHttpBodySchema = z.object({ httpBody: z.object({ contentType: z.string().optional(), data: z.string().optional() }) });

/** Starts the service; resolves once it listens. */
export async function startCloudService(options: CloudServiceOptions): Promise<CloudService> {
  const log = options.logger ?? pino({ name: 'tandem-cloud' });
  const packages = typeof options.models === 'string' ? await discoverModels(options.models) : options.models;
  const workers = options.workers ?? 0;
  if (!Number.isSafeInteger(workers) || workers < 0) throw new CloudError(500, 'CLOUD_OPTION', `workers must be a non-negative integer, got ${workers}`, { retryable: false });
  // Loaded only when asked for: piscina's start-up is not free, and most services run inline.
  // The per-model limiters bound the requests; the pool only orders them. Each worker keeps as
  // many sessions as the repository keeps partitions, so the two caches hold the same set.
  const maxPartitions = options.maxPartitions ?? DEFAULT_MAX_PARTITIONS;
  const pool = workers > 0
    ? new (await import('../src/runtime/pool.js')).EdgePool({ workers, ...threadingOf(options.sessionOptions ?? {}), maxQueue: Number.MAX_SAFE_INTEGER, whenFull: 'wait', maxSessions: maxPartitions })
    : undefined;
  const repo = new ModelRepository(packages, options.extractTail, options.sessionOptions, pool, maxPartitions);
  const metrics = new CloudMetrics(options.processMetrics ?? false);
  const credentials = options.credentials ?? envCredentials();
  const maxBody = options.maxBodyBytes ?? 64 * 1024 * 1024;
  const timeoutMs = options.requestTimeoutMs ?? 60_000;
  const vertexRoutes = options.vertexRoutes ?? { health: process.env['AIP_HEALTH_ROUTE'] ?? '/health', predict: process.env['AIP_PREDICT_ROUTE'] ?? '/predict' };
  const codecLimits: Partial<CodecLimits> = { maxBytes: maxBody };
  const limiters = new Map<string, Limiter>();
  const limiterFor = (model: string): Limiter => {
    let l = limiters.get(model);
    if (!l) {
      // Labelled children, made once: prom-client hashes a label object on every call otherwise,
      // and the gauges move twice per request.
      const queueDepth = metrics.queueDepth.labels({ model });
      const active = metrics.active.labels({ model });
      l = new Limiter(options.maxConcurrent ?? 2, options.maxQueue ?? 16, (queued, running) => {
        queueDepth.set(queued);
        active.set(running);
      });
      limiters.set(model, l);
    }
    return l;
  };
  const computeSeconds = new Map<string, ReturnType<CloudMetrics['compute']['labels']>>();
  const observeCompute = (model: string, cut: string | null, seconds: number): void => {
    const key = `${model}\u0000${cut ?? ''}`;
    let child = computeSeconds.get(key);
    if (!child) {
      child = metrics.compute.labels({ model, cut: cut ?? 'whole' });
      computeSeconds.set(key, child);
    }
    child.observe(seconds);
  };
  let draining = false;
  let inflight = 0;
  let idle: (() => void) | undefined;

  const drainingError = (): CloudError => new CloudError(503, 'CLOUD_DRAINING', 'the service is shutting down; retry on another instance');
  const single = (): string | undefined => (repo.names().length === 1 ? repo.names()[0] : undefined);

  function route(method: string, path: string, req: IncomingMessage): Route | 'ping' | 'ready' | 'metrics' | 'model-meta' | 'link-probe' | undefined {
    if (method === 'GET') {
      if (path === '/ping' || path === vertexRoutes.health || path === '/v2/health/ready' || path === '/v2/health/live' || path === '/v2/models/ready') return 'ping';
      if (path === '/metrics') return 'metrics';
      if (/^\/v2\/models\/[^/]+(\/ready)?$/.test(path)) return 'model-meta';
      if (path === '/v2') return 'ready';
      return undefined;
    }
    if (method !== 'POST') return undefined;
    if (path === LINK_PROBE_PATH) return 'link-probe';
    const attrs = customAttributes(req.headers['x-amzn-sagemaker-custom-attributes']);
    const target = header(req, 'x-amzn-sagemaker-target-model')?.replace(/(\.tar\.gz|\.onnx)$/, '');
    const explicitCut = header(req, CUT_HEADER) ?? attrs['cut'];
    const explicitModel = header(req, MODEL_HEADER) ?? attrs['model'];
    const withCut = (r: Route): Route => (explicitCut ? { ...r, cut: r.cut ?? explicitCut } : r);
    if (path === '/invocations') {
      const model = target ?? explicitModel;
      return withCut({ name: 'sagemaker-container', front: 'container', maxBody: SAGEMAKER_MAX_BODY_BYTES, ...(model ? { model } : {}) });
    }
    if (path === vertexRoutes.predict) {
      return withCut({ name: 'vertex-container', front: 'container', maxBody, ...(explicitModel ? { model: explicitModel } : {}) });
    }
    let m = /^\/endpoints\/([^/]+)\/invocations$/.exec(path);
    if (m) {
      const endpoint = pathSegment(m[1] ?? '');
      const model = target ?? explicitModel ?? (repo.has(endpoint) ? endpoint : undefined);
      return withCut({ name: 'sagemaker-front', front: 'sagemaker', maxBody: SAGEMAKER_MAX_BODY_BYTES, ...(model ? { model } : {}) });
    }
    m = /^\/v1(?:beta1)?\/projects\/[^/]+\/locations\/[^/]+\/endpoints\/([^/:]+):(predict|rawPredict)$/.exec(path);
    if (m) {
      const endpoint = pathSegment(m[1] ?? '');
      const model = explicitModel ?? (repo.has(endpoint) ? endpoint : undefined);
      return withCut({ name: `vertex-${m[2] ?? 'predict'}`, front: 'vertex', maxBody, googleErrors: true, vertexRaw: m[2] === 'rawPredict', ...(model ? { model } : {}) });
    }
    m = /^\/api\/predict\/([^/]+)$/.exec(path);
    if (m) {
      const service = pathSegment(m[1] ?? '');
      const model = explicitModel ?? (repo.has(service) ? service : undefined);
      return withCut({ name: 'eas-front', front: 'eas', maxBody, ...(model ? { model } : {}) });
    }
    m = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?\/infer$/.exec(path);
    if (m) {
      const version = m[2] ? pathSegment(m[2]) : undefined;
      return withCut({ name: 'oip', front: 'oip', maxBody, model: pathSegment(m[1] ?? ''), ...(version ? { cut: version } : {}) });
    }
    m = /^\/v1\/models\/([^/]+)\/infer$/.exec(path);
    if (m) {
      const url = req.url ?? '/';
      const cut = url.includes('?') ? new URL(url, 'http://x').searchParams.get('cut') ?? undefined : undefined;
      return withCut({ name: 'tandem', front: 'tandem', maxBody, model: pathSegment(m[1] ?? ''), ...(cut ? { cut } : {}) });
    }
    return undefined;
  }

  // Bodies whose memory this service allocated itself, alone in their ArrayBuffer: a run in a
  // worker thread may take the buffer instead of a copy. A chunk node:http read is not ours.
  // Without workers nothing is moved, so nothing is recorded.
  const ownedBodies = new WeakSet<Buffer>();
  const own = (b: Buffer): Buffer => {
    if (pool && isTransferable(b)) ownedBodies.add(b);
    return b;
  };

  async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > limit) {
      throw new CloudError(413, 'CLOUD_TOO_LARGE', `request body of ${declared} bytes exceeds this route's limit of ${limit} bytes`, { retryable: false });
    }
    // Event callbacks rather than an async iterator: one fewer promise per chunk on the hot path.
    // With a Content-Length (node's parser holds the client to it) the body is copied into
    // one buffer of that size as it arrives, while each chunk is still in cache, instead of
    // being concatenated at the end; a body that arrives whole is used as it is.
    const sized = Number.isSafeInteger(declared) && declared > 0 ? declared : undefined;
    return new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let whole: Buffer | undefined;
      let size = 0;
      const onData = (b: Buffer): void => {
        if (size + b.byteLength > limit) {
          cleanup();
          reject(new CloudError(413, 'CLOUD_TOO_LARGE', `request body exceeds this route's limit of ${limit} bytes`, { retryable: false }));
          return;
        }
        if (whole === undefined && sized !== undefined && !(size === 0 && b.byteLength === sized)) whole = Buffer.allocUnsafe(sized);
        if (whole) b.copy(whole, size);
        else chunks.push(b);
        size += b.byteLength;
      };
      const onEnd = (): void => {
        cleanup();
        if (whole) resolve(own(whole.subarray(0, size)));
        else if (chunks.length === 1 && chunks[0]) resolve(chunks[0]);
        else resolve(own(Buffer.concat(chunks, size)));
      };
      const onError = (error: Error): void => {
        cleanup();
        // node:http reports a client that hung up mid-body as an "aborted" ECONNRESET: that is
        // the client leaving (499), not a body the service could not make sense of.
        if (req.socket.destroyed || (error as NodeJS.ErrnoException).code === 'ECONNRESET') reject(clientClosed('while sending its body', error));
        else reject(new CloudError(400, 'CLOUD_BODY_ABORTED', `the request body could not be read: ${error.message}`, { cause: error, retryable: true }));
      };
      // Should a connection close without node:http reporting an error, the wait must end too.
      const onClose = (): void => {
        cleanup();
        reject(clientClosed('while sending its body'));
      };
      const cleanup = (): void => {
        req.off('data', onData);
        req.off('end', onEnd);
        req.off('error', onError);
        req.off('close', onClose);
      };
      req.on('data', onData);
      req.on('end', onEnd);
      req.on('error', onError);
      req.on('close', onClose);
    });
  }

  /** `headerLength`: the OIP binary extension's `Inference-Header-Content-Length`, if sent. */
  function parseBody(body: Buffer, headerLength: string | undefined, r: Route): ParsedBody {
    if (body.byteLength === 0) throw badRequest('CLOUD_EMPTY_BODY', 'the request body is empty');
    if (looksLikeTensorPayload(body)) {
      const decoded = decodePayload(body, codecLimits);
      return { family: 'tandem', tensors: () => decoded.tensors, ...(decoded.meta['model'] ? { model: decoded.meta['model'] } : {}), ...(decoded.meta['cut'] ? { cut: decoded.meta['cut'] } : {}) };
    }
    if (headerLength !== undefined) {
      const decoded = decodeOipRequest(body, Number(headerLength), { maxElements: maxBody });
      return oipParsed(decoded);
    }
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
      return parseBody(inner, headerLength, { ...r, vertexRaw: false });
    }
    if (json !== null && typeof json === 'object' && 'instances' in json) {
      const v = vertexBodySchema.safeParse(json);
      if (!v.success) {
        const issue = v.error.issues[0];
        throw badRequest('CLOUD_VERTEX_BODY', `a Vertex body is {"instances": [...], "parameters"?: {...}}; "${issue?.path.join('.') || 'body'}" is wrong: ${issue?.message ?? 'invalid'}`);
      }
      return vertexParsed(v.data.instances, v.data.parameters ?? {});
    }
    if (json !== null && typeof json === 'object' && 'inputs' in json) {
      return oipParsed(decodeOipRequest(body, undefined, { maxElements: maxBody }));
    }
    throw badRequest('CLOUD_UNSUPPORTED_BODY', 'JSON body must be an OIP v2 request ({"inputs": [...]}) or Vertex instances ({"instances": [...]})');
  }

  /** Vertex `instances` and `parameters` (model, cut), from a JSON body or a gRPC PredictRequest. */
  function vertexParsed(instances: readonly unknown[], params: Readonly<Record<string, unknown>>): ParsedBody {
    const model = typeof params['model'] === 'string' ? params['model'] : undefined;
    const cut = typeof params['cut'] === 'string' ? params['cut'] : undefined;
    const firstInstance = instances[0];
    const shaped = firstInstance !== null && typeof firstInstance === 'object' && !Array.isArray(firstInstance)
      && Object.values(firstInstance).some((x) => x !== null && typeof x === 'object' && !Array.isArray(x) && 'shape' in x);
    return {
      family: 'vertex',
      shaped,
      tensors: (p) => instancesToTensors(instances, p.inputs, maxBody),
      ...(model ? { model } : {}),
      ...(cut ? { cut } : {}),
    };
  }

  function oipParsed(decoded: ReturnType<typeof decodeOipRequest>): ParsedBody {
    const cut = typeof decoded.parameters['cut'] === 'string' ? decoded.parameters['cut'] : undefined;
    return { family: 'oip', tensors: () => decoded.tensors, binaryOutputs: decoded.binaryOutputs, ...(decoded.id !== undefined ? { id: decoded.id } : {}), ...(cut ? { cut } : {}) };
  }

  /** The status, code and message a failure is answered with, on either front. */
  function describeError(error: unknown, log: Logger): ErrorSummary {
    if (error instanceof CloudError) return { status: error.status, code: error.code, message: error.message };
    // Codec, OIP and Vertex parse failures are the client's fault.
    if (isTandemError(error)) return { status: error.code === 'CODEC_TOO_LARGE' ? 413 : 400, code: error.code, message: error.message };
    log.error({ err: error }, 'unexpected failure');
    return { status: 500, code: 'CLOUD_INTERNAL', message: 'internal error' };
  }

  function sendError(res: ServerResponse, r: Route | undefined, error: unknown, log: Logger): number {
    const { status, code, message } = describeError(error, log);
    // The client has gone: there is nothing to write to (node:http would drop it silently).
    if (res.destroyed) return status;
    if (res.headersSent) {
      res.destroy();
      return status;
    }
    const headers: Record<string, string | number> = { 'content-type': 'application/json' };
    if (status === 429 || status === 503) headers['retry-after'] = RETRY_AFTER_SECONDS;
    let body: unknown;
    if (r?.googleErrors) {
      // The stable code travels as google.rpc.ErrorInfo's reason, where Google's clients read it.
      body = { error: { code: status, message: `${code}: ${message}`, status: GRPC_STATUS[status] ?? 'UNKNOWN', details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: code, domain: 'tandem.cloud' }] } };
    } else if (r?.front === 'sagemaker' && code === 'CLOUD_MODEL_ERROR') {
      // What SageMaker's runtime answers when the container refuses the inputs: 424 ModelError
      // carrying the container's own status and message.
      headers['x-amzn-errortype'] = 'ModelError:http://internal.amazon.com/coral/com.amazon.sagemaker/';
      res.writeHead(424, headers).end(JSON.stringify({ ErrorCode: 'CLIENT_ERROR_FROM_MODEL', OriginalStatusCode: status, OriginalMessage: message, Message: `Received client error (${status}) from primary with message "${message}"` }));
      return 424;
    } else {
      body = { code, message, error: { code, message, status } };
      if (r?.front === 'sagemaker' || r?.front === 'container') headers['x-amzn-errortype'] = `${AWS_ERROR_TYPE[status] ?? 'InternalFailure'}:http://internal.amazon.com/coral/com.amazon.sagemaker/`;
    }
    res.writeHead(status, headers).end(JSON.stringify(body));
    return status;
  }

  /** The answer in the request's own family; sets the content type (and OIP's header length). */
  function encodeAnswer(outputs: TensorMap, parsed: ParsedBody, headers: Record<string, string | number>, about: { model: string; cut: string | null; compute: string }): Uint8Array {
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

  function vertexAnswer(outputs: TensorMap, parsed: ParsedBody, model: string, compute: string): VertexAnswer {
    const dtypes = Object.fromEntries(Object.entries(outputs).map(([k, t]) => [k, { dtype: t.dtype, dims: t.dims }]));
    return { predictions: tensorsToPredictions(outputs, parsed.shaped ?? false), deployedModelId: model, metadata: { computeMs: Number(compute), outputs: dtypes } };
  }

  /**
   * The one inference path of every front: deadline, credentials, body, parse, model lookup,
   * the model's limiter, the run and the answer, then the `inference` log line. What differs
   * between fronts is behind `io`; a refusal is thrown, and the caller answers it.
   */
  async function infer<X>(io: FrontIO<X>, x: X, r: Route, path: string, requestId: string, started: number): Promise<{ status: number; model: string }> {
    const deadline = Date.now() + io.budget(x);
    // Token checks need no body: refuse before reading (and buffering) it.
    io.authorize(x, r);
    const body = await io.body(x, r);
    // Until here the service mostly waits for the link; from here on, every moment is its own.
    const bodyMs = performance.now() - started;
    const bytesIn = body.byteLength;
    metrics.bytesIn.inc({ route: r.name }, bytesIn);
    const verified = io.verify(x, r, path, body);
    if (verified) await verified;
    const parsed = io.parse(x, body, r);
    const model = r.model ?? parsed.model ?? single();
    if (!model) throw badRequest('CLOUD_MODEL_REQUIRED', `name the model (X-Amzn-SageMaker-Target-Model, ${MODEL_HEADER}, or the route); serving: ${repo.names().join(', ')}`);
    const rawCut = r.cut ?? parsed.cut;
    // c0 is "before everything": its tail is the whole model.
    const cut = rawCut === undefined || rawCut === 'c0' || rawCut === '' ? null : rawCut;
    if (cut !== null && !/^c\d{1,6}$/.test(cut)) throw badRequest('CLOUD_CUT_INVALID', `cut "${cut}" is not a cut id (c0, c1, …)`);
    if (!repo.has(model)) throw new CloudError(404, 'CLOUD_MODEL_NOT_FOUND', `no model named "${model}" (serving: ${repo.names().join(', ')})`);
    const limiter = limiterFor(model);
    // Only a request that may wait (for a slot, or for a worker) watches for its client
    // leaving: one that runs at once pays no listener and no allocation for it.
    const signal = pool !== undefined || limiter.full ? io.signal(x) : undefined;
    let release: () => void;
    try {
      release = await limiter.acquire(deadline, signal);
    } catch (error) {
      metrics.rejections.inc({ model, reason: rejectionReason(error) });
      throw error;
    }
    // The slot is held until the answer is written (its encoding is part of the run's memory)
    // and the bookkeeping waits until then: it adds nothing to the client's latency.
    let computeMs: number | undefined;
    let running = false;
    // With workers a run outlives a wait that a deadline or the client's leaving ended: the
    // slot stays taken until the worker is done, so the limiter and its gauges still count it.
    let workerFreed = false;
    let slotWithWorker = false;
    const onRunEnd = pool === undefined ? undefined : (): void => {
      workerFreed = true;
      if (slotWithWorker) release();
    };
    let bytesOut: number;
    let answered: number;
    try {
      if (io.closed(x)) throw clientClosed('before the request could run');
      // A load is shared with every request for the partition: it goes on even if this
      // client leaves, only this request's run is skipped.
      const loading = repo.partition(model, cut);
      const partition = repo.isLoaded(loading) ? await loading : await untilLoaded(loading, deadline, signal ?? io.signal(x));
      if (io.closed(x)) throw clientClosed('while the model was loading; the request was not run');
      const inputs = parsed.tensors(partition);
      if (Date.now() > deadline) throw new CloudError(504, 'CLOUD_DEADLINE', 'the request deadline passed before it could run');
      const t0 = performance.now();
      running = true;
      // The body is read no more from here on (its size is kept for the log): a worker may take it.
      const outputs = await partition.run(inputs, ownedBodies.has(body) ? { owned: [body.buffer as ArrayBuffer], deadline, signal, onRunEnd } : { deadline, signal, onRunEnd });
      computeMs = performance.now() - t0;
      bytesOut = io.answer(x, r, requestId, outputs, parsed, model, cut, computeMs);
      answered = performance.now();
    } catch (error) {
      // Refused before it ran: the client left, or the deadline passed, while the model loaded
      // or (with workers) while the run waited for a worker. The pool calls onRunEnd before it
      // settles when the run never reached a worker, so a run a worker has taken is not counted
      // here: it goes on, and its client merely stopped waiting.
      const neverRan = !running || (onRunEnd !== undefined && workerFreed);
      if (neverRan && error instanceof CloudError && (error.code === 'CLOUD_CLIENT_CLOSED' || error.code === 'CLOUD_DEADLINE')) metrics.rejections.inc({ model, reason: rejectionReason(error) });
      throw error;
    } finally {
      if (running && onRunEnd !== undefined && !workerFreed) slotWithWorker = true;
      else release();
      if (computeMs !== undefined) observeCompute(model, cut, computeMs / 1000);
    }
    log.info({ requestId, route: r.name, model, cut, status: 200, bytesIn, bytesOut, computeMs: +computeMs.toFixed(3), bodyMs: +bodyMs.toFixed(3), totalMs: +(answered - started).toFixed(3) }, 'inference');
    return { status: 200, model };
  }

  /** The HTTP front's side of {@link infer}; the exchange is the response (its `req` is the request). */
  const httpIO: FrontIO<ServerResponse> = {
    budget: (res) => requestBudget(header(res.req, DEADLINE_HEADER), timeoutMs),
    authorize(res, r) {
      if (r.front === 'vertex') verifyBearer(res.req.headers, credentials.vertexToken);
    },
    body: (res, r) => readBody(res.req, r.maxBody),
    verify(res, r, path, body) {
      const req = res.req;
      if (r.front === 'sagemaker') {
        const url = new URL(req.url ?? '/', 'http://x');
        const query: Record<string, string> = {};
        url.searchParams.forEach((v, k) => { query[k] = v; });
        return verifySigV4({ method: req.method ?? 'POST', path, query, headers: req.headers, body }, credentials.aws, 'sagemaker');
      }
      if (r.front === 'eas') verifyEas({ method: req.method ?? 'POST', path, headers: req.headers, body }, credentials.easToken, credentials.easSigning);
      return undefined;
    },
    parse: (res, body, r) => parseBody(body, header(res.req, OIP_HEADER_LENGTH), r),
    signal: clientSignal,
    // The socket, not the response: a pipelined request's response gets no 'close' while
    // an earlier one is being answered.
    closed: (res) => res.req.socket.destroyed,
    answer(res, r, requestId, outputs, parsed, model, cut, computeMs) {
      const compute = computeMs.toFixed(3);
      const headers: Record<string, string | number> = { 'x-request-id': requestId, [COMPUTE_HEADER]: compute };
      if (r.front === 'sagemaker' || r.name === 'sagemaker-container') headers['x-amzn-sagemaker-custom-attributes'] = `tandem-compute-ms=${compute}`;
      let payload = encodeAnswer(outputs, parsed, headers, { model, cut, compute });
      if (r.vertexRaw && header(res.req, 'content-type')?.startsWith('application/json') && parsed.family !== 'vertex') {
        // gax REST sends rawPredict as JSON {httpBody}; it expects an HttpBody JSON back.
        payload = Buffer.from(JSON.stringify({ contentType: String(headers['content-type']), data: Buffer.from(payload).toString('base64') }));
        headers['content-type'] = 'application/json';
      }
      headers['content-length'] = payload.byteLength;
      res.writeHead(200, headers).end(payload);
      return payload.byteLength;
    },
  };

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    // From node:http handing over the request: the log's totalMs is the whole service time.
    const started = performance.now();
    const requestId = header(req, 'x-request-id') ?? header(req, 'x-amzn-requestid') ?? randomUUID();
    // A child logger only for the paths that log more than the one inference line: making one
    // is not free on the hot path.
    let child: Logger | undefined;
    const reqLog = (): Logger => (child ??= log.child({ requestId }));
    const fail = (rt: Route | undefined, error: unknown): number => {
      if (!res.headersSent) res.setHeader('x-request-id', requestId);
      return sendError(res, rt, error, reqLog());
    };
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const method = req.method ?? 'GET';
    let r: ReturnType<typeof route>;
    try {
      r = route(method, path, req);
    } catch (error) {
      fail(undefined, error);
      return;
    }
    // An inference answer carries the id in its writeHead: a header set beforehand would put
    // node:http on its slower path of merging the two header sets.
    if (typeof r !== 'object') res.setHeader('x-request-id', requestId);
    if (r === 'ready') {
      // OIP v2 server metadata.
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ name: 'tandem', version: '1', extensions: ['binary_tensor_data'] }));
      return;
    }
    if (r === 'ping') {
      const ok = !draining && repo.names().length > 0;
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: ok ? 'ok' : draining ? 'draining' : 'no models', models: repo.names() }));
      return;
    }
    if (r === 'metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (error: unknown) => fail(undefined, error),
      );
      return;
    }
    if (r === 'link-probe') {
      if (draining) {
        fail(undefined, drainingError());
        return;
      }
      readBody(req, LINK_PROBE_MAX_BYTES).then(
        (body) => {
          metrics.bytesIn.inc({ route: 'link-probe' }, body.byteLength);
          res.writeHead(204).end();
        },
        (error: unknown) => {
          fail(undefined, error);
          if (!req.complete) req.resume();
        },
      );
      return;
    }
    if (r === 'model-meta') {
      let name: string;
      try {
        name = pathSegment(path.split('/')[3] ?? '');
      } catch (error) {
        fail(undefined, error);
        return;
      }
      if (!repo.has(name)) {
        fail(undefined, new CloudError(404, 'CLOUD_MODEL_NOT_FOUND', `no model named "${name}"`));
        return;
      }
      repo.partition(name, null).then(
        (p) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
          name, versions: [], platform: 'onnxruntime_onnx',
          inputs: p.inputs.map((i) => ({ name: i.name, datatype: oipDatatype(i.dtype), shape: i.shape.map((d) => (typeof d === 'number' ? d : -1)) })),
          outputs: p.outputs.map((o) => ({ name: o.name, datatype: oipDatatype(o.dtype), shape: o.shape.map((d) => (typeof d === 'number' ? d : -1)) })),
        })),
        (error: unknown) => fail(undefined, error),
      );
      return;
    }
    if (!r) {
      fail(undefined, new CloudError(404, 'CLOUD_ROUTE_NOT_FOUND', `no route for ${method} ${path}`));
      return;
    }
    const rt = r;
    if (draining) {
      fail(rt, drainingError());
      return;
    }
    inflight += 1;
    infer(httpIO, res, rt, path, requestId, started)
      .catch((error: unknown) => {
        const status = fail(rt, error);
        logRefusal(reqLog(), rt.name, status, error);
        // Drain what is left of a refused body so the connection can be reused.
        if (!req.complete) req.resume();
        return { status, model: modelLabel(rt) };
      })
      .then(({ status, model }) => count(rt.name, model, status, started))
      .finally(end)
      .catch(() => undefined);
  };

  function logRefusal(reqLog: Logger, route: string, status: number, error: unknown): void {
    const code = isTandemError(error) ? error.code : undefined;
    reqLog.info({ route, status, code, message: error instanceof Error ? error.message : String(error) }, code === 'CLOUD_CLIENT_CLOSED' ? 'client closed the connection' : 'request refused');
  }

  /** Only served names become label values: a hostile path must not grow the metric set. */
  function modelLabel(r: Route): string {
    return r.model !== undefined && repo.has(r.model) ? r.model : 'unknown';
  }

  function count(route: string, model: string, status: number, started: number): void {
    metrics.requests.inc({ route, model, status: String(status) });
    metrics.latency.observe({ route, model }, (performance.now() - started) / 1000);
  }

  function end(): void {
    inflight -= 1;
    if (inflight === 0) idle?.();
  }

  // Nagle off explicitly (node's default today): an answer's last segment must not wait for an ACK.
  const server = options.tls ? createHttpsServer({ key: options.tls.key, cert: options.tls.cert, noDelay: true }, handler) : createHttpServer({ noDelay: true }, handler);
  // SageMaker keeps connections open for up to 60 s; outlive it so the platform closes first.
  server.keepAliveTimeout = 65_000;
  // A client that trickles its request (slowloris) cannot hold a connection past the deadline.
  server.requestTimeout = timeoutMs;
  server.headersTimeout = Math.min(timeoutMs, 60_000);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host ?? '0.0.0.0', () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    await pool?.close();
    throw error;
  }
  const address = server.address() as AddressInfo;
  const host = options.host && options.host !== '0.0.0.0' ? options.host : '127.0.0.1';
  const url = `${options.tls ? 'https' : 'http'}://${host}:${address.port}`;

  const core: ServiceCore = {
    log, repo, timeoutMs, maxBody, vertexToken: credentials.vertexToken,
    draining: () => draining,
    drainingError,
    infer,
    begin: () => { inflight += 1; },
    end,
    count,
    logRefusal,
    modelLabel,
    describe: describeError,
    parseBody,
    vertexParsed,
    encodeAnswer,
    vertexAnswer,
  };
  let grpcFront: GrpcFront | undefined;
  if (options.grpcPort !== undefined) {
    try {
      // Loaded only when asked for: grpc-js and the Vertex protos are not free to load.
      const { startGrpcFront } = await import('./grpc.js');
      grpcFront = await startGrpcFront(core, { port: options.grpcPort, host: options.host ?? '0.0.0.0', ...(options.tls ? { tls: options.tls } : {}) });
    } catch (error) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await pool?.close();
      throw error;
    }
  }
  const grpcUrl = grpcFront ? `${options.tls ? 'https' : 'http'}://${host}:${grpcFront.port}` : undefined;
  log.info({ url, ...(grpcUrl ? { grpcUrl } : {}), models: repo.names(), workers }, 'tandem cloud service listening');

  return {
    url,
    port: address.port,
    server,
    grpcPort: grpcFront?.port,
    grpcUrl,
    metrics,
    models: repo,
    async drain(): Promise<void> {
      if (draining) return;
      draining = true;
      log.info({ inflight }, 'draining');
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // Refuses new calls (GOAWAY) and lets the calls in flight finish; they count in `inflight`.
      const grpcClosed = grpcFront?.shutdown();
      const bound = Date.now() + timeoutMs + DRAIN_GRACE_MS;
      if (inflight > 0) {
        // Bounded: node:http stops enforcing requestTimeout once the server is closing, so a
        // client trickling its body would otherwise hold the drain (and the container) forever.
        // By then every request has had its whole deadline; what is left waits on its client.
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            log.warn({ inflight }, 'drain deadline passed: closing the connections still open');
            resolve();
          }, bound - Date.now());
          idle = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      server.closeAllConnections();
      if (grpcFront && grpcClosed) {
        // The last answers may still be on their way out: the graceful shutdown ends once they
        // are; whatever is still open at the bound is cancelled.
        let timer: NodeJS.Timeout | undefined;
        const graceful = await Promise.race([
          grpcClosed.then(() => true),
          new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), Math.max(0, bound - Date.now())); }),
        ]);
        clearTimeout(timer);
        if (!graceful) {
          log.warn('drain deadline passed: cancelling the gRPC calls still open');
          grpcFront.forceShutdown();
          await grpcClosed;
        }
      }
      await closed;
      await repo.close();
      await pool?.close();
      log.info('drained');
    },
  };
}
