/**
 * What the agent's fronts (MQTT, Greengrass IPC, HTTP) need from the inference side. The
 * fronts only parse, limit, count and reply; everything else — plans, fallback, residency,
 * the outbox — sits behind this interface, so the fronts are testable with any service and
 * the production wiring (edge/tandem-service.ts) can change without touching them.
 */
import type { Plan } from '../src/planner/index.js';
import type { TensorMap } from '../src/tensor/index.js';

/** The request's payload: an encoded image for the model's image pipeline, or ready tensors. */
export type ServiceInput = { kind: 'image'; image: Uint8Array } | { kind: 'tensors'; tensors: TensorMap };

export interface ServiceRequest {
  requestId: string;
  model: string;
  /** Residency data class, e.g. `eu-personal`; the policy's default applies when absent. */
  dataClass?: string;
  input: ServiceInput;
}

export interface ServiceTiming {
  queueMs: number;
  edgeMs: number;
  encodeMs: number;
  networkMs: number;
  remoteMs: number;
  decodeMs: number;
  totalMs: number;
}

/** Where the result was (or will durably be) written. */
export interface StoredRef {
  /** Store name from the residency policy. */
  store: string;
  region?: string;
  key: string;
}

export interface ServiceResult {
  requestId: string;
  model: string;
  plan: Plan;
  /** The remote part failed or ran late and the request completed on the edge. */
  fellBack: boolean;
  /** Why it fell back, e.g. `endpoint-error` (with the error code) or `deadline`. */
  fallback?: { reason: string; code?: string; message?: string };
  outputs: TensorMap;
  /** Post-processed result (labels, boxes …) when the model declares one; JSON-safe. */
  result?: unknown;
  timing: ServiceTiming;
  stored?: StoredRef;
  /** A split that sent its cut tensors float16 or int8: the codec's report, summed over the tensors. */
  compression?: CompressionSummary;
}

/** What a lossy cut encoding cost one request (the codec's report over all its tensors). */
export interface CompressionSummary {
  method: 'float16' | 'int8';
  /** The largest relative error (max |Δ| / max |x|) of any compressed cut tensor. */
  relativeError: number;
  bytesBefore: number;
  bytesAfter: number;
}

export interface ServiceCallOptions {
  signal?: AbortSignal;
  /** Absolute deadline, epoch milliseconds. */
  deadline?: number;
}

export interface ServiceHealth {
  ok: boolean;
  /** Results accepted but not yet acknowledged by their store. */
  outboxDepth: number;
  details?: Record<string, unknown>;
}

export interface InferenceService {
  /** Model names this service answers for. */
  models(): readonly string[];
  /**
   * Runs one request and, when a residency outbox is configured, has durably accepted the
   * result before resolving. Rejects with a TandemError (e.g. MODEL_UNKNOWN,
   * RESIDENCY_DENIED, OUTBOX_FULL).
   */
  infer(request: ServiceRequest, options?: ServiceCallOptions): Promise<ServiceResult>;
  health(): ServiceHealth;
  /** Waits until the outbox has handed every accepted result to its store, or the timeout. */
  flush(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}
