/**
 * What the cloud service's fronts share: the headers of Tandem's own protocol and its request
 * budget, the status mapping Google's fronts use, and the contract between the one inference
 * core (`core.ts`) and each front that feeds it (node:http in `fronts/http.ts`, gRPC in
 * `fronts/vertex-grpc.ts`).
 */
import type { TensorMap } from '../src/tensor/index.js';
import { badRequest, CloudError } from './errors.js';
import type { DecodeUntil } from './json-thread.js';
import type { LoadedPartition } from './models.js';

/** Header carrying the server's compute time (ms) on every inference response. */
export const COMPUTE_HEADER = 'x-tandem-compute-ms';
/** Optional request header: the client's remaining time budget in ms. */
export const DEADLINE_HEADER = 'x-tandem-deadline-ms';
/** Optional request header naming the cut whose tail should run. */
export const CUT_HEADER = 'x-tandem-cut';
export const MODEL_HEADER = 'x-tandem-model';

/**
 * How long past the request timeout a drain waits for requests still in flight, and how long
 * past its age the gRPC front lets a connection's calls finish.
 */
export const DRAIN_GRACE_MS = 1000;

/** What 429 and 503 answers ask a client to wait: `Retry-After` on HTTP, RetryInfo on gRPC. */
export const RETRY_AFTER_SECONDS = 1;

/** The google.rpc.Code each status stands for: the Vertex REST front's `status`, and the gRPC front's status code. */
export const GRPC_STATUS: Readonly<Record<number, string>> = {
  400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND', 413: 'INVALID_ARGUMENT',
  429: 'RESOURCE_EXHAUSTED', 499: 'CANCELLED', 500: 'INTERNAL', 501: 'UNIMPLEMENTED', 503: 'UNAVAILABLE', 504: 'DEADLINE_EXCEEDED',
};

/** The gRPC front as the service drives it (`fronts/vertex-grpc.ts`). */
export interface GrpcFront {
  readonly port: number;
  /** Refuses new calls; resolves once the calls in flight have finished and the connections closed. */
  shutdown(): Promise<void>;
  /** Cancels whatever is still running. */
  forceShutdown(): void;
}

export type Family = 'tandem' | 'oip' | 'vertex';
export type Front = 'container' | 'sagemaker' | 'vertex' | 'eas' | 'oip' | 'tandem';

export interface Route {
  name: string;
  front: Front;
  maxBody: number;
  model?: string;
  cut?: string;
  /** Vertex rawPredict: a JSON `{httpBody}` request is answered as an HttpBody JSON. */
  vertexRaw?: boolean;
  /**
   * The request's signature does not cover its routing headers (PAI-EAS): model and cut come
   * only from what it covers, the body, then `service` (the path's, when it is a served model),
   * and the `model` and `cut` the headers name must agree with those.
   */
  signedOnly?: { model?: string; cut?: string; service?: string };
}

/** A parsed request body, turned into tensors once the partition (and its input dtypes) is known. */
export interface ParsedBody {
  family: Family;
  /** A promise when the JSON thread holds what the tensors are made of. */
  tensors: (partition: LoadedPartition) => TensorMap | Promise<TensorMap>;
  /** Lets go of what the JSON thread holds for the request, if its tensors were never asked for. */
  release?: () => void;
  model?: string;
  cut?: string;
  binaryOutputs?: boolean;
  /** Vertex instances arrived as `{shape, data}`: answer in the same form. */
  shaped?: boolean;
  id?: string;
}

/**
 * What the HTTP and gRPC fronts do differently on the one inference path (`InferenceCore.infer`): where
 * the deadline, credentials and body come from, how a client's leaving shows, and how the
 * answer is written. One object per front, made once, so a request allocates nothing for it.
 */
export interface FrontIO<X> {
  /** Milliseconds the request may take, capped by the service's timeout. */
  budget(x: X): number;
  /** Credential checks that need no body: they refuse before it is read. */
  authorize(x: X, r: Route): void;
  /** The body, within `r.maxBody` (413 beyond). */
  body(x: X, r: Route): Buffer | Promise<Buffer>;
  /** Credential checks over the body (SigV4, the EAS signature). */
  verify(x: X, r: Route, path: string, body: Buffer): Promise<void> | undefined;
  /**
   * A small body is parsed at once; a large JSON one in the JSON thread (a promise), which
   * lets it go if `until` says the request is no longer wanted before its turn.
   */
  parse(x: X, body: Buffer, r: Route, until: DecodeUntil): ParsedBody | Promise<ParsedBody>;
  /** Aborts once the client has gone. */
  signal(x: X): AbortSignal;
  closed(x: X): boolean;
  /** Writes the answer and returns its size in bytes; called while the run's slot is held. */
  answer(x: X, r: Route, requestId: string, outputs: TensorMap, parsed: ParsedBody, model: string, cut: string | null, computeMs: number): number;
}

/** Vertex's PredictResponse, as plain JSON. */
export interface VertexAnswer {
  predictions: unknown[];
  deployedModelId: string;
  metadata: { computeMs: number; outputs: Record<string, { dtype: string; dims: readonly number[] }> };
}

/**
 * Milliseconds a request may take: its `x-tandem-deadline-ms` (an HTTP header, or gRPC
 * metadata), capped by the service's timeout. A budget already spent is answered 504 at once
 * (the client has stopped waiting); a value that is not a number of milliseconds is the
 * client's error, not "no deadline".
 */
export function requestBudget(value: string | undefined, timeoutMs: number): number {
  if (value === undefined) return timeoutMs;
  if (!/^-?\d+(\.\d+)?$/.test(value.trim())) throw badRequest('CLOUD_DEADLINE_INVALID', `${DEADLINE_HEADER} must be a number of milliseconds, got "${value.slice(0, 40)}"`);
  const budget = Number(value);
  if (budget <= 0) throw new CloudError(504, 'CLOUD_DEADLINE', `the request's deadline (${DEADLINE_HEADER}: ${value.trim()}) had passed when it arrived`, { retryable: false });
  return Math.min(budget, timeoutMs);
}
