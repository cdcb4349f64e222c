/**
 * Failures of the tensor wire format. Every one carries a stable code so that the cloud
 * service can answer 400/413 with it and clients can branch on it without parsing text.
 */
import type { AreaErrorCode } from '../errors/catalogue.js';
import { ValidationError } from '../errors/index.js';

/** The codec's codes, listed in the error catalogue (`errors/catalogue/library.ts`). */
export type CodecErrorCode = AreaErrorCode<'codec'>;

/** A payload or tensor the codec refuses. Never retryable: the same bytes fail the same way. */
export class CodecError extends ValidationError {
  declare readonly code: CodecErrorCode;

  constructor(code: CodecErrorCode, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(code, message, options);
  }
}
