// Shared plumbing of the loopback emulators (GCS, OSS): an in-memory bucket, an outage switch and a request log.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface FakeObject {
  body: Buffer;
  contentType: string;
  metadata: Record<string, string>;
  sse: string | undefined;
  writes: number;
}

export interface LoggedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  status: number;
  problem?: string;
}

export abstract class FakeServer {
  readonly objects = new Map<string, FakeObject>();
  readonly log: LoggedRequest[] = [];
  /** While true, every connection is dropped without an answer (the store is "down"). */
  down = false;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Listens on loopback; port 0 (the default) picks a free one. */
  async start(port = 0): Promise<this> {
    this.server = createServer((req, res) => {
      if (this.down) {
        req.socket.destroy();
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        try {
          this.handle(req, body, res);
        } catch (error) {
          this.reply(req, res, 500, { 'content-type': 'text/plain' }, String(error), String(error));
        }
      });
    });
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, '127.0.0.1', resolve);
    });
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** Drops every open connection (keep-alive sockets included), e.g. when going down. */
  dropConnections(): void {
    for (const s of this.sockets) s.destroy();
  }

  async stop(): Promise<void> {
    this.dropConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  protected reply(req: IncomingMessage, res: ServerResponse, status: number, headers: Record<string, string | number>, body?: Buffer | string, problem?: string): void {
    this.log.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, status, ...(problem === undefined ? {} : { problem }) });
    res.writeHead(status, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  protected abstract handle(req: IncomingMessage, body: Buffer, res: ServerResponse): void;
}
