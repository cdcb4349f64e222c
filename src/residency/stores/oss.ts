/**
 * Results in Alibaba Cloud OSS; objects carry OSS server-side encryption. Credentials are passed
 * in, or read from an environment the caller passes (the edge agent's config loader passes its
 * own), under the Alibaba Cloud default chain's names: see {@link ossCredentialsFromEnv}.
 */
import type OSS from 'ali-oss';
import { LazyValue } from '../../lazy.js';
import { alibabaOidcCredentials, identityFitError, identityStoreFailure, type AlibabaCredentialSource, type IdentityConfig } from '../../providers/identity/index.js';
import { StoreError } from '../errors.js';
import type { StoreDecl } from '../policy.js';
import { withProxyFailures, type ProxyRoute } from '../../providers/proxy.js';
import { proxyStoreError, storeProxyRoute, validateKey, type ObjectInfo, type PutMeta, type ResultStore, type StoredObject, type StoreProxyOptions } from './types.js';

type OssDecl = Extract<StoreDecl, { type: 'oss' }>;

export interface OssCredentials {
  accessKeyId: string;
  accessKeySecret: string;
  securityToken?: string;
}

/** `proxy` / `proxyEnv`: the outbound proxy (docs/guide/network.md). */
export interface OssStoreOptions extends StoreProxyOptions {
  credentials?: OssCredentials;
  timeoutMs?: number;
  /** Environment to read credentials from when `credentials` is absent; the library reads none itself. */
  env?: NodeJS.ProcessEnv;
  /** RAM OIDC federation (an `alibaba` identity, docs/guide/identity.md) instead of keys; `credentials` win. */
  identity?: IdentityConfig;
}

/**
 * Credentials from the Alibaba Cloud default chain's variables (ALIBABA_CLOUD_ACCESS_KEY_ID /
 * _SECRET / ALIBABA_CLOUD_SECURITY_TOKEN, or the OSS_* names ossutil uses).
 */
export function ossCredentialsFromEnv(env: NodeJS.ProcessEnv): OssCredentials | undefined {
  const id = env['ALIBABA_CLOUD_ACCESS_KEY_ID'] ?? env['OSS_ACCESS_KEY_ID'];
  const secret = env['ALIBABA_CLOUD_ACCESS_KEY_SECRET'] ?? env['OSS_ACCESS_KEY_SECRET'];
  const token = env['ALIBABA_CLOUD_SECURITY_TOKEN'] ?? env['OSS_SESSION_TOKEN'];
  if (id === undefined || secret === undefined) return undefined;
  return { accessKeyId: id, accessKeySecret: secret, ...(token === undefined ? {} : { securityToken: token }) };
}

interface OssErrorShape {
  name?: string;
  code?: string;
  status?: number;
  message?: string;
}

const AUTH_CODES = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'SecurityTokenExpired', 'InvalidSecurityToken']);

// Loaded by the first OSS store that makes a call, so that importing Tandem does not pay for it.
const ossSdk = new LazyValue<typeof import('ali-oss')>(() => import('ali-oss'));

export function mapOssError(store: string, what: string, error: unknown): StoreError {
  const viaProxy = proxyStoreError(store, what, error);
  if (viaProxy) return viaProxy;
  const federated = identityStoreFailure(error);
  if (federated) return new StoreError(federated.failure, store, `${what}: ${federated.message}`, { cause: error, details: federated.details });
  const e = (error ?? {}) as OssErrorShape;
  const code = e.code ?? e.name ?? 'Error';
  const message = `${what}: ${code}${e.message ? ` (${e.message.split('\n')[0]})` : ''}`;
  const details = { sdkError: code, status: e.status };
  if (AUTH_CODES.has(code) || e.status === 401 || e.status === 403) return new StoreError('auth', store, message, { cause: error, details });
  if (code === 'NoSuchKey' || (e.status === 404 && code !== 'NoSuchBucket')) return new StoreError('not-found', store, message, { cause: error, details });
  if (code === 'NoSuchBucket') return new StoreError('config', store, message, { cause: error, details });
  if (e.status !== undefined && e.status >= 400 && e.status < 500 && e.status !== 408 && e.status !== 429) return new StoreError('rejected', store, message, { cause: error, details });
  return new StoreError('unavailable', store, message, { cause: error, details });
}

/** The fields of an OSS declaration the client needs (a result store's, or an input source's). */
export type OssClientDecl = Pick<OssDecl, 'region' | 'endpoint' | 'bucket' | 'pathStyle'>;

/** The OSS client for `decl`, the one construction stores and input sources share; `name` labels its errors. */
export async function createOssClient(name: string, decl: OssClientDecl, creds: OssCredentials, timeoutMs = 30_000, refresh?: AlibabaCredentialSource, net: StoreProxyOptions = {}): Promise<OSS> {
  const endpoint = decl.endpoint ?? `https://oss-${decl.region}.aliyuncs.com`;
  // The store's proxy route (src/providers/proxy.ts); urllib takes an agent per scheme.
  const route = storeProxyRoute(name, net);
  const [httpsAgent, agent] = await Promise.all([route.agent(true), route.agent(false)]);
  let mod: typeof import('ali-oss');
  try {
    mod = await ossSdk.get();
  } catch (error) {
    throw new StoreError('config', name, `cannot load ali-oss: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  try {
    return onRoute(route, new mod.default({
      region: `oss-${decl.region}`,
      endpoint,
      bucket: decl.bucket,
      accessKeyId: creds.accessKeyId,
      accessKeySecret: creds.accessKeySecret,
      ...(creds.securityToken === undefined ? {} : { stsToken: creds.securityToken }),
      // Federated: ali-oss asks before every request; the credential provider answers from its
      // session until a refresh is due.
      ...(refresh ? { refreshSTSToken: async () => { const c = await refresh.get(); return { accessKeyId: c.accessKeyId, accessKeySecret: c.accessKeySecret, stsToken: c.securityToken }; }, refreshSTSTokenInterval: 0 } : {}),
      secure: endpoint.startsWith('https:'),
      sldEnable: decl.pathStyle ?? false,
      timeout: timeoutMs,
      retryMax: 0,
      ...(agent && httpsAgent ? { agent, httpsAgent } : {}),
    }));
  } catch (error) {
    throw new StoreError('config', name, `cannot create the OSS client: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

/** The client's calls that make requests. */
const OSS_CALLS: ReadonlySet<PropertyKey> = new Set(['put', 'get', 'head', 'listV2', 'getStream', 'delete']);

/**
 * The client with its calls under {@link withProxyFailures}: urllib keeps only the name and
 * message of a refused tunnel's error, and the store must tell the proxy's refusal from OSS's.
 */
function onRoute(route: ProxyRoute, client: OSS): OSS {
  if (!route.active) return client;
  return new Proxy(client, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || !OSS_CALLS.has(prop)) return value;
      return (...args: unknown[]) => withProxyFailures(() => Promise.resolve(value.apply(target, args)));
    },
  });
}

export class OssStore implements ResultStore {
  private readonly client: LazyValue<OSS> | undefined;
  private readonly configError: StoreError | undefined;

  constructor(
    readonly name: string,
    readonly decl: OssDecl,
    options: OssStoreOptions = {},
  ) {
    const unfit = identityFitError(name, 'oss', options.identity);
    const federation = options.credentials === undefined && options.identity && 'alibaba' in options.identity ? alibabaOidcCredentials(name, options.identity.alibaba, options) : undefined;
    if (unfit || federation) {
      this.configError = unfit ? new StoreError('config', name, unfit.message, { cause: unfit }) : undefined;
      if (federation) {
        this.client = new LazyValue(async () => {
          let first;
          try {
            first = await federation.get();
          } catch (error) {
            throw mapOssError(name, 'cannot get STS credentials', error);
          }
          return createOssClient(name, decl, first, options.timeoutMs, federation, options);
        });
      }
      return;
    }
    const creds = options.credentials ?? (options.env === undefined ? undefined : ossCredentialsFromEnv(options.env));
    if (creds === undefined) {
      this.configError = new StoreError('auth', name, 'no OSS credentials: pass them as the store\'s credentials, or set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET for the edge agent');
      return;
    }
    this.client = new LazyValue(() => createOssClient(name, decl, creds, options.timeoutMs, undefined, options));
  }

  private async ready(key: string): Promise<{ client: OSS; name: string }> {
    if (this.client === undefined) throw this.configError ?? new StoreError('config', this.name, 'not configured');
    const bad = validateKey(key);
    if (bad !== undefined) throw new StoreError('rejected', this.name, `invalid key "${key}": ${bad}`);
    return { client: await this.client.get(), name: `${this.decl.prefix ?? ''}${key}` };
  }

  async put(key: string, body: Uint8Array, meta: PutMeta = {}): Promise<void> {
    const { client, name } = await this.ready(key);
    try {
      await client.put(name, Buffer.from(body.buffer, body.byteOffset, body.byteLength), {
        mime: meta.contentType ?? 'application/octet-stream',
        meta: meta.metadata ?? {},
        headers: this.decl.sse === 'none' ? {} : { 'x-oss-server-side-encryption': this.decl.sse },
      });
    } catch (error) {
      throw mapOssError(this.name, `cannot put ${name}`, error);
    }
  }

  async get(key: string): Promise<StoredObject> {
    const { client, name } = await this.ready(key);
    try {
      const out = await client.get(name);
      return { body: new Uint8Array(out.content), metadata: metaFromHeaders(out.res.headers) };
    } catch (error) {
      throw mapOssError(this.name, `cannot get ${name}`, error);
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const { client, name } = await this.ready(key);
    try {
      const out = await client.head(name);
      return { size: Number(out.res.headers['content-length'] ?? 0), metadata: out.meta ?? {} };
    } catch (error) {
      const mapped = mapOssError(this.name, `cannot head ${name}`, error);
      if (mapped.failure === 'not-found') return undefined;
      throw mapped;
    }
  }

  async exists(key: string): Promise<boolean> {
    return (await this.head(key)) !== undefined;
  }

  async close(): Promise<void> {}
}

function metaFromHeaders(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (k.startsWith('x-oss-meta-')) out[k.slice('x-oss-meta-'.length)] = v;
  return out;
}
