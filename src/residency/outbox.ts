/**
 * The outbox: every accepted result is first appended to a durable on-disk log (fsync before the
 * caller is told "accepted"), then delivered to its store, retried with exponential backoff and
 * full jitter until the store acknowledges, and replayed after a restart. The object key is a
 * function of the request id, so at-least-once delivery still leaves exactly one stored copy.
 *
 * Disk use is bounded: when the log would exceed its byte budget the result is refused with
 * {@link OutboxFullError}; a disk error refuses it with {@link OutboxDiskError}. Never accepted
 * and dropped. Segments whose results are all delivered are deleted (compaction), and under
 * pressure the few undelivered results of the oldest segment are moved forward so it can go.
 *
 * This file holds the public class: admission (validation, policy, sealing, the byte budget)
 * and the lifecycle. The record format is in outbox-log.ts, the segment files in
 * outbox-journal.ts, delivery and retries in outbox-delivery.ts and outbox-backoff.ts.
 */
import { TandemError, ValidationError } from '../errors/index.js';
import { seal } from './envelope.js';
import { OutboxFullError, ResidencyDeniedError } from './errors.js';
import { sealingKeyFor } from './kms/ring.js';
import { allowedStores } from './gate.js';
import { DEFAULT_BACKOFF } from './outbox-backoff.js';
import { DeliveryLoop } from './outbox-delivery.js';
import { OutboxJournal } from './outbox-journal.js';
import { frame, type PutRecord } from './outbox-log.js';
import type { Entry, OutboxOptions, Receipt, ResultSubmission } from './outbox-types.js';
import { resultKey } from './stores/types.js';

export type { BackoffOptions } from './outbox-backoff.js';
export type { OutboxEvent, OutboxOptions, Receipt, ResultSubmission } from './outbox-types.js';

const PRINTABLE = /^[\x20-\x7e]+$/;

export class Outbox {
  private readonly pending = new Map<string, Entry>();
  private readonly journal: OutboxJournal;
  private readonly delivery: DeliveryLoop;
  private closed = false;
  private drainWaiters: Array<() => void> = [];
  private readonly accepting = new Map<string, Promise<Receipt>>();

  private constructor(private readonly options: OutboxOptions) {
    const maxBytes = options.maxBytes ?? 256 * 1024 * 1024;
    const segmentBytes = Math.max(4096, Math.min(options.segmentBytes ?? 8 * 1024 * 1024, Math.floor(maxBytes / 4)));
    this.journal = new OutboxJournal(options, { maxBytes, segmentBytes }, this.pending);
    this.delivery = new DeliveryLoop(
      options,
      {
        backoff: { ...DEFAULT_BACKOFF, ...options.backoff },
        concurrency: options.concurrency ?? 8,
        random: options.random ?? Math.random,
        onSettled: () => this.notifyDrain(),
      },
      this.pending,
      this.journal,
    );
  }

  /** Opens the outbox in `options.dir`, replays undelivered results and starts delivering them. */
  static async open(options: OutboxOptions): Promise<Outbox> {
    const box = new Outbox(options);
    await box.replay();
    box.delivery.pump();
    return box;
  }

  private async replay(): Promise<void> {
    for (const entry of await this.journal.replay()) {
      this.pending.set(entry.rec.id, entry);
      this.delivery.enqueue(entry);
    }
    await this.journal.compact(false);
  }

  /** Bytes the log occupies on disk, including appends in flight. */
  get usedBytes(): number {
    return this.journal.usedBytes;
  }

  /**
   * Accepts a result: checks the policy (rejects with {@link ResidencyDeniedError}), seals it,
   * and resolves once it is durably in the log. Rejects with {@link OutboxFullError} or
   * {@link OutboxDiskError} when it cannot be kept, so nothing is ever accepted and dropped.
   */
  async accept(submission: ResultSubmission): Promise<Receipt> {
    // The same request id accepted twice at once is logged once.
    const running = this.accepting.get(submission.requestId);
    if (running !== undefined) return { ...(await running), duplicate: true };
    const attempt = this.acceptOnce(submission);
    this.accepting.set(submission.requestId, attempt);
    try {
      return await attempt;
    } finally {
      this.accepting.delete(submission.requestId);
    }
  }

  private async acceptOnce(submission: ResultSubmission): Promise<Receipt> {
    if (this.closed) throw new TandemError('OUTBOX_CLOSED', 'the outbox is closed');
    const { requestId, dataClass } = submission;
    // The request id and metadata travel as HTTP header values (x-amz-meta-*, x-oss-meta-*): printable ASCII only.
    if (typeof requestId !== 'string' || !PRINTABLE.test(requestId) || requestId.length > 512) throw new ValidationError('OUTBOX_BAD_REQUEST_ID', 'requestId must be 1 to 512 printable ASCII characters', { details: { requestId } });
    for (const [k, v] of Object.entries(submission.metadata ?? {})) {
      if (!/^[a-z0-9][a-z0-9-]{0,63}$/.test(k) || typeof v !== 'string' || !(v === '' || PRINTABLE.test(v)) || v.length > 1024) {
        throw new ValidationError('OUTBOX_BAD_METADATA', `metadata "${k}" must be a lowercase name (a-z, 0-9, -) with a printable ASCII value`, { details: { key: k } });
      }
    }
    if (!(submission.body instanceof Uint8Array)) throw new ValidationError('OUTBOX_BAD_BODY', 'body must be a Uint8Array');
    const policy = this.options.gate.policy;
    const storeName = submission.store ?? allowedStores(policy, dataClass, submission.origin)[0];
    if (storeName === undefined) {
      // Audits the refusal and throws the typed error (unknown class, or no store allowed).
      await this.options.gate.checkWrite(dataClass, Object.keys(policy.stores)[0] ?? '(none)', { requestId, origin: submission.origin });
      throw new ResidencyDeniedError(`no store may hold class "${dataClass}"`, { dataClass, requestId });
    }
    await this.options.gate.checkWrite(dataClass, storeName, { requestId, origin: submission.origin });
    const store = this.options.stores.get(storeName);
    if (store === undefined) throw new TandemError('OUTBOX_NO_STORE', `store "${storeName}" is allowed by the policy but not configured`, { details: { store: storeName } });

    const existing = this.pending.get(requestId);
    if (existing !== undefined) return { requestId, store: existing.rec.store, key: existing.rec.key, duplicate: true };

    const key = resultKey(requestId, '');
    const metadata = { ...submission.metadata, 'request-id': requestId, 'data-class': dataClass };
    // The key for the store's region (policy `keys`); a key in another region is refused here, before anything is logged.
    const sealed = await seal(sealingKeyFor(this.options.keys, policy, policy.stores[storeName]?.region ?? ''), key, submission.body, metadata);
    const rec: PutRecord = {
      t: 'put',
      id: requestId,
      dataClass,
      origin: submission.origin ?? null,
      store: storeName,
      key,
      contentType: submission.contentType ?? 'application/octet-stream',
      metadata,
      body: sealed,
      acceptedAt: Date.now(),
    };
    const bytes = frame(rec);
    const { maxBytes } = this.journal;
    if (this.usedBytes + bytes.length > maxBytes) {
      await this.journal.compact(true);
      if (this.usedBytes + bytes.length > maxBytes) throw new OutboxFullError({ usedBytes: this.usedBytes, maxBytes, recordBytes: bytes.length });
    }
    const entry = await this.journal.append(rec, bytes);
    this.pending.set(requestId, entry);
    this.delivery.enqueue(entry);
    this.delivery.pump();
    return { requestId, store: storeName, key, duplicate: false };
  }

  /** Undelivered results, bytes on disk and results delivered since open. */
  stats(): { pending: number; usedBytes: number; maxBytes: number; delivered: number; segments: number } {
    return { pending: this.pending.size, usedBytes: this.usedBytes, maxBytes: this.journal.maxBytes, delivered: this.delivery.delivered, segments: this.journal.segmentCount };
  }

  private notifyDrain(): void {
    if (this.pending.size > 0) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves when every accepted result is delivered (or rejects after `timeoutMs`). */
  drain(timeoutMs = 60_000): Promise<void> {
    if (this.pending.size === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new TandemError('OUTBOX_DRAIN_TIMEOUT', `${this.pending.size} results still undelivered after ${timeoutMs} ms`, { retryable: true })), timeoutMs);
      this.drainWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Stops delivering; undelivered results stay in the log for the next open. */
  async close(): Promise<void> {
    this.closed = true;
    this.delivery.stop();
    await this.journal.close();
  }
}
