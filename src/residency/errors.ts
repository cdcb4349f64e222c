/**
 * Typed failures of the residency layer. Callers branch on `code`; the classes exist so that
 * `instanceof` works for the common cases (a refused write, a full outbox).
 */
import { errorInfo, type AreaErrorCode, type ErrorCode } from '../errors/catalogue.js';
import { TandemError, ValidationError } from '../errors/index.js';

/**
 * Whether a code is a refusal by the residency policy (the catalogue's `residency` codes it
 * answers 403): what the edge agent answers 403 and counts as a residency refusal.
 */
export function isResidencyRefusal(code: ErrorCode): boolean {
  const info = errorInfo(code);
  return info.area === 'residency' && info.status === 403;
}

/** Where in a policy file a problem sits: a 1-based line/column for YAML/JSON text, and the key path. */
export interface PolicyIssue {
  path: string;
  message: string;
  line?: number;
  column?: number;
}

/** A policy file that cannot be parsed or does not satisfy the schema. Code `RESIDENCY_POLICY_INVALID`. */
export class PolicyError extends ValidationError {
  readonly issues: readonly PolicyIssue[];
  constructor(source: string, issues: PolicyIssue[], options: { cause?: unknown } = {}) {
    const lines = issues.map((i) => `${source}${i.line === undefined ? '' : `:${i.line}:${i.column ?? 1}`} ${i.path === '' ? '' : `at ${i.path}: `}${i.message}`);
    super('RESIDENCY_POLICY_INVALID', `invalid residency policy:\n  ${lines.join('\n  ')}`, {
      ...options,
      details: { source, issues },
    });
    this.issues = issues;
  }
}

/** A data class (or origin) the policy does not name. Default deny means this is an error, never "anything goes". */
export class UnknownDataClassError extends ValidationError {
  constructor(kind: 'class' | 'origin', name: string, known: readonly string[]) {
    super(
      kind === 'class' ? 'RESIDENCY_UNKNOWN_CLASS' : 'RESIDENCY_UNKNOWN_ORIGIN',
      `unknown data ${kind} "${name}" (the policy declares: ${known.length === 0 ? 'none' : known.join(', ')})`,
      { details: { kind, name, known: [...known] } },
    );
  }
}

/** The policy forbids writing this data class to this store. Code `RESIDENCY_WRITE_DENIED`; never retryable. */
export class ResidencyDeniedError extends TandemError {
  constructor(message: string, details: Record<string, unknown>) {
    super('RESIDENCY_WRITE_DENIED', message, { details });
  }
}

/** An audit log whose hash chain does not verify. Code `AUDIT_TAMPERED`. */
export class AuditTamperError extends TandemError {
  constructor(file: string, line: number, reason: string) {
    super('AUDIT_TAMPERED', `${file}:${line}: ${reason}`, { details: { file, line, reason } });
  }
}

export type StoreFailure = 'auth' | 'unavailable' | 'not-found' | 'rejected' | 'config' | 'corrupt';

const STORE_CODES: Record<StoreFailure, AreaErrorCode<'residency'>> = {
  auth: 'STORE_AUTH',
  unavailable: 'STORE_UNAVAILABLE',
  'not-found': 'STORE_NOT_FOUND',
  rejected: 'STORE_REJECTED',
  config: 'STORE_CONFIG',
  corrupt: 'STORE_CORRUPT',
};

/**
 * A result store failed. `auth` (credentials refused) and `config` are not retryable until an
 * operator acts; `unavailable` (network, 5xx, throttling) is (the catalogue says which).
 */
export class StoreError extends TandemError {
  readonly failure: StoreFailure;
  constructor(failure: StoreFailure, store: string, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(STORE_CODES[failure], `store "${store}": ${message}`, {
      cause: options.cause,
      details: { store, ...options.details },
    });
    this.failure = failure;
  }
}

/** The outbox reached its byte budget: the result is refused, not accepted and dropped. Code `OUTBOX_FULL`. */
export class OutboxFullError extends TandemError {
  constructor(details: { usedBytes: number; maxBytes: number; recordBytes: number }) {
    super('OUTBOX_FULL', `outbox full: ${details.usedBytes} of ${details.maxBytes} bytes used, a ${details.recordBytes}-byte result does not fit`, { details });
  }
}

/** The outbox's disk refused the write (ENOSPC, EIO, EDQUOT...). Code `OUTBOX_DISK`. The result was not accepted. */
export class OutboxDiskError extends TandemError {
  constructor(message: string, cause: unknown, details: Record<string, unknown>) {
    super('OUTBOX_DISK', message, { cause, details });
  }
}

/** Envelope encryption failed: a missing or wrong key, or an object that does not authenticate. */
export class EnvelopeError extends TandemError {
  constructor(code: 'ENVELOPE_KEY' | 'ENVELOPE_CORRUPT', message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(code, message, options);
  }
}
