/** Inputs under an S3 prefix: ListObjectsV2 a page at a time, GetObject streamed. */
import type { Readable } from 'node:stream';
import { LazyValue } from '../../lazy.js';
import { createS3Client, mapS3Error, type S3Sdk, type S3StoreOptions } from '../stores/s3.js';
import type { S3Client } from '@aws-sdk/client-s3';
import { DEFAULT_MAX_BYTES, pageSizeOf, readCapped, SourceTooLargeError, type InputSource, type ListOptions, type ReadOptions, type SourceDecl, type SourceObject } from './types.js';

type S3SourceDecl = Extract<SourceDecl, { type: 's3' }>;

export class S3Source implements InputSource {
  private readonly client: LazyValue<{ sdk: S3Sdk; client: S3Client }>;
  readonly uri: string;

  constructor(
    readonly name: string,
    readonly decl: S3SourceDecl,
    options: S3StoreOptions = {},
  ) {
    this.client = new LazyValue(() => createS3Client(name, decl, options));
    this.uri = `s3://${decl.bucket}/${decl.prefix ?? ''}`;
  }

  async *list(options?: ListOptions): AsyncIterable<SourceObject> {
    const { sdk, client } = await this.client.get();
    let token: string | undefined;
    let first = true;
    while (first || token !== undefined) {
      let page;
      try {
        page = await client.send(
          new sdk.ListObjectsV2Command({
            Bucket: this.decl.bucket,
            MaxKeys: pageSizeOf(options),
            ...(this.decl.prefix ? { Prefix: this.decl.prefix } : {}),
            ...(token !== undefined ? { ContinuationToken: token } : first && options?.startAfter !== undefined ? { StartAfter: options.startAfter } : {}),
          }),
        );
      } catch (error) {
        throw mapS3Error(this.name, `cannot list s3://${this.decl.bucket}/${this.decl.prefix ?? ''}`, error);
      }
      first = false;
      for (const o of page.Contents ?? []) {
        // Folder placeholders (a key ending in "/") are not inputs.
        if (o.Key !== undefined && !o.Key.endsWith('/')) yield { key: o.Key, size: o.Size ?? 0 };
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    }
  }

  async read(key: string, options: ReadOptions = {}): Promise<Uint8Array> {
    const { sdk, client } = await this.client.get();
    const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    try {
      const out = await client.send(new sdk.GetObjectCommand({ Bucket: this.decl.bucket, Key: key }), options.signal ? { abortSignal: options.signal } : {});
      if (out.Body === undefined) return new Uint8Array();
      return await readCapped(out.Body as Readable, this.name, key, maxBytes);
    } catch (error) {
      if (error instanceof SourceTooLargeError) throw error;
      throw mapS3Error(this.name, `cannot get ${key}`, error);
    }
  }

  async close(): Promise<void> {
    (await this.client.peek())?.client.destroy();
  }
}
