import { readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { resolveModelSource } from '../../cloud/sources.js';
import { CLS } from '../helpers/cloud.js';

/** Just enough of the Cloud Storage JSON API (list + media download) on loopback. */
async function fakeGcs(objects: Record<string, Buffer>): Promise<{ url: string; close: () => Promise<void>; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push(`${req.method} ${url.pathname}`);
    const list = /\/b\/([^/]+)\/o$/.exec(url.pathname);
    if (list) {
      const prefix = url.searchParams.get('prefix') ?? '';
      const items = Object.keys(objects).filter((n) => n.startsWith(prefix)).map((name) => ({ kind: 'storage#object', name, bucket: list[1], size: String(objects[name]?.length ?? 0) }));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'storage#objects', items }));
      return;
    }
    const get = /\/b\/([^/]+)\/o\/(.+)$/.exec(url.pathname);
    const name = get ? decodeURIComponent(get[2] ?? '') : '';
    const body = objects[name];
    if (get && body && url.searchParams.get('alt') === 'media') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body);
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 404, message: `no ${url.pathname}` } }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, requests, close: () => new Promise((r) => server.close(() => r())) };
}

describe('model sources', () => {
  it('a local directory is used as is', async () => {
    const s = await resolveModelSource('/opt/ml/model');
    expect(s.dir).toBe('/opt/ml/model');
  });

  it('AIP_STORAGE_URI-style gs:// prefixes are downloaded with @google-cloud/storage, packages and manifests intact', async () => {
    const cls = readFileSync(CLS);
    const gcs = await fakeGcs({
      'models/v1/cls.onnx': cls,
      'models/v1/pkg/model.onnx': cls,
      'models/v1/pkg/manifest.json': Buffer.from('{"name":"pkg"}'),
      'models/other/ignored.onnx': Buffer.from('x'),
    });
    try {
      const s = await resolveModelSource('gs://bucket/models/v1', { apiEndpoint: gcs.url, projectId: 'test' });
      try {
        expect(readdirSync(s.dir).sort()).toEqual(['cls.onnx', 'pkg']);
        expect(readFileSync(`${s.dir}/pkg/model.onnx`).equals(cls)).toBe(true);
        expect(readFileSync(`${s.dir}/pkg/manifest.json`, 'utf8')).toBe('{"name":"pkg"}');
      } finally {
        await s.cleanup();
      }
      expect(gcs.requests.some((r) => r.includes('ignored'))).toBe(false);
    } finally {
      await gcs.close();
    }
  });

  it('object names escaping the prefix are refused', async () => {
    const gcs = await fakeGcs({ 'm/../../etc/evil.onnx': Buffer.from('x') });
    try {
      await expect(resolveModelSource('gs://bucket/m', { apiEndpoint: gcs.url, projectId: 'test' })).rejects.toMatchObject({ code: 'CLOUD_MODELS_SOURCE', status: 500, message: expect.stringMatching(/outside/) as unknown });
    } finally {
      await gcs.close();
    }
  });
});
