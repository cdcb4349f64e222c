/**
 * A loopback fake of the OSS routes ali-oss uses (PutObject, GetObject, HeadObject, and
 * ListObjectsV2 for batch inputs) that checks what the SDK sends: path-style URLs (`/bucket/key`, as with `sldEnable: true`), an OSS
 * V1 signature recomputed from the request and the secret, Content-MD5 when present, and only
 * valid server-side-encryption values.
 */
import { createHash, createHmac, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FakeServer } from './fake-server.js';

export class OssFake extends FakeServer {
  constructor(
    readonly bucket: string,
    private readonly keys: Record<string, string>,
  ) {
    super();
  }

  private error(req: IncomingMessage, res: ServerResponse, status: number, code: string, message: string): void {
    const id = randomUUID();
    const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n  <Code>${code}</Code>\n  <Message>${message}</Message>\n  <RequestId>${id}</RequestId>\n  <HostId>127.0.0.1</HostId>\n</Error>\n`;
    this.reply(req, res, status, { 'content-type': 'application/xml', 'x-oss-request-id': id }, xml, `${code}: ${message}`);
  }

  /** ListObjectsV2: keys in byte order under `prefix`, after `start-after` or the continuation token. */
  private list(req: IncomingMessage, res: ServerResponse, q: URLSearchParams): void {
    const prefix = q.get('prefix') ?? '';
    const max = Math.min(1000, Math.max(1, Number(q.get('max-keys') ?? 100) || 100));
    const token = q.get('continuation-token');
    const after = token !== null ? Buffer.from(token, 'base64url').toString('utf8') : (q.get('start-after') ?? '');
    const keys = [...this.objects.keys()].filter((k) => k.startsWith(prefix) && Buffer.compare(Buffer.from(k), Buffer.from(after)) > 0).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    const page = keys.slice(0, max);
    const truncated = keys.length > max;
    const esc = (t: string): string => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
    const contents = page.map((k) => `<Contents><Key>${esc(k)}</Key><Size>${this.objects.get(k)!.body.length}</Size><ETag>"x"</ETag><Type>Normal</Type><StorageClass>Standard</StorageClass></Contents>`).join('');
    const next = truncated ? `<NextContinuationToken>${Buffer.from(page[page.length - 1]!).toString('base64url')}</NextContinuationToken>` : '';
    const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult><Name>${this.bucket}</Name><Prefix>${esc(prefix)}</Prefix><MaxKeys>${max}</MaxKeys><KeyCount>${page.length}</KeyCount><IsTruncated>${truncated}</IsTruncated>${next}${contents}</ListBucketResult>`;
    this.reply(req, res, 200, { 'content-type': 'application/xml', 'x-oss-request-id': randomUUID() }, xml);
  }

  protected handle(req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    // Path-style: the bucket is the first path segment. (For an IP endpoint ali-oss also sends a
    // virtual-host Host header, meant for an OSS-facing proxy; it must name the same bucket.)
    const parts = url.pathname.split('/');
    if (parts[1] !== this.bucket) return this.error(req, res, 404, 'NoSuchBucket', `expected a path-style request for /${this.bucket}/..., got ${url.pathname}`);
    const host = req.headers.host ?? '';
    if (/^[a-z0-9-]+\.oss-/.test(host) && !host.startsWith(`${this.bucket}.oss-`)) return this.error(req, res, 400, 'InvalidRequest', `Host ${host} names another bucket`);
    const key = decodeURIComponent(parts.slice(2).join('/'));
    const listing = key === '' && req.method === 'GET' && url.searchParams.get('list-type') === '2';
    if (key === '' && !listing) return this.error(req, res, 400, 'InvalidObjectName', 'no object name');

    // OSS V1: "OSS id:base64(hmac-sha1(secret, VERB\nMD5\nType\nDate\n[x-oss-* lines\n]/bucket/key))".
    const auth = req.headers.authorization ?? '';
    const m = /^OSS ([^:]+):(.+)$/.exec(auth);
    if (!m) return this.error(req, res, 403, 'AccessDenied', 'missing OSS V1 Authorization header');
    const secret = this.keys[m[1]!];
    if (secret === undefined) return this.error(req, res, 403, 'InvalidAccessKeyId', 'The OSS Access Key Id you provided does not exist in our records.');
    const date = (req.headers['x-oss-date'] as string | undefined) ?? req.headers.date ?? '';
    if (date === '' || Math.abs(Date.parse(date) - Date.now()) > 15 * 60_000) return this.error(req, res, 403, 'RequestTimeTooSkewed', 'missing or skewed date');
    const ossHeaders = Object.keys(req.headers)
      .filter((h) => h.startsWith('x-oss-'))
      .sort()
      .map((h) => `${h}:${String(req.headers[h]).trim()}`);
    // A listing signs the bucket and its continuation-token sub-resource, when it has one.
    const token = url.searchParams.get('continuation-token');
    const resource = listing ? `/${this.bucket}/${token === null ? '' : `?continuation-token=${token}`}` : `/${this.bucket}/${key}`;
    const stringToSign = [req.method, req.headers['content-md5'] ?? '', req.headers['content-type'] ?? '', date, ...ossHeaders, resource].join('\n');
    const expected = createHmac('sha1', secret).update(stringToSign, 'utf8').digest('base64');
    if (expected !== m[2]) return this.error(req, res, 403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided.');

    if (listing) return this.list(req, res, url.searchParams);
    switch (req.method) {
      case 'PUT': {
        const md5 = req.headers['content-md5'];
        if (md5 !== undefined && createHash('md5').update(body).digest('base64') !== md5) return this.error(req, res, 400, 'InvalidDigest', 'Content-MD5 does not match the body');
        const sse = req.headers['x-oss-server-side-encryption'] as string | undefined;
        if (sse !== undefined && !['AES256', 'KMS', 'SM4'].includes(sse)) return this.error(req, res, 400, 'InvalidEncryptionAlgorithmError', `bad SSE ${sse}`);
        const metadata: Record<string, string> = {};
        for (const [h, v] of Object.entries(req.headers)) if (h.startsWith('x-oss-meta-')) metadata[h.slice(11)] = String(v);
        const prior = this.objects.get(key);
        this.objects.set(key, { body, contentType: String(req.headers['content-type'] ?? ''), metadata, sse, writes: (prior?.writes ?? 0) + 1 });
        const etag = `"${createHash('md5').update(body).digest('hex').toUpperCase()}"`;
        return this.reply(req, res, 200, { etag, 'x-oss-request-id': randomUUID(), ...(sse ? { 'x-oss-server-side-encryption': sse } : {}) });
      }
      case 'GET':
      case 'HEAD': {
        const obj = this.objects.get(key);
        if (!obj) return this.error(req, res, 404, 'NoSuchKey', 'The specified key does not exist.');
        const headers: Record<string, string | number> = {
          'content-type': obj.contentType,
          'content-length': obj.body.length,
          etag: `"${createHash('md5').update(obj.body).digest('hex').toUpperCase()}"`,
          'x-oss-request-id': randomUUID(),
        };
        if (obj.sse) headers['x-oss-server-side-encryption'] = obj.sse;
        for (const [k, v] of Object.entries(obj.metadata)) headers[`x-oss-meta-${k}`] = v;
        return this.reply(req, res, 200, headers, obj.body);
      }
      default:
        return this.error(req, res, 405, 'MethodNotAllowed', `${req.method} is not supported by the fake`);
    }
  }
}
