/**
 * The cloud service's options, and their defaults, filled in here and nowhere else. The
 * service reads no environment: the container's variables become options in `config.ts`.
 */
import type { InferenceSession } from 'onnxruntime-node';
import { pino, type Logger } from 'pino';
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
  readonly timeoutMs: number;
  readonly credentials: Readonly<CloudCredentials>;
  readonly extractTail: TailExtractor | undefined;
  readonly vertexRoutes: { readonly health: string; readonly predict: string };
  readonly log: Logger;
  readonly processMetrics: boolean;
  readonly sessionOptions: InferenceSession.SessionOptions | undefined;
  readonly workers: number;
  readonly maxPartitions: number;
}

/** Fills in the defaults and checks what the types cannot. */
export function serviceSettings(options: CloudServiceOptions): ServiceSettings {
  const workers = options.workers ?? 0;
  if (!Number.isSafeInteger(workers) || workers < 0) throw new CloudError(500, 'CLOUD_OPTION', `workers must be a non-negative integer, got ${workers}`, { retryable: false });
  return {
    models: options.models,
    port: options.port,
    host: options.host ?? '0.0.0.0',
    tls: options.tls,
    grpcPort: options.grpcPort,
    maxConcurrent: options.maxConcurrent ?? 2,
    maxQueue: options.maxQueue ?? 16,
    maxBody: options.maxBodyBytes ?? 64 * 1024 * 1024,
    timeoutMs: options.requestTimeoutMs ?? 60_000,
    credentials: options.credentials ?? {},
    extractTail: options.extractTail,
    vertexRoutes: { health: options.vertexRoutes?.health ?? '/health', predict: options.vertexRoutes?.predict ?? '/predict' },
    log: options.logger ?? pino({ name: 'tandem-cloud' }),
    processMetrics: options.processMetrics ?? false,
    sessionOptions: options.sessionOptions,
    workers,
    maxPartitions: options.maxPartitions ?? DEFAULT_MAX_PARTITIONS,
  };
}
