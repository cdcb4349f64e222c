/**
 * Identity federation as configuration declares it: which role an endpoint or a store assumes,
 * and which file holds the short-lived token it proves itself with. An identity names roles and
 * files, never a secret: the keys it leads to are temporary, fetched by the cloud's own SDK and
 * refreshed by it before they expire (src/providers/identity/*.ts).
 */
import { z } from 'zod';

/** AWS `AssumeRoleWithWebIdentity` with the OIDC token in a file (EKS IRSA, a device's issuer…). */
export interface AwsIdentity {
  /** The role to assume, `arn:aws:iam::<account>:role/<name>`. */
  roleArn: string;
  /** The OIDC token (a JWT whose audience the role trusts), re-read at every exchange. */
  webIdentityTokenFile: string;
  /** Session name in CloudTrail (default `tandem-<endpoint or store>`). */
  roleSessionName?: string;
  /** STS region (default: the client's). */
  region?: string;
  /** STS endpoint override (a VPC endpoint, FIPS, a local emulation). */
  stsEndpoint?: string;
}

/** Google Cloud workload identity federation: an `external_account` credential configuration. */
export interface GcpIdentity {
  /**
   * The credential configuration `gcloud iam workload-identity-pools create-cred-config`
   * writes: `type: external_account`, the pool provider's audience, and a credential source
   * (AWS: the instance metadata service or the AWS_* environment). It holds no secret.
   */
  credentialConfigFile: string;
}

/** Alibaba Cloud RAM `AssumeRoleWithOIDC` with the OIDC token in a file (ACK RRSA, a device's issuer…). */
export interface AlibabaIdentity {
  /** The RAM role, `acs:ram::<account>:role/<name>`. */
  roleArn: string;
  /** The OIDC identity provider registered in RAM, `acs:ram::<account>:oidc-provider/<name>`. */
  oidcProviderArn: string;
  /** The OIDC token, re-read at every exchange. */
  oidcTokenFile: string;
  roleSessionName?: string;
  /** STS host or URL (default `sts.aliyuncs.com`, or `sts.<stsRegion>.aliyuncs.com`). `http://` only on loopback. */
  stsEndpoint?: string;
  stsRegion?: string;
}

/** Exactly one cloud's federation. */
export type IdentityConfig = { aws: AwsIdentity } | { gcp: GcpIdentity } | { alibaba: AlibabaIdentity };

export type IdentityCloud = 'aws' | 'gcp' | 'alibaba';

/**
 * Keys that would put a secret in configuration. Refused by name, with a message saying why,
 * rather than as an unknown key: a secret in edge.yaml is the mistake federation exists to end.
 */
const SECRET_KEY = /secret|password|passwd|private_?key|access_?key|session_?token|security_?token|api_?key|^(?:token|oidc_?token|web_?identity_?token|access_?token|refresh_?token|credentials?)$/i;

/** Keys that say where something is or what kind it is (`imdsv2_session_token_url`, `oidcTokenFile`): never the secret itself. */
const WHERE_KEY = /(?:url|uri|file|path|arn|type)$/i;

/** The paths of secret-looking keys anywhere in `value` (objects and arrays, a few levels deep). */
export function secretKeysIn(value: unknown, path: (string | number)[] = [], depth = 0): (string | number)[][] {
  if (depth > 8 || value === null || typeof value !== 'object') return [];
  const out: (string | number)[][] = [];
  for (const [k, v] of Object.entries(value)) {
    const here = [...path, Array.isArray(value) ? Number(k) : k];
    if (!Array.isArray(value) && SECRET_KEY.test(k) && !WHERE_KEY.test(k)) out.push(here);
    else out.push(...secretKeysIn(v, here, depth + 1));
  }
  return out;
}

const file = z.string().min(1, 'must be a file path');
const sessionName = z.string().regex(/^[\w+=,.@-]{2,64}$/, 'must be 2 to 64 letters, digits or +=,.@_-');

const AwsSchema = z
  .object({
    roleArn: z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]+$/, 'must be an IAM role ARN, arn:aws:iam::<account>:role/<name>'),
    webIdentityTokenFile: file,
    roleSessionName: sessionName.optional(),
    region: z.string().regex(/^[a-z0-9-]+$/, 'must be a region id such as eu-central-1').optional(),
    stsEndpoint: z.url().optional(),
  })
  .strict();

const GcpSchema = z.object({ credentialConfigFile: file }).strict();

const AlibabaSchema = z
  .object({
    roleArn: z.string().regex(/^acs:ram::\d+:role\/[\w.@-]+$/i, 'must be a RAM role ARN, acs:ram::<account>:role/<name>'),
    oidcProviderArn: z.string().regex(/^acs:ram::\d+:oidc-provider\/[\w.@-]+$/i, 'must be a RAM OIDC provider ARN, acs:ram::<account>:oidc-provider/<name>'),
    oidcTokenFile: file,
    roleSessionName: sessionName.optional(),
    stsEndpoint: z.string().regex(/^(?:https?:\/\/)?[A-Za-z0-9.-]+(?::\d+)?\/?$/, 'must be a host[:port] or an http(s):// URL').optional(),
    stsRegion: z.string().regex(/^[a-z0-9-]+$/, 'must be a region id such as cn-shanghai').optional(),
  })
  .strict();

const BlockSchema = z.union([
  z.object({ aws: AwsSchema }).strict(),
  z.object({ gcp: GcpSchema }).strict(),
  z.object({ alibaba: AlibabaSchema }).strict(),
]);

/** One identity block, validated: exactly one of `aws`, `gcp`, `alibaba`, and no secret anywhere. */
export const IdentitySchema: z.ZodType<IdentityConfig> = z
  .unknown()
  .superRefine((value, ctx) => {
    for (const path of secretKeysIn(value)) {
      ctx.addIssue({ code: 'custom', path, message: 'an identity names a role and the files that prove it, never a secret: remove this key (federation fetches short-lived keys itself; see docs/guide/identity.md)' });
    }
  })
  .pipe(BlockSchema) as z.ZodType<IdentityConfig>;

/** Which cloud an identity federates with. */
export function identityCloud(identity: IdentityConfig): IdentityCloud {
  return 'aws' in identity ? 'aws' : 'gcp' in identity ? 'gcp' : 'alibaba';
}

/** The cloud whose identity each endpoint kind and store type takes; none for `oip`, `local`. */
export const IDENTITY_CLOUD_OF: Readonly<Record<string, IdentityCloud | undefined>> = {
  sagemaker: 'aws',
  s3: 'aws',
  vertex: 'gcp',
  gcs: 'gcp',
  oss: 'alibaba',
  // PAI-EAS's request signature has no place for an STS security token (docs/guide/identity.md).
  'pai-eas': undefined,
};

/** Why `identity` does not fit an endpoint kind or store type, or undefined when it does. */
export function identityMismatch(kind: string, identity: IdentityConfig): string | undefined {
  const want = IDENTITY_CLOUD_OF[kind];
  const got = identityCloud(identity);
  if (want === got) return undefined;
  if (kind === 'pai-eas') return 'pai-eas takes no identity: its request signature carries no STS security token; use its service token';
  return want === undefined ? `${kind} takes no identity` : `${kind} takes ${want === 'gcp' ? 'a' : 'an'} ${want} identity, not ${got}`;
}

/** The identity with its file paths resolved by `abs` (relative to the config file). */
export function withAbsolutePaths(identity: IdentityConfig, abs: (path: string) => string): IdentityConfig {
  if ('aws' in identity) return { aws: { ...identity.aws, webIdentityTokenFile: abs(identity.aws.webIdentityTokenFile) } };
  if ('gcp' in identity) return { gcp: { ...identity.gcp, credentialConfigFile: abs(identity.gcp.credentialConfigFile) } };
  return { alibaba: { ...identity.alibaba, oidcTokenFile: abs(identity.alibaba.oidcTokenFile) } };
}

/**
 * Replaces a reference to a named identity (a string) by the named block, in place of
 * `holder[key]`; returns a message when the name is not among `named`. Blocks and absent
 * values are left for the schema.
 */
export function resolveIdentityRef(holder: unknown, key: string, named: unknown): string | undefined {
  if (holder === null || typeof holder !== 'object') return undefined;
  const record = holder as Record<string, unknown>;
  const ref = record[key];
  if (typeof ref !== 'string') return undefined;
  const table = named !== null && typeof named === 'object' ? (named as Record<string, unknown>) : {};
  if (!Object.hasOwn(table, ref)) {
    const known = Object.keys(table);
    return `no identity named "${ref}" under identities${known.length ? ` (there are: ${known.join(', ')})` : ''}`;
  }
  record[key] = table[ref];
  return undefined;
}
