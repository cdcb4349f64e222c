/**
 * Results in Google Cloud Storage. Credentials come from Application Default Credentials; with a
 * custom `apiEndpoint` (emulators, loopback tests, private service connect) the SDK sends no
 * credentials and never asks the metadata server. GCS always encrypts at rest; a declared
 * `kmsKeyName` makes that a customer-managed key.
 */
import type { Storage, StorageOptions } from '@google-cloud/storage';
import { LazyValue } from '../../lazy.js';
import { ensureGoogleToken, identityFitError, identityStoreFailure, readExternalAccountConfig, type ExternalAccountConfig, type IdentityConfig } from '../../providers/identity/index.js';
import { StoreError } from '../errors.js';
import type { StoreDecl } from '../policy.js';
import { gaxiosAdapterOnRoute, probeTunnel, type ProxyRoute } from '../../providers/proxy.js';
import { proxyStoreError, storeProxyRoute, validateKey, type ObjectInfo, type PutMeta, type ResultStore, type StoredObject, type StoreProxyOptions } from './types.js';

type GcsDecl = Extract<StoreDecl, { type: 'gcs' }>;

/** `proxy` / `proxyEnv`: the outbound proxy (docs/guide/network.md). */
export interface GcsStoreOptions extends StoreProxyOptions {
  /** Extra Storage options (e.g. `authClient`, `keyFilename`); default: ADC. */
  storage?: StorageOptions;
  /** Workload identity federation (a `gcp` identity, docs/guide/identity.md) instead of ADC; `storage` options win. */
  identity?: IdentityConfig;
}

interface GcsErrorShape {
  code?: number | string;
  message?: string;
}

// Loaded by the first GCS store that makes a call, so that importing Tandem does not pay for it.
const gcsSdk = new LazyValue<typeof import('@google-cloud/storage')>(() => import('@google-cloud/storage'));

export function mapGcsError(store: string, what: string, error: unknown): StoreError {
  const viaProxy = proxyStoreError(store, what, error);
  if (viaProxy) return viaProxy;
  const federated = identityStoreFailure(error);
  if (federated) return new StoreError(federated.failure, store, `${what}: ${federated.message}`, { cause: error, details: federated.details });
  const e = (error ?? {}) as GcsErrorShape;
  const message = `${what}: ${e.message ?? String(error)}`;
  const details = { status: e.code };
  // Only a proxy answers 407: teeny-request's proxy agents hand its refusal over as the answer.
  if (e.code === 407) return new StoreError('config', store, `${what}: the proxy refused the connection (407 Proxy Authentication Required)`, { cause: error, details: { proxyStatus: 407 } });
  if (e.code === 401 || e.code === 403) return new StoreError('auth', store, message, { cause: error, details });
  if (e.code === 404) return new StoreError('not-found', store, message, { cause: error, details });
  if (typeof e.code === 'number' && e.code >= 400 && e.code < 500 && e.code !== 408 && e.code !== 429) return new StoreError('rejected', store, message, { cause: error, details });
  return new StoreError('unavailable', store, message, { cause: error, details });
}

/** The fields of a GCS declaration the client needs (a result store's, or an input source's). */
export type GcsClientDecl = Pick<GcsDecl, 'apiEndpoint' | 'projectId' | 'authWithCustomEndpoint'>;

/** The GCS client for `decl`, the one construction stores and input sources share; `name` labels its errors. */
export async function createGcsStorage(name: string, decl: GcsClientDecl, options: GcsStoreOptions = {}): Promise<Storage> {
  let mod: typeof import('@google-cloud/storage');
  try {
    mod = await gcsSdk.get();
  } catch (error) {
    throw new StoreError('config', name, `cannot load @google-cloud/storage: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  const unfit = identityFitError(name, 'gcs', options.identity);
  if (unfit) throw new StoreError('config', name, unfit.message, { cause: unfit });
  let external: ExternalAccountConfig | undefined;
  if (options.identity && 'gcp' in options.identity) {
    try {
      external = await readExternalAccountConfig(name, options.identity.gcp);
    } catch (error) {
      throw new StoreError('config', name, error instanceof Error ? error.message : String(error), { cause: error });
    }
  }
  const route = storeProxyRoute(name, options);
  try {
    return onRoute(route, new mod.Storage({
      // The token service's requests (gaxios) on the store's proxy route.
      // (gaxios 6 here; the adapter reads only the request's url and sets its agent.)
      ...(route.active ? ({ clientOptions: { transporterOptions: { adapter: gaxiosAdapterOnRoute(undefined, route, undefined, undefined) } } } as unknown as Pick<StorageOptions, 'clientOptions'>) : {}),
      ...(decl.apiEndpoint === undefined ? {} : { apiEndpoint: decl.apiEndpoint }),
      ...(decl.projectId === undefined ? {} : { projectId: decl.projectId }),
      ...(decl.authWithCustomEndpoint === true ? { useAuthWithCustomEndpoint: true } : {}),
      // The outbox owns retries (with backoff across restarts); one SDK-level retry covers blips.
      retryOptions: { autoRetry: true, maxRetries: 1 },
      ...(external ? { credentials: external } : {}),
      ...options.storage,
    }));
  } catch (error) {
    throw new StoreError('config', name, `cannot create the GCS client: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

/**
 * The object requests on the store's proxy route. They go through teeny-request, which takes
 * no agent, only a proxy URL per request (`proxy`, set here), and otherwise reads HTTP_PROXY /
 * HTTPS_PROXY itself with its own NO_PROXY rules: a target this route keeps direct is direct
 * only if teeny-request's rules agree (docs/guide/network.md).
 */
function onRoute(route: ProxyRoute, storage: Storage): Storage {
  if (!route.active) return storage;
  storage.interceptors.push({
    request: (reqOpts) => {
      const uri: unknown = (reqOpts as { uri?: unknown }).uri;
      const proxy = typeof uri === 'string' && /^https?:/.test(uri) ? route.proxyFor(uri) : undefined;
      return (proxy ? { ...reqOpts, proxy: proxy.href } : reqOpts) as unknown as ReturnType<Storage['interceptors'][number]['request']>;
    },
  });
  return storage;
}

export class GcsStore implements ResultStore {
  private readonly storage: LazyValue<Storage>;
  /** Federated: the token is fetched before each call (the SDK keeps it), so a refused exchange reads as one. */
  private readonly federated: boolean;

  constructor(
    readonly name: string,
    readonly decl: GcsDecl,
    private readonly options: GcsStoreOptions = {},
  ) {
    this.federated = options.identity !== undefined;
    this.storage = new LazyValue(() => createGcsStorage(name, decl, options));
  }

  private async file(key: string) {
    const bad = validateKey(key);
    if (bad !== undefined) throw new StoreError('rejected', this.name, `invalid key "${key}": ${bad}`);
    const name = `${this.decl.prefix ?? ''}${key}`;
    const storage = await this.storage.get();
    if (this.federated) await ensureGoogleToken(this.name, storage.authClient);
    return storage.bucket(this.decl.bucket).file(name, this.decl.kmsKeyName === undefined ? {} : { kmsKeyName: this.decl.kmsKeyName });
  }

  /**
   * A call's failure as a StoreError. teeny-request (the SDK's object requests) hands a proxy's
   * refusal over as if it were the answer: behind a 401/403 on a proxied route, the proxy is asked
   * once more for a tunnel to the same host, and its refusal decides (`config`, as for S3 / OSS).
   */
  private async failure(what: string, error: unknown): Promise<StoreError> {
    if (error instanceof StoreError) return error;
    const mapped = mapGcsError(this.name, what, error);
    if (mapped.failure !== 'auth') return mapped;
    const api = this.decl.apiEndpoint ?? 'storage.googleapis.com';
    const endpoint = new URL(/^https?:\/\//.test(api) ? api : `https://${api}`);
    const proxy = storeProxyRoute(this.name, this.options).proxyFor(endpoint);
    if (!proxy) return mapped;
    const refusal = await probeTunnel(proxy, `${endpoint.hostname}:${endpoint.port || (endpoint.protocol === 'https:' ? 443 : 80)}`, 2_000);
    return refusal?.code === 'PROVIDER_PROXY' ? new StoreError('config', this.name, `${what}: ${refusal.message}`, { cause: error, details: { ...refusal.details } }) : mapped;
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
      throw await this.failure(`cannot put ${key}`, error);
    }
  }

  async get(key: string): Promise<StoredObject> {
    try {
      const file = await this.file(key);
      const [[body], [md]] = await Promise.all([file.download({ validation: 'md5' }), file.getMetadata()]);
      return { body, metadata: stringMap(md.metadata) };
    } catch (error) {
      throw await this.failure(`cannot get ${key}`, error);
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const [md] = await (await this.file(key)).getMetadata();
      return { size: Number(md.size ?? 0), metadata: stringMap(md.metadata) };
    } catch (error) {
      const mapped = await this.failure(`cannot head ${key}`, error);
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
