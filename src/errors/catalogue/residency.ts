/**
 * Catalogue entries of the residency layer: the policy, result stores, the outbox, envelope
 * encryption and the audit log. A refusal by the policy is answered 403 by the edge agent.
 */
import { inArea } from './info.js';

export const RESIDENCY_CODES = inArea('residency', {
  RESIDENCY_POLICY_INVALID: { status: 403, retryable: false, meaning: 'A residency policy file cannot be parsed or does not satisfy the schema.' },
  RESIDENCY_UNKNOWN_CLASS: { status: 403, retryable: false, meaning: 'The data class is not declared by the policy (default deny).' },
  RESIDENCY_UNKNOWN_ORIGIN: { status: 403, retryable: false, meaning: 'The data origin is not declared by the policy (default deny).' },
  RESIDENCY_CLASS_REQUIRED: { status: 403, retryable: false, meaning: 'The request names no data class and the agent has no default class.' },
  RESIDENCY_WRITE_DENIED: { status: 403, retryable: false, meaning: 'The policy forbids writing this data class to this store.' },
  RESIDENCY_NO_STORE: { status: 403, retryable: false, meaning: 'The policy allows no configured store for the data class.' },
  STORE_AUTH: { status: 500, retryable: false, meaning: "A result store refused the credentials; an operator must act." },
  STORE_UNAVAILABLE: { status: 503, retryable: true, meaning: 'A result store is unreachable, throttling or answering 5xx.' },
  STORE_NOT_FOUND: { status: 500, retryable: false, meaning: 'The object read from a result store does not exist.' },
  STORE_REJECTED: { status: 500, retryable: false, meaning: 'A result store refused the request (a 4xx other than auth, not-found or throttling).' },
  STORE_CONFIG: { status: 500, retryable: false, meaning: "A result store's configuration is invalid (bucket, region, credentials missing)." },
  STORE_CORRUPT: { status: 500, retryable: false, meaning: 'An object read from a result store is corrupt.' },
  OUTBOX_FULL: { status: 503, retryable: true, meaning: 'The outbox is at its byte budget; the result was refused, not accepted and dropped.' },
  OUTBOX_DISK: { status: 503, retryable: true, meaning: "The outbox's disk refused the write (ENOSPC, EIO, EDQUOT); the result was not accepted." },
  OUTBOX_CLOSED: { status: 500, retryable: false, meaning: 'The outbox is closed and takes no results.' },
  OUTBOX_CORRUPT: { status: 500, retryable: false, meaning: 'An outbox segment is corrupt before its end (not a torn tail).' },
  OUTBOX_NO_STORE: { status: 500, retryable: false, meaning: 'The policy allows a store that is not configured.' },
  OUTBOX_DRAIN_TIMEOUT: { status: 503, retryable: true, meaning: 'Results were still undelivered when the drain timed out.' },
  OUTBOX_BAD_REQUEST_ID: { status: 400, retryable: false, meaning: 'A submitted result has a request id that is not 1 to 512 printable ASCII characters.' },
  OUTBOX_BAD_METADATA: { status: 400, retryable: false, meaning: 'A submitted result has a metadata name or value the stores cannot carry.' },
  OUTBOX_BAD_BODY: { status: 400, retryable: false, meaning: 'A submitted result body is not bytes.' },
  SOURCE_OBJECT_TOO_LARGE: { status: 413, retryable: false, meaning: 'An input object of a batch is larger than its input.maxBytes; it is recorded as failed, never read past the limit.' },
  ENVELOPE_KEY: { status: 500, retryable: false, meaning: 'The key-encryption key is missing, unreadable, malformed, or not the one the object was sealed under.' },
  ENVELOPE_CORRUPT: { status: 500, retryable: false, meaning: 'A sealed object or its wrapped key does not authenticate, or its header is malformed.' },
  APPEND_FILE_CLOSED: { status: 500, retryable: false, meaning: 'A durable append file (the audit log, an outbox segment) was written to after it was closed.' },
  AUDIT_TAMPERED: { status: 500, retryable: false, meaning: "The audit log's hash chain does not verify." },
  AUDIT_UNREADABLE: { status: 400, retryable: false, meaning: 'The audit log file cannot be read.' },
  AUDIT_KEY: { status: 500, retryable: false, meaning: "A keyed audit log's MAC key cannot be obtained: no key source was given, or its wrapped key does not decrypt with it." },
  KMS_ACCESS_DENIED: { status: 500, retryable: false, meaning: 'A KMS refused the credentials or the key (access denied, key disabled or unknown to them); an operator must act.' },
  KMS_UNAVAILABLE: { status: 503, retryable: true, meaning: 'A KMS is unreachable, throttling or answering 5xx.' },
  KMS_REJECTED: { status: 500, retryable: false, meaning: 'A KMS refused the request (a ciphertext it cannot decrypt, a malformed parameter) or answered something unusable.' },
  KMS_CONFIG: { status: 500, retryable: false, meaning: "A KMS key's declaration or client is unusable (SDK not loadable, no credentials, a bad endpoint)." },
  RESIDENCY_KEY_REGION: { status: 403, retryable: false, meaning: "The policy's KMS key for a result's region, or the key that KMS answered with, lives in another region than the one the result must be kept in; nothing was written." },
  RESIDENCY_REGION_LABEL: { status: 403, retryable: false, meaning: "An endpoint's or store's URL names a cloud region that contradicts its region label." },
});
