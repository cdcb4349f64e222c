/** The outbox's public types, and the in-memory entry its journal and delivery loop share. */
import type { TandemError } from '../errors/index.js';
import type { AppendIo } from './append-file.js';
import type { KeySource } from './envelope.js';
import type { ResidencyGate } from './gate.js';
import type { KeyRing } from './kms/ring.js';
import type { BackoffOptions } from './outbox-backoff.js';
import type { PutRecord } from './outbox-log.js';
import type { ResultStore } from './stores/types.js';

/** What the caller hands the outbox. */
export interface ResultSubmission {
  /** The request id: the idempotency key (the object key derives from it). */
  requestId: string;
  dataClass: string;
  origin?: string;
  /** The store to write to; default the first store the policy allows for the class. */
  store?: string;
  body: Uint8Array;
  contentType?: string;
  /** Readable metadata (also authenticated by the envelope). Keys: lowercase letters, digits, '-'. */
  metadata?: Record<string, string>;
}

export interface Receipt {
  requestId: string;
  store: string;
  key: string;
  /** True when the request id was already pending and this call added nothing. */
  duplicate: boolean;
}

export type OutboxEvent =
  | { type: 'delivered'; requestId: string; store: string; key: string; attempts: number }
  | { type: 'retry'; requestId: string; store: string; attempt: number; delayMs: number; error: TandemError }
  | { type: 'dead'; requestId: string; store: string; why: string };

export interface OutboxOptions {
  dir: string;
  gate: ResidencyGate;
  stores: ReadonlyMap<string, ResultStore>;
  /** The key that seals results: one source, or a ring choosing by the store's region (policy `keys`). */
  keys: KeySource | KeyRing;
  /** Byte budget for the log on disk. Default 256 MiB. */
  maxBytes?: number;
  /** Segment size at which a new log file starts. Default 8 MiB (at most maxBytes / 4). */
  segmentBytes?: number;
  backoff?: Partial<BackoffOptions>;
  /** Deliveries in flight at once. Default 8. */
  concurrency?: number;
  /** fsync before acknowledging. Default true; only tests of other things turn it off. */
  fsync?: boolean;
  /** Disk operations (tests inject ENOSPC here). */
  io?: AppendIo;
  /** Random source for jitter, [0, 1). */
  random?: () => number;
  onEvent?: (event: OutboxEvent) => void;
}

/** An undelivered result: where its put record sits in the log, and its delivery state. */
export interface Entry {
  rec: PutRecord;
  /** The segment holding its put record (changes when compaction moves it forward). */
  seg: number;
  /** Size of its frame on disk. */
  bytes: number;
  attempts: number;
  timer: NodeJS.Timeout | undefined;
  inFlight: boolean;
}

export function newEntry(rec: PutRecord, seg: number, bytes: number): Entry {
  return { rec, seg, bytes, attempts: 0, timer: undefined, inFlight: false };
}
