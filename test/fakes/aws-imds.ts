// A loopback stand-in for the EC2 instance metadata service as google-auth-library's AWS
// credential source reads it: IMDSv2 session tokens (PUT /latest/api/token, required on every
// read), the availability zone, the instance role's name, and the role's temporary keys. The
// keys are issued into a ledger with a short lifetime and replaced once half of it is gone, as
// IMDS rotates them ahead of expiry; `serveExpired` hands out keys that have already lapsed.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { KeyLedger, type IssuedKey } from './oidc.js';
import { closeServer, listenLoopback } from '../helpers/net.js';

export class AwsImdsFake {
  readonly ledger = new KeyLedger();
  /** Paths read, in order (for the tests' record of what the SDK asked). */
  readonly reads: string[] = [];
  lifetimeSeconds = 3600;
  serveExpired = false;
  private current: IssuedKey | undefined;
  private readonly sessions = new Set<string>();
  private server: Server | undefined;
  port = 0;

  constructor(readonly role = 'tandem-edge-instance', readonly zone = 'eu-central-1a') {}

  /** Forgets the current keys: the next read issues new ones (with the lifetime then set). */
  rotate(): void {
    this.current = undefined;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private key(): IssuedKey {
    const now = Date.now();
    if (this.serveExpired) {
      const lapsed = { accessKeyId: `ASIA${randomBytes(8).toString('hex').toUpperCase()}`, secret: randomBytes(20).toString('base64'), sessionToken: randomBytes(24).toString('base64url'), expiresAt: now - 60_000, principal: this.role };
      this.ledger.add(lapsed);
      return lapsed;
    }
    if (!this.current || this.current.expiresAt - now < (this.lifetimeSeconds * 1000) / 2) {
      this.current = { accessKeyId: `ASIA${randomBytes(8).toString('hex').toUpperCase()}`, secret: randomBytes(20).toString('base64'), sessionToken: randomBytes(24).toString('base64url'), expiresAt: now + this.lifetimeSeconds * 1000, principal: this.role };
      this.ledger.add(this.current);
    }
    return this.current;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const path = req.url ?? '/';
      this.reads.push(`${req.method ?? ''} ${path}`);
      if (req.method === 'PUT' && path === '/latest/api/token') {
        if (!req.headers['x-aws-ec2-metadata-token-ttl-seconds']) return void res.writeHead(400).end();
        const token = randomBytes(16).toString('base64url');
        this.sessions.add(token);
        return void res.writeHead(200, { 'content-type': 'text/plain' }).end(token);
      }
      const session = req.headers['x-aws-ec2-metadata-token'];
      if (typeof session !== 'string' || !this.sessions.has(session)) return void res.writeHead(401).end();
      if (path === '/latest/meta-data/placement/availability-zone') return void res.writeHead(200, { 'content-type': 'text/plain' }).end(this.zone);
      if (path === '/latest/meta-data/iam/security-credentials') return void res.writeHead(200, { 'content-type': 'text/plain' }).end(this.role);
      if (path === `/latest/meta-data/iam/security-credentials/${this.role}`) {
        const k = this.key();
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
          Code: 'Success', Type: 'AWS-HMAC', AccessKeyId: k.accessKeyId, SecretAccessKey: k.secret, Token: k.sessionToken, Expiration: new Date(k.expiresAt).toISOString(), LastUpdated: new Date().toISOString(),
        }));
      }
      res.writeHead(404).end();
    });
    this.port = await listenLoopback(this.server);
    return this;
  }

  async stop(): Promise<void> {
    await closeServer(this.server);
  }
}
