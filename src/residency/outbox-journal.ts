/**
 * The outbox's log on disk: appends to the active segment (rolling to a new file at the
 * segment size), replay of the segments an earlier run left, and compaction. Which results are
 * pending is the Outbox's map; the journal reads it only to move results forward.
 */
import { readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { TandemError } from '../errors/index.js';
import { ensureDir } from '../util/ensure-dir.js';
import { DurableAppendFile } from './append-file.js';
import { OutboxDiskError } from './errors.js';
import { frame, parseFrames, segName, segmentNumbers, type AckRecord, type DeadRecord, type PutRecord } from './outbox-log.js';
import { newEntry, type Entry, type OutboxOptions } from './outbox-types.js';
import { syncDir } from './sync-dir.js';

export interface JournalLimits {
  /** Byte budget for the log on disk. */
  maxBytes: number;
  /** Segment size at which a new log file starts. */
  segmentBytes: number;
}

interface Segment {
  no: number;
  path: string;
  bytes: number;
  /** Request ids whose put record here is still undelivered. */
  live: Set<string>;
}

export class OutboxJournal {
  private readonly segments = new Map<number, Segment>();
  private active!: { seg: Segment; file: DurableAppendFile };
  private compacting: Promise<void> = Promise.resolve();
  private rolling: Promise<void> | undefined;
  readonly maxBytes: number;
  private readonly segmentBytes: number;

  /** `options` is the Outbox's own options object, read at each use as the Outbox reads it. */
  constructor(
    private readonly options: Pick<OutboxOptions, 'dir' | 'io' | 'fsync'>,
    limits: JournalLimits,
    private readonly pending: ReadonlyMap<string, Entry>,
  ) {
    this.maxBytes = limits.maxBytes;
    this.segmentBytes = limits.segmentBytes;
  }

  /**
   * Reads the segments in `dir` (creating it), opens the newest for appending and returns the
   * undelivered results. A torn tail on the newest segment is cut off; damage anywhere else is
   * corruption and throws.
   */
  async replay(): Promise<Entry[]> {
    const { dir } = this.options;
    await ensureDir(dir);
    const nos = segmentNumbers(await readdir(dir));
    // Records are applied in log order: an ack or dead mark settles the puts before it, so a
    // request id accepted again after delivery is pending again.
    const live = new Map<string, Entry>();
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
          live.set(rec.id, newEntry(rec, no, frame(rec).length));
          seg.live.add(rec.id);
        } else {
          live.delete(rec.id);
        }
      }
    }
    const lastNo = nos.at(-1);
    if (lastNo === undefined) {
      await this.openSegment(1);
    } else {
      const seg = this.segments.get(lastNo)!;
      this.active = { seg, file: await DurableAppendFile.open(seg.path, { io: this.options.io, fsync: this.options.fsync, validLength: lastValid }) };
      if (seg.bytes >= this.segmentBytes) await this.roll();
    }
    return [...live.values()];
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

  get segmentCount(): number {
    return this.segments.size;
  }

  /** Appends a put record (`bytes` is its frame); resolves once it is durable. */
  async append(rec: PutRecord, bytes: Buffer): Promise<Entry> {
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
    return newEntry(rec, seg.no, bytes.length);
  }

  async appendMark(rec: AckRecord | DeadRecord): Promise<void> {
    if (this.rolling) await this.rolling;
    const { seg, file } = this.active;
    // A lost mark only means one more (idempotent) delivery after a restart.
    await file.append(frame(rec)).catch(() => undefined);
    seg.bytes = file.size;
  }

  /** The entry's result is settled: its segment no longer keeps it. */
  release(entry: Entry): void {
    this.segments.get(entry.seg)?.live.delete(entry.rec.id);
  }

  /**
   * Deletes segments whose results are all delivered. Under `pressure`, also moves the
   * undelivered results of the oldest segments into the active one when that frees space.
   */
  compact(pressure: boolean): Promise<void> {
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

  /** Closes the active segment once a roll in progress has finished. */
  async close(): Promise<void> {
    if (this.rolling) await this.rolling;
    await this.active.file.close();
  }
}
