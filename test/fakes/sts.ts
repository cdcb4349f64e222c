// A loopback AWS STS for the SDK's credential chain: AssumeRoleWithWebIdentity (checked
// against one web identity token) and AssumeRole (its SigV4 verified against the source
// profile's keys), both issuing one fixed set of temporary credentials, so that the service
// under test can be told which keys to accept.
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { verifySigV4, type AwsCredentials } from '../../cloud/auth.js';
import { listenLoopback } from '../helpers/net.js';

export interface StsFakeOptions {
  roleArn: string;
  webIdentityToken: string;
  /** Keys AssumeRole requests must be signed with. */
  sourceCredentials: AwsCredentials;
  issued: Required<AwsCredentials>;
}

export interface StsCall {
  action: string;
  roleArn: string | null;
  roleSessionName: string | null;
  status: number;
}

const xmlEscape = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export class StsFake {
  readonly calls: StsCall[] = [];
  private server: Server | undefined;
  port = 0;

  constructor(private readonly options: StsFakeOptions) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const form = new URLSearchParams(body.toString('utf8'));
        const action = form.get('Action') ?? '';
        const roleArn = form.get('RoleArn');
        const roleSessionName = form.get('RoleSessionName');
        const answer = (status: number, xml: string): void => {
          this.calls.push({ action, roleArn, roleSessionName, status });
          res.writeHead(status, { 'content-type': 'text/xml' }).end(xml);
        };
        const fail = (status: number, code: string, message: string): void => answer(status,
          `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`);
        const issue = (): string => {
          const c = this.options.issued;
          const expiration = new Date(Date.now() + 3600_000).toISOString();
          return `<AssumedRoleUser><Arn>${xmlEscape(`${(roleArn ?? '').replace(':iam::', ':sts::').replace(':role/', ':assumed-role/')}/${roleSessionName ?? ''}`)}</Arn><AssumedRoleId>AROATANDEMFAKE:${xmlEscape(roleSessionName ?? '')}</AssumedRoleId></AssumedRoleUser>`
            + `<Credentials><AccessKeyId>${c.accessKeyId}</AccessKeyId><SecretAccessKey>${c.secretAccessKey}</SecretAccessKey><SessionToken>${c.sessionToken}</SessionToken><Expiration>${expiration}</Expiration></Credentials>`;
        };
        if (roleArn !== this.options.roleArn) {
          fail(403, 'AccessDenied', `not authorized to perform sts:${action} on ${roleArn ?? '(no role)'}`);
          return;
        }
        if (action === 'AssumeRoleWithWebIdentity') {
          if (form.get('WebIdentityToken') !== this.options.webIdentityToken) {
            fail(400, 'InvalidIdentityToken', 'Couldn\'t retrieve verification key from your identity provider');
            return;
          }
          answer(200, `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult>${issue()}<SubjectFromWebIdentityToken>system:serviceaccount:edge:tandem</SubjectFromWebIdentityToken></AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>`);
          return;
        }
        if (action === 'AssumeRole') {
          const url = new URL(req.url ?? '/', 'http://x');
          verifySigV4({ method: req.method ?? 'POST', path: url.pathname, query: Object.fromEntries(url.searchParams), headers: req.headers, body }, this.options.sourceCredentials, 'sts').then(
            () => answer(200, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>${issue()}</AssumeRoleResult><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></AssumeRoleResponse>`),
            (error: unknown) => fail(403, 'SignatureDoesNotMatch', error instanceof Error ? error.message : String(error)),
          );
          return;
        }
        fail(400, 'InvalidAction', `unknown action "${action}"`);
      });
    });
    this.port = await listenLoopback(this.server);
    return this;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
