/**
 * A loopback fake of the GCS JSON API routes @google-cloud/storage uses for a non-resumable
 * upload (`POST /upload/storage/v1/b/B/o?uploadType=multipart`, a multipart/related body of JSON
 * metadata then media), a download (`GET /storage/v1/b/B/o/NAME?alt=media`, answered with
 * `x-goog-hash` so the SDK validates the MD5), object metadata (`GET /storage/v1/b/B/o/NAME`) and
 * the object listing batch inputs use (`GET /storage/v1/b/B/o?prefix=&startOffset=&pageToken=`).
 * It checks the multipart framing, that the name in the query and the metadata agree, and the
 * declared media content type; an optional bearer token is required when set.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FakeServer } from './fake-server.js';

interface Part {
  headers: Record<string, string>;
  body: Buffer;
}

function parseMultipart(body: Buffer, boundary: string): Part[] | undefined {
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: Part[] = [];
  let pos = body.indexOf(delimiter);
  if (pos < 0) return undefined;
  for (;;) {
    pos += delimiter.length;
    if (body.subarray(pos, pos + 2).toString() === '--') return parts;
    if (body.subarray(pos, pos + 2).toString() !== '\r\n') return undefined;
    pos += 2;
    const headerEnd = body.indexOf('\r\n\r\n', pos);
    if (headerEnd < 0) return undefined;
    const headers: Record<string, string> = {};
    for (const line of body.subarray(pos, headerEnd).toString('utf8').split('\r\n')) {
      const i = line.indexOf(':');
      if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]), headerEnd + 4);
    if (next < 0) return undefined;
    parts.push({ headers, body: body.subarray(headerEnd + 4, next) });
    pos = next + 2;
  }
}

export class GcsFake extends FakeServer {
  /** When set, requests must carry `Authorization: Bearer <token>`. */
  token: string | undefined;

  constructor(readonly bucket: string) {
    super();
  }

  private error(req: IncomingMessage, res: ServerResponse, code: number, reason: string, message: string): void {
    this.reply(req, res, code, { 'content-type': 'application/json' }, JSON.stringify({ error: { code, message, errors: [{ reason, message, domain: 'global' }] } }), `${reason}: ${message}`);
  }

  private resource(name: string): Record<string, unknown> {
    const obj = this.objects.get(name)!;
    return {
      kind: 'storage#object',
      name,
      bucket: this.bucket,
      size: String(obj.body.length),
      contentType: obj.contentType,
      md5Hash: createHash('md5').update(obj.body).digest('base64'),
      generation: String(obj.writes),
      metageneration: '1',
      metadata: obj.metadata,
    };
  }

  protected handle(req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    if (this.token !== undefined && req.headers.authorization !== `Bearer ${this.token}`) return this.error(req, res, 401, 'required', 'Anonymous caller does not have storage.objects access.');
    const url = new URL(req.url ?? '/', 'http://x');
    const upload = /^\/upload\/storage\/v1\/b\/([^/]+)\/o$/.exec(url.pathname);
    const object = /^\/storage\/v1\/b\/([^/]+)\/o\/(.+)$/.exec(url.pathname);
    if (upload && req.method === 'POST') {
      if (upload[1] !== this.bucket) return this.error(req, res, 404, 'notFound', 'The specified bucket does not exist.');
      if (url.searchParams.get('uploadType') !== 'multipart') return this.error(req, res, 400, 'invalid', 'the fake only supports uploadType=multipart');
      const type = req.headers['content-type'] ?? '';
      const boundary = /^multipart\/related;\s*boundary=("?)([^";]+)\1/.exec(type)?.[2];
      if (boundary === undefined) return this.error(req, res, 400, 'invalid', `expected multipart/related, got ${type}`);
      const parts = parseMultipart(body, boundary);
      if (parts?.length !== 2) return this.error(req, res, 400, 'invalid', 'expected two parts: metadata and media');
      const [metaPart, media] = parts as [Part, Part];
      if (!metaPart.headers['content-type']?.startsWith('application/json')) return this.error(req, res, 400, 'invalid', 'first part must be the JSON metadata');
      let meta: { name?: string; contentType?: string; metadata?: Record<string, string> };
      try {
        meta = JSON.parse(metaPart.body.toString('utf8')) as typeof meta;
      } catch {
        return this.error(req, res, 400, 'parseError', 'metadata part is not JSON');
      }
      const name = url.searchParams.get('name') ?? meta.name;
      if (!name || (meta.name !== undefined && meta.name !== name)) return this.error(req, res, 400, 'invalid', 'object name missing or inconsistent');
      if (meta.contentType !== undefined && media.headers['content-type'] !== meta.contentType) return this.error(req, res, 400, 'invalid', 'media content type disagrees with the metadata');
      const prior = this.objects.get(name);
      this.objects.set(name, { body: Buffer.from(media.body), contentType: meta.contentType ?? media.headers['content-type'] ?? 'application/octet-stream', metadata: meta.metadata ?? {}, sse: url.searchParams.get('kmsKeyName') ?? 'google-managed', writes: (prior?.writes ?? 0) + 1 });
      return this.reply(req, res, 200, { 'content-type': 'application/json' }, JSON.stringify(this.resource(name)));
    }
    const listing = /^\/storage\/v1\/b\/([^/]+)\/o$/.exec(url.pathname);
    if (listing && req.method === 'GET') {
      if (listing[1] !== this.bucket) return this.error(req, res, 404, 'notFound', 'The specified bucket does not exist.');
      const q = url.searchParams;
      const prefix = q.get('prefix') ?? '';
      const max = Math.min(1000, Math.max(1, Number(q.get('maxResults') ?? 1000) || 1000));
      const token = q.get('pageToken');
      const byBytes = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));
      // startOffset is inclusive; the page token is the last name of the previous page (exclusive).
      const from = q.get('startOffset');
      const after = token === null ? undefined : Buffer.from(token, 'base64url').toString('utf8');
      const names = [...this.objects.keys()]
        .filter((n) => n.startsWith(prefix) && (from === null || byBytes(n, from) >= 0) && (after === undefined || byBytes(n, after) > 0))
        .sort(byBytes);
      const page = names.slice(0, max);
      const body = { kind: 'storage#objects', items: page.map((n) => this.resource(n)), ...(names.length > max ? { nextPageToken: Buffer.from(page[page.length - 1]!).toString('base64url') } : {}) };
      return this.reply(req, res, 200, { 'content-type': 'application/json' }, JSON.stringify(body));
    }
    if (object && req.method === 'GET') {
      if (object[1] !== this.bucket) return this.error(req, res, 404, 'notFound', 'The specified bucket does not exist.');
      const name = decodeURIComponent(object[2]!);
      const obj = this.objects.get(name);
      if (!obj) return this.error(req, res, 404, 'notFound', `No such object: ${this.bucket}/${name}`);
      if (url.searchParams.get('alt') === 'media') {
        return this.reply(
          req,
          res,
          200,
          {
            'content-type': obj.contentType,
            'content-length': obj.body.length,
            'x-goog-hash': `md5=${createHash('md5').update(obj.body).digest('base64')}`,
            'x-goog-stored-content-encoding': 'identity',
            'x-goog-generation': obj.writes,
          },
          obj.body,
        );
      }
      return this.reply(req, res, 200, { 'content-type': 'application/json' }, JSON.stringify(this.resource(name)));
    }
    return this.error(req, res, 404, 'notFound', `no route ${req.method} ${url.pathname}`);
  }
}
