import { retryableByDefault, type ErrorCode } from './catalogue.js';

export { ERROR_CATALOGUE, errorInfo, httpStatusOf, isErrorCode, type AreaErrorCode, type ErrorArea, type ErrorCode, type ErrorInfo, type HttpStatus } from './catalogue.js';

/**
 * Every error Tandem raises on purpose is a {@link TandemError}: it carries a stable,
 * machine-readable `code` (callers and the CLI branch on it; messages may change) and,
 * where one exists, the underlying `cause`.
 */
export class TandemError extends Error {
  /** Stable identifier from the error catalogue (`catalogue.ts`), e.g. `GRAPH_NOT_ONNX`. Never changes meaning once released. */
  readonly code: ErrorCode;
  /**
   * Whether retrying the same operation later may succeed (network faults, throttling): the
   * catalogue's value unless the construction site says otherwise.
   */
  readonly retryable: boolean;
  /** Structured facts about the failure (file names, tensor names, limits), for logs. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; retryable?: boolean; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? retryableByDefault(code);
    this.details = options.details ?? {};
  }

  toJSON(): { name: string; code: ErrorCode; message: string; retryable: boolean; details: Record<string, unknown> } {
    return { name: this.name, code: this.code, message: this.message, retryable: this.retryable, details: { ...this.details } };
  }
}

/** Input that fails validation at a boundary (files, payloads, config, CLI arguments). */
export class ValidationError extends TandemError {}

export function isTandemError(value: unknown): value is TandemError {
  return value instanceof TandemError;
}

/** Wraps anything thrown by a dependency so that callers always see a TandemError. */
export function asTandemError(value: unknown, code: ErrorCode, message: string): TandemError {
  if (value instanceof TandemError) return value;
  const detail = value instanceof Error ? value.message : String(value);
  return new TandemError(code, `${message}: ${detail}`, { cause: value });
}
