/**
 * Results in Amazon S3 (or an S3-compatible endpoint). Credentials come from the SDK's default
 * provider chain unless the caller passes some; every object is written with the declared
 * server-side encryption on top of Tandem's envelope encryption.
 */
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { LazyValue } from '../../lazy.js';
import { awsWebIdentityCredentials, identityFitError, identityStoreFailure, type IdentityConfig } from '../../providers/identity/index.js';
import { StoreError } from '../errors.js';
import type { StoreDecl } from '../policy.js';
import { awsHandlerOnRoute } from '../../providers/proxy.js';
import { proxyStoreError, storeProxyRoute, validateKey, type ObjectInfo, type PutMeta, type ResultStore, type StoredObject, type StoreProxyOptions } from './types.js';

type S3Decl = Extract<StoreDecl, { type: 's3' }>;

/** `proxy` / `proxyEnv`: the outbound proxy (docs/guide/network.md). */
export interface S3StoreOptions extends StoreProxyOptions {
  /** Explicit credentials; default: the AWS SDK's default chain (env, profile, SSO, IMDS...). */
  credentials?: S3ClientConfig['credentials'];
  /** Web identity federation (an `aws` identity, docs/guide/identity.md) instead of the default chain; `credentials` wins. */
  identity?: IdentityConfig;
  /** SDK-level attempts per call; the outbox retries on top of this. Default 2. */
  maxAttempts?: number;
  requestTimeoutMs?: number;
}

const AUTH_ERRORS = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'ExpiredToken', 'InvalidToken', 'CredentialsProviderError', 'InvalidClientTokenId', 'AuthorizationHeaderMalformed']);

interface AwsErrorShape {
  name?: string;
  message?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
}

// Loaded by the first S3 store that makes a call, so that importing Tandem does not pay for it.
export type S3Sdk = typeof import('@aws-sdk/client-s3');
const s3Sdk = new LazyValue<S3Sdk>(() => import('@aws-sdk/client-s3'));

export function mapS3Error(store: string, what: string, error: unknown): StoreError {
  const viaProxy = proxyStoreError(store, what, error);
  if (viaProxy) return viaProxy;
  const federated = identityStoreFailure(error);
  if (federated) return new StoreError(federated.failure, store, `${what}: ${federated.message}`, { cause: error, details: federated.details });
  const e = (error ?? {}) as AwsErrorShape;
  const status = e.$metadata?.httpStatusCode;
  const name = e.name ?? e.code ?? 'Error';
  const message = `${what}: ${name}${e.message ? ` (${e.message})` : ''}`;
  const details = { sdkError: name, status };
  if (AUTH_ERRORS.has(name) || status === 401 || status === 403) return new StoreError('auth', store, message, { cause: error, details });
  if (name === 'NoSuchKey' || name === 'NotFound' || (status === 404 && name !== 'NoSuchBucket')) return new StoreError('not-found', store, message, { cause: error, details });
  if (name === 'NoSuchBucket') return new StoreError('config', store, message, { cause: error, details });
  if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429) return new StoreError('rejected', store, message, { cause: error, details });
  return new StoreError('unavailable', store, message, { cause: error, details });
}

/** The fields of an S3 declaration the client needs (a result store's, or an input source's). */
export type S3ClientDecl = Pick<S3Decl, 'region' | 'endpoint' | 'forcePathStyle'>;

/** The S3 client for `decl`, the one construction stores and input sources share; `name` labels its errors. */
export async function createS3Client(name: string, decl: S3ClientDecl, options: S3StoreOptions = {}): Promise<{ sdk: S3Sdk; client: S3Client }> {
  let mod: S3Sdk;
  try {
    mod = await s3Sdk.get();
  } catch (error) {
    throw new StoreError('config', name, `cannot load @aws-sdk/client-s3: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  const unfit = identityFitError(name, 's3', options.identity);
  if (unfit) throw new StoreError('config', name, unfit.message, { cause: unfit });
  const identity = options.identity;
  const credentials = options.credentials ?? (identity && 'aws' in identity ? awsWebIdentityCredentials(name, identity.aws) : undefined);
  const handler = { requestTimeout: options.requestTimeoutMs ?? 30_000, connectionTimeout: 5_000 };
  // Every connection on the store's proxy route, STS's included (the client's agents are its handler's).
  const requestHandler = (await awsHandlerOnRoute(handler, storeProxyRoute(name, options))) ?? handler;
  try {
    const client = new mod.S3Client({
      region: decl.region,
      ...(decl.endpoint === undefined ? {} : { endpoint: decl.endpoint }),
      forcePathStyle: decl.forcePathStyle ?? decl.endpoint !== undefined,
      ...(credentials === undefined ? {} : { credentials }),
      maxAttempts: options.maxAttempts ?? 2,
      requestHandler,
    });
    return { sdk: mod, client };
  } catch (error) {
    throw new StoreError('config', name, `cannot create the S3 client: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

export class S3Store implements ResultStore {
  private readonly client: LazyValue<{ sdk: S3Sdk; client: S3Client }>;

  constructor(
    readonly name: string,
    readonly decl: S3Decl,
    options: S3StoreOptions = {},
  ) {
    this.client = new LazyValue(() => createS3Client(name, decl, options));
  }

  private key(key: string): string {
    const bad = validateKey(key);
    if (bad !== undefined) throw new StoreError('rejected', this.name, `invalid key "${key}": ${bad}`);
    return `${this.decl.prefix ?? ''}${key}`;
  }

  async put(key: string, body: Uint8Array, meta: PutMeta = {}): Promise<void> {
    const Key = this.key(key);
    const { sdk, client } = await this.client.get();
    try {
      await client.send(
        new sdk.PutObjectCommand({
          Bucket: this.decl.bucket,
          Key,
          Body: body,
          ContentLength: body.length,
          ContentType: meta.contentType ?? 'application/octet-stream',
          Metadata: meta.metadata,
          ...(this.decl.sse === 'none' ? {} : { ServerSideEncryption: this.decl.sse }),
          ...(this.decl.sse === 'aws:kms' ? { SSEKMSKeyId: this.decl.kmsKeyId } : {}),
        }),
      );
    } catch (error) {
      throw mapS3Error(this.name, `cannot put ${Key}`, error);
    }
  }

  async get(key: string): Promise<StoredObject> {
    const Key = this.key(key);
    const { sdk, client } = await this.client.get();
    try {
      const out = await client.send(new sdk.GetObjectCommand({ Bucket: this.decl.bucket, Key }));
      const body = out.Body === undefined ? new Uint8Array() : await out.Body.transformToByteArray();
      return { body, metadata: out.Metadata ?? {} };
    } catch (error) {
      throw mapS3Error(this.name, `cannot get ${Key}`, error);
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const Key = this.key(key);
    const { sdk, client } = await this.client.get();
    try {
      const out = await client.send(new sdk.HeadObjectCommand({ Bucket: this.decl.bucket, Key }));
      return { size: out.ContentLength ?? 0, metadata: out.Metadata ?? {} };
    } catch (error) {
      const mapped = mapS3Error(this.name, `cannot head ${Key}`, error);
      if (mapped.failure === 'not-found') return undefined;
      throw mapped;
    }
  }

  async exists(key: string): Promise<boolean> {
    return (await this.head(key)) !== undefined;
  }

  async close(): Promise<void> {
    (await this.client.peek())?.client.destroy();
  }
}
