import { createServer, type Server } from 'node:http';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Emulator } from '../../demo/emulators/s3.js';
import { createSource, createStore, SourceTooLargeError, validatePolicy, type InputSource, type SourceDecl, type StoreDecl } from '../../src/residency/index.js';
import { GcsFake } from '../fakes/gcs.js';
import { OssFake } from '../fakes/oss.js';

const S3_CREDS = { accessKeyId: 'AKIDSOURCES', secretAccessKey: 'sources-secret' };
const OSS_CREDS = { accessKeyId: 'OSSSOURCES', accessKeySecret: 'oss-sources-secret' };

/** Keys in byte order, with a space, a plus, a non-ASCII letter and a sibling that sorts between a folder's keys. */
const KEYS = ['in/a b.png', 'in/a+c.png', 'in/a-z.png', 'in/a/1.png', 'in/a/2.png', 'in/b.png', 'in/z/deep/x.png', 'in/é.png'];
const OUTSIDE = ['other/x.png', 'inx.png'];
const body = (key: string): Buffer => Buffer.from(`bytes of ${key}`);

let dir: string;
let s3: S3Emulator;
const gcs = new GcsFake('inputs-gcs');
const oss = new OssFake('inputs-oss', { [OSS_CREDS.accessKeyId]: OSS_CREDS.accessKeySecret });
let metadata: Server;

function storeDecl(value: Record<string, unknown>): StoreDecl {
  return validatePolicy({ version: 1, classes: {}, stores: { s: value } }).stores['s']!;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-sources-'));
  s3 = await new S3Emulator({ region: 'us-east-1', buckets: ['inputs'], credentials: S3_CREDS }).start();
  await gcs.start();
  await oss.start();
  // The GCS SDK must never ask a metadata server for credentials: any request lands here.
  metadata = createServer((_req, res) => res.writeHead(404).end());
  await new Promise<void>((r) => metadata.listen(0, '127.0.0.1', r));
  process.env['GCE_METADATA_HOST'] = `127.0.0.1:${(metadata.address() as AddressInfo).port}`;
  const s3Store = createStore('s3', storeDecl({ type: 's3', region: 'us-east-1', bucket: 'inputs', endpoint: s3.url, sse: 'none' }), { s3: { credentials: S3_CREDS } });
  const gcsStore = createStore('gcs', storeDecl({ type: 'gcs', region: 'europe-west3', bucket: 'inputs-gcs', apiEndpoint: gcs.url, projectId: 't' }));
  const ossStore = createStore('oss', storeDecl({ type: 'oss', region: 'cn-shanghai', bucket: 'inputs-oss', endpoint: oss.url, pathStyle: true, sse: 'none' }), { oss: { credentials: OSS_CREDS } });
  for (const key of [...KEYS, ...OUTSIDE]) {
    await Promise.all([s3Store.put(key, body(key)), gcsStore.put(key, body(key)), ossStore.put(key, body(key))]);
    await mkdir(dirname(join(dir, 'local', key)), { recursive: true });
    await writeFile(join(dir, 'local', key), body(key));
  }
  await Promise.all([s3Store.close(), gcsStore.close(), ossStore.close()]);
});

afterAll(async () => {
  await s3?.stop();
  await gcs.stop();
  await oss.stop();
  await new Promise((r) => metadata.close(r));
  await rm(dir, { recursive: true, force: true });
});

const kinds: Array<[string, () => InputSource]> = [
  ['local', () => createSource('in', { type: 'local', root: join(dir, 'local'), prefix: 'in/' })],
  ['s3', () => createSource('in', { type: 's3', bucket: 'inputs', region: 'us-east-1', endpoint: s3.url, prefix: 'in/' }, { s3: { credentials: S3_CREDS } })],
  ['gcs', () => createSource('in', { type: 'gcs', bucket: 'inputs-gcs', apiEndpoint: gcs.url, projectId: 't', prefix: 'in/' })],
  ['oss', () => createSource('in', { type: 'oss', bucket: 'inputs-oss', region: 'cn-shanghai', endpoint: oss.url, pathStyle: true, prefix: 'in/' }, { oss: { credentials: OSS_CREDS } })],
];

async function keysOf(source: InputSource, options: Parameters<InputSource['list']>[0] = {}): Promise<string[]> {
  const out: string[] = [];
  for await (const o of source.list(options)) out.push(o.key);
  return out;
}

describe.each(kinds)('%s source', (_kind, make) => {
  it('lists the keys under the prefix in byte order, page by page, and resumes after a key', async () => {
    const source = make();
    expect(await keysOf(source, { pageSize: 3 })).toEqual(KEYS);
    expect(await keysOf(source, { pageSize: 2, startAfter: 'in/a-z.png' })).toEqual(KEYS.slice(3));
    expect(await keysOf(source, { startAfter: 'in/a/2.png' })).toEqual(KEYS.slice(5));
    expect(await keysOf(source, { startAfter: 'in/é.png' })).toEqual([]);
    await source.close();
  });

  it('reads an object, refuses one over maxBytes, and reports a missing one as not found', async () => {
    const source = make();
    expect(Buffer.from(await source.read('in/é.png')).toString()).toBe('bytes of in/é.png');
    await expect(source.read('in/a b.png', { maxBytes: 5 })).rejects.toBeInstanceOf(SourceTooLargeError);
    await expect(source.read('in/missing.png')).rejects.toMatchObject({ code: 'STORE_NOT_FOUND' });
    await source.close();
  });
});

describe('the S3 emulator verifies SigV4', () => {
  it('refuses unsigned requests, a wrong secret and a tampered body; signed ones pass', async () => {
    const before = { ...s3.refused };
    expect((await fetch(`${s3.url}/inputs/in/b.png`)).status).toBe(403);
    const wrong = createSource('in', { type: 's3', bucket: 'inputs', region: 'us-east-1', endpoint: s3.url } satisfies SourceDecl, { s3: { credentials: { ...S3_CREDS, secretAccessKey: 'not-it' }, maxAttempts: 1 } });
    await expect(wrong.read('in/b.png')).rejects.toMatchObject({ code: 'STORE_AUTH', details: { sdkError: 'SignatureDoesNotMatch' } });
    const otherRegion = createSource('in', { type: 's3', bucket: 'inputs', region: 'eu-west-1', endpoint: s3.url }, { s3: { credentials: S3_CREDS, maxAttempts: 1 } });
    await expect(otherRegion.read('in/b.png')).rejects.toMatchObject({ code: 'STORE_REJECTED' });
    expect(s3.refused['AccessDenied']).toBe((before['AccessDenied'] ?? 0) + 1);
    expect(s3.refused['SignatureDoesNotMatch']).toBe((before['SignatureDoesNotMatch'] ?? 0) + 1);
    expect(s3.refused['AuthorizationHeaderMalformed']).toBe((before['AuthorizationHeaderMalformed'] ?? 0) + 1);
    await Promise.all([wrong.close(), otherRegion.close()]);
  });

  it('refuses a body that does not hash to the signed x-amz-content-sha256', async () => {
    const seen: string[] = [];
    // A relay that changes one byte of every PUT body after the SDK signed it.
    const relay = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const b = Buffer.concat(chunks);
        if (b.length > 0) b[0] = b[0]! ^ 1;
        const up = new URL(req.url ?? '/', s3.url);
        void fetch(up, { method: req.method, headers: req.headers as Record<string, string>, body: b.length > 0 ? b : undefined }).then(async (r) => {
          const text = await r.text();
          seen.push(text);
          res.writeHead(r.status, { 'content-type': 'application/xml' }).end(text);
        });
      });
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(relay.address() as AddressInfo).port}`;
      const store = createStore('s3', storeDecl({ type: 's3', region: 'us-east-1', bucket: 'inputs', endpoint: url, sse: 'none' }), { s3: { credentials: S3_CREDS, maxAttempts: 1 } });
      await expect(store.put('in/tampered.png', Buffer.from('payload'))).rejects.toMatchObject({ code: 'STORE_REJECTED' });
      expect(seen.join('')).toContain('XAmzContentSHA256Mismatch');
      await store.close();
    } finally {
      await new Promise((r) => relay.close(r));
    }
  });
});
