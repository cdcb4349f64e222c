import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { callScope } from '../../src/providers/deadline.js';
import { errorForStatus, MAX_RETRY_AFTER_MS, parseHttpDate, parseRetryAfter, ProviderError, retryAfterOf } from '../../src/providers/errors.js';
import { post } from '../../src/providers/http.js';

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
    const { httpInferResponse } = await import('../../src/providers/payload.js');
    const { encodeTensorMap } = await import('../../src/codec/index.js');
    const body = encodeTensorMap({ y: { dtype: 'float32', dims: [1], data: new Float32Array([1]) } }, { meta: { computeMs: '3' } });
    for (const [header, want] of [['n/a', 3], ['-50', 3], ['', 3], ['4', 4]] as const) {
      const marks = { start: 0, encoded: 1, received: 11 };
      const r = httpInferResponse('e', { headers: new Headers({ 'x-tandem-compute-ms': header }), body }, 10, marks);
      expect(r.timing.remoteMs, header).toBe(want);
      expect(r.timing.networkMs).toBe(10 - want);
    }
  });
});

describe('Retry-After', () => {
  const now = Date.UTC(2026, 11, 2, 12, 0, 0);

  it('delta-seconds are taken as given; fractions, signs, units and folded values are refused', () => {
    expect(parseRetryAfter('0', undefined, now)).toBe(0);
    expect(parseRetryAfter('1', undefined, now)).toBe(1000);
    expect(parseRetryAfter(' 120 ', undefined, now)).toBe(120_000);
    for (const bad of ['1.5', '.5', '-1', '+1', '1s', '1e3', '0x10', '1, 2', '', ' ', 'soon', 'Infinity', 'NaN']) {
      expect(parseRetryAfter(bad, undefined, now), JSON.stringify(bad)).toBeUndefined();
    }
    expect(parseRetryAfter(undefined, undefined, now)).toBeUndefined();
    expect(parseRetryAfter(null, undefined, now)).toBeUndefined();
  });

  it('waits past an hour are cut to an hour, however they are written', () => {
    expect(MAX_RETRY_AFTER_MS).toBe(3_600_000);
    expect(parseRetryAfter('3600', undefined, now)).toBe(3_600_000);
    expect(parseRetryAfter('3601', undefined, now)).toBe(MAX_RETRY_AFTER_MS);
    expect(parseRetryAfter('99999999999999999999999999', undefined, now)).toBe(MAX_RETRY_AFTER_MS);
    expect(parseRetryAfter('9'.repeat(400), undefined, now)).toBe(MAX_RETRY_AFTER_MS);
    expect(parseRetryAfter('Fri, 31 Dec 9999 23:59:59 GMT', undefined, now)).toBe(MAX_RETRY_AFTER_MS);
  });

  it('an HTTP-date in the future is the time until it, one already past is 0', () => {
    expect(parseRetryAfter('Wed, 02 Dec 2026 12:00:30 GMT', undefined, now)).toBe(30_000);
    expect(parseRetryAfter('Wed, 02 Dec 2026 12:00:00 GMT', undefined, now)).toBe(0);
    expect(parseRetryAfter('Wed, 02 Dec 2026 11:59:00 GMT', undefined, now)).toBe(0);
    expect(parseRetryAfter('Sun, 06 Nov 1994 08:49:37 GMT', undefined, now)).toBe(0);
  });

  it('an HTTP-date is measured from the answer\'s Date header when it has one, so a wrong edge clock does not matter', () => {
    const serverDate = 'Sun, 06 Nov 1994 08:49:37 GMT';
    expect(parseRetryAfter('Sun, 06 Nov 1994 08:50:07 GMT', serverDate, now)).toBe(30_000);
    // An unreadable Date falls back to the local clock.
    expect(parseRetryAfter('Wed, 02 Dec 2026 12:00:30 GMT', 'yesterday', now)).toBe(30_000);
    // delta-seconds need no clock.
    expect(parseRetryAfter('5', serverDate, now)).toBe(5000);
  });

  it('reads the three HTTP-date forms, in UTC, and nothing Date.parse would guess at', () => {
    const t = Date.UTC(1994, 10, 6, 8, 49, 37);
    expect(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT', now)).toBe(t);
    expect(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT', now)).toBe(t);
    // asctime carries no zone: HTTP says UTC (Date.parse says local time).
    expect(parseHttpDate('Sun Nov  6 08:49:37 1994', now)).toBe(t);
    // RFC 850's two-digit year: the latest past year ending in it when it would be > 50 years ahead.
    expect(parseHttpDate('Thursday, 02-Dec-49 12:00:00 GMT', now)).toBe(Date.UTC(2049, 11, 2, 12));
    expect(parseHttpDate('Sunday, 02-Dec-80 12:00:00 GMT', now)).toBe(Date.UTC(1980, 11, 2, 12));
    for (const bad of ['2026-12-02T12:00:00Z', 'Wed, 31 Feb 2026 12:00:00 GMT', 'Wed, 02 Dec 2026 24:00:00 GMT', 'Wed, 02 Foo 2026 12:00:00 GMT',
      'Wed, 02 Dec 2026 12:00:00 PST', 'Wed, 2 Dec 2026 12:00:00 GMT', 'Dec 2 2026', 'tomorrow 2027']) {
      expect(parseHttpDate(bad, now), bad).toBeUndefined();
      expect(parseRetryAfter(bad, undefined, now), bad).toBeUndefined();
    }
  });

  it('is found in fetch Headers and in plain header objects, whatever the case of the name', () => {
    expect(retryAfterOf(new Headers({ 'Retry-After': '2' }), now)).toBe(2000);
    expect(retryAfterOf({ 'retry-after': '3', date: 'Sun, 06 Nov 1994 08:49:37 GMT' }, now)).toBe(3000);
    expect(retryAfterOf({ 'Retry-After': 'Sun, 06 Nov 1994 08:49:47 GMT', Date: 'Sun, 06 Nov 1994 08:49:37 GMT' }, now)).toBe(10_000);
    expect(retryAfterOf({ 'content-type': 'application/json' }, now)).toBeUndefined();
    expect(retryAfterOf(undefined, now)).toBeUndefined();
  });

  it('is kept on throttling and unavailability only, and never past the cap', () => {
    expect(errorForStatus('e', 429, undefined, 'slow down', 2000)).toMatchObject({ code: 'PROVIDER_THROTTLED', retryAfterMs: 2000 });
    expect(errorForStatus('e', 503, undefined, 'draining', 0)).toMatchObject({ code: 'PROVIDER_UNAVAILABLE', retryAfterMs: 0 });
    expect(errorForStatus('e', 429, undefined, 'slow down').retryAfterMs).toBeUndefined();
    for (const status of [400, 401, 404, 504]) expect(errorForStatus('e', status, undefined, 'no', 2000).retryAfterMs, String(status)).toBeUndefined();
    expect(new ProviderError('PROVIDER_THROTTLED', 'x', { retryAfterMs: -5 }).retryAfterMs).toBeUndefined();
    expect(new ProviderError('PROVIDER_THROTTLED', 'x', { retryAfterMs: 1e12 }).retryAfterMs).toBe(MAX_RETRY_AFTER_MS);
  });

  it('the plain-HTTP transport carries a 429\'s and a 503\'s Retry-After on the error', async () => {
    const { url } = await serve((req, res) => {
      req.resume();
      req.on('end', () => {
        const mode = req.headers['x-mode'];
        if (mode === 'seconds') res.writeHead(429, { 'retry-after': '7' }).end('slow down');
        else if (mode === 'date') res.writeHead(503, { date: 'Sun, 06 Nov 1994 08:49:37 GMT', 'retry-after': 'Sun, 06 Nov 1994 08:50:07 GMT' }).end('draining');
        else if (mode === 'garbage') res.writeHead(429, { 'retry-after': '1.5' }).end('slow down');
        else res.writeHead(429).end('slow down');
      });
    });
    const scope = callScope();
    const fail = (mode: string): Promise<ProviderError> => post('e', url, { 'x-mode': mode }, new Uint8Array(1), scope).then(() => { throw new Error('expected a failure'); }, (e: unknown) => e as ProviderError);
    expect(await fail('seconds')).toMatchObject({ code: 'PROVIDER_THROTTLED', status: 429, retryAfterMs: 7000 });
    expect(await fail('date')).toMatchObject({ code: 'PROVIDER_UNAVAILABLE', status: 503, retryAfterMs: 30_000 });
    expect((await fail('garbage')).retryAfterMs).toBeUndefined();
    expect((await fail('none')).retryAfterMs).toBeUndefined();
    scope.dispose();
  });
});
