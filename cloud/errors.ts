/**
 * Errors of the cloud service, each mapped to the HTTP status it is answered with.
 */
import { TandemError } from '../src/errors.js';

export class CloudError extends TandemError {
  /** HTTP status the service answers with. */
  readonly status: number;

  constructor(status: number, code: string, message: string, options: { cause?: unknown; retryable?: boolean; details?: Record<string, unknown> } = {}) {
    super(code, message, { ...options, retryable: options.retryable ?? (status === 429 || status >= 500) });
    this.status = status;
  }
}

export const badRequest = (code: string, message: string, details?: Record<string, unknown>): CloudError =>
  new CloudError(400, code, message, details ? { details } : {});

/**
 * The client closed its connection before its answer. Nothing is answered (there is no one
 * to read it); 499 is what the request is counted and logged as, as nginx does.
 */
export const clientClosed = (when: string, cause?: unknown): CloudError =>
  new CloudError(499, 'CLOUD_CLIENT_CLOSED', `the client closed the connection ${when}`, { retryable: false, ...(cause !== undefined ? { cause } : {}) });
