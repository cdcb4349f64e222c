/**
 * Data keys from Alibaba Cloud KMS: GenerateDataKey (32 bytes) for each new data key, Decrypt to
 * unwrap one, through @alicloud/kms20160120 (RPC-style requests signed with HMAC-SHA1 over the
 * canonical query). Credentials come from @alicloud/credentials' default chain (environment,
 * profile, RAM role, OIDC) unless a client option gives them.
 */
import { LazyValue } from '../../lazy.js';
import type { ProxyRoute } from '../../providers/proxy.js';
import { rpcOnRoute, type RpcClient } from './alibaba-rpc.js';
import type { KeySource, WrappedKey } from '../envelope.js';
import type { AlibabaKmsKeyDecl } from '../policy.js';
import { isNetworkError, KmsError, loadSdk, messageOf, proxyKmsError } from './errors.js';
import { alibabaKeyRegion } from './identity.js';

/** The part of the SDK client used here (the package is CommonJS with a default export). */
interface AlibabaKmsClient {
  generateDataKeyEx(request: unknown, runtime: unknown): Promise<{ ciphertextBlob?: string; plaintext?: string; keyId?: string }>;
  decryptEx(request: unknown, runtime: unknown): Promise<{ plaintext?: string; keyId?: string }>;
}
interface AlibabaKmsSdk {
  Client: new (config: Record<string, unknown>) => AlibabaKmsClient;
  GenerateDataKeyRequest: new (map: Record<string, unknown>) => unknown;
  DecryptRequest: new (map: Record<string, unknown>) => unknown;
}

const kmsSdk = new LazyValue<AlibabaKmsSdk>(async () => {
  // CommonJS: Node puts module.exports on `default`; bundlers' interop may put the client there.
  type Exports = Partial<Omit<AlibabaKmsSdk, 'Client'>> & { default?: AlibabaKmsSdk['Client'] | (Partial<Omit<AlibabaKmsSdk, 'Client'>> & { default: AlibabaKmsSdk['Client'] }) };
  const mod = (await import('@alicloud/kms20160120')) as unknown as Exports;
  const root = mod.default;
  const exportsObject = typeof root === 'function' || root === undefined ? mod : { ...root, ...mod };
  const Client = typeof root === 'function' ? root : root?.default;
  const { GenerateDataKeyRequest, DecryptRequest } = exportsObject;
  if (Client === undefined || GenerateDataKeyRequest === undefined || DecryptRequest === undefined) throw new Error('@alicloud/kms20160120 does not export its client and request models');
  return { Client, GenerateDataKeyRequest, DecryptRequest };
});

const DENIED = /^(Forbidden|InvalidAccessKeyId|SignatureDoesNotMatch|IncompleteSignature|InvalidSecurityToken|InvalidApi\.NotPurchase|Rejected\.Disabled|Rejected\.ResourceNotFound|NotFound|EntityNotExist)/;
const UNAVAILABLE = /^(Throttling|ServiceUnavailable|InternalError|UnknownError)/;
const RUNTIME = { autoretry: false, readTimeout: 10_000, connectTimeout: 5_000 };

function mapAlibabaError(key: AlibabaKmsSource, what: string, error: unknown): KmsError {
  const viaProxy = proxyKmsError(key, what, error);
  if (viaProxy) return viaProxy;
  // The SDK throws `{ code: "<ServiceCode>Error", message: "code: <status>, …", data: { Code, … } }`.
  const data = (error as { data?: { Code?: unknown; statusCode?: unknown } }).data;
  const serviceCode = typeof data?.Code === 'string' ? data.Code : String((error as { code?: unknown }).code ?? '').replace(/Error$/, '');
  const matched = /\bcode: (\d{3})\b/.exec(messageOf(error))?.[1];
  const status = matched === undefined ? undefined : Number(matched);
  const message = `${what}: ${messageOf(error)}`;
  const details = { serviceCode, status };
  if (DENIED.test(serviceCode) || status === 401 || status === 403) return new KmsError('access-denied', key, message, { cause: error, details });
  // No status: the request never got an answer (network, timeout).
  if (UNAVAILABLE.test(serviceCode) || status === undefined || status >= 500 || status === 429 || isNetworkError(error)) {
    return new KmsError('unavailable', key, message, { cause: error, details });
  }
  return new KmsError('rejected', key, message, { cause: error, details });
}

export interface AlibabaKmsOptions {
  /** Extra client configuration (tests give `accessKeyId`/`accessKeySecret` or a `credential` here). */
  client?: Record<string, unknown>;
  /**
   * The proxy route of the client's calls (KeyRing's `proxy`); see alibaba-rpc.ts. The default
   * credential chain's own exchanges (RAM role, OIDC) are not on it: give keys in `client`.
   */
  route?: ProxyRoute;
}

export class AlibabaKmsSource implements KeySource {
  readonly kind = 'alibaba-kms';
  readonly keyId: string;
  readonly region: string;
  private readonly client: LazyValue<{ sdk: AlibabaKmsSdk; client: AlibabaKmsClient }>;

  constructor(readonly decl: AlibabaKmsKeyDecl, options: AlibabaKmsOptions = {}) {
    this.keyId = decl.keyId;
    this.region = decl.region;
    this.client = new LazyValue(async () => {
      const sdk = await loadSdk(kmsSdk, this, '@alicloud/kms20160120');
      const url = new URL(decl.endpoint ?? `https://kms.${decl.region}.aliyuncs.com`);
      try {
        let credentials: Record<string, unknown> = {};
        if (options.client?.['accessKeyId'] === undefined && options.client?.['credential'] === undefined) {
          const { default: Credential } = (await import('@alicloud/credentials')) as unknown as { default: { default: new () => unknown } };
          credentials = { credential: new Credential.default() };
        }
        const client = new sdk.Client({ regionId: decl.region, endpoint: url.host, protocol: url.protocol.slice(0, -1), readTimeout: 10_000, connectTimeout: 5_000, ...credentials, ...options.client });
        if (options.route?.active) rpcOnRoute(client as unknown as RpcClient, options.route, url);
        return { sdk, client };
      } catch (error) {
        throw new KmsError('config', this, `cannot create the KMS client: ${messageOf(error)}`, { cause: error });
      }
    });
  }

  async generateDataKey(): Promise<{ plaintext: Uint8Array; wrapped: WrappedKey }> {
    const { sdk, client } = await this.client.get();
    let out: { ciphertextBlob?: string; plaintext?: string; keyId?: string };
    try {
      out = await client.generateDataKeyEx(new sdk.GenerateDataKeyRequest({ keyId: this.keyId, numberOfBytes: 32 }), RUNTIME);
    } catch (error) {
      throw mapAlibabaError(this, 'GenerateDataKey failed', error);
    }
    const plaintext = Buffer.from(out.plaintext ?? '', 'base64');
    try {
      if (plaintext.length !== 32 || !out.ciphertextBlob) throw new KmsError('rejected', this, 'GenerateDataKey answered without a 32-byte plaintext and a ciphertext blob');
      const answered = out.keyId === undefined ? undefined : alibabaKeyRegion(out.keyId);
      if (answered !== undefined && answered !== this.region) throw new KmsError('region', this, `KMS answered with key ${out.keyId}, which lives in ${answered}, not ${this.region}`, { details: { answeredRegion: answered } });
    } catch (error) {
      plaintext.fill(0);
      throw error;
    }
    return { plaintext, wrapped: { keyId: this.keyId, kind: this.kind, region: this.region, data: out.ciphertextBlob } };
  }

  async decryptDataKey(wrapped: WrappedKey): Promise<Uint8Array> {
    const { sdk, client } = await this.client.get();
    let out: { plaintext?: string; keyId?: string };
    try {
      out = await client.decryptEx(new sdk.DecryptRequest({ ciphertextBlob: wrapped.data }), RUNTIME);
    } catch (error) {
      throw mapAlibabaError(this, 'Decrypt failed', error);
    }
    const plaintext = Buffer.from(out.plaintext ?? '', 'base64');
    // The blob names its key, so Decrypt takes no key id: a blob of another key would decrypt
    // under that key's permissions. The answer's key must be this one (when configured by id).
    if (out.keyId !== undefined && out.keyId !== this.keyId && !this.keyId.startsWith('alias/') && alibabaKeyRegion(this.keyId) === undefined) {
      plaintext.fill(0);
      throw new KmsError('rejected', this, `Decrypt answered for key ${out.keyId}, not this key`);
    }
    if (plaintext.length !== 32) {
      plaintext.fill(0);
      throw new KmsError('rejected', this, 'Decrypt answered without a 32-byte plaintext');
    }
    return plaintext;
  }

  async close(): Promise<void> {
    // The SDK's client holds no connections of its own to release.
  }
}
