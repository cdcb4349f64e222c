// A loopback Google STS for workload identity federation from AWS (RFC 8693 token exchange, as
// google-auth-library's external account client calls it). The subject token is the serialized,
// SigV4-signed AWS GetCallerIdentity request: the fake checks its URL and method, that the
// x-goog-cloud-target-resource header names the pool provider, and the signature (cloud/auth's
// verifySigV4, on @smithy/signature-v4) with the secret its AWS key ledger holds, the keys'
// expiry and session token included, which is what AWS would answer for GetCallerIdentity. The
// AWS principal must pass the provider's attribute condition. Access tokens are issued with a
// short lifetime into a ledger that the service fakes check bearer tokens against.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { verifySigV4 } from '../../cloud/auth.js';
import type { KeyLedger } from './oidc.js';
import { closeServer, listenLoopback } from '../helpers/net.js';

export const AWS4_REQUEST_TYPE = 'urn:ietf:params:aws:token-type:aws4_request';

export interface GoogleExchange {
  status: number;
  error?: string;
  /** The AWS key the subject token was signed with. */
  accessKeyId?: string;
  accessToken?: string;
}

interface SerializedRequest {
  url?: unknown;
  method?: unknown;
  headers?: unknown;
}

export class GoogleStsFake {
  readonly exchanges: GoogleExchange[] = [];
  /** Issued access tokens and their expiry (epoch ms). */
  readonly tokens = new Map<string, number>();
  lifetimeSeconds = 3600;
  private server: Server | undefined;
  port = 0;

  /** `allowedPrincipals`: the AWS roles the provider's attribute condition admits. */
  constructor(readonly audience: string, private readonly awsKeys: KeyLedger, private readonly allowedPrincipals: readonly string[]) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Whether `authorization` carries a token this STS issued and that has not expired. */
  accepts(authorization: string | undefined): 'ok' | 'unknown' | 'expired' {
    const token = /^Bearer (.+)$/.exec(authorization ?? '')?.[1];
    const expiresAt = token === undefined ? undefined : this.tokens.get(token);
    if (expiresAt === undefined) return 'unknown';
    return Date.now() < expiresAt ? 'ok' : 'expired';
  }

  /** Checks the exchange; the refusal's status, OAuth error and description, or the AWS key used. */
  private async check(form: URLSearchParams): Promise<{ status: number; error: string; description: string; accessKeyId?: string } | { accessKeyId: string }> {
    const refuse = (status: number, error: string, description: string, accessKeyId?: string) => ({ status, error, description, ...(accessKeyId ? { accessKeyId } : {}) });
    if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:token-exchange') return refuse(400, 'unsupported_grant_type', `grant_type ${String(form.get('grant_type'))}`);
    if (form.get('audience') !== this.audience) return refuse(400, 'invalid_target', `Invalid value for "audience": ${String(form.get('audience'))} is not a workload identity pool provider here`);
    if (form.get('subject_token_type') !== AWS4_REQUEST_TYPE) return refuse(400, 'invalid_request', `subject_token_type ${String(form.get('subject_token_type'))} is not the AWS provider's`);
    let request: SerializedRequest;
    try {
      request = JSON.parse(decodeURIComponent(form.get('subject_token') ?? '')) as SerializedRequest;
    } catch {
      return refuse(400, 'invalid_grant', 'The subject token is not a serialized AWS request');
    }
    if (typeof request.url !== 'string' || request.method !== 'POST' || !Array.isArray(request.headers)) return refuse(400, 'invalid_grant', 'The subject token lacks url, method or headers');
    const url = new URL(request.url);
    if (!/^sts\.[a-z0-9-]+\.amazonaws\.com$/.test(url.hostname) || url.searchParams.get('Action') !== 'GetCallerIdentity') return refuse(400, 'invalid_grant', `The subject token is not a regional GetCallerIdentity request: ${request.url}`);
    const headers: IncomingHttpHeaders = {};
    for (const h of request.headers as { key?: unknown; value?: unknown }[]) if (typeof h.key === 'string' && typeof h.value === 'string') headers[h.key.toLowerCase()] = h.value;
    if (headers['x-goog-cloud-target-resource'] !== this.audience) return refuse(400, 'invalid_grant', `The x-goog-cloud-target-resource header ${String(headers['x-goog-cloud-target-resource'])} does not match the audience`);
    headers['host'] ??= url.host;
    const accessKeyId = /Credential=([^/]+)\//.exec(String(headers['authorization'] ?? ''))?.[1] ?? '';
    const key = this.awsKeys.check(accessKeyId, typeof headers['x-amz-security-token'] === 'string' ? headers['x-amz-security-token'] : undefined);
    if (!key.ok) {
      if (key.why === 'expired') return refuse(400, 'invalid_grant', 'Received invalid AWS response of type ExpiredToken with error message: The security token included in the request is expired', accessKeyId);
      return refuse(400, 'invalid_grant', 'Received invalid AWS response of type InvalidClientTokenId with error message: The security token included in the request is invalid', accessKeyId);
    }
    const query: Record<string, string> = {};
    url.searchParams.forEach((v, k) => { query[k] = v; });
    try {
      await verifySigV4({ method: 'POST', path: url.pathname, query, headers, body: new Uint8Array(0) }, { accessKeyId, secretAccessKey: key.key.secret, sessionToken: key.key.sessionToken }, 'sts');
    } catch (error) {
      return refuse(400, 'invalid_grant', `Received invalid AWS response of type SignatureDoesNotMatch with error message: ${error instanceof Error ? error.message : String(error)}`, accessKeyId);
    }
    if (!this.allowedPrincipals.includes(key.key.principal ?? '')) return refuse(403, 'unauthorized_client', 'The given credential is rejected by the attribute condition.', accessKeyId);
    return { accessKeyId };
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
        const answer = (status: number, body: unknown): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
        if (req.method !== 'POST' || req.url !== '/v1/token') return answer(404, { error: 'not_found' });
        this.check(form).then((verdict) => {
          if ('error' in verdict) {
            this.exchanges.push({ status: verdict.status, error: verdict.error, ...(verdict.accessKeyId ? { accessKeyId: verdict.accessKeyId } : {}) });
            return answer(verdict.status, { error: verdict.error, error_description: verdict.description });
          }
          const accessToken = `ya29.${randomBytes(18).toString('base64url')}`;
          this.tokens.set(accessToken, Date.now() + this.lifetimeSeconds * 1000);
          this.exchanges.push({ status: 200, accessKeyId: verdict.accessKeyId, accessToken });
          answer(200, { access_token: accessToken, issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', token_type: 'Bearer', expires_in: this.lifetimeSeconds });
        }, (error: unknown) => answer(500, { error: 'server_error', error_description: String(error) }));
      });
    });
    this.port = await listenLoopback(this.server);
    return this;
  }

  async stop(): Promise<void> {
    await closeServer(this.server);
  }
}
