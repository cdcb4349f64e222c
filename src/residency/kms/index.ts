/** Key sources for envelope encryption: AWS KMS, Google Cloud KMS, Alibaba Cloud KMS, behind a bounded data-key cache. */
export { AlibabaKmsSource, type AlibabaKmsOptions } from './alibaba.js';
export { AwsKmsSource, type AwsKmsOptions } from './aws.js';
export { CachingKeySource, type DataKeyCacheOptions } from './cache.js';
export { KmsError, type KmsFailure } from './errors.js';
export { GcpKmsSource, type GcpKmsOptions } from './gcp.js';
export { alibabaKeyRegion, awsKeyRegion, gcpKeyLocation } from './identity.js';
export { KeyRing, keyRegionConflict, sealingKeyFor, type KeyRingOptions } from './ring.js';
