// Loopback SageMaker runtime and S3 that take only temporary keys from a token service's ledger:
// each request's SigV4 is verified (cloud/auth's verifySigV4, the session token signed) with
// the secret the ledger holds for its access key, and a key past its expiry is refused as AWS
// refuses it (403 ExpiredToken). InvokeEndpoint echoes its body; S3 keeps PutObject's.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { verifySigV4 } from '../../cloud/auth.js';
import type { KeyLedger } from './oidc.js';
import { closeServer, listenLoopback } from '../helpers/net.js';

export interface SignedCall {
  service: 'sagemaker' | 's3';
  path: string;
  accessKeyId: string;
  status: number;
  code?: string;
}

export class AwsSignedServicesFake {
  readonly calls: SignedCall[] = [];
  readonly objects = new Map<string, Buffer>();
  private server: Server | undefined;
  port = 0;

  constructor(private readonly ledger: KeyLedger) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private async handle(req: IncomingMessage, body: Buffer, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const service = /^\/endpoints\/[^/]+\/invocations$/.test(url.pathname) ? 'sagemaker' : 's3';
    const accessKeyId = /Credential=([^/]+)\//.exec(String(req.headers.authorization ?? ''))?.[1] ?? '';
    const answer = (status: number, code?: string, message = ''): void => {
      this.calls.push({ service, path: url.pathname, accessKeyId, status, ...(code ? { code } : {}) });
      if (code === undefined) return;
      if (service === 's3') {
        res.writeHead(status, { 'content-type': 'application/xml' }).end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`);
      } else {
        res.writeHead(status, { 'content-type': 'application/json', 'x-amzn-errortype': code }).end(JSON.stringify({ message }));
      }
    };
    const token = req.headers['x-amz-security-token'];
    const check = this.ledger.check(accessKeyId, typeof token === 'string' ? token : undefined);
    if (!check.ok) {
      if (check.why === 'expired') return answer(403, 'ExpiredToken', 'The security token included in the request is expired');
      return answer(403, check.why === 'unknown' ? 'InvalidClientTokenId' : 'InvalidToken', 'The security token included in the request is invalid');
    }
    const query: Record<string, string> = {};
    url.searchParams.forEach((v, k) => { query[k] = v; });
    try {
      await verifySigV4({ method: req.method ?? 'GET', path: url.pathname, query, headers: req.headers, body }, { accessKeyId, secretAccessKey: check.key.secret, sessionToken: check.key.sessionToken }, service);
    } catch (error) {
      return answer(403, 'SignatureDoesNotMatch', error instanceof Error ? error.message : String(error));
    }
    if (service === 'sagemaker') {
      answer(200);
      res.writeHead(200, { 'content-type': String(req.headers['content-type'] ?? 'application/octet-stream') }).end(body);
      return;
    }
    if (req.method === 'PUT') {
      this.objects.set(decodeURIComponent(url.pathname), body);
      answer(200);
      res.writeHead(200, { etag: '"fake"' }).end();
      return;
    }
    answer(405, 'MethodNotAllowed', `${req.method ?? ''} is not supported by the fake`);
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.handle(req, Buffer.concat(chunks), res).catch((error: unknown) => res.writeHead(500).end(String(error)));
      });
    });
    this.port = await listenLoopback(this.server);
    return this;
  }

  async stop(): Promise<void> {
    await closeServer(this.server);
  }
}
