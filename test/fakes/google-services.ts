// Loopback Google services that take only access tokens a token service issued, each until it
// expires: Cloud Storage (the GCS fake, behind a bearer check) and Vertex AI's REST rawPredict
// (`POST /v1/projects/P/locations/L/endpoints/E:rawPredict` with a JSON `{httpBody}`, echoed).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:http';
import { GcsFake } from './gcs.js';
import { closeServer, listenLoopback } from '../helpers/net.js';

/** Tells whether an `Authorization` header carries a live token. */
export type BearerCheck = (authorization: string | undefined) => 'ok' | 'unknown' | 'expired';

export interface BearerCall {
  path: string;
  authorization: string | undefined;
  status: number;
}

const googleError = (res: ServerResponse, status: number, message: string): void =>
  void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: status, message, status: status === 401 ? 'UNAUTHENTICATED' : 'INVALID_ARGUMENT' } }));

/** The GCS fake, refusing any request whose bearer token `check` does not accept. */
export class TokenCheckedGcsFake extends GcsFake {
  readonly calls: BearerCall[] = [];

  constructor(bucket: string, private readonly check: BearerCheck) {
    super(bucket);
  }

  protected override handle(req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    const verdict = this.check(req.headers.authorization);
    this.calls.push({ path: req.url ?? '', authorization: req.headers.authorization, status: verdict === 'ok' ? 200 : 401 });
    if (verdict !== 'ok') return googleError(res, 401, verdict === 'expired' ? 'Request had invalid authentication credentials: the access token has expired.' : 'Request had invalid authentication credentials.');
    super.handle(req, body, res);
  }
}

const RAW_PREDICT = /^\/v1\/projects\/[^/]+\/locations\/[^/]+\/endpoints\/[^/:]+:rawPredict$/;

/** Vertex AI's rawPredict over REST, echoing the httpBody, behind the same bearer check. */
export class TokenCheckedVertexFake {
  readonly calls: BearerCall[] = [];
  private server: Server | undefined;
  port = 0;

  constructor(private readonly check: BearerCheck) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const path = (req.url ?? '').split('?')[0] ?? '';
        const verdict = this.check(req.headers.authorization);
        this.calls.push({ path, authorization: req.headers.authorization, status: verdict === 'ok' ? 200 : 401 });
        if (verdict !== 'ok') return googleError(res, 401, 'Request had invalid authentication credentials.');
        if (req.method !== 'POST' || !RAW_PREDICT.test(path)) return googleError(res, 404, `no route ${req.method ?? ''} ${path}`);
        let httpBody: { contentType?: string; data?: string } | undefined;
        try {
          httpBody = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { httpBody?: typeof httpBody }).httpBody;
        } catch {
          return googleError(res, 400, 'the body is not JSON');
        }
        if (httpBody?.data === undefined) return googleError(res, 400, 'rawPredict needs an httpBody');
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ contentType: httpBody.contentType, data: httpBody.data }));
      });
    });
    this.port = await listenLoopback(this.server);
    return this;
  }

  async stop(): Promise<void> {
    await closeServer(this.server);
  }
}
