/**
 * Results in Google Cloud Storage. Credentials come from Application Default Credentials; with a
 * custom `apiEndpoint` (emulators, loopback tests, private service connect) the SDK sends no
 * credentials and never asks the metadata server. GCS always encrypts at rest; a declared
 * `kmsKeyName` makes that a customer-managed key.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Storage, StorageOptions } from '@google-cloud/storage';
import { LazyValue } from '../../lazy.js';
import { ensureGoogleToken, identityFitError, type ExchangeAdapter, identityStoreFailure, readExternalAccountConfig, type ExternalAccountConfig, type IdentityConfig } from '../../providers/identity/index.js';
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
  const api = apiUrl(decl.apiEndpoint);
  // A route that keeps the API host direct: teeny-request must be kept from the process's proxy.
  const relay = route.active && route.proxyFor(api) === undefined ? await DirectRelay.start(route) : undefined;
  try {
    return onRoute(route, relay, new mod.Storage({
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
    await relay?.close();
    throw new StoreError('config', name, `cannot create the GCS client: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

/** The JSON API's URL (`apiEndpoint` may come without a scheme, as the SDK takes it). */
function apiUrl(apiEndpoint: string | undefined): URL {
  const api = apiEndpoint ?? 'storage.googleapis.com';
  return new URL(/^https?:\/\//.test(api) ? api : `https://${api}`);
}

/** Relays of live Storage clients, closed with their store. */
const relays = new WeakMap<Storage, DirectRelay>();

/**
 * The object requests on the store's proxy route. They go through teeny-request, which takes no
 * agent, only a proxy URL per request (`proxy`), and without one reads HTTP_PROXY / HTTPS_PROXY
 * from the process itself, with its own NO_PROXY rules. So every request gets a proxy URL: the
 * route's proxy, or, where the route says direct, the store's {@link DirectRelay}, which opens
 * the connection straight to the target.
 */
function onRoute(route: ProxyRoute, relay: DirectRelay | undefined, storage: Storage): Storage {
  if (!route.active) return storage;
  if (relay) relays.set(storage, relay);
  storage.interceptors.push({
    request: (reqOpts) => {
      const uri: unknown = (reqOpts as { uri?: unknown }).uri;
      const proxy = typeof uri === 'string' && /^https?:/.test(uri) ? (route.proxyFor(uri)?.href ?? relay?.url) : undefined;
      return (proxy ? { ...reqOpts, proxy } : reqOpts) as unknown as ReturnType<Storage['interceptors'][number]['request']>;
    },
  });
  return storage;
}

/** Closes the direct relay of a Storage client from {@link createGcsStorage}, if it has one. */
export async function closeGcsStorage(storage: Storage): Promise<void> {
  await relays.get(storage)?.close();
  relays.delete(storage);
}

/**
 * A loopback forward proxy that connects straight to its targets: how a request that
 * teeny-request would otherwise send through the process's HTTPS_PROXY goes direct, since it
 * takes a proxy URL but no agent. It listens on 127.0.0.1 only, answers only requests carrying
 * its random credentials (in its URL, which never leaves the process), and only for targets
 * the route keeps direct. CONNECT for https:// targets (TLS stays end to end), absolute-form
 * requests for http:// ones (what teeny-request's proxy agents send). Never keeps the process alive.
 */
class DirectRelay {
  private readonly sockets = new Set<Socket | Duplex>();

  private constructor(
    private readonly server: Server,
    private readonly route: ProxyRoute,
    private readonly secret: string,
    readonly url: string,
  ) {
    server.on('connection', (s: Socket) => this.track(s));
    server.on('connect', (req: IncomingMessage, client: Duplex, head: Buffer) => this.tunnel(req, client, head));
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.forward(req, res));
  }

  static async start(route: ProxyRoute): Promise<DirectRelay> {
    const secret = randomBytes(24).toString('hex');
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    server.unref();
    return new DirectRelay(server, route, secret, `http://tandem:${secret}@127.0.0.1:${(server.address() as AddressInfo).port}`);
  }

  private track(s: Socket | Duplex): void {
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
  }

  /** The target if the request carries the relay's credentials and the route keeps it direct. */
  private allowed(req: IncomingMessage, secure: boolean, host: string, port: number): boolean {
    const given = Buffer.from(req.headers['proxy-authorization'] ?? '');
    const expected = Buffer.from(`Basic ${Buffer.from(`tandem:${this.secret}`).toString('base64')}`);
    return given.length === expected.length && timingSafeEqual(given, expected) && this.route.proxyForHost(secure, host, port) === undefined;
  }

  private tunnel(req: IncomingMessage, client: Duplex, head: Buffer): void {
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(req.url ?? '');
    const host = m?.[1] ?? '';
    const port = Number(m?.[2] ?? 0);
    // teeny-request tunnels only https:// targets.
    if (!m || !this.allowed(req, true, host, port)) {
      client.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    const upstream = connect(port, host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    this.track(upstream);
    upstream.once('error', () => client.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'));
    client.once('error', () => upstream.destroy());
    client.once('close', () => upstream.destroy());
  }

  private forward(req: IncomingMessage, res: ServerResponse): void {
    let url: URL | undefined;
    try {
      url = new URL(req.url ?? '');
    } catch {
      url = undefined;
    }
    if (url?.protocol !== 'http:' || !this.allowed(req, false, url.hostname, Number(url.port || 80))) {
      res.writeHead(403).end();
      return;
    }
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    delete headers['proxy-connection'];
    const upstream = httpRequest({ host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port || 80, method: req.method, path: `${url.pathname}${url.search}`, headers, agent: false }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.once('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
    req.pipe(upstream);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export class GcsStore implements ResultStore {
  private readonly storage: LazyValue<Storage>;
  /** Federated: the token is fetched before each call (the SDK keeps it), so a refused exchange reads as one. */
  private readonly federated: boolean;
  /**
   * Federated: the route the token exchange is still to be put on (the SDK's own transporter
   * would not take it), worked out on the first call; `null` once it is, or with no proxy route.
   */
  private exchange: ExchangeAdapter | null | undefined;

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
    if (this.federated) {
      if (this.exchange === undefined) {
        const route = storeProxyRoute(this.name, this.options);
        this.exchange = route.active ? (gaxiosAdapterOnRoute(undefined, route, undefined, undefined) as ExchangeAdapter) : null;
      }
      await ensureGoogleToken(this.name, storage.authClient, this.exchange ?? undefined);
      // Routed for the client's life: later calls need not ask again.
      this.exchange = null;
    }
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
    const endpoint = apiUrl(this.decl.apiEndpoint);
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

  async close(): Promise<void> {
    const storage = await this.storage.peek();
    if (storage) await closeGcsStorage(storage);
  }
}

function stringMap(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) out[k] = String(v);
  }
  return out;
}
