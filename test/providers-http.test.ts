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

describe('answers the client must not trust', () => {
  it('an announced Content-Length past the limit fails the call before anything is allocated for it', async () => {
    // A raw socket: node:http would not send a length it cannot back with bytes.
    const { createServer: createNetServer } = await import('node:net');
    const raw = createNetServer((socket) => {
      socket.on('data', () => socket.write('HTTP/1.1 200 OK\r\ncontent-length: 8589934592\r\n\r\n0123456789'));
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
    const before = process.memoryUsage().arrayBuffers;
    const scope = callScope({ deadline: Date.now() + 5_000 });
    try {
      const error = await post('e', `http://127.0.0.1:${(raw.address() as AddressInfo).port}/x`, {}, new Uint8Array(10), scope).then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(ProviderError);
      expect(error).toMatchObject({ code: 'PROVIDER_RESPONSE', retryable: false });
      expect((error as Error).message).toMatch(/8589934592 bytes .* exceeds/);
      expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * 1024 * 1024);
    } finally {
      scope.dispose();
      await new Promise<void>((resolve) => raw.close(() => resolve()));
    }
  });

  it('a compute time that is not a number counts as unreported', async () => {
    const { httpInferResponse } = await import('../src/providers/payload.js');
    const { encodeTensorMap } = await import('../src/codec/index.js');
    const body = encodeTensorMap({ y: { dtype: 'float32', dims: [1], data: new Float32Array([1]) } }, { meta: { computeMs: '3' } });
    for (const [header, want] of [['n/a', 3], ['-50', 3], ['', 3], ['4', 4]] as const) {
      const marks = { start: 0, encoded: 1, received: 11 };
      const r = httpInferResponse('e', { headers: new Headers({ 'x-tandem-compute-ms': header }), body }, 10, marks);
      expect(r.timing.remoteMs, header).toBe(want);
      expect(r.timing.networkMs).toBe(10 - want);
    }
  });
});
