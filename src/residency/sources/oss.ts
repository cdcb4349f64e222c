/** Inputs under an OSS prefix: ListObjectsV2 a page at a time, GetObject streamed. */
import type OSS from 'ali-oss';
import type { Readable } from 'node:stream';
import { LazyValue } from '../../lazy.js';
import { StoreError } from '../errors.js';
import { createOssClient, mapOssError, ossCredentialsFromEnv, type OssStoreOptions } from '../stores/oss.js';
import { DEFAULT_MAX_BYTES, pageSizeOf, readCapped, SourceTooLargeError, type InputSource, type ListOptions, type ReadOptions, type SourceDecl, type SourceObject } from './types.js';

type OssSourceDecl = Extract<SourceDecl, { type: 'oss' }>;

export class OssSource implements InputSource {
  private readonly client: LazyValue<OSS>;
  readonly uri: string;

  constructor(
    readonly name: string,
    readonly decl: OssSourceDecl,
    options: OssStoreOptions = {},
  ) {
    const creds = options.credentials ?? (options.env === undefined ? undefined : ossCredentialsFromEnv(options.env));
    this.client = new LazyValue(async () => {
      if (creds === undefined) throw new StoreError('auth', name, 'no OSS credentials: pass them in the batch config\'s stores.oss.credentials, or set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET');
      // The store options carry its proxy settings too (`proxy`, `proxyEnv`).
      return createOssClient(name, decl, creds, options.timeoutMs, undefined, options);
    });
    this.uri = `oss://${decl.bucket}/${decl.prefix ?? ''}`;
  }

  async *list(options?: ListOptions): AsyncIterable<SourceObject> {
    const client = await this.client.get();
    let token: string | undefined;
    let first = true;
    while (first || token !== undefined) {
      let page;
      try {
        page = await client.listV2({
          'max-keys': String(pageSizeOf(options)),
          ...(this.decl.prefix ? { prefix: this.decl.prefix } : {}),
          ...(token !== undefined ? { 'continuation-token': token } : first && options?.startAfter !== undefined ? { 'start-after': options.startAfter } : {}),
        });
      } catch (error) {
        throw mapOssError(this.name, `cannot list ${this.uri}`, error);
      }
      first = false;
      for (const o of page.objects ?? []) if (!o.name.endsWith('/')) yield { key: o.name, size: o.size };
      token = page.isTruncated ? (page.nextContinuationToken ?? undefined) : undefined;
    }
  }

  async read(key: string, options: ReadOptions = {}): Promise<Uint8Array> {
    const client = await this.client.get();
    try {
      const { stream } = await client.getStream(key);
      options.signal?.addEventListener('abort', () => stream.destroy(options.signal?.reason as Error), { once: true });
      return await readCapped(stream as Readable, this.name, key, options.maxBytes ?? DEFAULT_MAX_BYTES);
    } catch (error) {
      if (error instanceof SourceTooLargeError) throw error;
      throw mapOssError(this.name, `cannot get ${key}`, error);
    }
  }

  async close(): Promise<void> {}
}
