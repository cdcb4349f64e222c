/**
 * Errors of the cloud service, each mapped to the HTTP status it is answered with.
 */
import type { Logger } from 'pino';
import { isTandemError, TandemError, type ErrorCode } from '../src/errors/index.js';

export class CloudError extends TandemError {
  /** HTTP status the service answers with. */
  readonly status: number;

  /** `retryable`, where a site does not say, is the catalogue's (`src/errors/catalogue/apps.ts`). */
  constructor(status: number, code: ErrorCode, message: string, options: { cause?: unknown; retryable?: boolean; details?: Record<string, unknown> } = {}) {
    super(code, message, options);
    this.status = status;
  }
}

export const badRequest = (code: ErrorCode, message: string, details?: Record<string, unknown>): CloudError =>
  new CloudError(400, code, message, details ? { details } : {});

/**
 * The client closed its connection before its answer. Nothing is answered (there is no one
 * to read it); 499 is what the request is counted and logged as, as nginx does.
 */
export const clientClosed = (when: string, cause?: unknown): CloudError =>
  new CloudError(499, 'CLOUD_CLIENT_CLOSED', `the client closed the connection ${when}`, { retryable: false, ...(cause !== undefined ? { cause } : {}) });

/** What a draining service answers to new work (retryable: the catalogue's default). */
export const draining = (cause?: unknown): CloudError =>
  new CloudError(503, 'CLOUD_DRAINING', 'the service is shutting down; retry on another instance', cause !== undefined ? { cause } : {});

/** A failure as the service answers it, on any front. */
export interface ErrorSummary {
  status: number;
  code: ErrorCode;
  message: string;
}

/**
 * The status, code and message a failure is answered with, on every front; each front then
 * writes it in its own shape. Anything not the client's fault is logged here, once.
 */
export function describeError(error: unknown, log: Logger): ErrorSummary {
  if (error instanceof CloudError) return { status: error.status, code: error.code, message: error.message };
  // Codec, OIP and Vertex parse failures are the client's fault.
  if (isTandemError(error)) return { status: error.code === 'CODEC_TOO_LARGE' ? 413 : 400, code: error.code, message: error.message };
  log.error({ err: error }, 'unexpected failure');
  return { status: 500, code: 'CLOUD_INTERNAL', message: 'internal error' };
}
