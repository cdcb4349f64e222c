/**
 * Results in Google Cloud Storage. Credentials come from Application Default Credentials; with a
 * custom `apiEndpoint` (emulators, loopback tests, private service connect) the SDK sends no
 * credentials and never asks the metadata server. GCS always encrypts at rest; a declared
 * `kmsKeyName` makes that a customer-managed key.
 */
import type { Storage, StorageOptions } from '@google-cloud/storage';
import { LazyValue } from '../../lazy.js';
import { StoreError } from '../errors.js';
import type { StoreDecl } from '../policy.js';
import { validateKey, type ObjectInfo, type PutMeta, type ResultStore, type StoredObject } from './types.js';

type GcsDecl = Extract<StoreDecl, { type: 'gcs' }>;

export interface GcsStoreOptions {
  /** Extra Storage options (e.g. `authClient`, `keyFilename`); default: ADC. */
  storage?: StorageOptions;
}

interface GcsErrorShape {
  code?: number | string;
  message?: string;
}

// Loaded by the first GCS store that makes a call, so that importing Tandem does not pay for it.
const gcsSdk = new LazyValue<typeof import('@google-cloud/storage')>(() => import('@google-cloud/storage'));

export function mapGcsError(store: string, what: string, error: unknown): StoreError {
  const e = (error ?? {}) as GcsErrorShape;
  const message = `${what}: ${e.message ?? String(error)}`;
  const details = { status: e.code };
  if (e.code === 401 || e.code === 403) return new StoreError('auth', store, message, { cause: error, details });
  if (e.code === 404) return new StoreError('not-found', store, message, { cause: error, details });
  if (typeof e.code === 'number' && e.code >= 400 && e.code < 500 && e.code !== 408 && e.code !== 429) return new StoreError('rejected', store, message, { cause: error, details });
  return new StoreError('unavailable', store, message, { cause: error, details });
}

export class GcsStore implements ResultStore {
  private readonly storage: LazyValue<Storage>;

  constructor(
    readonly name: string,
    readonly decl: GcsDecl,
    options: GcsStoreOptions = {},
  ) {
    this.storage = new LazyValue(async () => {
      let mod: typeof import('@google-cloud/storage');
      try {
        mod = await gcsSdk.get();
      } catch (error) {
        throw new StoreError('config', name, `cannot load @google-cloud/storage: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
      }
      try {
        return new mod.Storage({
          ...(decl.apiEndpoint === undefined ? {} : { apiEndpoint: decl.apiEndpoint }),
          ...(decl.projectId === undefined ? {} : { projectId: decl.projectId }),
          ...(decl.authWithCustomEndpoint === true ? { useAuthWithCustomEndpoint: true } : {}),
          // The outbox owns retries (with backoff across restarts); one SDK-level retry covers blips.
          retryOptions: { autoRetry: true, maxRetries: 1 },
          ...options.storage,
        });
      } catch (error) {
        throw new StoreError('config', name, `cannot create the GCS client: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
      }
    });
  }

  private async file(key: string) {
    const bad = validateKey(key);
    if (bad !== undefined) throw new StoreError('rejected', this.name, `invalid key "${key}": ${bad}`);
    const name = `${this.decl.prefix ?? ''}${key}`;
    return (await this.storage.get()).bucket(this.decl.bucket).file(name, this.decl.kmsKeyName === undefined ? {} : { kmsKeyName: this.decl.kmsKeyName });
  }

  async put(key: string, body: Uint8Array, meta: PutMeta = {}): Promise<void> {
    try {
      const file = await this.file(key);
      await file.save(Buffer.from(body.buffer, body.byteOffset, body.byteLength), {
        resumable: false,
        validation: 'md5',
        metadata: { contentType: meta.contentType ?? 'application/octet-stream', metadata: meta.metadata ?? {} },
      });
    } catch (error) {
      throw error instanceof StoreError ? error : mapGcsError(this.name, `cannot put ${key}`, error);
    }
  }

  async get(key: string): Promise<StoredObject> {
    try {
      const file = await this.file(key);
      const [[body], [md]] = await Promise.all([file.download({ validation: 'md5' }), file.getMetadata()]);
      return { body, metadata: stringMap(md.metadata) };
    } catch (error) {
      throw error instanceof StoreError ? error : mapGcsError(this.name, `cannot get ${key}`, error);
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const [md] = await (await this.file(key)).getMetadata();
      return { size: Number(md.size ?? 0), metadata: stringMap(md.metadata) };
    } catch (error) {
      const mapped = error instanceof StoreError ? error : mapGcsError(this.name, `cannot head ${key}`, error);
      if (mapped.failure === 'not-found') return undefined;
      throw mapped;
    }
  }

  async exists(key: string): Promise<boolean> {
    return (await this.head(key)) !== undefined;
  }

  async close(): Promise<void> {}
}

function stringMap(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) out[k] = String(v);
  }
  return out;
}
