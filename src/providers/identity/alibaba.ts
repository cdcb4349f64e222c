/**
 * Alibaba Cloud RAM OIDC federation through @alicloud/credentials' own `oidc_role_arn`
 * provider: it reads the OIDC token file at every exchange, calls STS `AssumeRoleWithOIDC`, and
 * keeps the temporary keys until fifteen minutes before they expire (its session logic). The
 * OSS store hands them to ali-oss through its `refreshSTSToken` hook, which asks the provider
 * before each request; the provider answers from its session until a refresh is due.
 *
 * The SDK's HTTP client (httpx) takes no proxy and no agent from its caller: on a proxy route
 * the provider's request hook (`doRequest`, which the SDK sets per instance) sends the exchange
 * through the route's agent instead ({@link sendThrough}).
 */
import { request as httpRequest, type Agent, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { LazyValue } from '../../lazy.js';
import { ProviderError } from '../errors.js';
import { ProxyRoute, withProxyFailures, type ProxyEnvironment, type ProxySetting } from '../proxy.js';
import type { AlibabaIdentity } from './config.js';
import { identityError } from './errors.js';

type CredentialsSdk = Awaited<ReturnType<typeof loadCredentialsSdk>>;
const loadCredentialsSdk = () => import('@alicloud/credentials');
// Loaded by the first exchange, so that importing Tandem does not pay for it.
const credentialsSdk = new LazyValue<CredentialsSdk>(loadCredentialsSdk);

/** Temporary keys as ali-oss takes them. */
export interface AlibabaStsCredentials {
  accessKeyId: string;
  accessKeySecret: string;
  securityToken: string;
}

export interface AlibabaCredentialSource {
  /** The current keys: the provider's session, or a fresh exchange when it is due. */
  get(): Promise<AlibabaStsCredentials>;
}

const LOOPBACK = /^(?:127\.\d+\.\d+\.\d+|localhost|\[::1\])(?::\d+)?$/;

/** The STS host[:port] and whether it is reached over plain HTTP (only ever a loopback emulation). */
export function stsTarget(owner: string, endpoint: string): { host: string; plaintext: boolean } {
  const m = /^(https?):\/\/([^/]+)\/?$/.exec(endpoint);
  if (!m) return { host: endpoint.replace(/\/$/, ''), plaintext: false };
  const [, scheme, host] = m as unknown as [string, string, string];
  if (scheme === 'http' && !LOOPBACK.test(host)) {
    throw new ProviderError('PROVIDER_CONFIG', `"${owner}": an http:// stsEndpoint is for a loopback emulation only; ${host} must be reached over https://`, { details: { endpoint: owner, identity: 'alibaba' } });
  }
  return { host, plaintext: scheme === 'http' };
}

/** The STS error code in the SDK's message (`get sts token failed with OIDC: {"Code": …}`). */
function stsCode(message: string): string | undefined {
  return /"Code"\s*:\s*"([^"]+)"/.exec(message)?.[1];
}

/**
 * The status an STS code stands for: the SDK keeps the service's code in its message but not
 * the HTTP status, and the code alone says whether a retry can help.
 */
function statusOfCode(code: string): number {
  if (/^Throttling/i.test(code)) return 429;
  if (/InternalError|ServiceUnavailable|Unavailable/i.test(code)) return 503;
  if (/^(?:AuthenticationFail|NoPermission)/.test(code)) return 401;
  return 400;
}

function mapError(owner: string, error: unknown): ProviderError {
  if (error instanceof ProviderError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const code = stsCode(message);
  if (code !== undefined) return identityError(owner, 'alibaba', error, statusOfCode(code), code);
  // httpx's timeouts carry no errno: as one, so that they read as a transient network failure.
  const name = error instanceof Error ? error.name : '';
  const timedOut = /Timeout/i.test(name) ? Object.assign(new Error(message, { cause: error }), { code: 'ETIMEDOUT' }) : error;
  return identityError(owner, 'alibaba', timedOut, undefined);
}

/** An answer as Alibaba Cloud's SDKs read it. */
export interface RawAnswer {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** Alibaba Cloud's RPC answers are small; anything past this is not one. */
const MAX_RPC_ANSWER = 1024 * 1024;

/**
 * One request through `agent` (a proxy route's), read whole: what Alibaba Cloud's SDKs would
 * send through httpx, which cannot be given an agent. Within `connectTimeoutMs +
 * readTimeoutMs`, else it fails with ETIMEDOUT; a refused tunnel fails with the route's error.
 */
export function sendThrough(agent: Agent, url: string, init: { method: string; headers: Record<string, string>; body?: string; connectTimeoutMs: number; readTimeoutMs: number }): Promise<RawAnswer> {
  const target = new URL(url);
  const send = target.protocol === 'http:' ? httpRequest : httpsRequest;
  return withProxyFailures(
    () =>
      new Promise<RawAnswer>((resolve, reject) => {
        const headers = { ...init.headers, ...(init.body === undefined ? {} : { 'content-length': String(Buffer.byteLength(init.body)) }) };
        const req = send(target, { method: init.method, headers, agent }, (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.byteLength;
            if (size > MAX_RPC_ANSWER) req.destroy(new Error(`answer larger than ${MAX_RPC_ANSWER} bytes`));
            else chunks.push(chunk);
          });
          res.once('end', () => {
            clearTimeout(timer);
            resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
          });
          res.once('error', reject);
        });
        const timer = setTimeout(() => req.destroy(Object.assign(new Error(`no answer from ${target.host} within ${init.connectTimeoutMs + init.readTimeoutMs} ms`), { code: 'ETIMEDOUT' })), init.connectTimeoutMs + init.readTimeoutMs);
        req.once('error', (error) => {
          clearTimeout(timer);
          reject(error);
        });
        req.end(init.body);
      }),
  );
}

/** The SDK's request (`@alicloud/credentials`' http Request), as its `doRequest` hook gets it. */
interface SdkRequest {
  protocol: string;
  method: string;
  headers: Record<string, string>;
  bodyForm?: Record<string, string>;
  readTimeout?: number;
  connectTimeout?: number;
  toRequestURL(): string;
}
type Transport = (request: SdkRequest) => Promise<unknown>;

/** `application/x-www-form-urlencoded` as the SDK encodes its form (encodeURIComponent per value). */
function formOf(form: Record<string, string>): string {
  return Object.entries(form)
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
    .join('&');
}

/**
 * The credential source for `owner` (an OSS store) federating as `identity`, its STS exchange on
 * the proxy route of `net` (the store's `proxy` / `proxyEnv`). Failures reject with a
 * ProviderError ({@link identityError}: `details.reason` says what STS refused).
 */
export function alibabaOidcCredentials(owner: string, identity: AlibabaIdentity, net: { proxy?: ProxySetting; proxyEnv?: ProxyEnvironment } = {}): AlibabaCredentialSource {
  const provider = new LazyValue(async () => {
    const target = identity.stsEndpoint === undefined ? undefined : stsTarget(owner, identity.stsEndpoint);
    const route = new ProxyRoute(net.proxy, `"${owner}"`, net.proxyEnv);
    let sdk: CredentialsSdk;
    try {
      sdk = await credentialsSdk.get();
    } catch (error) {
      throw new ProviderError('PROVIDER_CONFIG', `"${owner}": cannot load @alicloud/credentials: ${error instanceof Error ? error.message : String(error)}`, { cause: error, details: { endpoint: owner, identity: 'alibaba' } });
    }
    let builder = sdk.OIDCRoleArnCredentialsProvider.builder()
      .withRoleArn(identity.roleArn)
      .withOIDCProviderArn(identity.oidcProviderArn)
      .withOIDCTokenFilePath(identity.oidcTokenFile)
      .withRoleSessionName(identity.roleSessionName ?? `tandem-${owner.replace(/[^\w.@-]/g, '-')}`.slice(0, 64));
    if (target) builder = builder.withStsEndpoint(target.host);
    if (identity.stsRegion) builder = builder.withStsRegionId(identity.stsRegion);
    let built;
    try {
      built = builder.build();
    } catch (error) {
      throw new ProviderError('PROVIDER_CONFIG', `"${owner}": ${error instanceof Error ? error.message : String(error)}`, { cause: error, details: { endpoint: owner, identity: 'alibaba' } });
    }
    const holder = built as unknown as { doRequest: Transport };
    const sdkSend = holder.doRequest;
    const onRoute = route.active;
    if (target?.plaintext || onRoute) {
      holder.doRequest = async (request) => {
        // The SDK always speaks https; a loopback emulation is reached over http.
        if (target?.plaintext) request.protocol = 'http';
        const url = request.toRequestURL();
        const agent = await route.agent(url.startsWith('https:'));
        if (!agent) return sdkSend(request);
        const body = request.bodyForm && Object.keys(request.bodyForm).length > 0 ? formOf(request.bodyForm) : undefined;
        return sendThrough(agent, url, { method: request.method, headers: request.headers, ...(body === undefined ? {} : { body }), connectTimeoutMs: request.connectTimeout ?? 5_000, readTimeoutMs: request.readTimeout ?? 10_000 });
      };
    }
    return built;
  });
  return {
    async get() {
      try {
        const c = await (await provider.get()).getCredentials();
        return { accessKeyId: c.accessKeyId, accessKeySecret: c.accessKeySecret, securityToken: c.securityToken };
      } catch (error) {
        throw mapError(owner, error);
      }
    },
  };
}
