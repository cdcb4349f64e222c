/**
 * Data keys from AWS KMS: GenerateDataKey (AES_256) for each new data key, Decrypt to unwrap
 * one, through @aws-sdk/client-kms. Credentials come from the SDK's default chain (environment,
 * profile, web identity, instance role); the client is built on first use.
 */
import type { KMSClient, KMSClientConfig } from '@aws-sdk/client-kms';
import { LazyValue } from '../../lazy.js';
import { awsHandlerOnRoute, type ProxyRoute } from '../../providers/proxy.js';
import type { KeySource, WrappedKey } from '../envelope.js';
import type { AwsKmsKeyDecl } from '../policy.js';
import { isNetworkError, KmsError, loadSdk, messageOf, proxyKmsError } from './errors.js';
import { awsKeyRegion } from './identity.js';

type KmsSdk = typeof import('@aws-sdk/client-kms');
const kmsSdk = new LazyValue<KmsSdk>(() => import('@aws-sdk/client-kms'));

/** Access refused, or a key these credentials may not use (disabled, pending deletion, unknown to them). */
const DENIED = new Set([
  'AccessDeniedException',
  'NotFoundException',
  'DisabledException',
  'KMSInvalidStateException',
  'IncorrectKeyException',
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'SignatureDoesNotMatch',
  'ExpiredTokenException',
  'CredentialsProviderError',
]);
const UNAVAILABLE = new Set(['ThrottlingException', 'KMSInternalException', 'DependencyTimeoutException', 'LimitExceededException', 'ServiceUnavailableException']);

function mapAwsError(key: AwsKmsSource, what: string, error: unknown): KmsError {
  const viaProxy = proxyKmsError(key, what, error);
  if (viaProxy) return viaProxy;
  const name = (error as { name?: string }).name ?? '';
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  const message = `${what}: ${name ? `${name}: ` : ''}${messageOf(error)}`;
  const details = { sdkError: name, status };
  if (DENIED.has(name) || status === 401 || status === 403) return new KmsError('access-denied', key, message, { cause: error, details });
  if (UNAVAILABLE.has(name) || (status !== undefined && status >= 500) || status === 429 || (status === undefined && isNetworkError(error))) return new KmsError('unavailable', key, message, { cause: error, details });
  if (status === undefined && name === '') return new KmsError('unavailable', key, message, { cause: error, details });
  return new KmsError('rejected', key, message, { cause: error, details });
}

export interface AwsKmsOptions {
  /** Extra client configuration (tests give `credentials` here; production leaves the default chain). */
  client?: Partial<KMSClientConfig>;
  /** The proxy route of the client's requests, STS's for a web identity included (KeyRing's `proxy`). */
  route?: ProxyRoute;
}

export class AwsKmsSource implements KeySource {
  readonly kind = 'aws-kms';
  readonly keyId: string;
  readonly region: string;
  private readonly client: LazyValue<{ sdk: KmsSdk; client: KMSClient }>;

  constructor(readonly decl: AwsKmsKeyDecl, options: AwsKmsOptions = {}) {
    this.keyId = decl.keyId;
    this.region = decl.region;
    this.client = new LazyValue(async () => {
      const sdk = await loadSdk(kmsSdk, this, '@aws-sdk/client-kms');
      const handler = options.client?.requestHandler ?? { requestTimeout: 10_000, connectionTimeout: 5_000 };
      // The route's agents in the handler; a handler instance of the caller's keeps its own connections.
      const routed = options.route ? await awsHandlerOnRoute(handler, options.route) : undefined;
      try {
        const client = new sdk.KMSClient({
          region: decl.region,
          ...(decl.endpoint === undefined ? {} : { endpoint: decl.endpoint }),
          // One retry for a blip; the outbox's backoff owns anything longer.
          maxAttempts: 2,
          ...options.client,
          requestHandler: routed ?? handler,
        });
        return { sdk, client };
      } catch (error) {
        throw new KmsError('config', this, `cannot create the KMS client: ${messageOf(error)}`, { cause: error });
      }
    });
  }

  /** The key's ARN as KMS answered must name this key's region: an alias resolving elsewhere is refused. */
  private checkRegion(answeredKeyId: string | undefined): void {
    const answered = answeredKeyId === undefined ? undefined : awsKeyRegion(answeredKeyId);
    if (answered !== undefined && answered !== this.region) {
      throw new KmsError('region', this, `KMS answered with key ${answeredKeyId}, which lives in ${answered}, not ${this.region}`, { details: { answeredRegion: answered } });
    }
  }

  async generateDataKey(): Promise<{ plaintext: Uint8Array; wrapped: WrappedKey }> {
    const { sdk, client } = await this.client.get();
    let out: { Plaintext?: Uint8Array; CiphertextBlob?: Uint8Array; KeyId?: string };
    try {
      out = await client.send(new sdk.GenerateDataKeyCommand({ KeyId: this.keyId, KeySpec: sdk.DataKeySpec.AES_256 }));
    } catch (error) {
      throw mapAwsError(this, 'GenerateDataKey failed', error);
    }
    const plaintext = out.Plaintext;
    try {
      if (plaintext?.length !== 32 || out.CiphertextBlob === undefined || out.CiphertextBlob.length === 0) throw new KmsError('rejected', this, 'GenerateDataKey answered without a 32-byte plaintext and a ciphertext blob');
      this.checkRegion(out.KeyId);
    } catch (error) {
      plaintext?.fill(0);
      throw error;
    }
    return { plaintext, wrapped: { keyId: this.keyId, kind: this.kind, region: this.region, data: Buffer.from(out.CiphertextBlob).toString('base64') } };
  }

  async decryptDataKey(wrapped: WrappedKey): Promise<Uint8Array> {
    const { sdk, client } = await this.client.get();
    let out: { Plaintext?: Uint8Array; KeyId?: string };
    try {
      // KeyId makes KMS refuse a blob wrapped under any other key.
      out = await client.send(new sdk.DecryptCommand({ CiphertextBlob: Buffer.from(wrapped.data, 'base64'), KeyId: this.keyId }));
    } catch (error) {
      throw mapAwsError(this, 'Decrypt failed', error);
    }
    if (out.Plaintext?.length !== 32) {
      out.Plaintext?.fill(0);
      throw new KmsError('rejected', this, 'Decrypt answered without a 32-byte plaintext');
    }
    return out.Plaintext;
  }

  async close(): Promise<void> {
    (await this.client.peek())?.client.destroy();
  }
}
