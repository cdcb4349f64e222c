/**
 * Failures of the tensor wire format. Every one carries a stable code so that the cloud
 * service can answer 400/413 with it and clients can branch on it without parsing text.
 */
import { ValidationError } from '../errors.js';

export type CodecErrorCode =
  | 'CODEC_TRUNCATED'
  | 'CODEC_MAGIC'
  | 'CODEC_VERSION'
  | 'CODEC_DIMS_MISMATCH'
  | 'CODEC_DTYPE'
  | 'CODEC_TOO_LARGE'
  | 'CODEC_INTEGRITY'
  | 'CODEC_MALFORMED'
  | 'CODEC_UNSUPPORTED'
  | 'CODEC_VALUE';

/** A payload or tensor the codec refuses. Never retryable: the same bytes fail the same way. */
export class CodecError extends ValidationError {
  declare readonly code: CodecErrorCode;

  constructor(code: CodecErrorCode, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(code, message, { ...options, retryable: false });
  }
}
