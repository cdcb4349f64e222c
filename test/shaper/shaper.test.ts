import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Shaper, parseTrace } from '../../src/shaper/index.js';

/** A server that answers `n` bytes with an 8-byte ack once all arrived, and answers `PING` with `PONG`, and `GET n` with n bytes. */
async function startServer(): Promise<net.Server> {
  const server = net.createServer((socket) => {
    let expected = -1;
    let got = 0;
    let buf = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      if (expected >= 0) {
        got += chunk.length;
        if (got >= expected) {
          socket.write('ACK-DONE');
          expected = -1;
        }
        return;
      }
      buf = Buffer.concat([buf, chunk]);
      const line = buf.indexOf('\n');
      if (line < 0) return;
      const cmd = buf.subarray(0, line).toString();
      const rest = buf.subarray(line + 1);
      buf = Buffer.alloc(0);
      const [op, arg] = cmd.split(' ');
      if (op === 'PING') socket.write('PONG');
      else if (op === 'GET') socket.write(Buffer.alloc(Number(arg), 7));
      else if (op === 'PUT') {
        expected = Number(arg);
        got = rest.length;
        if (got >= expected) {
          socket.write('ACK-DONE');
          expected = -1;
        }
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

function portOf(server: net.Server): number {
  const a = server.address();
  if (a === null || typeof a === 'string') throw new Error('no port');
  return a.port;
}

async function connect(port: number): Promise<net.Socket> {
  const s = net.connect(port, '127.0.0.1');
  s.setNoDelay(true);
  await new Promise<void>((r, j) => {
    s.once('connect', r);
    s.once('error', j);
  });
  return s;
}

/** Sends `data` and resolves with the ms until `reply` bytes came back. */
function exchange(socket: net.Socket, data: Buffer | string, reply: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let got = 0;
    const onData = (c: Buffer): void => {
      got += c.length;
      if (got >= reply) {
        socket.off('data', onData);
        socket.off('error', reject);
        resolve(performance.now() - t0);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(data);
  });
}

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function setup(options: ConstructorParameters<typeof Object>[0] = {}): Promise<{ shaper: Shaper; socket: net.Socket }> {
  const server = await startServer();
  cleanup.push(() => new Promise<void>((r) => server.close(() => r())));
  const shaper = await Shaper.start({ target: { host: '127.0.0.1', port: portOf(server) }, ...(options as object) });
  cleanup.push(() => shaper.close());
  const socket = await connect(shaper.port);
  cleanup.push(() => void socket.destroy());
  return { shaper, socket };
}

describe('shaper', () => {
  it('adds the asked round-trip delay within 10%', async () => {
    const { socket } = await setup({ up: { delayMs: 40 }, down: { delayMs: 40 } });
    await exchange(socket, 'PING\n', 4);
    const samples: number[] = [];
    for (let i = 0; i < 7; i++) samples.push(await exchange(socket, 'PING\n', 4));
    samples.sort((a, b) => a - b);
    // Never early; the median within 10% (timers on a loaded 2-core machine only run late).
    expect(samples[0]).toBeGreaterThanOrEqual(79.5);
    expect(samples[3]).toBeLessThan(88);
  });

  it('delivers the asked upload bandwidth within 10%', async () => {
    const { socket } = await setup({ up: { bandwidthBitsPerSecond: 8e6 }, burstBytes: 4096 });
    const bytes = 800_000; // 0.8 s at 8 Mbit/s
    const payload = Buffer.concat([Buffer.from(`PUT ${bytes}\n`), Buffer.alloc(bytes, 1)]);
    const ms = await exchange(socket, payload, 8);
    const mbit = (payload.length * 8) / ms / 1000;
    expect(mbit).toBeGreaterThan(8 * 0.9);
    expect(mbit).toBeLessThan(8 * 1.1);
  });

  it('delivers the asked download bandwidth within 10%, with delay on top', async () => {
    const { socket } = await setup({ down: { bandwidthBitsPerSecond: 4e6, delayMs: 25 }, up: { delayMs: 25 }, burstBytes: 4096 });
    const bytes = 300_000; // 0.6 s at 4 Mbit/s + 50 ms
    const ms = await exchange(socket, `GET ${bytes}\n`, bytes);
    const expected = (bytes * 8) / 4e6 * 1000 + 50;
    expect(ms).toBeGreaterThan(expected * 0.9);
    expect(ms).toBeLessThan(expected * 1.1);
  });

  it('rested() waits until the token bucket is full again, so the next burst leaves at once', async () => {
    const { shaper, socket } = await setup({ up: { bandwidthBitsPerSecond: 1e6 }, burstBytes: 16384 });
    const put = (bytes: number): Buffer => Buffer.concat([Buffer.from(`PUT ${bytes}\n`), Buffer.alloc(bytes, 1)]);
    await exchange(socket, put(40_000), 8);
    // Straight after a transfer the bucket is empty: 12 KB wait for their tokens (≈ 100 ms at 1 Mbit/s).
    const drained = await exchange(socket, put(12_000), 8);
    expect(drained).toBeGreaterThan(80);
    const t0 = performance.now();
    await shaper.rested();
    // A full 16 KiB bucket refills in 131 ms at 1 Mbit/s.
    expect(performance.now() - t0).toBeGreaterThan(100);
    // Already rested: no wait.
    const t1 = performance.now();
    await shaper.rested();
    expect(performance.now() - t1).toBeLessThan(20);
    const rested = await exchange(socket, put(12_000), 8);
    expect(rested).toBeLessThan(40);
  });

  it('applies a bandwidth change while bytes are queued', async () => {
    const { shaper, socket } = await setup({ up: { bandwidthBitsPerSecond: 1e6 }, burstBytes: 4096 });
    const bytes = 500_000;
    const payload = Buffer.concat([Buffer.from(`PUT ${bytes}\n`), Buffer.alloc(bytes, 1)]);
    setTimeout(() => shaper.set({ up: { bandwidthBitsPerSecond: 20e6 } }), 200);
    const ms = await exchange(socket, payload, 8);
    // ~25 KB in the first 200 ms at 1 Mbit/s, the rest at 20 Mbit/s (~190 ms): far below the 4 s at 1 Mbit/s.
    expect(ms).toBeGreaterThan(300);
    expect(ms).toBeLessThan(700);
  });

  it('keeps order under jitter', async () => {
    const { socket } = await setup({ down: { delayMs: 10, jitterMs: 8, bandwidthBitsPerSecond: 50e6 }, burstBytes: 4096 });
    const bytes = 200_000;
    const received: Buffer[] = [];
    socket.on('data', (c: Buffer) => received.push(c));
    await exchange(socket, `GET ${bytes}\n`, bytes);
    const all = Buffer.concat(received);
    expect(all.length).toBe(bytes);
    expect(all.every((b) => b === 7)).toBe(true);
  });

  it('stalls: nothing arrives during the stall, everything after it', async () => {
    const { shaper, socket } = await setup();
    await exchange(socket, 'PING\n', 4);
    shaper.stall(300);
    const ms = await exchange(socket, 'PING\n', 4);
    expect(ms).toBeGreaterThanOrEqual(290);
    expect(ms).toBeLessThan(400);
  });

  it('resets open connections', async () => {
    const { shaper, socket } = await setup();
    await exchange(socket, 'PING\n', 4);
    const closed = new Promise<string>((resolve) => {
      socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      socket.once('close', () => resolve('close'));
    });
    shaper.reset();
    expect(['ECONNRESET', 'close']).toContain(await closed);
    // New connections still work.
    const again = await connect(shaper.port);
    cleanup.push(() => void again.destroy());
    expect(await exchange(again, 'PING\n', 4)).toBeLessThan(200);
  });

  it('cut off: open connections reset, new ones refused, until restored', async () => {
    const { shaper, socket } = await setup();
    await exchange(socket, 'PING\n', 4);
    const closed = new Promise<string>((resolve) => {
      socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      socket.once('close', () => resolve('close'));
    });
    shaper.cutOff(true);
    expect(shaper.isCutOff).toBe(true);
    expect(['ECONNRESET', 'close']).toContain(await closed);
    const refused = await new Promise<string>((resolve) => {
      const s = net.connect(shaper.port, '127.0.0.1');
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      s.once('data', () => resolve('data'));
      s.once('connect', () => s.write('PING\n'));
      s.once('close', () => resolve('close'));
    });
    expect(['ECONNRESET', 'close', 'EPIPE']).toContain(refused);
    shaper.cutOff(false);
    const again = await connect(shaper.port);
    cleanup.push(() => void again.destroy());
    expect(await exchange(again, 'PING\n', 4)).toBeLessThan(200);
  });

  it('follows a trace of bandwidth and delay', async () => {
    const { shaper, socket } = await setup();
    const trace = parseTrace('# t bw rtt\n0 100mbit 20ms\n0.3, 100mbit, 120ms\n');
    expect(trace).toEqual([
      { atMs: 0, bandwidthBitsPerSecond: 100e6, rttMs: 20 },
      { atMs: 300, bandwidthBitsPerSecond: 100e6, rttMs: 120 },
    ]);
    shaper.followTrace(trace);
    await new Promise((r) => setTimeout(r, 50));
    const early = await exchange(socket, 'PING\n', 4);
    await new Promise((r) => setTimeout(r, 350));
    const late = await exchange(socket, 'PING\n', 4);
    expect(early).toBeGreaterThanOrEqual(18);
    expect(early).toBeLessThan(30);
    expect(late).toBeGreaterThanOrEqual(118);
    expect(late).toBeLessThan(135);
    expect(shaper.shape('up').delayMs).toBe(60);
  });

  it('rejects bad shapes and traces', async () => {
    const { shaper } = await setup();
    expect(() => shaper.set({ up: { bandwidthBitsPerSecond: 0 } })).toThrow(/bandwidth/);
    expect(() => parseTrace('0 fast 10ms')).toThrow(/bandwidth/);
    expect(() => parseTrace('x 10mbit 10ms')).toThrow(/bad time/);
  });
});
