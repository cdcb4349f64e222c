// A loopback Google Cloud KMS speaking the REST surface the SDK's fallback transport uses:
// POST /v1/{cryptoKey}:encrypt and :decrypt with JSON bodies. Each request's bearer token is
// checked, its resource name parsed and matched against the keys this fake holds (and the
// x-goog-request-params routing header checked to name the same key), and a ciphertext only
// decrypts under the key that made it. `deny` answers 403 PERMISSION_DENIED.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FakeServer } from './common.js';
import { FakeWrapper, type KmsCall } from './kms-common.js';

export interface GcpKmsFakeOptions {
  token: string;
  /** Crypto key resource names this KMS holds. */
  keys: string[];
}

const PATH = /^\/v1\/(projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+\/cryptoKeys\/[^/:]+):(encrypt|decrypt)(\?.*)?$/;
const STATUS: Record<number, string> = { 400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND' };

export class GcpKmsFake extends FakeServer {
  readonly calls: KmsCall[] = [];
  private readonly wrapper = new FakeWrapper();
  /** Operations (`encrypt`, `decrypt`) answered PERMISSION_DENIED, or `*` for all. */
  readonly deny = new Set<string>();

  constructor(private readonly options: GcpKmsFakeOptions) {
    super();
  }

  protected handle(req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    const m = PATH.exec(req.url ?? '');
    const op = m?.[2] ?? '';
    const key = m?.[1];
    const json = (status: number, value: object, problem?: string): void => {
      this.calls.push({ op, key, status, ...(problem === undefined ? {} : { problem }) });
      this.reply(req, res, status, { 'content-type': 'application/json' }, JSON.stringify(value), problem);
    };
    const fail = (status: number, message: string): void => json(status, { error: { code: status, message, status: STATUS[status] ?? 'UNKNOWN' } }, message);
    if (req.method !== 'POST' || m === null || key === undefined) return fail(404, `no such method ${req.method ?? ''} ${req.url ?? ''}`);
    if (req.headers['authorization'] !== `Bearer ${this.options.token}`) return fail(401, 'Request had invalid authentication credentials. Expected OAuth 2 access token.');
    const routing = decodeURIComponent(String(req.headers['x-goog-request-params'] ?? ''));
    if (routing !== `name=${key}`) return fail(400, `the x-goog-request-params header (${routing}) does not name ${key}`);
    if (this.deny.has(op) || this.deny.has('*')) return fail(403, `Permission 'cloudkms.cryptoKeyVersions.useTo${op === 'encrypt' ? 'Encrypt' : 'Decrypt'}' denied on resource '${key}' (or it may not exist).`);
    if (!this.options.keys.includes(key)) return fail(404, `CryptoKey ${key} not found.`);
    let input: Record<string, unknown>;
    try {
      input = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    } catch {
      return fail(400, 'Invalid JSON payload received.');
    }
    if (op === 'encrypt') {
      if (typeof input['plaintext'] !== 'string') return fail(400, 'plaintext is required');
      const plaintext = Buffer.from(input['plaintext'], 'base64');
      const version = `${key}/cryptoKeyVersions/1`;
      json(200, { name: version, ciphertext: this.wrapper.wrap(key, plaintext).toString('base64'), verifiedPlaintextCrc32c: false, protectionLevel: 'SOFTWARE' });
      return;
    }
    const blob = typeof input['ciphertext'] === 'string' ? this.wrapper.unwrap(Buffer.from(input['ciphertext'], 'base64')) : undefined;
    if (blob === undefined || blob.identity !== key) return fail(400, 'Decryption failed: the ciphertext is invalid.');
    json(200, { plaintext: blob.plaintext.toString('base64'), usedPrimary: true, protectionLevel: 'SOFTWARE' });
  }
}
