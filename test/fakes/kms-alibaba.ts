// A loopback Alibaba Cloud KMS speaking the RPC style the SDK uses: POST /?Action=…&…&Signature=…
// Each request's signature is recomputed (HMAC-SHA1 with `secret&` over
// `METHOD&%2F&encode(sorted, encoded query)`), its timestamp, nonce (no replay), version and
// access key checked; GenerateDataKey and Decrypt answer for the keys this fake's region holds.
// `deny` answers 403 Forbidden.RAM.
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FakeServer } from './common.js';
import { FakeWrapper, type KmsCall } from './kms-common.js';

export interface AlibabaKmsFakeOptions {
  region: string;
  accessKeyId: string;
  accessKeySecret: string;
  /** Key ids this KMS holds (aliases `alias/<name>` map to one of them). */
  keys: string[];
  aliases?: Record<string, string>;
}

/** RFC 3986 percent-encoding, as the RPC signature wants it. */
function percent(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

export function rpcSignature(method: string, params: Record<string, string>, secret: string): string {
  const canonical = Object.keys(params)
    .filter((k) => k !== 'Signature')
    .sort()
    .map((k) => `${percent(k)}=${percent(params[k]!)}`)
    .join('&');
  return createHmac('sha1', `${secret}&`).update(`${method}&${percent('/')}&${percent(canonical)}`).digest('base64');
}

export class AlibabaKmsFake extends FakeServer {
  readonly calls: KmsCall[] = [];
  private readonly wrapper = new FakeWrapper();
  private readonly nonces = new Set<string>();
  /** Actions answered Forbidden.RAM (e.g. `Decrypt`), or `*` for all. */
  readonly deny = new Set<string>();

  constructor(private readonly options: AlibabaKmsFakeOptions) {
    super();
  }

  protected handle(req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://kms');
    const params: Record<string, string> = Object.fromEntries(url.searchParams);
    // Parameters may also travel as a form body; the signature covers both.
    if (body.length > 0 && String(req.headers['content-type']).startsWith('application/x-www-form-urlencoded')) Object.assign(params, Object.fromEntries(new URLSearchParams(body.toString('utf8'))));
    const op = params['Action'] ?? '';
    const key = params['KeyId'];
    const requestId = randomUUID();
    const json = (status: number, value: object, problem?: string): void => {
      this.calls.push({ op, key, status, ...(problem === undefined ? {} : { problem }) });
      this.reply(req, res, status, { 'content-type': 'application/json' }, JSON.stringify({ ...value, RequestId: requestId }), problem);
    };
    const fail = (status: number, code: string, message: string): void => json(status, { Code: code, Message: message, HostId: `kms.${this.options.region}.aliyuncs.com` }, `${code}: ${message}`);
    if (req.method !== 'POST' || url.pathname !== '/') return fail(404, 'InvalidAction.NotFound', `${req.method ?? ''} ${url.pathname}`);
    if (params['Version'] !== '2016-01-20' || params['Format']?.toLowerCase() !== 'json') return fail(400, 'InvalidVersion', `Version ${params['Version'] ?? ''} / Format ${params['Format'] ?? ''}`);
    if (params['SignatureMethod'] !== 'HMAC-SHA1' || params['SignatureVersion'] !== '1.0') return fail(400, 'IncompleteSignature', 'SignatureMethod must be HMAC-SHA1, SignatureVersion 1.0');
    if (params['AccessKeyId'] !== this.options.accessKeyId) return fail(404, 'InvalidAccessKeyId.NotFound', `Specified access key is not found: ${params['AccessKeyId'] ?? ''}`);
    const expected = Buffer.from(rpcSignature('POST', params, this.options.accessKeySecret));
    const given = Buffer.from(params['Signature'] ?? '');
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return fail(400, 'SignatureDoesNotMatch', 'Specified signature is not matched with our calculation.');
    const when = Date.parse(params['Timestamp'] ?? '');
    if (!(Math.abs(Date.now() - when) < 15 * 60_000)) return fail(400, 'InvalidTimeStamp.Expired', `Specified time stamp or date value is expired: ${params['Timestamp'] ?? ''}`);
    const nonce = params['SignatureNonce'] ?? '';
    if (nonce === '' || this.nonces.has(nonce)) return fail(400, 'SignatureNonceUsed', 'Specified signature nonce was used already.');
    this.nonces.add(nonce);
    if (this.deny.has(op) || this.deny.has('*')) return fail(403, 'Forbidden.RAM', `User not authorized to operate on the specified resource: kms:${op}`);
    const resolve = (id: string | undefined): string | undefined => {
      const bare = id?.startsWith('alias/') ? this.options.aliases?.[id.slice(6)] : id;
      return bare !== undefined && this.options.keys.includes(bare) ? bare : undefined;
    };
    if (op === 'GenerateDataKey') {
      const keyId = resolve(key);
      if (keyId === undefined) return fail(404, 'Forbidden.KeyNotFound', `The specified Key is not found: ${key ?? ''}`);
      if (params['NumberOfBytes'] !== undefined && params['NumberOfBytes'] !== '32') return fail(400, 'InvalidParameter', 'NumberOfBytes');
      const plaintext = randomBytes(32);
      json(200, { KeyId: keyId, KeyVersionId: `${keyId}-v1`, Plaintext: plaintext.toString('base64'), CiphertextBlob: this.wrapper.wrap(keyId, plaintext).toString('base64') });
      return;
    }
    if (op === 'Decrypt') {
      const blob = this.wrapper.unwrap(Buffer.from(params['CiphertextBlob'] ?? '', 'base64'));
      if (blob === undefined || !this.options.keys.includes(blob.identity)) return fail(400, 'Rejected.InvalidCiphertext', 'The specified ciphertext is invalid.');
      json(200, { KeyId: blob.identity, KeyVersionId: `${blob.identity}-v1`, Plaintext: blob.plaintext.toString('base64') });
      return;
    }
    fail(400, 'InvalidAction.NotFound', `unknown action ${op}`);
  }
}
