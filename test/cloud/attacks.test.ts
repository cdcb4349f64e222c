/**
 * Issue #31 item 3, at small scale: half-sent bodies beyond the body budget, a body trickled
 * below the pace, connections beyond the per-address and overall caps, and JSON beyond its
 * limit. Through each, /ping (from another loopback address than the attacker's) must answer,
 * and the service's own counters must show the bounds held.
 */
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudService } from '../../cloud/server.js';
import { modelsDir, startService } from '../helpers/cloud.js';

const BUDGET = 2 * 1024 * 1024;
const ATTACKER = '127.0.0.2';

let dir: { dir: string; cleanup: () => void };
let service: CloudService;

beforeAll(async () => {
  dir = modelsDir();
  service = await startService(dir.dir, {
    maxBodyBytes: 1024 * 1024,
    bodyBudgetBytes: BUDGET,
    maxJsonBytes: 256 * 1024,
    bodyIdleTimeoutMs: 300,
    maxConnections: 40,
    maxConnectionsPerIp: 20,
  });
});

afterAll(async () => {
  await service.drain();
  dir.cleanup();
});

/** /ping from 127.0.0.1 on a fresh connection: its status and time in ms. */
function ping(): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(`${service.url}/ping`, { agent: false, localAddress: '127.0.0.1', timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0 }));
    });
    req.on('timeout', () => req.destroy(new Error('ping timed out')));
    req.on('error', reject);
    req.end();
  });
}

interface RawClient {
  socket: Socket;
  /** Everything the service wrote back. */
  text: () => string;
  closed: () => boolean;
  /** Whether the service reset the connection (RST) rather than closing it. */
  reset: () => boolean;
  /** Resolves once the service has answered a status line (or the socket closed), with the status (0: none). */
  answered: Promise<number>;
}

/** A raw connection from `from` that writes `head` (and nothing more unless the test does). */
function raw(from: string, head: string): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    let text = '';
    let closed = false;
    let reset = false;
    let answer: (status: number) => void = () => undefined;
    const answered = new Promise<number>((r) => { answer = r; });
    const socket = connect({ host: '127.0.0.1', port: service.port, localAddress: from }, () => {
      socket.write(head);
      resolve({ socket, text: () => text, closed: () => closed, reset: () => reset, answered });
    });
    socket.on('data', (b: Buffer) => {
      text += b.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (m) answer(Number(m[1]));
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNRESET' || error.code === 'EPIPE') reset = true;
    });
    socket.on('close', () => {
      closed = true;
      answer(0);
    });
    socket.once('error', reject);
  });
}

const gauge = async (name: string, reason?: string): Promise<number> => {
  const metric = await service.metrics.registry.getSingleMetric(name)?.get();
  const v = metric?.values.find((x) => reason === undefined || x.labels['reason'] === reason);
  return v?.value ?? NaN;
};

const settle = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('cloud service under attack', () => {
  it('admits half-sent bodies only within the body budget, refuses the rest with 429 before reading, and releases on abort', async () => {
    const declared = 700_000;
    const head = `POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${declared}\r\n\r\n`;
    const clients = await Promise.all(Array.from({ length: 8 }, () => raw(ATTACKER, head)));
    for (const c of clients) c.socket.write(Buffer.alloc(declared / 2, 7));
    await settle(200);
    const p = await ping();
    expect(p.status).toBe(200);
    expect(p.ms).toBeLessThan(1000);
    const refused = clients.filter((c) => /^HTTP\/1\.1 429/.test(c.text()));
    // Two 700 kB bodies fit in 2 MiB; the other six are refused at once, nothing buffered.
    expect(refused).toHaveLength(6);
    for (const c of refused) {
      expect(c.text()).toMatch(/retry-after: 1/i);
      expect(c.text()).toContain('CLOUD_OVERLOADED');
    }
    expect(await gauge('tandem_cloud_body_bytes_in_flight')).toBe(2 * declared);
    expect(await gauge('tandem_cloud_body_bytes_peak')).toBeLessThanOrEqual(BUDGET);
    // The refused clients send nothing more: their connections are closed at the pace's window, not the request timeout.
    await settle(800);
    for (const c of refused) expect(c.closed()).toBe(true);
    // The admitted clients leave halfway: their reservations are released.
    for (const c of clients) c.socket.destroy();
    await settle(200);
    expect(await gauge('tandem_cloud_body_bytes_in_flight')).toBe(0);
  });

  it('drops a body trickled below the pace with 408 well before the request timeout', async () => {
    const c = await raw(ATTACKER, 'POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n');
    const t0 = performance.now();
    const trickle = setInterval(() => c.socket.write('xxxxxxxxxx'), 50);
    try {
      const status = await Promise.race([c.answered, settle(5000).then(() => -1)]);
      expect(status).toBe(408);
      expect(c.text()).toContain('CLOUD_BODY_TIMEOUT');
      expect(performance.now() - t0).toBeLessThan(3000);
      // What it still sends is read and dropped only while it keeps the pace: it does not, so it is closed.
      await settle(1000);
      expect(c.closed()).toBe(true);
    } finally {
      clearInterval(trickle);
      c.socket.destroy();
    }
    await settle(50);
    expect(await gauge('tandem_cloud_body_bytes_in_flight')).toBe(0);
  });

  it('caps connections per address and in all; idle ones make room, /ping still answers', async () => {
    const partial = 'GET /ping HTTP/1.1\r\nHost: x\r\n';
    const first = await Promise.all(Array.from({ length: 30 }, () => raw(ATTACKER, partial)));
    await settle(200);
    expect(first.filter((c) => !c.closed())).toHaveLength(20);
    expect((await ping()).status).toBe(200);
    // Twenty more from each of two other addresses: beyond 40 in all, the longest idle make room.
    const more = await Promise.all(['127.0.0.3', '127.0.0.4'].flatMap((from) => Array.from({ length: 20 }, () => raw(from, partial))));
    await settle(200);
    const open = [...first, ...more].filter((c) => !c.closed()).length;
    expect(open).toBeLessThanOrEqual(40);
    const p = await ping();
    expect(p.status).toBe(200);
    expect(p.ms).toBeLessThan(1000);
    expect(await gauge('tandem_cloud_connections_closed', 'per_ip')).toBeGreaterThanOrEqual(10);
    expect(await gauge('tandem_cloud_connections_closed', 'evicted')).toBeGreaterThanOrEqual(20);
    for (const c of [...first, ...more]) c.socket.destroy();
  });

  it('resets a connection over its address\'s cap, even one that sent nothing, rather than closing it with a FIN exchange', async () => {
    const silent = await Promise.all(Array.from({ length: 25 }, () => raw('127.0.0.9', '')));
    await settle(200);
    expect(silent.filter((c) => !c.closed())).toHaveLength(20);
    expect(silent.filter((c) => c.closed() && c.reset())).toHaveLength(5);
    for (const c of silent) c.socket.destroy();
    await settle(100);
  });

  it('refuses JSON over its limit with 413: by its Content-Type before reading, by its content after', async () => {
    const json = Buffer.from(JSON.stringify({ inputs: [{ name: 'x', shape: [60_000], datatype: 'FP32', data: Array.from({ length: 60_000 }, (_, i) => i / 7) }] }));
    expect(json.byteLength).toBeGreaterThan(256 * 1024);
    for (const type of ['application/json', 'application/octet-stream']) {
      const c = await raw(ATTACKER, `POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: ${type}\r\nContent-Length: ${json.byteLength}\r\nConnection: close\r\n\r\n`);
      c.socket.write(json);
      const status = await Promise.race([c.answered, settle(5000).then(() => -1)]);
      expect(status).toBe(413);
      expect(c.text()).toContain('CLOUD_TOO_LARGE');
      c.socket.destroy();
    }
  });

  it('requests for hundreds of made-up model names add no metric series: refusals are counted under "unknown"', async () => {
    const series = async (): Promise<number> => (await service.metrics.requests.get()).values.length + (await service.metrics.latency.get()).values.length;
    const body = '{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}';
    const warm = await fetch(`${service.url}/v2/models/warm-up/infer`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    expect(warm.status).toBe(404);
    const before = await series();
    // In tens: the service caps connections from one address at 20.
    for (let i = 0; i < 300; i += 10) {
      const statuses = await Promise.all(Array.from({ length: 10 }, (_, j) => fetch(`${service.url}/v2/models/made-up-${i + j}/infer`, { method: 'POST', body, headers: { 'content-type': 'application/json' } }).then((r) => r.status)));
      expect(new Set(statuses)).toEqual(new Set([404]));
    }
    expect(await series()).toBe(before);
    const models = new Set((await service.metrics.requests.get()).values.map((v) => v.labels['model']));
    expect([...models].every((m) => m === 'unknown' || service.models.has(String(m)))).toBe(true);
  }, 60_000);

  it('refuses an unlabelled JSON body declared over the JSON limit at its first bytes, before the rest is sent', async () => {
    const declared = 900 * 1024;
    const c = await raw(ATTACKER, `POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${declared}\r\n\r\n`);
    c.socket.write(`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[${'1,'.repeat(1000)}`);
    const status = await Promise.race([c.answered, settle(5000).then(() => -1)]);
    expect(status).toBe(413);
    expect(c.text()).toContain('JSON limit');
    c.socket.destroy();
  });
});
