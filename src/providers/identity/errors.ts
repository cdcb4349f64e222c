/**
 * Failures of a federated exchange, classified alike for the three clouds: the error is the
 * provider layer's credential failure (`credentialError`: its code says whether a retry can
 * help), and `details.reason` says what the token service refused, in one vocabulary whatever
 * its own words for it.
 */
import { credentialError, ProviderError } from '../errors.js';
import { identityMismatch, type IdentityConfig } from './config.js';

/** What a token service refused, where it says so. */
export type IdentityFailureReason = 'expired-token' | 'wrong-audience' | 'access-denied' | 'invalid-token';

/** Each token service's codes (and, where its code is generic, its words), by reason. */
const REASONS: [IdentityFailureReason, RegExp][] = [
  // AWS ExpiredTokenException / ExpiredToken; Alibaba AuthenticationFail.OIDCToken.Expired;
  // Google's invalid_grant when the AWS request or OIDC token has expired.
  ['expired-token', /ExpiredToken|OIDCToken\.Expired|token (?:has |is )?expired|expired token/i],
  // AWS InvalidIdentityToken "Incorrect token audience"; Alibaba ...AudienceNotMatch; Google's
  // audience / x-goog-cloud-target-resource mismatches.
  ['wrong-audience', /AudienceNotMatch|audience/i],
  // AWS AccessDenied; Alibaba AuthenticationFail.NoPermission; Google unauthorized_client or
  // a refused attribute condition.
  ['access-denied', /AccessDenied|NoPermission|unauthorized_client|attribute condition|permission/i],
  ['invalid-token', /InvalidIdentityToken|IdpRejectedClaim|OIDCToken\.|invalid_grant|SignatureDoesNotMatch|InvalidClientTokenId/i],
];

/** The reason a refusal's code and message show, if any. */
export function identityFailureReason(serverCode: string | undefined, message: string): IdentityFailureReason | undefined {
  for (const [reason, pattern] of REASONS) if ((serverCode !== undefined && pattern.test(serverCode)) || pattern.test(message)) return reason;
  return undefined;
}

/**
 * A failed exchange as a ProviderError (see {@link credentialError}) for `owner` (the endpoint
 * or store), with `details.reason` and `details.identity` (the cloud) added. An error that is
 * already a ProviderError passes through.
 */
export function identityError(owner: string, cloud: string, error: unknown, status: number | undefined, serverCode?: string): ProviderError {
  if (error instanceof ProviderError) return error;
  const base = credentialError(owner, error, status, serverCode);
  // Only a refusal (a status, or an SDK that reports none but the service's code) has a reason.
  const reason = base.code === 'PROVIDER_AUTH' ? identityFailureReason(serverCode, error instanceof Error ? error.message : String(error)) : undefined;
  return new ProviderError(base.code, base.message, { cause: error, ...(status === undefined ? {} : { status }), details: { ...base.details, identity: cloud, ...(reason ? { reason } : {}) } });
}

/**
 * A store's failure that is a federated exchange's, as the store reports it: `auth` when it is
 * final, `unavailable` when a retry may help, `config` for an unusable identity; undefined for
 * any other failure.
 */
export function identityStoreFailure(error: unknown): { failure: 'auth' | 'unavailable' | 'config'; message: string; details: Record<string, unknown> } | undefined {
  if (!(error instanceof ProviderError) || error.details['identity'] === undefined) return undefined;
  const failure = error.code === 'PROVIDER_CONFIG' ? 'config' : error.retryable ? 'unavailable' : 'auth';
  return { failure, message: error.message, details: { ...error.details, providerCode: error.code } };
}

/**
 * The PROVIDER_CONFIG error for an identity that does not fit `kind` (an endpoint kind or a
 * store type: an `aws` identity for `sagemaker`…), or undefined when it fits or there is none.
 */
export function identityFitError(owner: string, kind: string, identity: IdentityConfig | undefined): ProviderError | undefined {
  const why = identity === undefined ? undefined : identityMismatch(kind, identity);
  return why === undefined ? undefined : new ProviderError('PROVIDER_CONFIG', `"${owner}": ${why}`, { details: { endpoint: owner } });
}
