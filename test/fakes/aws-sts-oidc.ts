// A loopback AWS STS for web identity federation: AssumeRoleWithWebIdentity verifies the OIDC
// token (RS256 signature against the local issuer's key, issuer, audience `sts.amazonaws.com`,
// expiry) and that the role trusts the issuer, then issues fresh temporary keys with a short
// lifetime into a ledger that the service fakes accept keys from, each until its expiry. Its
// refusals are STS's: ExpiredTokenException, InvalidIdentityToken, AccessDenied.
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { KeyLedger, type OidcIssuer } from './oidc.js';
import { closeServer, listenLoopback } from '../helpers/net.js';

export const AWS_STS_AUDIENCE = 'sts.amazonaws.com';

export interface AwsStsCall {
  action: string;
  roleArn: string | null;
  roleSessionName: string | null;
  status: number;
  code?: string;
  accessKeyId?: string;
  /** The verified token's subject. */
  subject?: string;
}

const xmlEscape = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export class AwsStsOidcFake {
  readonly calls: AwsStsCall[] = [];
  readonly ledger = new KeyLedger();
  /** Lifetime of the keys issued from now on, seconds. */
  lifetimeSeconds = 3600;
  private server: Server | undefined;
  port = 0;

  /** `trustedRoles`: the roles whose trust policy names the issuer. */
  constructor(private readonly issuer: OidcIssuer, private readonly trustedRoles: readonly string[]) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
        const action = form.get('Action') ?? '';
        const roleArn = form.get('RoleArn');
        const roleSessionName = form.get('RoleSessionName');
        const fail = (status: number, code: string, message: string): void => {
          this.calls.push({ action, roleArn, roleSessionName, status, code });
          res.writeHead(status, { 'content-type': 'text/xml' }).end(`<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`);
        };
        if (action !== 'AssumeRoleWithWebIdentity') return fail(400, 'InvalidAction', `unknown action "${action}"`);
        const verdict = this.issuer.verify(form.get('WebIdentityToken') ?? '', AWS_STS_AUDIENCE);
        if (!verdict.ok) {
          if (verdict.refusal === 'expired') return fail(400, 'ExpiredTokenException', `Token expired: current date/time must be before the expiration date/time (${verdict.message})`);
          if (verdict.refusal === 'audience') return fail(400, 'InvalidIdentityToken', `Incorrect token audience (${verdict.message})`);
          return fail(400, 'InvalidIdentityToken', verdict.message);
        }
        if (roleArn === null || !this.trustedRoles.includes(roleArn)) return fail(403, 'AccessDenied', `Not authorized to perform sts:AssumeRoleWithWebIdentity on ${roleArn ?? '(no role)'}`);
        const key = { accessKeyId: `ASIA${randomBytes(8).toString('hex').toUpperCase()}`, secret: randomBytes(20).toString('base64'), sessionToken: `FwoG${randomBytes(24).toString('base64url')}`, expiresAt: Date.now() + this.lifetimeSeconds * 1000 };
        this.ledger.add(key);
        this.calls.push({ action, roleArn, roleSessionName, status: 200, accessKeyId: key.accessKeyId, subject: verdict.claims.sub });
        const assumed = `${roleArn.replace(':iam::', ':sts::').replace(':role/', ':assumed-role/')}/${roleSessionName ?? ''}`;
        res.writeHead(200, { 'content-type': 'text/xml' }).end(`<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult>`
          + `<AssumedRoleUser><Arn>${xmlEscape(assumed)}</Arn><AssumedRoleId>AROATANDEMFAKE:${xmlEscape(roleSessionName ?? '')}</AssumedRoleId></AssumedRoleUser>`
          + `<Credentials><AccessKeyId>${key.accessKeyId}</AccessKeyId><SecretAccessKey>${key.secret}</SecretAccessKey><SessionToken>${key.sessionToken}</SessionToken><Expiration>${new Date(key.expiresAt).toISOString()}</Expiration></Credentials>`
          + `<SubjectFromWebIdentityToken>${xmlEscape(verdict.claims.sub)}</SubjectFromWebIdentityToken><Audience>${AWS_STS_AUDIENCE}</Audience></AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>`);
      });
    });
    this.port = await listenLoopback(this.server);
    return this;
  }

  async stop(): Promise<void> {
    await closeServer(this.server);
  }
}
