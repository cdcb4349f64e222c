/**
 * Typed failures of the edge runtime. Callers branch on `code`; `retryable` says whether
 * the same request may succeed later (a full queue drains, a crashed worker is replaced).
 */
import { errorInfo, type AreaErrorCode, type ErrorCode } from '../errors/catalogue.js';
import { TandemError } from '../errors/index.js';

type Options = { cause?: unknown; retryable?: boolean; details?: Record<string, unknown> };

/** The edge pool's queue is at its bound and the caller asked to be rejected rather than wait. */
export class QueueFullError extends TandemError {
  constructor(limit: number) {
    super('RUNTIME_QUEUE_FULL', `the edge pool queue is full (${limit} waiting)`, { details: { limit } });
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

/**
 * onnxruntime failed to load a model or to run it inside a worker. Any code: a worker's
 * failure keeps the code it was raised with on the other side of the thread boundary.
 */
export class EdgeExecutionError extends TandemError {}

/** A code of the catalogue's `package` area: a fault of the model package rather than of the run. */
export function isPackageCode(code: ErrorCode): code is AreaErrorCode<'package'> {
  return errorInfo(code).area === 'package';
}

// Raised by the package layer, which the runtime shares with the cloud.
export { ModelPackageError } from '../package/errors.js';

/** The plan names something the runtime does not have (an endpoint, a cut). */
export class PlanError extends TandemError {
  declare readonly code: AreaErrorCode<'runtime'>;
  constructor(code: AreaErrorCode<'runtime'>, message: string, options: Options = {}) {
    super(code, message, options);
  }
}
