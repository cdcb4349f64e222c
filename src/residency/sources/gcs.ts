/** Inputs under a GCS prefix: objects.list a page at a time, media downloads streamed. */
import type { Storage } from '@google-cloud/storage';
import { LazyValue } from '../../lazy.js';
import { createGcsStorage, mapGcsError, type GcsStoreOptions } from '../stores/gcs.js';
import { DEFAULT_MAX_BYTES, pageSizeOf, readCapped, SourceTooLargeError, type InputSource, type ListOptions, type ReadOptions, type SourceDecl, type SourceObject } from './types.js';

type GcsSourceDecl = Extract<SourceDecl, { type: 'gcs' }>;

export class GcsSource implements InputSource {
  private readonly storage: LazyValue<Storage>;
  readonly uri: string;

  constructor(
    readonly name: string,
    readonly decl: GcsSourceDecl,
    options: GcsStoreOptions = {},
  ) {
    this.storage = new LazyValue(() => createGcsStorage(name, decl, options));
    this.uri = `gs://${decl.bucket}/${decl.prefix ?? ''}`;
  }

  async *list(options?: ListOptions): AsyncIterable<SourceObject> {
    const bucket = (await this.storage.get()).bucket(this.decl.bucket);
    let pageToken: string | undefined;
    let first = true;
    const after = options?.startAfter;
    while (first || pageToken !== undefined) {
      let files, next;
      try {
        // startOffset is inclusive: the key itself is skipped below.
        [files, next] = await bucket.getFiles({
          autoPaginate: false,
          maxResults: pageSizeOf(options),
          ...(this.decl.prefix ? { prefix: this.decl.prefix } : {}),
          ...(after !== undefined ? { startOffset: after } : {}),
          ...(pageToken !== undefined ? { pageToken } : {}),
        });
      } catch (error) {
        throw mapGcsError(this.name, `cannot list ${this.uri}`, error);
      }
      first = false;
      for (const f of files) {
        if (f.name === after || f.name.endsWith('/')) continue;
        yield { key: f.name, size: Number(f.metadata.size ?? 0) };
      }
      pageToken = (next as { pageToken?: string } | null | undefined)?.pageToken;
    }
  }

  async read(key: string, options: ReadOptions = {}): Promise<Uint8Array> {
    const file = (await this.storage.get()).bucket(this.decl.bucket).file(key);
    try {
      const stream = file.createReadStream({ validation: 'md5' });
      options.signal?.addEventListener('abort', () => stream.destroy(options.signal?.reason as Error), { once: true });
      return await readCapped(stream, this.name, key, options.maxBytes ?? DEFAULT_MAX_BYTES);
    } catch (error) {
      if (error instanceof SourceTooLargeError) throw error;
      throw mapGcsError(this.name, `cannot get ${key}`, error);
    }
  }

  async close(): Promise<void> {}
}
