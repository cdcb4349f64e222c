/**
 * The cloud service's options, and their defaults, filled in here and nowhere else. The
 * service reads no environment: the container's variables become options in `config.ts`.
 */
import { totalmem } from 'node:os';
import type { InferenceSession } from 'onnxruntime-node';
import { pino, type Logger } from 'pino';
import { z } from 'zod';
import type { AwsCredentials } from './auth.js';
import { CloudError } from './errors.js';
import { DEFAULT_MAX_PARTITIONS, type ModelPackage, type TailExtractor } from './models.js';

/** What the emulated provider fronts accept; a front with none configured refuses every request. */
export interface CloudCredentials {
  aws?: AwsCredentials;
  vertexToken?: string;
  easToken?: string;
  easSigning?: { keyId: string; secret: string };
}

export interface CloudServiceOptions {
  /** A model directory, or packages already discovered. */
  models: string | readonly ModelPackage[];
  /** 0 picks a free port. */
  port: number;
  /** Default 0.0.0.0. */
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
  /**
   * Largest JSON body (OIP v2 JSON, Vertex instances; default {@link DEFAULT_MAX_JSON_BYTES}):
   * parsing JSON costs about 15 ms per MB here, so big tensors belong in the binary forms
   * (Tandem's payload, OIP's binary extension).
   */
  maxJsonBytes?: number;
  /**
   * JSON bytes a body may have and still be parsed on the event loop (default
   * {@link DEFAULT_INLINE_JSON_BYTES}); a larger one is parsed in the JSON thread, and the event
   * loop goes on answering meanwhile. At `maxJsonBytes` or above, no body goes to the thread.
   */
  inlineJsonBytes?: number;
  /**
   * Old-generation heap of the JSON thread, MB (default: 64 × maxJsonBytes, at least 128 MB).
   * A body whose parse needs more ends that thread: its request (and any the thread held
   * instances for) gets 503 `CLOUD_WORKER_FAILED`, the next one starts a new thread, and the
   * process's own heap is never at stake.
   */
  jsonThreadHeapMb?: number;
  /**
   * Request-body bytes the service holds at once, over every request (default: 4 × maxBodyBytes,
   * at most a quarter of the memory, at least maxBodyBytes). A body is admitted before it is
   * read; one that does not fit is refused with 429 `CLOUD_OVERLOADED`.
   */
  bodyBudgetBytes?: number;
  /** A body bringing fewer than 1 KiB in this many ms is refused with 408 and its connection closed (default 10 s). */
  bodyIdleTimeoutMs?: number;
  /** Open connections in all (default 1024); at the cap a new one replaces the longest idle. */
  maxConnections?: number;
  /** Open connections from one address (default 64); more are closed at once. */
  maxConnectionsPerIp?: number;
  /** Time a client has to send its request headers (default 10 s). */
  headersTimeoutMs?: number;
  /** Idle time before a kept-alive connection is closed (default 65 s: SageMaker keeps its connections up to 60 s). */
  keepAliveTimeoutMs?: number;
  /** Default per-request deadline (default 60 s, SageMaker's). */
  requestTimeoutMs?: number;
  /**
   * Credentials the emulated fronts accept (default: none, and those fronts refuse). A
   * container takes them from its environment through `cloudOptionsFromEnv`.
   */
  credentials?: CloudCredentials;
  /** Extracts tails for split inference (the graph toolkit's `splitModel`). */
  extractTail?: TailExtractor;
  /** Vertex custom-container routes (default /health and /predict; a container's come from AIP_HEALTH_ROUTE / AIP_PREDICT_ROUTE). */
  vertexRoutes?: { health?: string; predict?: string };
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
  /**
   * Load every served model (not its variants or tails) before listening (default true), so
   * that `/ping` answers only once they are ready. onnxruntime builds a session synchronously,
   * tens to hundreds of milliseconds in which the event loop answers nothing, `/ping`
   * included: without a preload, that falls on each model's first request.
   */
  preload?: boolean;
}

/** The options with every default filled in. */
export interface ServiceSettings {
  readonly models: string | readonly ModelPackage[];
  readonly port: number;
  readonly host: string;
  readonly tls: { key: string | Buffer; cert: string | Buffer } | undefined;
  readonly grpcPort: number | undefined;
  readonly maxConcurrent: number;
  readonly maxQueue: number;
  readonly maxBody: number;
  readonly maxJson: number;
  readonly inlineJson: number;
  readonly jsonThreadHeapMb: number;
  readonly bodyBudget: number;
  readonly bodyIdleMs: number;
  readonly maxConnections: number;
  readonly maxConnectionsPerIp: number;
  readonly headersTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly timeoutMs: number;
  readonly credentials: Readonly<CloudCredentials>;
  readonly extractTail: TailExtractor | undefined;
  readonly vertexRoutes: { readonly health: string; readonly predict: string };
  readonly log: Logger;
  readonly processMetrics: boolean;
  readonly sessionOptions: InferenceSession.SessionOptions | undefined;
  readonly workers: number;
  readonly maxPartitions: number;
  readonly preload: boolean;
}

export const DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024;
export const DEFAULT_MAX_JSON_BYTES = 8 * 1024 * 1024;

/**
 * JSON bodies (or OIP binary headers) up to this size are parsed on the event loop: there
 * they take well under a millisecond, less than a round trip to the JSON thread.
 */
export const DEFAULT_INLINE_JSON_BYTES = 64 * 1024;

const optionError = (message: string): CloudError => new CloudError(500, 'CLOUD_OPTION', message, { retryable: false });

/** Every size, count and time limit: the options come from code as well as from flags and variables. */
const positiveInt = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
const nonNegativeInt = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

function positive(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!positiveInt.safeParse(v).success) throw optionError(`${name} must be a positive integer, got ${v}`);
  return v;
}

/** The memory the process may use: its cgroup's limit in a container, else the machine's. */
function memoryLimit(): number {
  const constrained = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory?.();
  return constrained !== undefined && constrained > 0 && constrained < totalmem() ? constrained : totalmem();
}

/** Fills in the defaults and checks what the types cannot. */
export function serviceSettings(options: CloudServiceOptions): ServiceSettings {
  const workers = options.workers ?? 0;
  if (!nonNegativeInt.safeParse(workers).success) throw optionError(`workers must be a non-negative integer, got ${workers}`);
  const maxBody = positive('maxBodyBytes', options.maxBodyBytes, DEFAULT_MAX_BODY_BYTES);
  // Room for a few of the largest bodies at once, but never most of the memory.
  const bodyBudget = positive('bodyBudgetBytes', options.bodyBudgetBytes, Math.max(maxBody, Math.min(4 * maxBody, Math.floor(memoryLimit() / 4))));
  if (bodyBudget < maxBody) throw optionError(`bodyBudgetBytes (${bodyBudget}) must hold at least one body of maxBodyBytes (${maxBody})`);
  const maxJson = positive('maxJsonBytes', options.maxJsonBytes, Math.min(DEFAULT_MAX_JSON_BYTES, maxBody));
  return {
    models: options.models,
    port: options.port,
    host: options.host ?? '0.0.0.0',
    tls: options.tls,
    grpcPort: options.grpcPort,
    maxConcurrent: options.maxConcurrent ?? 2,
    maxQueue: options.maxQueue ?? 16,
    maxBody,
    maxJson,
    inlineJson: positive('inlineJsonBytes', options.inlineJsonBytes, DEFAULT_INLINE_JSON_BYTES),
    jsonThreadHeapMb: positive('jsonThreadHeapMb', options.jsonThreadHeapMb, Math.max(128, Math.ceil((64 * maxJson) / 2 ** 20))),
    bodyBudget,
    bodyIdleMs: positive('bodyIdleTimeoutMs', options.bodyIdleTimeoutMs, 10_000),
    maxConnections: positive('maxConnections', options.maxConnections, 1024),
    maxConnectionsPerIp: positive('maxConnectionsPerIp', options.maxConnectionsPerIp, 64),
    headersTimeoutMs: positive('headersTimeoutMs', options.headersTimeoutMs, 10_000),
    keepAliveTimeoutMs: positive('keepAliveTimeoutMs', options.keepAliveTimeoutMs, 65_000),
    timeoutMs: options.requestTimeoutMs ?? 60_000,
    credentials: options.credentials ?? {},
    extractTail: options.extractTail,
    vertexRoutes: { health: options.vertexRoutes?.health ?? '/health', predict: options.vertexRoutes?.predict ?? '/predict' },
    log: options.logger ?? pino({ name: 'tandem-cloud' }),
    processMetrics: options.processMetrics ?? false,
    sessionOptions: options.sessionOptions,
    workers,
    maxPartitions: options.maxPartitions ?? DEFAULT_MAX_PARTITIONS,
    preload: options.preload ?? true,
  };
}
