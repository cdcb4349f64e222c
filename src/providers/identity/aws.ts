/**
 * AWS web identity federation through the SDK's own provider (`fromTokenFile` of
 * @aws-sdk/credential-provider-web-identity): the OIDC token file is read at every exchange (a
 * rotated token is picked up), STS `AssumeRoleWithWebIdentity` returns temporary keys with an
 * expiry, and the client that holds the provider (SageMaker, S3) keeps them until five minutes
 * before that expiry, then exchanges again before any request is signed with stale keys.
 */
import { LazyValue } from '../../lazy.js';
import { ProviderError } from '../errors.js';
import type { AwsIdentity } from './config.js';
import { identityError } from './errors.js';

type WebIdentitySdk = typeof import('@aws-sdk/credential-provider-web-identity');
// Loaded by the first exchange, so that importing Tandem does not pay for it.
const webIdentitySdk = new LazyValue<WebIdentitySdk>(() => import('@aws-sdk/credential-provider-web-identity'));

/** What AWS clients take as `credentials`: the provider type the SDK's own providers have. */
export type AwsCredentialsProvider = ReturnType<WebIdentitySdk['fromTokenFile']>;

interface AwsServiceErrorShape {
  name?: string;
  $metadata?: { httpStatusCode?: number };
}

/** A session name STS accepts, from an endpoint's or a store's name. */
export function defaultSessionName(owner: string): string {
  return `tandem-${owner.replace(/[^\w+=,.@-]/g, '-')}`.slice(0, 64);
}

/** Keys with their refresh point (epoch ms): the client asks again from then on. */
interface Held {
  credentials: AwsCredentialIdentityOf;
  refreshAt: number;
}

type AwsCredentialIdentityOf = Awaited<ReturnType<AwsCredentialsProvider>>;

/** The SDK's own refresh window: keys closer to expiry than this are not used to sign. */
const SDK_WINDOW_MS = 5 * 60_000;
/** Keys this close to expiry are not handed out even when a refresh has failed (clock skew, a request in flight). */
const EXPIRY_SKEW_MS = 1_000;
/** How soon a failed refresh is tried again while the held keys still serve. */
const RETRY_AFTER_FAILED_REFRESH_MS = 10_000;

/**
 * When keys fetched at `fetchedAt` are to be replaced: five minutes before they expire, as the
 * SDK would, or half way through their life when that is shorter. The SDK's client treats keys
 * inside its five-minute window as already expired and asks its provider again before every
 * signature; keys that short-lived would otherwise cost an STS exchange per request.
 */
export function refreshPoint(fetchedAt: number, expiration: Date | undefined): number {
  if (expiration === undefined) return Number.POSITIVE_INFINITY;
  const expiresAt = expiration.getTime();
  return expiresAt - Math.min(SDK_WINDOW_MS, Math.max(0, expiresAt - fetchedAt) / 2);
}

/**
 * The credential provider for an AWS client (its `credentials`) that assumes `identity.roleArn`
 * with the token in `identity.webIdentityTokenFile`, through the SDK's `fromTokenFile`. Keys
 * are held until {@link refreshPoint}; concurrent requests share one exchange. Failures reject
 * with a ProviderError ({@link identityError}: `details.reason` says what STS refused); `owner`
 * names the endpoint or store in messages.
 */
export function awsWebIdentityCredentials(owner: string, identity: AwsIdentity): AwsCredentialsProvider {
  let held: Held | undefined;
  let pending: Promise<AwsCredentialIdentityOf> | undefined;
  const exchange = async (properties: Parameters<AwsCredentialsProvider>[0]): Promise<AwsCredentialIdentityOf> => {
    let sdk: WebIdentitySdk;
    try {
      sdk = await webIdentitySdk.get();
    } catch (error) {
      throw new ProviderError('PROVIDER_CONFIG', `"${owner}": cannot load @aws-sdk/credential-provider-web-identity: ${error instanceof Error ? error.message : String(error)}`, { cause: error, details: { endpoint: owner, identity: 'aws' } });
    }
    try {
      const provider = sdk.fromTokenFile({
        webIdentityTokenFile: identity.webIdentityTokenFile,
        roleArn: identity.roleArn,
        roleSessionName: identity.roleSessionName ?? defaultSessionName(owner),
        // The STS client: the caller's region unless the identity names one. One attempt: the
        // caller decides about retries (another endpoint or local may be better).
        clientConfig: { ...(identity.region ? { region: identity.region } : {}), ...(identity.stsEndpoint ? { endpoint: identity.stsEndpoint } : {}), maxAttempts: 1 },
      });
      const fetchedAt = Date.now();
      const credentials = await provider(properties);
      held = { credentials, refreshAt: refreshPoint(fetchedAt, credentials.expiration) };
      return credentials;
    } catch (error) {
      // A refresh that fails while the held keys are still good does not fail the request: they
      // serve until a retry a little later, and the failure surfaces only once they expire.
      const expiresAt = held?.credentials.expiration?.getTime();
      if (held && expiresAt !== undefined && Date.now() < expiresAt - EXPIRY_SKEW_MS) {
        held.refreshAt = Date.now() + Math.min(RETRY_AFTER_FAILED_REFRESH_MS, (expiresAt - Date.now()) / 4);
        return held.credentials;
      }
      const e = (error ?? {}) as AwsServiceErrorShape;
      throw identityError(owner, 'aws', error, e.$metadata?.httpStatusCode, e.name);
    }
  };
  return async (properties) => {
    if (held && Date.now() < held.refreshAt) return held.credentials;
    pending ??= exchange(properties).finally(() => {
      pending = undefined;
    });
    return pending;
  };
}
