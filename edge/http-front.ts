/**
 * The HTTP front (node:http), for edge apps that run beside the agent:
 * `POST /v1/infer` (the same JSON or msgpack request as over MQTT, answered on the same
 * connection), `GET /healthz` and `GET /metrics` (Prometheus text format).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { httpStatusOf } from '../src/errors/index.js';
import { EdgeStartError, type HttpConfig } from './config.js';
import type { AgentCore } from './agent.js';
import type { AgentMetrics } from './metrics.js';
import { CONTENT_TYPES, encodeBody, errorBody } from './protocol.js';
import { PayloadTooLargeError } from './protocol.js';
import type { InferenceService } from './service.js';

export interface HttpFrontOptions {
  config: HttpConfig;
  core: AgentCore;
  service: InferenceService;
  metrics: AgentMetrics;
  logger: Logger;
  maxPayloadBytes: number;
  /** Whether the agent is draining (health turns 503 so load balancers stop sending). */
  isDraining: () => boolean;
}

export class HttpFront {
  private readonly options: HttpFrontOptions;
  private server: Server | undefined;

  constructor(options: HttpFrontOptions) {
    this.options = options;
  }

  /** Starts listening; resolves to the bound port (useful with port 0). */
  async start(): Promise<number> {
    const server = createServer((req, res) => {
      this.route(req, res).catch((error: unknown) => {
        this.options.logger.error({ err: error }, 'HTTP handler failed');
        if (!res.headersSent) send(res, httpStatusOf('INTERNAL'), CONTENT_TYPES.json, encodeBody(errorBody(undefined, error), 'json'));
        else res.destroy();
      });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error) =>
        reject(new EdgeStartError('EDGE_HTTP_LISTEN', `cannot listen on ${this.options.config.host}:${this.options.config.port}: ${error.message}`, { cause: error })),
      );
      server.listen(this.options.config.port, this.options.config.host, () => resolve());
    });
    const port = (server.address() as AddressInfo).port;
    this.options.logger.info({ port, host: this.options.config.host }, 'HTTP front listening');
    return port;
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://agent');
    if (url.pathname === '/v1/infer') {
      if (req.method !== 'POST') return send(res, 405, 'text/plain', Buffer.from('use POST\n'), { allow: 'POST' });
      return this.infer(req, res);
    }
    if (url.pathname === '/healthz' && req.method === 'GET') {
      const health = this.options.service.health();
      const draining = this.options.isDraining();
      const ok = health.ok && !draining;
      const body = { ok, draining, inFlight: this.options.core.inFlight, outboxDepth: health.outboxDepth, models: this.options.service.models(), ...(health.details ? { details: health.details } : {}) };
      return send(res, ok ? 200 : 503, CONTENT_TYPES.json, Buffer.from(JSON.stringify(body)));
    }
    if (url.pathname === '/metrics' && req.method === 'GET') {
      const registry = this.options.metrics.registry;
      return send(res, 200, registry.contentType, Buffer.from(await registry.metrics()));
    }
    send(res, 404, 'text/plain', Buffer.from('not found\n'));
  }

  private async infer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const limit = this.options.maxPayloadBytes;
    const declared = Number(req.headers['content-length'] ?? NaN);
    const contentType = req.headers['content-type'];
    const tooLarge = (bytes: number): void => {
      this.options.metrics.malformed.inc({ front: 'http', reason: 'PAYLOAD_TOO_LARGE' });
      this.options.metrics.requests.inc({ front: 'http', outcome: 'too_large' });
      res.setHeader('connection', 'close');
      const error = new PayloadTooLargeError(bytes, limit);
      send(res, httpStatusOf(error.code), CONTENT_TYPES.json, encodeBody(errorBody(undefined, error), 'json'));
      req.resume();
    };
    if (Number.isFinite(declared) && declared > limit) return tooLarge(declared);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      const buf = chunk as Buffer;
      size += buf.byteLength;
      if (size > limit) return tooLarge(size);
      chunks.push(buf);
    }
    const payload = Buffer.concat(chunks);
    await this.options.core.accept('http', { payload, contentType }, async (reply) => {
      send(res, reply.status, reply.contentType, reply.payload);
    });
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    });
  }
}

function send(res: ServerResponse, status: number, contentType: string, body: Buffer, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': String(body.byteLength), ...headers });
  res.end(body);
}
