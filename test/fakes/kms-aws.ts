// A loopback AWS KMS speaking the JSON 1.1 protocol the SDK uses (POST /, X-Amz-Target
// TrentService.<Op>): GenerateDataKey and Decrypt, each request's SigV4 signature verified with
// @smithy/signature-v4 (cloud/auth.ts) against the one set of keys it knows, the credential
// scope's region checked against the fake's region and the key id resolved among its keys.
// `deny` answers AccessDeniedException; `answerArn` makes an alias resolve to another key.
import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { verifySigV4, type AwsCredentials } from '../../cloud/auth.js';
import { FakeServer } from './common.js';
import { FakeWrapper, type KmsCall } from './kms-common.js';

export interface AwsKmsFakeOptions {
  region: string;
  credentials: AwsCredentials;
  account?: string;
  /** Key ids this KMS holds (aliases `alias/<name>` map to one of them). */
  keys: string[];
  aliases?: Record<string, string>;
}

export class AwsKmsFake extends FakeServer {
  readonly calls: KmsCall[] = [];
  private readonly wrapper = new FakeWrapper();
  /** Operations answered AccessDeniedException (e.g. `Decrypt`), or `*` for all. */
  readonly deny = new Set<string>();
  /** When set, GenerateDataKey answers with this KeyId (an alias resolving to a key elsewhere). */
  answerArn: string | undefined;

  constructor(private readonly options: AwsKmsFakeOptions) {
    super();
  }

  arnOf(keyId: string): string {
    return `arn:aws:kms:${this.options.region}:${this.options.account ?? '111122223333'}:key/${keyId}`;
  }

  /** The ARN a request's KeyId names here (key id, key ARN, alias or alias ARN); undefined if none. */
  private resolve(keyId: unknown): string | undefined {
    if (typeof keyId !== 'string') return undefined;
    const aliasPrefix = `arn:aws:kms:${this.options.region}:${this.options.account ?? '111122223333'}:`;
    const bare = keyId.startsWith(aliasPrefix) ? keyId.slice(aliasPrefix.length) : keyId;
    const id = bare.startsWith('alias/') ? this.options.aliases?.[bare.slice(6)] : bare.startsWith('key/') ? bare.slice(4) : bare;
    return id !== undefined && this.options.keys.includes(id) ? this.arnOf(id) : undefined;
  }

  private answer(req: IncomingMessage, res: ServerResponse, call: Omit<KmsCall, 'status'>, status: number, body: object): void {
    this.calls.push({ ...call, status });
    const headers: Record<string, string> = { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': randomUUID() };
    const type = (body as { __type?: string }).__type;
    if (type !== undefined) headers['x-amzn-errortype'] = type;
    this.reply(req, res, status, headers, JSON.stringify(body), call.problem);
  }

  protected handle(req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    const target = String(req.headers['x-amz-target'] ?? '');
    const op = target.startsWith('TrentService.') ? target.slice('TrentService.'.length) : target;
    let input: Record<string, unknown> = {};
    try {
      input = JSON.parse(body.toString('utf8') || '{}') as Record<string, unknown>;
    } catch {
      this.answer(req, res, { op, key: undefined, problem: 'body is not JSON' }, 400, { __type: 'SerializationException', message: 'body is not JSON' });
      return;
    }
    const key = typeof input['KeyId'] === 'string' ? input['KeyId'] : undefined;
    const fail = (status: number, type: string, message: string): void => this.answer(req, res, { op, key, problem: `${type}: ${message}` }, status, { __type: type, message });
    if (req.method !== 'POST' || req.url !== '/' || req.headers['content-type'] !== 'application/x-amz-json-1.1') {
      fail(400, 'UnknownOperationException', `expected POST / with application/x-amz-json-1.1, got ${req.method ?? ''} ${req.url ?? ''} ${String(req.headers['content-type'])}`);
      return;
    }
    const scope = /Credential=[^/]+\/\d{8}\/([^/]+)\/kms\/aws4_request/.exec(String(req.headers['authorization'] ?? ''));
    if (scope?.[1] !== this.options.region) {
      fail(400, 'InvalidSignatureException', `credential scope names region ${scope?.[1] ?? '(none)'}, this KMS is in ${this.options.region}`);
      return;
    }
    verifySigV4({ method: 'POST', path: '/', query: {}, headers: req.headers, body }, this.options.credentials, 'kms').then(
      () => this.operate(op, input, key, fail, req, res),
      (error: unknown) => fail(400, 'InvalidSignatureException', error instanceof Error ? error.message : String(error)),
    );
  }

  private operate(op: string, input: Record<string, unknown>, key: string | undefined, fail: (status: number, type: string, message: string) => void, req: IncomingMessage, res: ServerResponse): void {
    if (this.deny.has(op) || this.deny.has('*')) {
      fail(400, 'AccessDeniedException', `User: arn:aws:iam::111122223333:user/edge is not authorized to perform: kms:${op} on resource: ${key ?? '(none)'}`);
      return;
    }
    if (op === 'GenerateDataKey') {
      const arn = this.resolve(input['KeyId']);
      if (arn === undefined) return fail(400, 'NotFoundException', `Key '${key ?? ''}' does not exist`);
      if (input['KeySpec'] !== 'AES_256' && input['NumberOfBytes'] !== 32) return fail(400, 'ValidationException', 'KeySpec must be AES_256 (or NumberOfBytes 32)');
      const plaintext = randomBytes(32);
      const blob = this.wrapper.wrap(arn, plaintext);
      this.answer(req, res, { op, key }, 200, { KeyId: this.answerArn ?? arn, Plaintext: plaintext.toString('base64'), CiphertextBlob: blob.toString('base64') });
      return;
    }
    if (op === 'Decrypt') {
      const blob = typeof input['CiphertextBlob'] === 'string' ? this.wrapper.unwrap(Buffer.from(input['CiphertextBlob'], 'base64')) : undefined;
      if (blob === undefined) return fail(400, 'InvalidCiphertextException', 'the ciphertext is invalid');
      if (key !== undefined && this.resolve(key) !== blob.identity) return fail(400, 'IncorrectKeyException', 'The key ID in the request does not identify a KMS key that can perform this operation');
      this.answer(req, res, { op, key }, 200, { KeyId: blob.identity, Plaintext: blob.plaintext.toString('base64'), EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' });
      return;
    }
    fail(400, 'UnknownOperationException', `unknown operation ${op}`);
  }
}
