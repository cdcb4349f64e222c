import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { callScope } from '../src/providers/deadline.js';
import { ProviderError } from '../src/providers/errors.js';
import { post } from '../src/providers/http.js';

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

async function serve(handler: Parameters<typeof createServer>[1]): Promise<{ url: string; connections: () => number }> {
  let connections = 0;
  server = createServer(handler);
  server.on('connection', () => { connections += 1; });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/x`, connections: () => connections };
}

describe('the plain-HTTP transport of the EAS and OIP clients', () => {
  it('sends the body with its length, reads announced and chunked answers whole, and reuses one connection', async () => {
    const seen: { length: string | undefined; bytes: number }[] = [];
    const { url, connections } = await serve((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        seen.push({ length: req.headers['content-length'], bytes: body.byteLength });
        const answer = Buffer.alloc(200_000, 7);
        answer[0] = body[0] ?? 0;
        if (req.headers['x-chunked']) {
          res.writeHead(200, { 'x-tandem-compute-ms': '1.5' });
          res.write(answer.subarray(0, 70_000));
          setTimeout(() => res.end(answer.subarray(70_000)), 5);
        } else {
          res.writeHead(200, { 'content-length': answer.byteLength, 'x-tandem-compute-ms': '2.5' }).end(answer);
        }
      });
    });
    const body = new Uint8Array(300_000).fill(3);
    body[0] = 42;
    const scope = callScope();
    const a = await post('e', url, { 'content-type': 'application/octet-stream' }, body, scope);
    const b = await post('e', url, { 'x-chunked': '1' }, body, scope);
    scope.dispose();
    expect(seen).toEqual([{ length: '300000', bytes: 300_000 }, { length: '300000', bytes: 300_000 }]);
    for (const r of [a, b]) {
      expect(r.status).toBe(200);
      expect(r.body.byteLength).toBe(200_000);
      expect(r.body[0]).toBe(42);
      expect(r.body[199_999]).toBe(7);
    }
    expect(a.headers.get('x-tandem-compute-ms')).toBe('2.5');
    expect(b.headers.get('X-Tandem-Compute-Ms')).toBe('1.5');
    expect(connections()).toBe(1);
  });

  it('an answer cut short is a retryable network error, a non-2xx answer a classified one', async () => {
    const { url } = await serve((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.headers['x-fail']) {
          res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'CLOUD_DRAINING', message: 'shutting down' }));
          return;
        }
        res.writeHead(200, { 'content-length': 1000 });
        res.write(Buffer.alloc(100));
        setTimeout(() => res.destroy(), 5);
      });
    });
    const scope = callScope();
    const cut = await post('e', url, {}, new Uint8Array(10), scope).then(() => undefined, (e: unknown) => e);
    expect(cut).toBeInstanceOf(ProviderError);
    expect((cut as ProviderError).code).toBe('PROVIDER_NETWORK');
    expect((cut as ProviderError).retryable).toBe(true);
    const refused = await post('e', url, { 'x-fail': '1' }, new Uint8Array(10), scope).then(() => undefined, (e: unknown) => e);
    expect((refused as ProviderError).code).toBe('PROVIDER_UNAVAILABLE');
    expect((refused as ProviderError).message).toContain('shutting down');
    scope.dispose();
  });
});
