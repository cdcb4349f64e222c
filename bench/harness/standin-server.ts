/**
 * STAND-IN for the cloud service, used only by the benchmark harness until `tandem cloud
 * serve` is wired in: an HTTP server on loopback that runs registered ONNX partitions (whole
 * models or tails) with onnxruntime-node and reports its compute time. It is not the
 * product's cloud service and implements none of the provider contracts.
 *
 * Routes: `POST /infer/{key}` (msgpack tensor map → msgpack tensor map + `computeMs`),
 * `POST /probe` (any body → 2 bytes; for link measurements), `GET /ping`.
 */
import http from 'node:http';
import * as ort from 'onnxruntime-node';
import { decodeTensors, encodeTensors } from './wire.js';

export class StandinServer {
  private readonly sessions = new Map<string, ort.InferenceSession>();
  private readonly server: http.Server;

  private constructor() {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(error instanceof Error ? error.message : String(error));
      });
    });
    this.server.keepAliveTimeout = 60_000;
  }

  static async start(): Promise<StandinServer> {
    const s = new StandinServer();
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    return s;
  }

  get port(): number {
    const a = this.server.address();
    return typeof a === 'object' && a !== null ? a.port : 0;
  }

  /** Registers an ONNX partition under `key` (e.g. `mobilenetv2/whole`, `mobilenetv2/c12`). */
  async register(key: string, onnx: Uint8Array): Promise<void> {
    this.sessions.set(key, await ort.InferenceSession.create(onnx, { intraOpNumThreads: 1, interOpNumThreads: 1 }));
  }

  async close(): Promise<void> {
    for (const s of this.sessions.values()) await s.release();
    this.sessions.clear();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = req.url ?? '/';
    if (url === '/ping' || url === '/probe') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
      res.end('ok');
      return;
    }
    const key = decodeURIComponent(url.replace(/^\/infer\//, ''));
    const session = this.sessions.get(key);
    if (!session) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end(`no partition ${key}`);
      return;
    }
    const { tensors } = decodeTensors(Buffer.concat(chunks));
    const t0 = performance.now();
    const outputs = await session.run(tensors);
    const computeMs = performance.now() - t0;
    const body = encodeTensors(outputs, { computeMs });
    res.writeHead(200, { 'content-type': 'application/x-msgpack', 'content-length': String(body.length) });
    res.end(body);
  }
}
