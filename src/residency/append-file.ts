/**
 * A durable append-only file with group commit: concurrent appends are written together and
 * covered by one fsync, so "acknowledge only after fsync" stays cheap at full request rate.
 * A failed write is cut back off the file, so a refused append never leaves a partial record.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { TandemError } from '../errors/index.js';

/** The disk operations an appender uses; tests replace them to inject ENOSPC or EIO. */
export interface AppendIo {
  write(handle: FileHandle, data: Uint8Array, position: number): Promise<void>;
  sync(handle: FileHandle): Promise<void>;
}

export const realIo: AppendIo = {
  async write(handle, data, position) {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
      done += bytesWritten;
    }
  },
  async sync(handle) {
    await handle.sync();
  },
};

interface Pending {
  data: Uint8Array;
  resolve: (offset: number) => void;
  reject: (error: unknown) => void;
}

export class DurableAppendFile {
  private queue: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private closed = false;
  private failure: unknown;

  private constructor(
    private readonly handle: FileHandle,
    private sizeBytes: number,
    private readonly io: AppendIo,
    private readonly durable: boolean,
    private readonly failStop: boolean,
  ) {}

  /**
   * Opens (creating) `path` for appending. `validLength` cuts the file to that length first
   * (the caller found a torn record at the end while replaying). With `failStop`, the first
   * failed write makes every later append fail too.
   */
  static async open(path: string, options: { io?: AppendIo; fsync?: boolean; validLength?: number; failStop?: boolean } = {}): Promise<DurableAppendFile> {
    // Not O_APPEND: writes go to explicit offsets, so bytes left by a failed write that could not
    // be cut off are overwritten by the next record instead of sitting in front of it.
    const handle = await open(path, constants.O_RDWR | constants.O_CREAT, 0o600);
    try {
      let size = (await handle.stat()).size;
      if (options.validLength !== undefined && options.validLength < size) {
        await handle.truncate(options.validLength);
        await handle.sync();
        size = options.validLength;
      }
      return new DurableAppendFile(handle, size, options.io ?? realIo, options.fsync ?? true, options.failStop ?? false);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** Bytes in the file, including appends in flight. */
  get size(): number {
    return this.sizeBytes + this.queue.reduce((n, p) => n + p.data.length, 0);
  }

  /** Appends `data`; resolves with its offset once it is on disk (after fsync when durable). */
  append(data: Uint8Array): Promise<number> {
    if (this.closed) return Promise.reject(new TandemError('APPEND_FILE_CLOSED', 'the append file is closed'));
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise<number>((resolve, reject) => {
      this.queue.push({ data, resolve, reject });
      this.flushing ??= this.flushLoop().finally(() => {
        this.flushing = undefined;
      });
    });
  }

  private async flushLoop(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      const start = this.sizeBytes;
      const total = batch.reduce((n, p) => n + p.data.length, 0);
      const buffer = Buffer.concat(batch.map((p) => p.data), total);
      try {
        await this.io.write(this.handle, buffer, start);
        if (this.durable) await this.io.sync(this.handle);
        this.sizeBytes = start + total;
        let offset = start;
        for (const p of batch) {
          p.resolve(offset);
          offset += p.data.length;
        }
      } catch (error) {
        // Whatever part of the batch reached the file is cut off again: none of it was acknowledged.
        try {
          await this.handle.truncate(start);
        } catch {
          // The next replay's CRC check drops a torn tail anyway.
        }
        for (const p of batch) p.reject(error);
        if (this.failStop) {
          // Records queued behind the failed ones may depend on them (a hash chain): refuse them all.
          this.failure = error;
          const rest = this.queue;
          this.queue = [];
          for (const p of rest) p.reject(error);
        }
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.flushing;
    await this.handle.close();
  }
}
