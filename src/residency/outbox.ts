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
 * Log layout: `seg-NNNNNNNN.log` files of frames `u32 length | u32 crc32 | msgpack record`.
 */
import { mkdir, open, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from '../util/crc32.js';
import { Packr } from 'msgpackr';
import { TandemError, ValidationError } from '../errors.js';
import { DurableAppendFile, type AppendIo } from './append-file.js';
import { seal, type KeySource } from './envelope.js';
import { OutboxDiskError, OutboxFullError, ResidencyDeniedError, StoreError, UnknownDataClassError } from './errors.js';
import { allowedStores, evaluateWrite, type ResidencyGate } from './gate.js';
import { resultKey, type ResultStore } from './stores/types.js';

const packr = new Packr({ useRecords: false });

interface PutRecord {
  t: 'put';
  id: string;
  dataClass: string;
  origin: string | null;
  store: string;
  key: string;
  contentType: string;
  metadata: Record<string, string>;
  body: Uint8Array;
  acceptedAt: number;
}
interface AckRecord {
  t: 'ack';
  id: string;
}
interface DeadRecord {
  t: 'dead';
  id: string;
  why: string;
}
type LogRecord = PutRecord | AckRecord | DeadRecord;

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

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
  factor: number;
}

export interface OutboxOptions {
  dir: string;
  gate: ResidencyGate;
  stores: ReadonlyMap<string, ResultStore>;
  keys: KeySource;
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

interface Entry {
  rec: PutRecord;
  seg: number;
  bytes: number;
  attempts: number;
  timer: NodeJS.Timeout | undefined;
  inFlight: boolean;
}

interface Segment {
  no: number;
  path: string;
  bytes: number;
  live: Set<string>;
}

function frame(rec: LogRecord): Buffer {
  const payload = packr.pack(rec);
  const out = Buffer.allocUnsafe(8 + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.writeUInt32BE(crc32(payload), 4);
  payload.copy(out, 8);
  return out;
}

/** Parses frames; stops at the first torn or corrupt one and says where the valid prefix ends. */
function parseFrames(buf: Buffer): { records: LogRecord[]; validLength: number } {
  const records: LogRecord[] = [];
  let pos = 0;
  while (pos + 8 <= buf.length) {
    const len = buf.readUInt32BE(pos);
    const crc = buf.readUInt32BE(pos + 4);
    if (pos + 8 + len > buf.length) break;
    const payload = buf.subarray(pos + 8, pos + 8 + len);
    if (crc32(payload) !== crc) break;
    let rec: unknown;
    try {
      rec = packr.unpack(payload);
    } catch {
      break;
    }
    if (typeof rec !== 'object' || rec === null || typeof (rec as { id?: unknown }).id !== 'string') break;
    records.push(rec as LogRecord);
    pos += 8 + len;
  }
  return { records, validLength: pos };
}

const PRINTABLE = /^[\x20-\x7e]+$/;

const segName = (no: number): string => `seg-${String(no).padStart(8, '0')}.log`;

export class Outbox {
  private readonly segments = new Map<number, Segment>();
  private readonly pending = new Map<string, Entry>();
  private active!: { seg: Segment; file: DurableAppendFile };
  private inFlight = 0;
  private closed = false;
  private delivered = 0;
  private readonly ready: Entry[] = [];
  private drainWaiters: Array<() => void> = [];
  private readonly accepting = new Map<string, Promise<Receipt>>();
  private compacting: Promise<void> = Promise.resolve();
  private rolling: Promise<void> | undefined;
  private readonly maxBytes: number;
  private readonly segmentBytes: number;
  private readonly backoff: BackoffOptions;
  private readonly concurrency: number;
  private readonly random: () => number;

  private constructor(private readonly options: OutboxOptions) {
    this.maxBytes = options.maxBytes ?? 256 * 1024 * 1024;
    this.segmentBytes = Math.max(4096, Math.min(options.segmentBytes ?? 8 * 1024 * 1024, Math.floor(this.maxBytes / 4)));
    this.backoff = { baseMs: 200, maxMs: 30_000, factor: 2, ...options.backoff };
    this.concurrency = options.concurrency ?? 8;
    this.random = options.random ?? Math.random;
  }

  /** Opens the outbox in `options.dir`, replays undelivered results and starts delivering them. */
  static async open(options: OutboxOptions): Promise<Outbox> {
    const box = new Outbox(options);
    await box.replay();
    box.pump();
    return box;
  }

  private async replay(): Promise<void> {
    const { dir } = this.options;
    await mkdir(dir, { recursive: true });
    const nos = (await readdir(dir))
      .map((n) => /^seg-(\d{8})\.log$/.exec(n)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    // Records are applied in log order: an ack or dead mark settles the puts before it, so a
    // request id accepted again after delivery is pending again.
    const live = new Map<string, { rec: PutRecord; seg: number; bytes: number }>();
    let lastValid = 0;
    for (const [i, no] of nos.entries()) {
      const path = join(dir, segName(no));
      const buf = await readFile(path);
      const { records, validLength } = parseFrames(buf);
      if (validLength < buf.length && i < nos.length - 1) {
        throw new TandemError('OUTBOX_CORRUPT', `outbox segment ${path} is corrupt at byte ${validLength} (not a torn tail: later segments exist)`, { details: { path, offset: validLength } });
      }
      if (i === nos.length - 1) lastValid = validLength;
      const seg: Segment = { no, path, bytes: validLength, live: new Set() };
      this.segments.set(no, seg);
      for (const rec of records) {
        const prior = live.get(rec.id);
        if (prior) this.segments.get(prior.seg)?.live.delete(rec.id);
        if (rec.t === 'put') {
          live.set(rec.id, { rec, seg: no, bytes: frame(rec).length });
          seg.live.add(rec.id);
        } else {
          live.delete(rec.id);
        }
      }
    }
    for (const [id, p] of live) this.pending.set(id, { rec: p.rec, seg: p.seg, bytes: p.bytes, attempts: 0, timer: undefined, inFlight: false });
    const lastNo = nos.at(-1);
    if (lastNo === undefined) {
      await this.openSegment(1);
    } else {
      const seg = this.segments.get(lastNo)!;
      this.active = { seg, file: await DurableAppendFile.open(seg.path, { io: this.options.io, fsync: this.options.fsync, validLength: lastValid }) };
      if (seg.bytes >= this.segmentBytes) await this.roll();
    }
    for (const entry of this.pending.values()) this.ready.push(entry);
    await this.compact(false);
  }

  private async openSegment(no: number): Promise<void> {
    const path = join(this.options.dir, segName(no));
    const file = await DurableAppendFile.open(path, { io: this.options.io, fsync: this.options.fsync });
    const seg: Segment = { no, path, bytes: 0, live: new Set() };
    this.segments.set(no, seg);
    this.active = { seg, file };
    // The new file's directory entry must survive a crash before anything in it is acknowledged.
    await syncDir(this.options.dir);
  }

  private roll(): Promise<void> {
    this.rolling ??= (async () => {
      const old = this.active;
      await this.openSegment(old.seg.no + 1);
      await old.file.close();
    })().finally(() => {
      this.rolling = undefined;
    });
    return this.rolling;
  }

  /** Bytes the log occupies on disk, including appends in flight. */
  get usedBytes(): number {
    let n = 0;
    for (const s of this.segments.values()) n += s === this.active.seg ? this.active.file.size : s.bytes;
    return n;
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
    const sealed = await seal(this.options.keys, key, submission.body, metadata);
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
    if (this.usedBytes + bytes.length > this.maxBytes) {
      await this.compact(true);
      if (this.usedBytes + bytes.length > this.maxBytes) throw new OutboxFullError({ usedBytes: this.usedBytes, maxBytes: this.maxBytes, recordBytes: bytes.length });
    }
    const entry = await this.append(rec, bytes);
    this.pending.set(requestId, entry);
    this.ready.push(entry);
    this.pump();
    return { requestId, store: storeName, key, duplicate: false };
  }

  private async append(rec: PutRecord, bytes: Buffer): Promise<Entry> {
    if (this.rolling) await this.rolling;
    const { seg, file } = this.active;
    try {
      await file.append(bytes);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new OutboxDiskError(`the outbox disk refused the result (${code ?? 'error'}): ${error instanceof Error ? error.message : String(error)}`, error, { errno: code, dir: this.options.dir });
    }
    seg.bytes = file.size;
    seg.live.add(rec.id);
    if (seg.bytes >= this.segmentBytes && this.active.seg === seg) await this.roll();
    return { rec, seg: seg.no, bytes: bytes.length, attempts: 0, timer: undefined, inFlight: false };
  }

  private async appendMark(rec: AckRecord | DeadRecord): Promise<void> {
    if (this.rolling) await this.rolling;
    const { seg, file } = this.active;
    // A lost mark only means one more (idempotent) delivery after a restart.
    await file.append(frame(rec)).catch(() => undefined);
    seg.bytes = file.size;
  }

  private pump(): void {
    while (!this.closed && this.inFlight < this.concurrency && this.ready.length > 0) {
      const entry = this.ready.shift()!;
      if (entry.inFlight || !this.pending.has(entry.rec.id)) continue;
      entry.inFlight = true;
      this.inFlight++;
      void this.deliver(entry)
        .catch((error: unknown) => this.retryLater(entry, error))
        .finally(() => {
        entry.inFlight = false;
        this.inFlight--;
        this.pump();
        this.notifyDrain();
      });
    }
  }

  private async deliver(entry: Entry): Promise<void> {
    const { rec } = entry;
    // Re-checked at delivery: a policy tightened since acceptance must still win.
    let allowed: boolean;
    try {
      allowed = evaluateWrite(this.options.gate.policy, rec.dataClass, rec.origin ?? undefined, rec.store).allowed;
    } catch (error) {
      if (!(error instanceof UnknownDataClassError)) throw error;
      allowed = false;
    }
    if (!allowed) {
      const why = await this.options.gate.checkWrite(rec.dataClass, rec.store, { requestId: rec.id, origin: rec.origin ?? undefined }).then(
        () => 'allowed on re-check',
        (e: unknown) => (e instanceof Error ? e.message : String(e)),
      );
      this.finish(entry);
      await this.appendMark({ t: 'dead', id: rec.id, why });
      this.options.onEvent?.({ type: 'dead', requestId: rec.id, store: rec.store, why });
      return;
    }
    const store = this.options.stores.get(rec.store);
    entry.attempts++;
    try {
      if (store === undefined) throw new StoreError('config', rec.store, 'not configured');
      await store.put(rec.key, rec.body, { contentType: rec.contentType, metadata: rec.metadata });
    } catch (error) {
      this.retryLater(entry, error);
      return;
    }
    // Settled before the ack is durable: if the segment goes and the ack is lost, the object is
    // already stored; if the segment stays, the worst case is one more idempotent put.
    this.finish(entry);
    await this.appendMark({ t: 'ack', id: rec.id });
    this.delivered++;
    this.options.onEvent?.({ type: 'delivered', requestId: rec.id, store: rec.store, key: rec.key, attempts: entry.attempts });
    await this.compact(false);
  }

  /** Exponential backoff with full jitter: a random delay in [0, min(max, base * factor^(n-1))]. */
  private retryLater(entry: Entry, error: unknown): void {
    if (this.closed || !this.pending.has(entry.rec.id)) return;
    const { rec } = entry;
    const err = error instanceof TandemError ? error : new StoreError('unavailable', rec.store, error instanceof Error ? error.message : String(error), { cause: error });
    const cap = Math.min(this.backoff.maxMs, this.backoff.baseMs * this.backoff.factor ** Math.max(0, entry.attempts - 1));
    const delayMs = Math.round(cap * this.random());
    this.options.onEvent?.({ type: 'retry', requestId: rec.id, store: rec.store, attempt: entry.attempts, delayMs, error: err });
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      this.ready.push(entry);
      this.pump();
    }, delayMs);
    entry.timer.unref();
  }

  private finish(entry: Entry): void {
    this.pending.delete(entry.rec.id);
    this.segments.get(entry.seg)?.live.delete(entry.rec.id);
  }

  /**
   * Deletes segments whose results are all delivered. Under `pressure`, also moves the
   * undelivered results of the oldest segments into the active one when that frees space.
   */
  private compact(pressure: boolean): Promise<void> {
    // One compaction at a time: two could move the same results forward twice.
    const run = this.compacting.then(() => this.compactOnce(pressure));
    this.compacting = run.catch(() => undefined);
    return run;
  }

  private async compactOnce(pressure: boolean): Promise<void> {
    for (const seg of [...this.segments.values()].sort((a, b) => a.no - b.no)) {
      if (seg === this.active.seg) break;
      if (seg.live.size > 0) {
        if (!pressure) continue;
        const moving = [...seg.live].map((id) => this.pending.get(id)).filter((e): e is Entry => e !== undefined);
        const liveBytes = moving.reduce((n, e) => n + e.bytes, 0);
        if (liveBytes >= seg.bytes || this.usedBytes + liveBytes > this.maxBytes) continue;
        for (const e of moving) {
          const moved = await this.append(e.rec, frame(e.rec));
          seg.live.delete(e.rec.id);
          e.seg = moved.seg;
        }
      }
      if (!this.segments.has(seg.no)) continue;
      this.segments.delete(seg.no);
      await unlink(seg.path).catch(() => undefined);
    }
  }

  /** Undelivered results, bytes on disk and results delivered since open. */
  stats(): { pending: number; usedBytes: number; maxBytes: number; delivered: number; segments: number } {
    return { pending: this.pending.size, usedBytes: this.usedBytes, maxBytes: this.maxBytes, delivered: this.delivered, segments: this.segments.size };
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
    for (const e of this.pending.values()) if (e.timer) clearTimeout(e.timer);
    if (this.rolling) await this.rolling;
    await this.active.file.close();
  }
}

async function syncDir(dir: string): Promise<void> {
  const h = await open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}
