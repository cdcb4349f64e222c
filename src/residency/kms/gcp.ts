/**
 * Data keys wrapped by Google Cloud KMS: Cloud KMS has no GenerateDataKey, so the 256-bit data
 * key is drawn here and wrapped with Encrypt (unwrapped with Decrypt) under a symmetric crypto
 * key, through @google-cloud/kms. Credentials come from Application Default Credentials.
 *
 * The SDK speaks gRPC; with an `http://` endpoint (a private proxy or a local emulation) it
 * uses its REST fallback over plain HTTP/1.1 instead.
 */
import { randomBytes } from 'node:crypto';
import type { KeyManagementServiceClient } from '@google-cloud/kms';
import type { ClientOptions } from 'google-gax';
import { LazyValue } from '../../lazy.js';
import type { KeySource, WrappedKey } from '../envelope.js';
import type { GcpKmsKeyDecl } from '../policy.js';
import { isNetworkError, KmsError, loadSdk, messageOf } from './errors.js';
import { gcpKeyLocation } from './identity.js';

type KmsSdk = typeof import('@google-cloud/kms');
const kmsSdk = new LazyValue<KmsSdk>(() => import('@google-cloud/kms'));

/** gRPC status codes (also what the REST fallback's errors carry). */
const DENIED = new Set([7 /* PERMISSION_DENIED */, 16 /* UNAUTHENTICATED */, 5 /* NOT_FOUND */, 9 /* FAILED_PRECONDITION: key disabled or destroyed */]);
const UNAVAILABLE = new Set([14 /* UNAVAILABLE */, 4 /* DEADLINE_EXCEEDED */, 8 /* RESOURCE_EXHAUSTED */, 13 /* INTERNAL */, 10 /* ABORTED */, 1 /* CANCELLED */]);
const CALL_TIMEOUT_MS = 10_000;

function mapGcpError(key: GcpKmsSource, what: string, error: unknown): KmsError {
  // gRPC answers carry a gRPC status; the REST fallback's carry the HTTP status.
  const code = (error as { code?: unknown }).code;
  const message = `${what}: ${messageOf(error)}`;
  const details = { code: typeof code === 'number' ? code : undefined };
  if (typeof code === 'number' && code >= 100) {
    if (code === 401 || code === 403 || code === 404) return new KmsError('access-denied', key, message, { cause: error, details });
    if (code === 429 || code >= 500) return new KmsError('unavailable', key, message, { cause: error, details });
    return new KmsError('rejected', key, message, { cause: error, details });
  }
  if (typeof code === 'number' && DENIED.has(code)) return new KmsError('access-denied', key, message, { cause: error, details });
  // No status at all: the auth library failed (no credentials) or the connection did.
  if (typeof code !== 'number' && /credential|token|auth/i.test(messageOf(error)) && !isNetworkError(error)) return new KmsError('access-denied', key, message, { cause: error, details });
  if (typeof code !== 'number' || UNAVAILABLE.has(code)) return new KmsError('unavailable', key, message, { cause: error, details });
  return new KmsError('rejected', key, message, { cause: error, details });
}

export interface GcpKmsOptions {
  /** Extra client options (tests give `authClient` here; production leaves ADC). */
  client?: ClientOptions;
}

function endpointOptions(endpoint: string | undefined): ClientOptions {
  if (endpoint === undefined) return {};
  const url = new URL(endpoint);
  const port = url.port === '' ? (url.protocol === 'http:' ? 80 : 443) : Number(url.port);
  return url.protocol === 'http:' ? { apiEndpoint: url.hostname, port, protocol: 'http', fallback: true } : { apiEndpoint: url.hostname, port };
}

export class GcpKmsSource implements KeySource {
  readonly kind = 'gcp-kms';
  readonly keyId: string;
  readonly region: string;
  private readonly client: LazyValue<KeyManagementServiceClient>;

  constructor(readonly decl: GcpKmsKeyDecl, options: GcpKmsOptions = {}) {
    this.keyId = decl.keyName;
    this.region = decl.region;
    this.client = new LazyValue(async () => {
      const sdk = await loadSdk(kmsSdk, this, '@google-cloud/kms');
      try {
        return new sdk.KeyManagementServiceClient({ ...endpointOptions(decl.endpoint), ...options.client });
      } catch (error) {
        throw new KmsError('config', this, `cannot create the Cloud KMS client: ${messageOf(error)}`, { cause: error });
      }
    });
  }

  async generateDataKey(): Promise<{ plaintext: Uint8Array; wrapped: WrappedKey }> {
    const client = await this.client.get();
    const plaintext = randomBytes(32);
    try {
      let answer: { ciphertext?: Uint8Array | string | null; name?: string | null };
      try {
        [answer] = await client.encrypt({ name: this.keyId, plaintext }, { timeout: CALL_TIMEOUT_MS, retry: null });
      } catch (error) {
        throw mapGcpError(this, 'Encrypt failed', error);
      }
      // The key version that answered names its location: it must be this key's.
      const answeredLocation = answer.name ? gcpKeyLocation(answer.name) : undefined;
      if (answeredLocation !== undefined && answeredLocation !== this.region) {
        throw new KmsError('region', this, `Cloud KMS answered with key version ${answer.name}, which lives in ${answeredLocation}, not ${this.region}`, { details: { answeredRegion: answeredLocation } });
      }
      const ciphertext = typeof answer.ciphertext === 'string' ? Buffer.from(answer.ciphertext, 'base64') : answer.ciphertext;
      if (!ciphertext || ciphertext.length === 0) throw new KmsError('rejected', this, 'Encrypt answered without a ciphertext');
      return { plaintext, wrapped: { keyId: this.keyId, kind: this.kind, region: this.region, data: Buffer.from(ciphertext).toString('base64') } };
    } catch (error) {
      plaintext.fill(0);
      throw error;
    }
  }

  async decryptDataKey(wrapped: WrappedKey): Promise<Uint8Array> {
    const client = await this.client.get();
    let answer: { plaintext?: Uint8Array | string | null };
    try {
      [answer] = await client.decrypt({ name: this.keyId, ciphertext: Buffer.from(wrapped.data, 'base64') }, { timeout: CALL_TIMEOUT_MS, retry: null });
    } catch (error) {
      throw mapGcpError(this, 'Decrypt failed', error);
    }
    const plaintext = typeof answer.plaintext === 'string' ? Buffer.from(answer.plaintext, 'base64') : answer.plaintext;
    if (plaintext?.length !== 32) {
      plaintext?.fill(0);
      throw new KmsError('rejected', this, 'Decrypt answered without a 32-byte plaintext');
    }
    return plaintext;
  }

  async close(): Promise<void> {
    await (await this.client.peek())?.close();
  }
}
