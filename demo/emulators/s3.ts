/**
 * An S3-compatible server for the demo, the batch example and tests: s3rver (objects, listing,
 * buckets) behind a front that verifies AWS Signature Version 4 itself, because s3rver lets
 * unsigned requests through and never checks the signed payload hash. The front refuses, with
 * S3's error codes, any request that is not header-signed with AWS4-HMAC-SHA256, whose
 * credential scope names another key, day, region or service, whose x-amz-date is more than 15
 * minutes off, whose signature (recomputed from the canonical request) differs, or whose body
 * does not hash to the signed x-amz-content-sha256 (UNSIGNED-PAYLOAD is accepted, as S3 does).
 * Verified requests go on to s3rver without their Authorization header (s3rver's own check
 * canonicalises bucket listings wrongly and refuses them).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface S3EmulatorOptions {
  region: string;
  buckets: readonly string[];
  credentials: S3Credentials;
  /** Where s3rver keeps objects; default a temporary folder removed by stop(). */
  directory?: string;
}

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
type S3rverClass = new (options: Record<string, unknown>) => S3rverInstance;

const SKEW_MS = 15 * 60_000;

const rfc3986 = (s: string): string => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

function canonicalQuery(raw: string): string {
  if (raw === '') return '';
  const pairs = raw.split('&').filter((p) => p !== '').map((p) => {
    const i = p.indexOf('=');
    const k = decodeURIComponent((i < 0 ? p : p.slice(0, i)).replace(/\+/g, '%20'));
    const v = i < 0 ? '' : decodeURIComponent(p.slice(i + 1).replace(/\+/g, '%20'));
    return [rfc3986(k), rfc3986(v)] as const;
  });
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

const hmac = (key: Buffer | string, data: string): Buffer => createHmac('sha256', key).update(data, 'utf8').digest();

/** Why the request's SigV4 signature does not verify, as [S3 error code, message]; undefined when it does. */
export function verifySigV4(req: IncomingMessage, body: Buffer, region: string, credentials: S3Credentials, now = Date.now()): [string, string] | undefined {
  const auth = req.headers.authorization;
  if (auth === undefined) return ['AccessDenied', 'anonymous requests are refused: sign with SigV4'];
  const m = /^AWS4-HMAC-SHA256 Credential=([^,]+), ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) return ['AuthorizationHeaderMalformed', 'expected an AWS4-HMAC-SHA256 Authorization header'];
  const [keyId, day, scopeRegion, service, term] = m[1]!.split('/');
  if (keyId !== credentials.accessKeyId) return ['InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.'];
  if (scopeRegion !== region || service !== 's3' || term !== 'aws4_request') return ['AuthorizationHeaderMalformed', `the credential scope must be <day>/${region}/s3/aws4_request`];
  const amzDate = String(req.headers['x-amz-date'] ?? '');
  const t = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate);
  if (!t || amzDate.slice(0, 8) !== day) return ['AccessDenied', 'x-amz-date is missing, malformed or not the scope\'s day'];
  if (Math.abs(Date.UTC(+t[1]!, +t[2]! - 1, +t[3]!, +t[4]!, +t[5]!, +t[6]!) - now) > SKEW_MS) return ['RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.'];
  const payload = String(req.headers['x-amz-content-sha256'] ?? '');
  if (/^[0-9a-f]{64}$/.test(payload)) {
    if (createHash('sha256').update(body).digest('hex') !== payload) return ['XAmzContentSHA256Mismatch', 'The provided x-amz-content-sha256 header does not match what was computed.'];
  } else if (payload !== 'UNSIGNED-PAYLOAD') return ['InvalidRequest', `x-amz-content-sha256 "${payload}" is not supported here`];
  const signed = m[2]!.split(';');
  if (!signed.includes('host') || !signed.includes('x-amz-date') || !signed.includes('x-amz-content-sha256')) return ['AccessDenied', 'host, x-amz-date and x-amz-content-sha256 must be signed'];
  for (const h of Object.keys(req.headers)) if (h.startsWith('x-amz-') && !signed.includes(h)) return ['AccessDenied', `header ${h} is not signed`];
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const canonical = [
    req.method ?? 'GET',
    q < 0 ? url : url.slice(0, q),
    canonicalQuery(q < 0 ? '' : url.slice(q + 1)),
    signed.map((h) => `${h}:${String(req.headers[h] ?? '').trim().replace(/\s+/g, ' ')}\n`).join(''),
    signed.join(';'),
    payload,
  ].join('\n');
  const toSign = ['AWS4-HMAC-SHA256', amzDate, `${day}/${region}/s3/aws4_request`, createHash('sha256').update(canonical).digest('hex')].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${credentials.secretAccessKey}`, day!), region), 's3'), 'aws4_request');
  const expected = createHmac('sha256', key).update(toSign).digest();
  if (!timingSafeEqual(expected, Buffer.from(m[3]!, 'hex'))) return ['SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided.'];
  return undefined;
}

/**
 * The front serves ListObjectsV2 itself: s3rver makes continuation tokens with DES, which
 * OpenSSL 3 (Node 18+) refuses, and lists in its folder-walk order rather than S3's UTF-8 byte
 * order. It fetches the prefix's keys from s3rver's V1 listing (at most 1000: a larger prefix is
 * answered 501), sorts them by bytes and pages them, with the last key of a page (base64url) as
 * the continuation token.
 */
interface ListV2 {
  path: string;
  maxKeys: number;
  token: string | undefined;
  startAfter: string | undefined;
  after: string | undefined;
}

/** The most keys one emulated listing covers. */
const LIST_LIMIT = 1000;

function listV2Request(method: string | undefined, url: string): ListV2 | undefined {
  const u = new URL(url, 'http://x');
  if (method !== 'GET' || u.searchParams.get('list-type') !== '2' || /^\/[^/]+\/./.test(u.pathname)) return undefined;
  const token = u.searchParams.get('continuation-token') ?? undefined;
  const startAfter = u.searchParams.get('start-after') ?? undefined;
  const maxKeys = Math.min(1000, Math.max(1, Number(u.searchParams.get('max-keys') ?? 1000) || 1000));
  const q = new URLSearchParams({ 'max-keys': String(LIST_LIMIT) });
  const prefix = u.searchParams.get('prefix');
  if (prefix !== null) q.set('prefix', prefix);
  const after = token !== undefined ? Buffer.from(token, 'base64url').toString('utf8') : startAfter;
  return { path: `${u.pathname}?${q.toString()}`, maxKeys, token, startAfter, after };
}

/** The V2 page for `req` from s3rver's V1 listing of the whole prefix; undefined when that was truncated. */
function listV2Response(v1: string, req: ListV2): string | undefined {
  if (/<IsTruncated>true<\/IsTruncated>/.test(v1)) return undefined;
  const unescape = (t: string): string => t.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
  const keyOf = (c: string): Buffer => Buffer.from(unescape(/<Key>([\s\S]*?)<\/Key>/.exec(c)?.[1] ?? ''), 'utf8');
  const after = req.after === undefined ? undefined : Buffer.from(req.after, 'utf8');
  const all = (v1.match(/<Contents>[\s\S]*?<\/Contents>/g) ?? [])
    .map((c) => ({ c, key: keyOf(c) }))
    .filter((e) => after === undefined || Buffer.compare(e.key, after) > 0)
    .sort((a, b) => Buffer.compare(a.key, b.key));
  const page = all.slice(0, req.maxKeys);
  const truncated = all.length > page.length;
  const esc = (t: string): string => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const name = /<Name>([\s\S]*?)<\/Name>/.exec(v1)?.[1] ?? '';
  const prefix = /<Prefix>([\s\S]*?)<\/Prefix>/.exec(v1)?.[1] ?? '';
  return [
    '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
    `<Name>${name}</Name><Prefix>${prefix}</Prefix><KeyCount>${page.length}</KeyCount><MaxKeys>${req.maxKeys}</MaxKeys><IsTruncated>${truncated}</IsTruncated>`,
    req.token !== undefined ? `<ContinuationToken>${esc(req.token)}</ContinuationToken>` : '',
    req.startAfter !== undefined ? `<StartAfter>${esc(req.startAfter)}</StartAfter>` : '',
    truncated ? `<NextContinuationToken>${page[page.length - 1]!.key.toString('base64url')}</NextContinuationToken>` : '',
    ...page.map((e) => e.c),
    '</ListBucketResult>',
  ].join('');
}

export class S3Emulator {
  private s3rver: S3rverInstance | undefined;
  private backendPort = 0;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private dir: string | undefined;
  port = 0;
  /** Requests refused by the SigV4 check, by S3 error code. */
  readonly refused: Record<string, number> = {};

  constructor(readonly options: S3EmulatorOptions) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts s3rver and the verifying front; port 0 (the default) picks a free one. */
  async start(port = 0): Promise<this> {
    const S3rver = createRequire(import.meta.url)('@20minutes/s3rver') as S3rverClass;
    const directory = this.options.directory ?? (this.dir = await mkdtemp(join(tmpdir(), 'tandem-s3-')));
    this.s3rver = new S3rver({ port: 0, address: '127.0.0.1', silent: process.env['S3EMU_DEBUG'] === undefined, directory, configureBuckets: this.options.buckets.map((name) => ({ name, configs: [] })) });
    this.backendPort = (await this.s3rver.run()).port;
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, '127.0.0.1', resolve);
    });
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const problem = verifySigV4(req, body, this.options.region, this.options.credentials);
      if (problem !== undefined) {
        const [code, message] = problem;
        this.refused[code] = (this.refused[code] ?? 0) + 1;
        const status = code === 'InvalidRequest' || code === 'AuthorizationHeaderMalformed' || code === 'XAmzContentSHA256Mismatch' ? 400 : 403;
        res.writeHead(status, { 'content-type': 'application/xml' }).end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`);
        return;
      }
      const headers = { ...req.headers };
      delete headers.authorization;
      const v2 = listV2Request(req.method, req.url ?? '/');
      const forward = httpRequest({ host: '127.0.0.1', port: this.backendPort, method: req.method, path: v2?.path ?? req.url, headers }, (up) => {
        if (v2 === undefined || up.statusCode !== 200) {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
          return;
        }
        const parts: Buffer[] = [];
        up.on('data', (c: Buffer) => parts.push(c));
        up.on('end', () => {
          const xml = listV2Response(Buffer.concat(parts).toString('utf8'), v2) ?? `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NotImplemented</Code><Message>the emulator lists at most ${LIST_LIMIT} keys under one prefix</Message></Error>`;
          res.writeHead(xml.includes('<Error>') ? 501 : 200, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(xml) }).end(xml);
        });
      });
      forward.on('error', (error) => res.writeHead(502).end(String(error)));
      forward.end(body);
    });
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    await this.s3rver?.close();
    if (this.dir !== undefined) await rm(this.dir, { recursive: true, force: true });
  }
}
