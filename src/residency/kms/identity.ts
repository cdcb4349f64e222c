/**
 * The region a KMS key's own identifier names, when it names one: an AWS key or alias ARN
 * (`arn:aws:kms:eu-central-1:…`), a Google Cloud key resource name (`projects/p/locations/
 * europe-west3/…`), an Alibaba Cloud key ARN (`acs:kms:cn-shanghai:…`). Bare key ids and
 * aliases name none: the KMS's answer (an ARN or resource name) is then checked instead.
 * No SDK here: the policy validator uses these too.
 */

const AWS_ARN = /^arn:aws(?:-cn|-us-gov|-iso[a-z-]*)?:kms:([a-z0-9-]+):\d{12}:(?:key|alias)\/.+$/;
const GCP_NAME = /^projects\/[^/]+\/locations\/([^/]+)\/keyRings\/[^/]+\/cryptoKeys\/[^/]+(?:\/cryptoKeyVersions\/[^/]+)?$/;
const ALIBABA_ARN = /^acs:kms:([a-z0-9-]+):\d*:key\/.+$/;

/** The region of an AWS KMS key ARN or alias ARN; undefined for a key id or `alias/…`. */
export function awsKeyRegion(keyId: string): string | undefined {
  return AWS_ARN.exec(keyId)?.[1];
}

/** The location of a Google Cloud KMS crypto key (or key version) resource name; undefined if it is not one. */
export function gcpKeyLocation(name: string): string | undefined {
  return GCP_NAME.exec(name)?.[1];
}

/** Whether `name` is a crypto key resource name (not a key version): what Encrypt takes. */
export function isGcpCryptoKeyName(name: string): boolean {
  return GCP_NAME.test(name) && !name.includes('/cryptoKeyVersions/');
}

/** The region of an Alibaba Cloud KMS key ARN; undefined for a key id or alias. */
export function alibabaKeyRegion(keyId: string): string | undefined {
  return ALIBABA_ARN.exec(keyId)?.[1];
}
