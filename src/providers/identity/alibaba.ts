/**
 * Alibaba Cloud RAM OIDC federation through @alicloud/credentials' own `oidc_role_arn`
 * provider: it reads the OIDC token file at every exchange, calls STS `AssumeRoleWithOIDC`, and
 * keeps the temporary keys until fifteen minutes before they expire (its session logic). The
 * OSS store hands them to ali-oss through its `refreshSTSToken` hook, which asks the provider
 * before each request; the provider answers from its session until a refresh is due.
 */
import { LazyValue } from '../../lazy.js';
import { ProviderError } from '../errors.js';
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

type SdkRequest = { protocol: string };
type Transport = (request: SdkRequest) => Promise<unknown>;

/**
 * The credential source for `owner` (an OSS store) federating as `identity`. Failures reject
 * with a ProviderError ({@link identityError}: `details.reason` says what STS refused).
 */
export function alibabaOidcCredentials(owner: string, identity: AlibabaIdentity): AlibabaCredentialSource {
  const provider = new LazyValue(async () => {
    const target = identity.stsEndpoint === undefined ? undefined : stsTarget(owner, identity.stsEndpoint);
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
    if (target?.plaintext) {
      // The SDK always speaks https; a loopback emulation is reached by its own transport over http.
      const holder = built as unknown as { doRequest: Transport };
      const send = holder.doRequest;
      holder.doRequest = (request) => {
        request.protocol = 'http';
        return send(request);
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
