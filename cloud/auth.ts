/**
 * Authentication of the emulated provider front APIs: AWS SigV4 (SageMaker runtime), a
 * bearer token (Vertex AI) and the EAS service token (PAI-EAS). Comparisons are constant
 * time so a token cannot be guessed byte by byte.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { SignatureV4 } from '@smithy/signature-v4';
import type { ErrorCode } from '../src/errors/index.js';
import { easSignature, OIP_HEADER_LENGTH } from '../src/providers/index.js';
import { sha256Hex } from '../src/util/index.js';
import { CloudError } from './errors.js';

/** node:crypto behind the hash interface SignatureV4 expects. */
class NodeSha256 {
  private hash: ReturnType<typeof createHash> | ReturnType<typeof createHmac>;

  constructor(private readonly secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = this.fresh();
  }

  private fresh(): ReturnType<typeof createHash> | ReturnType<typeof createHmac> {
    if (this.secret === undefined) return createHash('sha256');
    const key = typeof this.secret === 'string' ? this.secret : ArrayBuffer.isView(this.secret)
      ? Buffer.from(this.secret.buffer, this.secret.byteOffset, this.secret.byteLength) : Buffer.from(this.secret);
    return createHmac('sha256', key);
  }

  update(data: string | ArrayBuffer | ArrayBufferView): void {
    if (typeof data === 'string') this.hash.update(data, 'utf8');
    else if (ArrayBuffer.isView(data)) this.hash.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    else this.hash.update(new Uint8Array(data));
  }

  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.hash.digest()));
  }

  reset(): void {
    this.hash = this.fresh();
  }
}

export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const unauthorized = (code: ErrorCode, message: string): CloudError => new CloudError(403, code, message, { retryable: false });

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  /**
   * Set for temporary credentials (STS: role assumption, web identity): every request must
   * then carry this token in a signed `X-Amz-Security-Token`, as AWS requires of them.
   */
  sessionToken?: string;
}

/**
 * Request headers that pick the model, tail or variant, or change how the request is read or
 * run: the fronts read them after SigV4 has passed, so a signature must cover every one sent.
 * Unsigned, a captured request could be replayed with one changed and reach another model.
 */
const MUST_SIGN_PREFIXES = ['x-amzn-sagemaker-', 'x-tandem-'];
const MUST_SIGN = new Set([OIP_HEADER_LENGTH]);

/** The routing headers `headers` carries that `signed` does not cover. */
export function unsignedRoutingHeaders(headers: IncomingHttpHeaders, signed: readonly string[]): string[] {
  return Object.keys(headers)
    .map((name) => name.toLowerCase())
    .filter((name) => (MUST_SIGN.has(name) || MUST_SIGN_PREFIXES.some((p) => name.startsWith(p))) && !signed.includes(name));
}

const AUTH_RE = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;
const MAX_SKEW_MS = 15 * 60 * 1000;

/**
 * Verifies an AWS Signature Version 4 request by re-signing it with the known secret and
 * comparing signatures. Rejects with 403 (never throws synchronously).
 */
export async function verifySigV4(
  request: { method: string; path: string; query: Record<string, string | string[]>; headers: IncomingHttpHeaders; body: Uint8Array },
  credentials: AwsCredentials | undefined,
  expectedService: string,
): Promise<void> {
  if (!credentials) throw unauthorized('CLOUD_AUTH_NOT_CONFIGURED', 'this front has no AWS credentials configured (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)');
  const header = request.headers['authorization'];
  const match = typeof header === 'string' ? AUTH_RE.exec(header) : null;
  if (!match) throw unauthorized('CLOUD_AUTH_MISSING', 'missing or malformed AWS SigV4 Authorization header');
  const [, accessKeyId, , region, service, signedHeaders, signature] = match as unknown as [string, string, string, string, string, string, string];
  if (!safeEqual(accessKeyId, credentials.accessKeyId)) throw unauthorized('CLOUD_AUTH_INVALID', 'the security token included in the request is invalid (unknown access key)');
  if (service !== expectedService) throw unauthorized('CLOUD_AUTH_INVALID', `credential scope names service "${service}", expected "${expectedService}"`);
  const amzDate = request.headers['x-amz-date'];
  if (typeof amzDate !== 'string' || !/^\d{8}T\d{6}Z$/.test(amzDate)) throw unauthorized('CLOUD_AUTH_MISSING', 'missing X-Amz-Date header');
  const when = Date.UTC(+amzDate.slice(0, 4), +amzDate.slice(4, 6) - 1, +amzDate.slice(6, 8), +amzDate.slice(9, 11), +amzDate.slice(11, 13), +amzDate.slice(13, 15));
  if (Math.abs(Date.now() - when) > MAX_SKEW_MS) throw unauthorized('CLOUD_AUTH_EXPIRED', 'signature expired: the request time is too far from the server time');
  // The signer trusts a given x-amz-content-sha256; check it against the body actually received.
  const declaredHash = request.headers['x-amz-content-sha256'];
  if (typeof declaredHash === 'string' && declaredHash !== 'UNSIGNED-PAYLOAD' && declaredHash !== sha256Hex(request.body)) {
    throw unauthorized('CLOUD_AUTH_SIGNATURE', 'the body does not match its signed x-amz-content-sha256');
  }
  if (declaredHash === 'UNSIGNED-PAYLOAD') throw unauthorized('CLOUD_AUTH_SIGNATURE', 'unsigned payloads are not accepted');
  const names = signedHeaders.split(';');
  if (!names.includes('host')) throw unauthorized('CLOUD_AUTH_INVALID', 'the signature must cover the host header');
  const unsigned = unsignedRoutingHeaders(request.headers, names);
  if (unsigned.length > 0) {
    throw unauthorized('CLOUD_AUTH_UNSIGNED_HEADER', `the signature must cover every routing header sent; not signed: ${unsigned.join(', ')}`);
  }
  const token = request.headers['x-amz-security-token'];
  if (credentials.sessionToken !== undefined) {
    if (typeof token !== 'string') throw unauthorized('CLOUD_AUTH_MISSING', 'temporary credentials need their session token in X-Amz-Security-Token');
    // Unsigned, the token could be swapped under a valid signature.
    if (!names.includes('x-amz-security-token')) throw unauthorized('CLOUD_AUTH_INVALID', 'the signature must cover X-Amz-Security-Token');
    if (!safeEqual(token, credentials.sessionToken)) throw unauthorized('CLOUD_AUTH_INVALID', 'the security token included in the request is invalid (wrong session token)');
  } else if (token !== undefined) {
    throw unauthorized('CLOUD_AUTH_INVALID', 'the security token included in the request is invalid (this front holds long-term keys, which have no session token)');
  }
  const headers: Record<string, string> = {};
  for (const name of names) {
    const value = request.headers[name];
    if (value === undefined) throw unauthorized('CLOUD_AUTH_INVALID', `signed header "${name}" is missing`);
    headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  const signer = new SignatureV4({ credentials: { accessKeyId: credentials.accessKeyId, secretAccessKey: credentials.secretAccessKey }, region, service, sha256: NodeSha256, applyChecksum: false });
  const signed = await signer.sign(
    { method: request.method, protocol: 'https:', hostname: String(headers['host']), path: request.path, query: request.query, headers, body: request.body },
    { signingDate: new Date(when), signingRegion: region, signingService: service },
  );
  const expected = String(signed.headers['authorization'] ?? '').split('Signature=')[1] ?? '';
  if (!safeEqual(expected, signature)) {
    throw unauthorized('CLOUD_AUTH_SIGNATURE', 'the request signature we calculated does not match the signature you provided; check your AWS secret access key');
  }
}

/** Checks `Authorization: Bearer <token>`. */
export function verifyBearer(headers: IncomingHttpHeaders, token: string | undefined): void {
  if (!token) throw unauthorized('CLOUD_AUTH_NOT_CONFIGURED', 'this front has no bearer token configured');
  const header = headers['authorization'];
  if (typeof header !== 'string' || !header.startsWith('Bearer ')) throw new CloudError(401, 'CLOUD_AUTH_MISSING', 'missing bearer token');
  if (!safeEqual(header.slice(7).trim(), token)) throw new CloudError(401, 'CLOUD_AUTH_INVALID', 'invalid bearer token');
}

/**
 * Whether a request to the EAS front is checked by its signature (the service holds signing
 * keys and the request is signed) rather than by the service token. A signature covers the
 * method, Content-MD5, Content-Type, Date and path only: such a request is routed by those.
 */
export function easSigned(headers: IncomingHttpHeaders, signing: { keyId: string; secret: string } | undefined): boolean {
  const header = headers['authorization'];
  return signing !== undefined && typeof header === 'string' && header.startsWith('EAS ');
}

/**
 * Checks the EAS service token, sent as the whole `Authorization` value, or an EAS request
 * signature `Authorization: EAS <keyId>:<base64 HMAC-SHA1>` when signing keys are set. A
 * signature's Date must be within the skew SigV4 allows, and a Content-MD5 sent must be the
 * body's: the signature covers the header, not the body itself.
 */
export function verifyEas(request: { method: string; path: string; headers: IncomingHttpHeaders; body: Uint8Array }, token: string | undefined, signing?: { keyId: string; secret: string }): void {
  const header = request.headers['authorization'];
  if (!token && !signing) throw unauthorized('CLOUD_AUTH_NOT_CONFIGURED', 'this front has no EAS token configured');
  if (typeof header !== 'string' || header.length === 0) throw new CloudError(401, 'CLOUD_AUTH_MISSING', 'missing EAS token in the Authorization header');
  if (signing && easSigned(request.headers, signing)) {
    const expected = easSignature(request.method, request.path, request.headers, request.body, signing);
    if (!safeEqual(header, expected)) throw new CloudError(401, 'CLOUD_AUTH_SIGNATURE', 'EAS request signature does not match');
    const md5 = request.headers['content-md5'];
    if (md5 !== undefined && md5 !== createHash('md5').update(request.body).digest('base64')) {
      throw new CloudError(401, 'CLOUD_AUTH_SIGNATURE', 'the body does not match its signed Content-MD5');
    }
    const when = Date.parse(String(request.headers['date'] ?? ''));
    if (!Number.isFinite(when) || Math.abs(Date.now() - when) > MAX_SKEW_MS) {
      throw new CloudError(401, 'CLOUD_AUTH_EXPIRED', 'the signed Date is missing or too far from the server time', { retryable: false });
    }
    return;
  }
  if (!token || !safeEqual(header.replace(/^Bearer /, ''), token)) throw new CloudError(401, 'CLOUD_AUTH_INVALID', 'invalid EAS token');
}

