/**
 * Data keys wrapped by Google Cloud KMS: Cloud KMS has no GenerateDataKey, so the 256-bit data
 * key is drawn here and wrapped with Encrypt (unwrapped with Decrypt) under a symmetric crypto
 * key, through @google-cloud/kms. Credentials come from Application Default Credentials.
 *
 * The SDK speaks gRPC; with an `http://` endpoint (a private proxy or a local emulation) it
 * uses its REST fallback over plain HTTP/1.1 instead.
 */
import { randomBytes } from 'node:crypto';
import type { KeyManagementServiceClient } from '@google-cloud/kms';
import type { ClientOptions } from 'google-gax';
import { LazyValue } from '../../lazy.js';
import { gaxiosAdapterOnRoute, type ProxyRoute } from '../../providers/proxy.js';
import { closableChannelOptions, grpcProxyFailure, grpcProxyOptions } from '../../providers/vertex-transport.js';
import type { KeySource, WrappedKey } from '../envelope.js';
import type { GcpKmsKeyDecl } from '../policy.js';
import { isNetworkError, KmsError, loadSdk, messageOf, proxyKmsError } from './errors.js';
import { gcpKeyLocation } from './identity.js';

type KmsSdk = typeof import('@google-cloud/kms');
const kmsSdk = new LazyValue<KmsSdk>(() => import('@google-cloud/kms'));
const gaxSdk = new LazyValue<typeof import('google-gax')>(() => import('google-gax'));

/** gRPC status codes (also what the REST fallback's errors carry). */
const DENIED = new Set([7 /* PERMISSION_DENIED */, 16 /* UNAUTHENTICATED */, 5 /* NOT_FOUND */, 9 /* FAILED_PRECONDITION: key disabled or destroyed */]);
const UNAVAILABLE = new Set([14 /* UNAVAILABLE */, 4 /* DEADLINE_EXCEEDED */, 8 /* RESOURCE_EXHAUSTED */, 13 /* INTERNAL */, 10 /* ABORTED */, 1 /* CANCELLED */]);
const CALL_TIMEOUT_MS = 10_000;

function mapGcpError(key: GcpKmsSource, what: string, error: unknown): KmsError {
  const viaProxy = proxyKmsError(key, what, error);
  if (viaProxy) return viaProxy;
  // gRPC answers carry a gRPC status; the REST fallback's carry the HTTP status.
  const code = (error as { code?: unknown }).code;
  const message = `${what}: ${messageOf(error)}`;
  const details = { code: typeof code === 'number' ? code : undefined };
  if (typeof code === 'number' && code >= 100) {
    if (code === 401 || code === 403 || code === 404) return new KmsError('access-denied', key, message, { cause: error, details });
    if (code === 429 || code >= 500) return new KmsError('unavailable', key, message, { cause: error, details });
    return new KmsError('rejected', key, message, { cause: error, details });
  }
  if (typeof code === 'number' && DENIED.has(code)) return new KmsError('access-denied', key, message, { cause: error, details });
  // No status at all: the auth library failed (no credentials) or the connection did.
  if (typeof code !== 'number' && /credential|token|auth/i.test(messageOf(error)) && !isNetworkError(error)) return new KmsError('access-denied', key, message, { cause: error, details });
  if (typeof code !== 'number' || UNAVAILABLE.has(code)) return new KmsError('unavailable', key, message, { cause: error, details });
  return new KmsError('rejected', key, message, { cause: error, details });
}

export interface GcpKmsOptions {
  /** Extra client options (tests give `authClient` here; production leaves ADC). */
  client?: ClientOptions;
  /**
   * The proxy route of the client's requests (KeyRing's `proxy`): gRPC's channel, the REST
   * fallback's calls and ADC's token requests. An `authClient` in `client` keeps its own transport.
   */
  route?: ProxyRoute;
}

function endpointOptions(endpoint: string | undefined): ClientOptions {
  if (endpoint === undefined) return {};
  const url = new URL(endpoint);
  const port = url.port === '' ? (url.protocol === 'http:' ? 80 : 443) : Number(url.port);
  return url.protocol === 'http:' ? { apiEndpoint: url.hostname, port, protocol: 'http', fallback: true } : { apiEndpoint: url.hostname, port };
}

/**
 * Client options that put every connection on `route`, as for Vertex AI (vertex-transport.ts):
 * the auth library's requests (ADC's token service, and the REST fallback's calls, which go
 * through the auth client) by a gaxios adapter, the gRPC channel by grpc-js's proxy options.
 */
async function onRoute(route: ProxyRoute, endpoint: ClientOptions, owner: string, closed: () => boolean): Promise<{ options: ClientOptions; tunnel?: Tunnel }> {
  const adapter = gaxiosAdapterOnRoute(undefined, route, undefined, undefined);
  const routed: ClientOptions = { clientOptions: { transporterOptions: { adapter } } };
  if (endpoint.fallback) return { options: routed };
  const host = endpoint.apiEndpoint ?? 'cloudkms.googleapis.com';
  const port = endpoint.port ?? 443;
  const proxy = route.proxyForHost(true, host, port);
  const grpc = (await gaxSdk.get()).grpc;
  return { options: { ...routed, ...(grpcProxyOptions(grpc, owner, proxy, closed) as ClientOptions) }, ...(proxy ? { tunnel: { proxy, target: `${host}:${port}` } } : {}) };
}

/** The proxy a routed gRPC channel tunnels through, and the `host:port` it asks for. */
interface Tunnel {
  proxy: URL;
  target: string;
}

/**
 * Without a route: the gRPC channel that opens no connection once the client is closed, as on
 * a route, but grpc-js's own proxy handling left on: no route takes no decision, and grpc-js
 * reads the proxy variables itself as before (docs/guide/network.md).
 */
async function offRoute(endpoint: ClientOptions, closed: () => boolean): Promise<ClientOptions> {
  if (endpoint.fallback) return {};
  return closableChannelOptions((await gaxSdk.get()).grpc, closed) as ClientOptions;
}

export class GcpKmsSource implements KeySource {
  readonly kind = 'gcp-kms';
  readonly keyId: string;
  readonly region: string;
  private readonly client: LazyValue<KeyManagementServiceClient>;
  /** Set by close(): the gRPC channel's credentials then let no connection start (vertex-transport.ts). */
  private closed = false;
  /** The route's proxy for the gRPC channel, if it has one: its refusal is asked for again (grpc-js keeps none). */
  private tunnel: Tunnel | undefined;

  constructor(readonly decl: GcpKmsKeyDecl, options: GcpKmsOptions = {}) {
    this.keyId = decl.keyName;
    this.region = decl.region;
    this.client = new LazyValue(async () => {
      const sdk = await loadSdk(kmsSdk, this, '@google-cloud/kms');
      try {
        const endpoint = endpointOptions(decl.endpoint);
        const owner = `KMS key ${decl.keyName}`;
        const isClosed = (): boolean => this.closed;
        let routed: ClientOptions;
        if (options.route?.active) {
          const on = await onRoute(options.route, endpoint, owner, isClosed);
          routed = on.options;
          this.tunnel = on.tunnel;
        } else {
          routed = await offRoute(endpoint, isClosed);
        }
        // The caller's clientOptions keep theirs, the route's adapter added.
        const clientOptions = routed.clientOptions || options.client?.clientOptions ? { clientOptions: { ...(options.client?.clientOptions as object | undefined), ...(routed.clientOptions as object | undefined) } } : {};
        return new sdk.KeyManagementServiceClient({ ...endpoint, ...routed, ...options.client, ...clientOptions });
      } catch (error) {
        throw new KmsError('config', this, `cannot create the Cloud KMS client: ${messageOf(error)}`, { cause: error });
      }
    });
  }

  async generateDataKey(): Promise<{ plaintext: Uint8Array; wrapped: WrappedKey }> {
    const client = await this.client.get();
    const plaintext = randomBytes(32);
    try {
      let answer: { ciphertext?: Uint8Array | string | null; name?: string | null };
      try {
        [answer] = await client.encrypt({ name: this.keyId, plaintext }, { timeout: CALL_TIMEOUT_MS, retry: null });
      } catch (error) {
        throw mapGcpError(this, 'Encrypt failed', await this.tunnelFailure(error));
      }
      // The key version that answered names its location: it must be this key's.
      const answeredLocation = answer.name ? gcpKeyLocation(answer.name) : undefined;
      if (answeredLocation !== undefined && answeredLocation !== this.region) {
        throw new KmsError('region', this, `Cloud KMS answered with key version ${answer.name}, which lives in ${answeredLocation}, not ${this.region}`, { details: { answeredRegion: answeredLocation } });
      }
      const ciphertext = typeof answer.ciphertext === 'string' ? Buffer.from(answer.ciphertext, 'base64') : answer.ciphertext;
      if (!ciphertext || ciphertext.length === 0) throw new KmsError('rejected', this, 'Encrypt answered without a ciphertext');
      return { plaintext, wrapped: { keyId: this.keyId, kind: this.kind, region: this.region, data: Buffer.from(ciphertext).toString('base64') } };
    } catch (error) {
      plaintext.fill(0);
      throw error;
    }
  }

  async decryptDataKey(wrapped: WrappedKey): Promise<Uint8Array> {
    const client = await this.client.get();
    let answer: { plaintext?: Uint8Array | string | null };
    try {
      [answer] = await client.decrypt({ name: this.keyId, ciphertext: Buffer.from(wrapped.data, 'base64') }, { timeout: CALL_TIMEOUT_MS, retry: null });
    } catch (error) {
      throw mapGcpError(this, 'Decrypt failed', await this.tunnelFailure(error));
    }
    const plaintext = typeof answer.plaintext === 'string' ? Buffer.from(answer.plaintext, 'base64') : answer.plaintext;
    if (plaintext?.length !== 32) {
      plaintext?.fill(0);
      throw new KmsError('rejected', this, 'Decrypt answered without a 32-byte plaintext');
    }
    return plaintext;
  }

  /** A gRPC UNAVAILABLE behind which the route's proxy refused the tunnel becomes that refusal (KMS_CONFIG, as over REST). */
  private async tunnelFailure(error: unknown): Promise<unknown> {
    return (this.tunnel && (await grpcProxyFailure(error, this.tunnel.proxy, this.tunnel.target))) ?? error;
  }

  async close(): Promise<void> {
    // First: grpc-js may still reconnect a closed channel's subchannel once its backoff ends.
    this.closed = true;
    await (await this.client.peek())?.close();
  }
}
