/**
 * Typed failures of the edge runtime. Callers branch on `code`; `retryable` says whether
 * the same request may succeed later (a full queue drains, a crashed worker is replaced).
 */
import { TandemError } from '../errors.js';

/** The edge pool's queue is at its bound and the caller asked to be rejected rather than wait. */
export class QueueFullError extends TandemError {
  constructor(limit: number) {
    super('RUNTIME_QUEUE_FULL', `the edge pool queue is full (${limit} waiting)`, { retryable: true, details: { limit } });
  }
}

/** The caller's AbortSignal fired before the request completed. */
export class AbortedError extends TandemError {
  constructor(reason?: unknown) {
    super('RUNTIME_ABORTED', 'the request was aborted', { cause: reason });
  }
}

/** The request's deadline passed before a result was available. */
export class DeadlineExceededError extends TandemError {
  constructor(deadline: number, stage: string) {
    super('RUNTIME_DEADLINE_EXCEEDED', `the deadline passed while ${stage}`, { details: { deadline, stage } });
  }
}

/** The pool or runtime was closed; no new work is accepted. */
export class ClosedError extends TandemError {
  constructor(what: string) {
    super('RUNTIME_CLOSED', `the ${what} is closed`);
  }
}

/** onnxruntime failed to load a model or to run it inside a worker. */
export class EdgeExecutionError extends TandemError {}

/** A model package (folder or file) is missing, unreadable or inconsistent. */
export class ModelPackageError extends TandemError {}

/** The plan names something the runtime does not have (an endpoint, a cut). */
export class PlanError extends TandemError {}
