/** Identity federation: the configuration, and each cloud's exchange through its own SDK. */
export {
  IDENTITY_CLOUD_OF, identityCloud, identityMismatch, IdentitySchema, resolveIdentityRef, secretKeysIn, withAbsolutePaths,
  type AlibabaIdentity, type AwsIdentity, type GcpIdentity, type IdentityCloud, type IdentityConfig,
} from './config.js';
export { identityError, identityFailureReason, identityFitError, identityStoreFailure, type IdentityFailureReason } from './errors.js';
export { awsWebIdentityCredentials, type AwsCredentialsProvider } from './aws.js';
export { ensureGoogleToken, gcpIdentityError, readExternalAccountConfig, routeTokenExchange, type ExchangeAdapter, type ExternalAccountConfig } from './gcp.js';
export { alibabaOidcCredentials, type AlibabaCredentialSource, type AlibabaStsCredentials } from './alibaba.js';
