/**
 * The demo's emulated network between the device and the cloud: a loopback TCP proxy that
 * adds a round-trip delay, limits bandwidth per direction, and can be cut off (open
 * connections are reset and new ones refused, as when an uplink drops).
 */
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';

export interface LinkConditions {
  /** Per direction, bits per second. */
  bandwidthBitsPerSecond: number;
  rttMs: number;
  down: boolean;
}

/**
 * One direction of a connection: chunks leave strictly in order, each after its
 * serialisation time at the link's bandwidth plus half the round trip. One timer per pipe
 * (not one per chunk) so that timer granularity can never reorder bytes.
 */
class Pipe {
  private nextFree = 0;
  private queued = 0;
  private readonly queue: Array<{ at: number; chunk: Buffer | null }> = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly from: Socket,
    private readonly to: Socket,
    private readonly conditions: () => LinkConditions,
  ) {
    from.on('data', (chunk: Buffer) => this.push(chunk));
    from.on('end', () => this.enqueue(null, Math.max(Date.now(), this.nextFree) + this.conditions().rttMs / 2));
  }

  private limit(): number {
    return Math.max(64 * 1024, this.conditions().bandwidthBitsPerSecond / 8);
  }

  private push(chunk: Buffer): void {
    const c = this.conditions();
    const start = Math.max(Date.now(), this.nextFree);
    this.nextFree = start + (chunk.length * 8 * 1000) / c.bandwidthBitsPerSecond;
    this.queued += chunk.length;
    // Backpressure: stop reading while more than ~1 s of traffic is queued.
    if (this.queued > this.limit()) this.from.pause();
    this.enqueue(chunk, this.nextFree + c.rttMs / 2);
  }

  private enqueue(chunk: Buffer | null, at: number): void {
    this.queue.push({ at, chunk });
    if (this.timer === undefined) this.schedule();
  }

  private schedule(): void {
    const head = this.queue[0];
    if (!head) return;
    this.timer = setTimeout(() => this.flush(), Math.max(0, head.at - Date.now()));
  }

  private flush(): void {
    this.timer = undefined;
    const now = Date.now();
    while (this.queue.length > 0 && (this.queue[0]?.at ?? Infinity) <= now + 0.5) {
      const { chunk } = this.queue.shift()!;
      if (chunk === null) {
        this.to.end();
        continue;
      }
      this.queued -= chunk.length;
      if (!this.to.destroyed) this.to.write(chunk);
    }
    if (this.queued <= this.limit()) this.from.resume();
    this.schedule();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.queue.length = 0;
  }
}

export class NetworkLink {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private current: LinkConditions = { bandwidthBitsPerSecond: 1e9, rttMs: 0, down: false };
  port = 0;

  constructor(private readonly targetPort: number, private readonly targetHost = '127.0.0.1') {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get conditions(): LinkConditions {
    return this.current;
  }

  async start(): Promise<void> {
    const server = createServer((client) => this.onConnection(client));
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
  }

  set(conditions: LinkConditions): void {
    this.current = conditions;
    if (conditions.down) for (const s of this.sockets) s.resetAndDestroy();
  }

  private onConnection(client: Socket): void {
    if (this.current.down) {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(this.targetPort, this.targetHost);
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.setNoDelay(true);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    const up = new Pipe(client, upstream, () => this.current);
    const down = new Pipe(upstream, client, () => this.current);
    client.on('close', () => {
      up.stop();
      upstream.destroy();
    });
    upstream.on('close', () => {
      down.stop();
      client.destroy();
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
