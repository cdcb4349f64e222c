/**
 * The residency policy: which data classes exist, where each may be processed (endpoints) and
 * stored (result stores), the endpoints and stores with the provider and region they run in,
 * and the keys results are sealed under per region. Anything the policy does not allow is denied.
 *
 * Policies are YAML or JSON (JSON is parsed by the YAML parser, so both get line numbers in errors).
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { parseYamlSafely, positionOf } from '../util/yaml.js';
import { PolicyError, type PolicyIssue } from './errors.js';
import { alibabaKeyRegion, awsKeyRegion, gcpKeyLocation, isGcpCryptoKeyName } from './kms/identity.js';
import { regionLabelConflict } from './region-label.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
/** Region patterns: a region name with optional `*` wildcards, e.g. `cn-*`, `europe-west3`, `*`. */
const REGION_PATTERN = /^[a-z0-9*][a-z0-9*-]*$/;

const name = z.string().regex(NAME, 'must be a name of letters, digits, ".", "_" or "-"');
const region = z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'must be a region id such as eu-central-1 or cn-shanghai');
const provider = z.string().regex(/^[a-z][a-z0-9-]*$/, 'must be a provider id such as aws, gcp, alibaba or local');

const allowanceSchema = z
  .object({
    /** Provider id, or `*` for any provider (the regions still have to match). */
    provider: z.union([provider, z.literal('*')]),
    regions: z.array(z.string().regex(REGION_PATTERN, 'must be a region or a pattern with * such as cn-*')).min(1),
    /** Only these services (endpoint kinds / store types), e.g. the services a HIPAA BAA covers. */
    services: z.array(z.string().min(1)).min(1).optional(),
    /** Stores only: the store must apply provider-side encryption at rest. */
    requireSse: z.boolean().optional(),
  })
  .strict();

/**
 * Where derived features (a split's cut tensors) of a class may go though its raw data may not:
 * the allowance's target, for cuts at least this deep (see src/residency/derived.ts). A depth
 * or a FLOPs share is required: a rule without one would pass the input itself, barely changed.
 */
const featureAllowanceSchema = allowanceSchema
  .omit({ requireSse: true })
  .extend({
    /** The cut's position among the model's cuts (`c<N>`: N, cuts ordered by head size; c0 is the input). */
    minCutDepth: z.number().int().min(1).optional(),
    /** The share of the model's FLOPs computed before the cut (head FLOPs ÷ total FLOPs), in (0, 1]. */
    minFlopsShare: z.number().gt(0).max(1).optional(),
  })
  .strict()
  .refine((a) => a.minCutDepth !== undefined || a.minFlopsShare !== undefined, { message: 'a features rule needs minCutDepth or minFlopsShare' });

const classSchema = z
  .object({
    description: z.string().optional(),
    /** Where raw data of this class may be sent for processing. Empty or absent: it never leaves the device. */
    process: z.array(allowanceSchema).default([]),
    /** Where features past a depth may be sent though raw data may not (`process` targets take any form). */
    features: z.array(featureAllowanceSchema).default([]),
    /** Where results of this class may be stored. Empty or absent: nowhere (not even local disk). */
    store: z.array(allowanceSchema).default([]),
  })
  .strict();

const originSchema = z
  .object({
    description: z.string().optional(),
    /** The data classes this origin may produce; any other class from it is refused. */
    classes: z.array(name).min(1).optional(),
    /** Further restrictions for data from this origin: intersected with the class rules, never widening them. */
    process: z.array(allowanceSchema).optional(),
    store: z.array(allowanceSchema).optional(),
  })
  .strict();

const endpointSchema = z
  .object({
    provider,
    region,
    /** The service kind, e.g. sagemaker, vertex, pai-eas, oip; matched against an allowance's `services`. */
    service: z.string().min(1).optional(),
  })
  .strict();

const storeBase = { region, prefix: z.string().optional() };
const storeSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('local'), provider: z.literal('local').default('local'), root: z.string().min(1), ...storeBase }).strict(),
  z
    .object({
      type: z.literal('s3'),
      provider: provider.default('aws'),
      bucket: z.string().min(3),
      endpoint: z.string().url().optional(),
      forcePathStyle: z.boolean().optional(),
      sse: z.enum(['AES256', 'aws:kms', 'none']).default('AES256'),
      kmsKeyId: z.string().optional(),
      ...storeBase,
    })
    .strict(),
  z
    .object({
      type: z.literal('gcs'),
      provider: provider.default('gcp'),
      bucket: z.string().min(3),
      apiEndpoint: z.string().url().optional(),
      /** With `apiEndpoint` the SDK sends no credentials unless this is true (private endpoints in production). */
      authWithCustomEndpoint: z.boolean().optional(),
      projectId: z.string().optional(),
      /** Customer-managed key; without it GCS still encrypts at rest with Google-managed keys. */
      kmsKeyName: z.string().optional(),
      ...storeBase,
    })
    .strict(),
  z
    .object({
      type: z.literal('oss'),
      provider: provider.default('alibaba'),
      bucket: z.string().min(3),
      endpoint: z.string().url().optional(),
      /** Path-style requests (`endpoint/bucket/key`, ali-oss `sldEnable`), for private endpoints and loopback. */
      pathStyle: z.boolean().optional(),
      sse: z.enum(['AES256', 'KMS', 'none']).default('AES256'),
      ...storeBase,
    })
    .strict(),
]);

/**
 * A key-encryption key for envelope encryption (and the audit log's MAC key). KMS keys name
 * the region they live in; `endpoint` overrides the SDK's regional endpoint (a VPC endpoint, a
 * local emulation). `crossRegion: true` lets a key serve a store region other than its own
 * (see `keys`). `local` is the device's key file (edge config `residency.keyFile`).
 */
const kmsCommon = { region, endpoint: z.string().url().optional(), crossRegion: z.boolean().optional() };
const keySchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('aws-kms'), keyId: z.string().min(1), ...kmsCommon }).strict(),
  z
    .object({
      kind: z.literal('gcp-kms'),
      keyName: z.string().refine(isGcpCryptoKeyName, 'must be projects/<p>/locations/<l>/keyRings/<r>/cryptoKeys/<k>'),
      ...kmsCommon,
    })
    .strict(),
  z.object({ kind: z.literal('alibaba-kms'), keyId: z.string().min(1), ...kmsCommon }).strict(),
  z.object({ kind: z.literal('local') }).strict(),
]);

/** The region a KMS key's own identifier names, if it names one. */
function keyIdRegion(key: z.infer<typeof keySchema>): string | undefined {
  switch (key.kind) {
    case 'aws-kms':
      return awsKeyRegion(key.keyId);
    case 'gcp-kms':
      return gcpKeyLocation(key.keyName);
    case 'alibaba-kms':
      return alibabaKeyRegion(key.keyId);
    case 'local':
      return undefined;
  }
}

type IssueSink = { addIssue(issue: { code: 'custom'; path: (string | number)[]; message: string }): void };

function checkKey(key: z.infer<typeof keySchema>, path: (string | number)[], ctx: IssueSink): void {
  if (key.kind === 'local') return;
  const named = keyIdRegion(key);
  if (named !== undefined && named !== key.region) {
    ctx.addIssue({ code: 'custom', path: [...path, 'region'], message: `the key's identifier names region ${named}, but its region is ${key.region}` });
  }
  const conflict = regionLabelConflict('the key', key.endpoint, key.region);
  if (conflict !== undefined) ctx.addIssue({ code: 'custom', path: [...path, 'endpoint'], message: conflict });
}

export const policySchema = z
  .object({
    version: z.literal(1),
    description: z.string().optional(),
    classes: z.record(name, classSchema),
    origins: z.record(name, originSchema).default({}),
    endpoints: z.record(name, endpointSchema).default({}),
    stores: z.record(name, storeSchema).default({}),
    /**
     * The key that wraps the data keys of results kept in each store region (the record's
     * key). A result stored in region R is sealed under `keys[R]`, whose own region must be R
     * unless it says `crossRegion: true`; a store region without a key may hold nothing.
     * Absent: every result is sealed under the device's key file.
     */
    keys: z.record(region, keySchema).optional(),
    /** The key that protects the audit log's MAC key (`tandem audit verify --policy`). */
    auditKey: keySchema.optional(),
  })
  .strict()
  .superRefine((policy, ctx) => {
    for (const [originName, origin] of Object.entries(policy.origins)) {
      origin.classes?.forEach((cls, i) => {
        if (!Object.hasOwn(policy.classes, cls)) {
          ctx.addIssue({ code: 'custom', path: ['origins', originName, 'classes', i], message: `unknown data class "${cls}"` });
        }
      });
    }
    for (const [storeName, store] of Object.entries(policy.stores)) {
      if (store.type === 's3' && store.sse === 'aws:kms' && store.kmsKeyId === undefined) {
        ctx.addIssue({ code: 'custom', path: ['stores', storeName, 'kmsKeyId'], message: 'sse "aws:kms" needs kmsKeyId' });
      }
      // A known provider hostname must be in the region the store is labelled with.
      const url = store.type === 'gcs' ? store.apiEndpoint : store.type === 'local' ? undefined : store.endpoint;
      const conflict = regionLabelConflict(`store "${storeName}"`, url, store.region);
      if (conflict !== undefined) ctx.addIssue({ code: 'custom', path: ['stores', storeName, store.type === 'gcs' ? 'apiEndpoint' : 'endpoint'], message: conflict });
    }
    for (const [keyRegion, key] of Object.entries(policy.keys ?? {})) checkKey(key, ['keys', keyRegion], ctx);
    if (policy.auditKey !== undefined) checkKey(policy.auditKey, ['auditKey'], ctx);
  });

export type Allowance = z.infer<typeof allowanceSchema>;
export type FeatureAllowance = z.infer<typeof featureAllowanceSchema>;
export type DataClassRule = z.infer<typeof classSchema>;
export type OriginRule = z.infer<typeof originSchema>;
export type EndpointDecl = z.infer<typeof endpointSchema>;
export type StoreDecl = z.infer<typeof storeSchema>;
export type KeyDecl = z.infer<typeof keySchema>;
export type AwsKmsKeyDecl = Extract<KeyDecl, { kind: 'aws-kms' }>;
export type GcpKmsKeyDecl = Extract<KeyDecl, { kind: 'gcp-kms' }>;
export type AlibabaKmsKeyDecl = Extract<KeyDecl, { kind: 'alibaba-kms' }>;
/** A validated residency policy. */
export type Policy = z.infer<typeof policySchema>;
/** The policy as written, before defaults are applied (what tests and generators build). */
export type PolicyInput = z.input<typeof policySchema>;

/** Whether a store applies provider-side encryption at rest. GCS always does. */
export function storeHasSse(store: StoreDecl): boolean {
  switch (store.type) {
    case 'local':
      return false;
    case 'gcs':
      return true;
    case 's3':
    case 'oss':
      return store.sse !== 'none';
  }
}

function jsonPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, key) => (typeof key === 'number' ? `${acc}[${key}]` : `${acc}.${String(key)}`), '$');
}

/**
 * Paths of own `__proto__` keys. YAML and JSON.parse keep them as keys, but zod's records drop
 * them without a word: a class or store of that name would vanish from the policy, which then
 * checks "ok". They are refused instead (no name may start with "_" anyway).
 */
function protoKeys(value: unknown, path: PropertyKey[] = [], found: PropertyKey[][] = []): PropertyKey[][] {
  // A policy is a few levels deep; anything deeper is refused by the schema.
  if (value === null || typeof value !== 'object' || path.length > 16) return found;
  for (const [key, child] of Object.entries(value)) {
    const at = [...path, Array.isArray(value) ? Number(key) : key];
    if (key === '__proto__') found.push(at);
    else protoKeys(child, at, found);
  }
  return found;
}

const PROTO_MESSAGE = '"__proto__" is not a valid name';


/**
 * Parses and validates a policy from text. `source` names the file in error messages.
 * Throws {@link PolicyError} listing every problem with its line, column and JSON path.
 */
export function parsePolicy(text: string, source = '<policy>'): Policy {
  // Guarded: an alias bomb or a parser failure is a PolicyError too, never a bare exception.
  const parsed = parseYamlSafely(text, { uniqueKeys: true });
  if (!parsed.ok) throw new PolicyError(source, parsed.issues.map((issue) => ({ path: '', ...issue })), { cause: parsed.cause });
  const { doc, lineCounter: counter } = parsed;
  const raw: unknown = parsed.value;
  const proto = protoKeys(raw);
  if (proto.length > 0) throw new PolicyError(source, proto.map((path) => ({ path: jsonPath(path), message: PROTO_MESSAGE, ...positionOf(doc, counter, path) })));
  const result = policySchema.safeParse(raw);
  if (!result.success) {
    const issues: PolicyIssue[] = result.error.issues.map((issue) => ({
      path: jsonPath(issue.path),
      message: issue.message,
      ...positionOf(doc, counter, issue.path),
    }));
    throw new PolicyError(source, issues);
  }
  return result.data;
}

/** Validates an already-parsed policy object (from code or a config system). */
export function validatePolicy(value: unknown, source = '<policy>'): Policy {
  const proto = protoKeys(value);
  if (proto.length > 0) throw new PolicyError(source, proto.map((path) => ({ path: jsonPath(path), message: PROTO_MESSAGE })));
  const result = policySchema.safeParse(value);
  if (!result.success) {
    throw new PolicyError(
      source,
      result.error.issues.map((issue) => ({ path: jsonPath(issue.path), message: issue.message })),
    );
  }
  return result.data;
}

/** Reads, parses and validates a policy file. Rejects with {@link PolicyError}. */
export async function loadPolicy(file: string): Promise<Policy> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new PolicyError(file, [{ path: '', message: `cannot read the file: ${error instanceof Error ? error.message : String(error)}` }], { cause: error });
  }
  return parsePolicy(text, file);
}
