import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, rm, stat, writeFile, readdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnvelopeError, StoreError } from '../../src/residency/errors.js';
import { LocalKeyFile, seal, sealedMeta, unseal } from '../../src/residency/envelope.js';
import { validatePolicy, type StoreDecl } from '../../src/residency/policy.js';
import { createStore, resultKey, type ResultStore } from '../../src/residency/stores/index.js';
import { GcsFake } from '../fakes/gcs.js';
import { OssFake } from '../fakes/oss.js';

const S3rver = createRequire(import.meta.url)('@20minutes/s3rver');

let dir: string;
let s3rver: any;
let s3Url: string;
const oss = new OssFake('results-cn', { AKID: 'right-secret' });
const gcs = new GcsFake('results-eu');
let metadataHits = 0;
let metadataServer: Server;

function decl(value: Record<string, unknown>): StoreDecl {
  const p = validatePolicy({ version: 1, classes: {}, stores: { s: value } });
  return p.stores['s']!;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-stores-'));
  s3rver = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: join(dir, 's3rver'), configureBuckets: [{ name: 'results-us', configs: [] }] });
  const addr = await s3rver.run();
  s3Url = `http://127.0.0.1:${addr.port}`;
  await oss.start();
  await gcs.start();
  // Any request the GCS SDK makes to a metadata server lands here and fails the test.
  metadataServer = createServer((req, res) => {
    metadataHits++;
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => metadataServer.listen(0, '127.0.0.1', r));
  process.env['GCE_METADATA_HOST'] = `127.0.0.1:${(metadataServer.address() as AddressInfo).port}`;
  process.env['GCE_METADATA_IP'] = process.env['GCE_METADATA_HOST'];
});

afterAll(async () => {
  await s3rver?.close();
  await oss.stop();
  await gcs.stop();
  await new Promise((r) => metadataServer.close(r));
  await rm(dir, { recursive: true, force: true });
});

const s3Creds = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

const backends: Array<[string, () => ResultStore]> = [
  ['local', () => createStore('local-eu', decl({ type: 'local', region: 'eu-central-1', root: join(dir, 'eu-central-1') }))],
  ['s3', () => createStore('s3-us', decl({ type: 's3', region: 'us-east-2', bucket: 'results-us', endpoint: s3Url, forcePathStyle: true }), { s3: { credentials: s3Creds } })],
  ['gcs', () => createStore('gcs-eu', decl({ type: 'gcs', region: 'europe-west3', bucket: 'results-eu', apiEndpoint: gcs.url, projectId: 'test' }))],
  ['oss', () => createStore('oss-cn', decl({ type: 'oss', region: 'cn-shanghai', bucket: 'results-cn', endpoint: oss.url, pathStyle: true, prefix: 'tandem/' }), { oss: { credentials: { accessKeyId: 'AKID', accessKeySecret: 'right-secret' } } })],
];

describe.each(backends)('%s store', (kind, make) => {
  it('puts, heads and gets an object with its metadata; a retried put leaves one object', async () => {
    const store = make();
    const key = resultKey(`req-${kind}-1`);
    const body = Buffer.from(`result of ${kind}`);
    expect(await store.exists(key)).toBe(false);
    expect(await store.head(key)).toBeUndefined();
    await store.put(key, body, { contentType: 'application/octet-stream', metadata: { dataclass: 'c1', requestid: 'r1' } });
    await store.put(key, body, { contentType: 'application/octet-stream', metadata: { dataclass: 'c1', requestid: 'r1' } });
    expect(await store.exists(key)).toBe(true);
    const info = await store.head(key);
    expect(info?.size).toBe(body.length);
    expect(info?.metadata).toMatchObject({ dataclass: 'c1', requestid: 'r1' });
    const got = await store.get(key);
    expect(Buffer.from(got.body).toString()).toBe(`result of ${kind}`);
    expect(got.metadata).toMatchObject({ dataclass: 'c1' });
    const missing = await store.get(resultKey('never-written')).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(StoreError);
    expect((missing as StoreError).code).toBe('STORE_NOT_FOUND');
    await store.close();
  });
});

describe('store specifics', () => {
  it('keys depend only on the request id', () => {
    expect(resultKey('abc')).toBe(resultKey('abc'));
    expect(resultKey('abc')).not.toBe(resultKey('abd'));
    expect(resultKey('a/../../etc', 'p/')).toMatch(/^p\/[0-9a-f]{2}\/[0-9a-f]{64}\.tde$/);
  });

  it('local store writes atomically under its region root and leaves no temp files', async () => {
    const root = join(dir, 'local-atomic');
    const store = createStore('l', decl({ type: 'local', region: 'cn-shanghai', root }));
    const keys = Array.from({ length: 20 }, (_, i) => resultKey(`r${i}`));
    await Promise.all(keys.map((k) => store.put(k, Buffer.alloc(1000, 7))));
    const names = (await readdir(root, { recursive: true })) as string[];
    expect(names.filter((n) => n.includes('.tmp-'))).toEqual([]);
    expect(names.filter((n) => n.endsWith('.tde'))).toHaveLength(20);
    await expect(store.put('../escape', Buffer.from('x'))).rejects.toMatchObject({ code: 'STORE_REJECTED' });
  });

  it('s3rver verifies SigV4: a wrong secret and an unknown key id are refused as auth errors', async () => {
    const wrong = createStore('s3-bad', decl({ type: 's3', region: 'us-east-2', bucket: 'results-us', endpoint: s3Url }), { s3: { credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'not-the-secret' }, maxAttempts: 1 } });
    const e1 = await wrong.put(resultKey('x'), Buffer.from('x')).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(StoreError);
    expect(e1).toMatchObject({ code: 'STORE_AUTH', retryable: false, details: { sdkError: 'SignatureDoesNotMatch' } });
    const unknown = createStore('s3-bad', decl({ type: 's3', region: 'us-east-2', bucket: 'results-us', endpoint: s3Url }), { s3: { credentials: { accessKeyId: 'NOBODY', secretAccessKey: 'x' }, maxAttempts: 1 } });
    await expect(unknown.put(resultKey('x'), Buffer.from('x'))).rejects.toMatchObject({ code: 'STORE_AUTH', details: { sdkError: 'InvalidAccessKeyId' } });
    expect(await createStore('s3', decl({ type: 's3', region: 'us-east-2', bucket: 'results-us', endpoint: s3Url }), { s3: { credentials: s3Creds } }).exists(resultKey('x'))).toBe(false);
  });

  it('s3 and oss send the declared server-side encryption headers', async () => {
    const seen: Array<Record<string, unknown>> = [];
    const capture = createServer((req, res) => {
      seen.push(req.headers);
      req.resume();
      req.on('end', () => res.writeHead(200, { etag: '"x"' }).end());
    });
    await new Promise<void>((r) => capture.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(capture.address() as AddressInfo).port}`;
    try {
      await createStore('s3', decl({ type: 's3', region: 'us-east-2', bucket: 'b-1', endpoint: url, sse: 'aws:kms', kmsKeyId: 'alias/phi' }), { s3: { credentials: s3Creds } }).put('k/1', Buffer.from('x'));
      await createStore('s3', decl({ type: 's3', region: 'us-east-2', bucket: 'b-1', endpoint: url }), { s3: { credentials: s3Creds } }).put('k/2', Buffer.from('x'));
      await createStore('s3', decl({ type: 's3', region: 'us-east-2', bucket: 'b-1', endpoint: url, sse: 'none' }), { s3: { credentials: s3Creds } }).put('k/3', Buffer.from('x'));
    } finally {
      await new Promise((r) => capture.close(r));
    }
    expect(seen.map((h) => [h['x-amz-server-side-encryption'], h['x-amz-server-side-encryption-aws-kms-key-id']])).toEqual([
      ['aws:kms', 'alias/phi'],
      ['AES256', undefined],
      [undefined, undefined],
    ]);
    expect(String(seen[0]!['authorization'])).toMatch(/^AWS4-HMAC-SHA256 Credential=S3RVER\/\d{8}\/us-east-2\/s3\/aws4_request/);
  });

  it('s3 takes credentials from the default chain (environment) when none are passed', async () => {
    const saved = { id: process.env['AWS_ACCESS_KEY_ID'], secret: process.env['AWS_SECRET_ACCESS_KEY'] };
    process.env['AWS_ACCESS_KEY_ID'] = 'S3RVER';
    process.env['AWS_SECRET_ACCESS_KEY'] = 'S3RVER';
    try {
      const store = createStore('s3-env', decl({ type: 's3', region: 'us-east-2', bucket: 'results-us', endpoint: s3Url }));
      await store.put(resultKey('env-chain'), Buffer.from('e'));
      expect(await store.exists(resultKey('env-chain'))).toBe(true);
      process.env['AWS_SECRET_ACCESS_KEY'] = 'wrong';
      const wrong = createStore('s3-env', decl({ type: 's3', region: 'us-east-2', bucket: 'results-us', endpoint: s3Url }), { s3: { maxAttempts: 1 } });
      await expect(wrong.put(resultKey('env-chain'), Buffer.from('e'))).rejects.toMatchObject({ code: 'STORE_AUTH' });
    } finally {
      if (saved.id === undefined) delete process.env['AWS_ACCESS_KEY_ID'];
      else process.env['AWS_ACCESS_KEY_ID'] = saved.id;
      if (saved.secret === undefined) delete process.env['AWS_SECRET_ACCESS_KEY'];
      else process.env['AWS_SECRET_ACCESS_KEY'] = saved.secret;
    }
  });

  it('s3: a missing bucket is a configuration error, an unreachable endpoint is retryable', async () => {
    const nob = createStore('s3', decl({ type: 's3', region: 'us-east-2', bucket: 'no-such-bucket', endpoint: s3Url }), { s3: { credentials: s3Creds, maxAttempts: 1 } });
    await expect(nob.put(resultKey('x'), Buffer.from('x'))).rejects.toMatchObject({ code: 'STORE_CONFIG' });
    const dead = createStore('s3', decl({ type: 's3', region: 'us-east-2', bucket: 'results-us', endpoint: 'http://127.0.0.1:9' }), { s3: { credentials: s3Creds, maxAttempts: 1 } });
    await expect(dead.put(resultKey('x'), Buffer.from('x'))).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: true });
  });

  it('oss: requests are path-style, signed (a wrong secret is refused) and carry SSE', async () => {
    const key = resultKey('oss-sse');
    const good = createStore('oss', decl({ type: 'oss', region: 'cn-shanghai', bucket: 'results-cn', endpoint: oss.url, pathStyle: true }), { oss: { credentials: { accessKeyId: 'AKID', accessKeySecret: 'right-secret' } } });
    await good.put(key, Buffer.from('x'));
    const put = oss.log.filter((r) => r.method === 'PUT').at(-1)!;
    expect(put.url).toBe(`/results-cn/${key}`);
    expect(put.status).toBe(200);
    expect(oss.objects.get(key)?.sse).toBe('AES256');
    const bad = createStore('oss', decl({ type: 'oss', region: 'cn-shanghai', bucket: 'results-cn', endpoint: oss.url, pathStyle: true }), { oss: { credentials: { accessKeyId: 'AKID', accessKeySecret: 'wrong' } } });
    await expect(bad.put(key, Buffer.from('y'))).rejects.toMatchObject({ code: 'STORE_AUTH', details: { sdkError: 'SignatureDoesNotMatch' } });
    expect(oss.log.at(-1)?.problem).toMatch(/SignatureDoesNotMatch/);
    const none = createStore('oss', decl({ type: 'oss', region: 'cn-shanghai', bucket: 'results-cn', endpoint: oss.url }), { oss: { env: {} } });
    await expect(none.put(key, Buffer.from('y'))).rejects.toMatchObject({ code: 'STORE_AUTH' });
    const fromEnv = createStore('oss', decl({ type: 'oss', region: 'cn-shanghai', bucket: 'results-cn', endpoint: oss.url, pathStyle: true }), { oss: { env: { ALIBABA_CLOUD_ACCESS_KEY_ID: 'AKID', ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'right-secret' } } });
    expect(await fromEnv.exists(key)).toBe(true);
  });

  it('gcs: uses the loopback apiEndpoint without any metadata-server lookup; an outage is retryable', async () => {
    const store = createStore('gcs', decl({ type: 'gcs', region: 'europe-west3', bucket: 'results-eu', apiEndpoint: gcs.url }));
    await store.put(resultKey('g1'), Buffer.from('g'), { metadata: { a: 'b' } });
    expect(gcs.log.some((r) => r.url.startsWith('/upload/storage/v1/b/results-eu/o?') && r.status === 200)).toBe(true);
    expect(gcs.log.every((r) => r.headers.authorization === undefined)).toBe(true);
    expect(metadataHits).toBe(0);
    gcs.down = true;
    try {
      await expect(store.put(resultKey('g2'), Buffer.from('g'))).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: true });
    } finally {
      gcs.down = false;
    }
    gcs.token = 'secret-token';
    try {
      await expect(store.put(resultKey('g3'), Buffer.from('g'))).rejects.toMatchObject({ code: 'STORE_AUTH' });
    } finally {
      gcs.token = undefined;
    }
  });
});

describe('envelope encryption', () => {
  it('round-trips, binds the object key and metadata, and refuses another key', async () => {
    const keys = await LocalKeyFile.open(join(dir, 'kek'), { create: true });
    expect((await stat(join(dir, 'kek'))).mode & 0o777).toBe(0o600);
    const again = await LocalKeyFile.open(join(dir, 'kek'));
    expect(again.keyId).toBe(keys.keyId);
    const sealed = await seal(keys, 'k/1', Buffer.from('secret result'), { dataclass: 'phi' });
    expect(Buffer.from(sealed).includes(Buffer.from('secret result'))).toBe(false);
    expect(sealedMeta(sealed)).toEqual({ dataclass: 'phi' });
    const opened = await unseal(again, 'k/1', sealed);
    expect(Buffer.from(opened.plaintext).toString()).toBe('secret result');
    await expect(unseal(keys, 'k/2', sealed)).rejects.toMatchObject({ code: 'ENVELOPE_CORRUPT' });
    const tampered = Buffer.from(sealed);
    tampered[tampered.length - 1]! ^= 1;
    await expect(unseal(keys, 'k/1', tampered)).rejects.toMatchObject({ code: 'ENVELOPE_CORRUPT' });
    const other = LocalKeyFile.fromBytes(Buffer.alloc(32, 1));
    await expect(unseal(other, 'k/1', sealed)).rejects.toMatchObject({ code: 'ENVELOPE_KEY' });
    await writeFile(join(dir, 'badkey'), 'short');
    await expect(LocalKeyFile.open(join(dir, 'badkey'))).rejects.toBeInstanceOf(EnvelopeError);
    await expect(LocalKeyFile.open(join(dir, 'nokey'))).rejects.toMatchObject({ code: 'ENVELOPE_KEY' });
    expect((await readFile(join(dir, 'kek'), 'utf8')).trim()).toMatch(/^[0-9a-f]{64}$/);
  });
});
