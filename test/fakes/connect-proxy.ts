/**
 * A loopback forward proxy for the proxy tests: HTTP CONNECT tunnels (what Tandem's agents and
 * grpc-js open, for https:// and http:// targets alike), and absolute-form requests
 * (`GET http://host/path`, what http-proxy-agent sends for http:// targets). It counts both per
 * target, can demand credentials (407) or refuse every tunnel with a status of choice.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';

export interface ConnectProxyOptions {
  /** `user:password` the proxy demands (Proxy-Authorization: Basic); without it, none. */
  credentials?: string;
  /** Refuse every request with this status (403, 502…). */
  refuse?: number;
}

export class ConnectProxy {
  /** CONNECT tunnels opened, per `host:port` asked for. */
  readonly tunnels = new Map<string, number>();
  /** Absolute-form requests forwarded, per `host:port`. */
  readonly forwarded = new Map<string, number>();
  /** Every request refused, as `status host:port`. */
  readonly refused: string[] = [];
  private server: Server | undefined;
  private readonly sockets = new Set<Socket | Duplex>();
  port = 0;

  constructor(public options: ConnectProxyOptions = {}) {}

  /** `http://127.0.0.1:port`, with `user:password@` when `credentials` is given. */
  url(credentials?: string): string {
    return `http://${credentials ? `${credentials}@` : ''}127.0.0.1:${this.port}`;
  }

  /** Tunnels and forwarded requests to `target` (`host:port`), or to all targets. */
  count(target?: string): number {
    const sum = (m: Map<string, number>): number => (target === undefined ? [...m.values()].reduce((a, b) => a + b, 0) : (m.get(target) ?? 0));
    return sum(this.tunnels) + sum(this.forwarded);
  }

  reset(): void {
    this.tunnels.clear();
    this.forwarded.clear();
    this.refused.length = 0;
  }

  /** Why the request is refused (a status), or undefined to let it through. */
  private refusal(req: IncomingMessage): number | undefined {
    if (this.options.refuse !== undefined) return this.options.refuse;
    if (this.options.credentials === undefined) return undefined;
    const expected = `Basic ${Buffer.from(this.options.credentials).toString('base64')}`;
    return req.headers['proxy-authorization'] === expected ? undefined : 407;
  }

  async start(): Promise<this> {
    const server = createServer((req, res) => this.forward(req, res));
    server.on('connect', (req: IncomingMessage, client: Duplex, head: Buffer) => this.tunnel(req, client, head));
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    return this;
  }

  private tunnel(req: IncomingMessage, client: Duplex, head: Buffer): void {
    const target = req.url ?? '';
    const status = this.refusal(req);
    if (status !== undefined) {
      this.refused.push(`${status} ${target}`);
      const auth = status === 407 ? 'Proxy-Authenticate: Basic realm="tandem-test"\r\n' : '';
      client.end(`HTTP/1.1 ${status} Refused\r\n${auth}Content-Length: 0\r\nConnection: close\r\n\r\n`);
      return;
    }
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(target);
    if (!m) {
      client.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const upstream = connect(Number(m[2]), m[1] ?? '', () => {
      this.tunnels.set(target, (this.tunnels.get(target) ?? 0) + 1);
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    this.sockets.add(upstream);
    upstream.on('close', () => this.sockets.delete(upstream));
    upstream.on('error', () => client.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n'));
    client.on('error', () => upstream.destroy());
    client.on('close', () => upstream.destroy());
  }

  private forward(req: IncomingMessage, res: ServerResponse): void {
    let url: URL;
    try {
      url = new URL(req.url ?? '');
    } catch {
      res.writeHead(400).end('absolute-form requests only');
      return;
    }
    const target = `${url.hostname}:${url.port || 80}`;
    const status = this.refusal(req);
    if (status !== undefined) {
      this.refused.push(`${status} ${target}`);
      res.writeHead(status, status === 407 ? { 'proxy-authenticate': 'Basic realm="tandem-test"' } : {}).end();
      return;
    }
    this.forwarded.set(target, (this.forwarded.get(target) ?? 0) + 1);
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    delete headers['proxy-connection'];
    const upstream = httpRequest({ host: url.hostname, port: url.port || 80, method: req.method, path: `${url.pathname}${url.search}`, headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.writeHead(502).end());
    req.pipe(upstream);
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
