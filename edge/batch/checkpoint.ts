/**
 * A batch's checkpoint: which inputs are settled (their result durably in the outbox, or
 * recorded as failed), so that a restarted run skips them. It is a file of JSON lines, each
 * appended with fsync (group-committed) before the input counts as settled:
 *
 *   {"t":"run","id":…}              the run's identity (source, model version); first line
 *   {"t":"done","key":…,"after":W}  an input settled; `after`: every key up to W is settled
 *   {"t":"failed","key":…,"code":…} an input that cannot be processed (bad image, too large)
 *
 * Inputs are listed in key order (UTF-8 bytes), so the watermark W bounds the state: keys up
 * to W are not listed again on resume, and only the settled keys after W are kept in memory.
 * Processing is at-least-once (a kill between the outbox and this file repeats an input), and
 * the result's object key is a function of the input and model version, so outputs are
 * exactly once. The file is rewritten compactly (temp file, fsync, rename) when it grows.
 */
import { open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { TandemError } from '../../src/errors/index.js';
import { DurableAppendFile, syncDir } from '../../src/residency/index.js';
import { ensureDir } from '../../src/util/index.js';

type Rec = { t: 'run'; id: string } | { t: 'done'; key: string; after?: string } | { t: 'failed'; key: string; code: string };

/** Key order of every source's listing: by UTF-8 bytes. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export class CheckpointError extends TandemError {}

/** Appended records after which the file is rewritten with only the live state. */
const COMPACT_AFTER = 4096;

export class Checkpoint {
  private appends = 0;
  private compacting: Promise<void> | undefined;
  private readonly inFlight = new Set<Promise<number>>();

  private constructor(
    readonly file: string,
    private readonly id: string,
    private log: DurableAppendFile,
    /** Every key up to this one is settled. */
    private watermark: string | undefined,
    private readonly done: Set<string>,
    private readonly failed: Map<string, string>,
  ) {}

  /**
   * Opens the checkpoint at `file` for the run `id`, creating it when absent. Rejects with
   * BATCH_CHECKPOINT_MISMATCH when it belongs to another run (other inputs or model version)
   * unless `fresh`, which starts over; with BATCH_CHECKPOINT_CORRUPT when a line before the
   * last is unreadable (a torn last line, from a power cut mid-append, is cut off).
   */
  static async open(file: string, id: string, options: { fresh?: boolean; fsync?: boolean } = {}): Promise<Checkpoint> {
    await ensureDir(dirname(file));
    if (options.fresh) await rm(file, { force: true });
    let text = '';
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new CheckpointError('BATCH_CHECKPOINT_CORRUPT', `cannot read the checkpoint ${file}: ${(error as Error).message}`, { cause: error });
    }
    let watermark: string | undefined;
    const done = new Set<string>();
    const failed = new Map<string, string>();
    let runId: string | undefined;
    let valid = 0;
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      const last = i === lines.length - 1;
      if (line === '') {
        if (!last) throw new CheckpointError('BATCH_CHECKPOINT_CORRUPT', `${file}:${i + 1}: empty line`);
        continue;
      }
      let rec: Rec;
      try {
        rec = JSON.parse(line) as Rec;
      } catch (error) {
        // Only the last line can be torn (no newline yet): everything before it was fsynced whole.
        if (last) break;
        throw new CheckpointError('BATCH_CHECKPOINT_CORRUPT', `${file}:${i + 1}: not a checkpoint record`, { cause: error });
      }
      if (last) break; // a complete line always ends in "\n"
      if (rec.t === 'run') runId = rec.id;
      else if (rec.t === 'done') {
        done.add(rec.key);
        if (rec.after !== undefined && (watermark === undefined || compareKeys(rec.after, watermark) > 0)) watermark = rec.after;
      } else if (rec.t === 'failed') {
        failed.set(rec.key, rec.code);
      } else throw new CheckpointError('BATCH_CHECKPOINT_CORRUPT', `${file}:${i + 1}: unknown record`);
      valid += Buffer.byteLength(line) + 1;
    }
    if (runId !== undefined && runId !== id) {
      throw new CheckpointError('BATCH_CHECKPOINT_MISMATCH', `the checkpoint ${file} belongs to another batch (other inputs or another model version); pass --fresh to start over`, { details: { file } });
    }
    if (watermark !== undefined) for (const k of done) if (compareKeys(k, watermark) <= 0) done.delete(k);
    const log = await DurableAppendFile.open(file, { validLength: valid, fsync: options.fsync ?? true });
    const cp = new Checkpoint(file, id, log, watermark, done, failed);
    if (runId === undefined) await log.append(Buffer.from(`${JSON.stringify({ t: 'run', id })}\n`));
    return cp;
  }

  /** Resume point: list only keys after it. */
  get startAfter(): string | undefined {
    return this.watermark;
  }

  /** Whether an earlier run settled `key` (done or failed). */
  settled(key: string): 'done' | 'failed' | undefined {
    if (this.failed.has(key)) return 'failed';
    if (this.done.has(key) || (this.watermark !== undefined && compareKeys(key, this.watermark) <= 0)) return 'done';
    return undefined;
  }

  /**
   * Records `key` as settled (durably, before resolving), with `after` the new watermark when
   * the keys up to it are now all settled.
   */
  async record(key: string, outcome: { failed?: string }, after: string | undefined): Promise<void> {
    const rec: Rec = outcome.failed !== undefined ? { t: 'failed', key, code: outcome.failed } : { t: 'done', key, ...(after !== undefined ? { after } : {}) };
    await this.append(rec, () => {
      if (outcome.failed !== undefined) this.failed.set(key, outcome.failed);
      else this.done.add(key);
      if (after !== undefined) this.advance(after);
    });
  }

  /** Advances the watermark past keys an earlier run settled (they need no record of their own). */
  async advanceTo(after: string): Promise<void> {
    await this.append({ t: 'done', key: after, after }, () => this.advance(after));
  }

  /**
   * Applies `update` to the state and appends `rec`, resolving once it is on disk. A compaction
   * waits for the appends in flight and snapshots the state they updated; appends wait for it.
   */
  private async append(rec: Rec, update: () => void): Promise<void> {
    while (this.compacting !== undefined) await this.compacting;
    update();
    const written = this.log.append(Buffer.from(`${JSON.stringify(rec)}\n`));
    this.inFlight.add(written);
    try {
      await written;
    } finally {
      this.inFlight.delete(written);
    }
    if (++this.appends >= COMPACT_AFTER && this.compacting === undefined) {
      this.appends = 0;
      this.compacting = this.compact().finally(() => (this.compacting = undefined));
      await this.compacting;
    }
  }

  private advance(after: string): void {
    if (this.watermark !== undefined && compareKeys(after, this.watermark) <= 0) return;
    this.watermark = after;
    for (const k of this.done) if (compareKeys(k, after) <= 0) this.done.delete(k);
  }

  /** Rewrites the file with only the live state: the watermark, the keys settled after it, the failures. */
  private async compact(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
    const lines = [JSON.stringify({ t: 'run', id: this.id })];
    if (this.watermark !== undefined) lines.push(JSON.stringify({ t: 'done', key: this.watermark, after: this.watermark }));
    for (const k of this.done) lines.push(JSON.stringify({ t: 'done', key: k }));
    for (const [k, code] of this.failed) lines.push(JSON.stringify({ t: 'failed', key: k, code }));
    const tmp = join(dirname(this.file), `.${basename(this.file)}.tmp`);
    const h = await open(tmp, 'w', 0o600);
    try {
      await h.writeFile(`${lines.join('\n')}\n`);
      await h.sync();
    } finally {
      await h.close();
    }
    await this.log.close();
    await rename(tmp, this.file);
    await syncDir(dirname(this.file));
    this.log = await DurableAppendFile.open(this.file);
  }

  /** Failed inputs, from this run and earlier ones. */
  failures(): ReadonlyMap<string, string> {
    return this.failed;
  }

  async close(): Promise<void> {
    while (this.compacting !== undefined) await this.compacting;
    await this.log.close();
  }
}
