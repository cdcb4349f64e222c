// A loopback Alibaba Cloud STS for RAM OIDC federation: AssumeRoleWithOIDC (RPC style, query
// Action/Version/Format/Timestamp, the OIDC token and ARNs in the form body, no signature: the
// token is the proof) verifies the token (RS256 signature against the local issuer's key,
// issuer, audience, expiry), the OIDC provider ARN and the role's trust, then issues short-lived
// STS keys into a ledger. Its refusals are STS's codes: AuthenticationFail.OIDCToken.Expired,
// …AudienceNotMatch, …InvalidSignature, AuthenticationFail.NoPermission. The OSS fake below
// takes only keys from that ledger, with their security token, until they expire.
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { OssFake } from './oss.js';
import { KeyLedger, type OidcIssuer } from './oidc.js';
import { closeServer, listenLoopback } from '../helpers/net.js';

export const ALIBABA_AUDIENCE = 'sts.aliyuncs.com';

export interface AlibabaStsCall {
  status: number;
  code?: string;
  roleArn: string | null;
  roleSessionName: string | null;
  accessKeyId?: string;
  subject?: string;
}

/** STS's UTC time format, without milliseconds. */
const utc = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

export class AlibabaStsFake {
  readonly calls: AlibabaStsCall[] = [];
  readonly ledger = new KeyLedger();
  /** Secrets by access key id, for the OSS fake's signature check (it reads this object). */
  readonly secrets: Record<string, string> = {};
  lifetimeSeconds = 3600;
  private server: Server | undefined;
  port = 0;

  constructor(private readonly issuer: OidcIssuer, private readonly providerArn: string, private readonly trustedRoles: readonly string[]) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const query = new URL(req.url ?? '/', 'http://x').searchParams;
        const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
        const roleArn = form.get('RoleArn');
        const roleSessionName = form.get('RoleSessionName');
        const fail = (status: number, code: string, message: string): void => {
          this.calls.push({ status, code, roleArn, roleSessionName });
          res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ RequestId: randomUUID(), HostId: 'sts.aliyuncs.com', Code: code, Message: message, Recommend: 'https://api.aliyun.com/troubleshoot' }));
        };
        if (req.method !== 'POST' || query.get('Action') !== 'AssumeRoleWithOIDC' || query.get('Version') !== '2015-04-01') return fail(400, 'InvalidAction.NotFound', `unknown action ${String(query.get('Action'))}`);
        if (!query.get('Timestamp')) return fail(400, 'MissingTimestamp', 'Timestamp is mandatory for this action.');
        if (form.get('OIDCProviderArn') !== this.providerArn) return fail(401, 'AuthenticationFail.NoPermission', 'No such OIDC Provider registered.');
        const verdict = this.issuer.verify(form.get('OIDCToken') ?? '', ALIBABA_AUDIENCE);
        if (!verdict.ok) {
          if (verdict.refusal === 'expired') return fail(401, 'AuthenticationFail.OIDCToken.Expired', 'This JsonWebToken is expired.');
          if (verdict.refusal === 'audience') return fail(401, 'AuthenticationFail.OIDCToken.AudienceNotMatch', 'Invalid audience.');
          if (verdict.refusal === 'signature') return fail(401, 'AuthenticationFail.OIDCToken.InvalidSignature', 'OIDC token validate failed: invalid signature.');
          return fail(401, 'AuthenticationFail.OIDCToken.Invalid', verdict.message);
        }
        if (roleArn === null || !this.trustedRoles.includes(roleArn)) return fail(401, 'AuthenticationFail.NoPermission', 'There is no permission');
        const key = { accessKeyId: `STS.${randomBytes(10).toString('hex')}`, secret: randomBytes(20).toString('base64'), sessionToken: `CAIS${randomBytes(32).toString('base64')}`, expiresAt: Date.now() + this.lifetimeSeconds * 1000 };
        this.ledger.add(key);
        this.secrets[key.accessKeyId] = key.secret;
        this.calls.push({ status: 200, roleArn, roleSessionName, accessKeyId: key.accessKeyId, subject: verdict.claims.sub });
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
          RequestId: randomUUID(),
          OIDCTokenInfo: { Subject: verdict.claims.sub, Issuer: verdict.claims.iss, ClientIds: ALIBABA_AUDIENCE },
          AssumedRoleUser: { Arn: `${roleArn.replace(':role/', ':assumed-role/')}/${roleSessionName ?? ''}`, AssumedRoleId: `3000:${roleSessionName ?? ''}` },
          Credentials: { AccessKeyId: key.accessKeyId, AccessKeySecret: key.secret, SecurityToken: key.sessionToken, Expiration: utc(key.expiresAt) },
        }));
      });
    });
    this.port = await listenLoopback(this.server);
    return this;
  }

  async stop(): Promise<void> {
    await closeServer(this.server);
  }
}

export interface OssKeyCall {
  method: string;
  accessKeyId: string;
  status: number;
}

/** The OSS fake (its V1 signature check on the ledger's secrets), taking only live STS keys with their security token. */
export class StsCheckedOssFake extends OssFake {
  readonly keyCalls: OssKeyCall[] = [];

  constructor(bucket: string, private readonly sts: AlibabaStsFake) {
    super(bucket, sts.secrets);
  }

  protected override handle(req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    const accessKeyId = /^OSS ([^:]+):/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    const token = req.headers['x-oss-security-token'];
    const check = this.sts.ledger.check(accessKeyId, typeof token === 'string' ? token : undefined);
    // The status OSS answered, after its signature check too (recorded before the client reads it).
    res.once('finish', () => this.keyCalls.push({ method: req.method ?? '', accessKeyId, status: res.statusCode }));
    if (!check.ok) {
      const [code, message] = check.why === 'expired' ? ['SecurityTokenExpired', 'The security token you provided has expired.'] : ['InvalidSecurityToken', 'The security token you provided is invalid.'];
      res.writeHead(403, { 'content-type': 'application/xml', 'x-oss-request-id': randomUUID() }).end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n  <Code>${code}</Code>\n  <Message>${message}</Message>\n  <RequestId>${randomUUID()}</RequestId>\n</Error>\n`);
      return;
    }
    super.handle(req, body, res);
  }
}
