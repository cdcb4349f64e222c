/**
 * Google Cloud workload identity federation through google-auth-library's own external account
 * client: the `external_account` configuration is handed to the SDK (Vertex AI's GoogleAuth,
 * Cloud Storage's) as its `credentials`, and the SDK does the rest. With an AWS credential
 * source it takes the device's AWS keys (instance metadata or the AWS_* environment), signs an
 * STS GetCallerIdentity request with them, and exchanges that at Google's STS for an access
 * token, which it keeps until five minutes before it expires. Tandem reads and checks the file.
 */
import { readFile } from 'node:fs/promises';
import { ProviderError } from '../errors.js';
import type { GcpIdentity } from './config.js';
import { secretKeysIn } from './config.js';
import { identityError } from './errors.js';

/** The fields of an `external_account` configuration this module checks; the SDK reads the rest. */
export interface ExternalAccountConfig {
  type: 'external_account';
  audience: string;
  subject_token_type: string;
  token_url?: string;
  credential_source: Record<string, unknown>;
  [key: string]: unknown;
}

const bad = (owner: string, file: string, why: string, cause?: unknown): ProviderError =>
  new ProviderError('PROVIDER_CONFIG', `"${owner}": the credential configuration ${file} ${why}`, { cause, details: { endpoint: owner, identity: 'gcp', file } });

/**
 * Reads and checks `identity.credentialConfigFile`: an `external_account` configuration with a
 * credential source the SDK fetches itself (AWS, a token file or URL) and no secret in it (a
 * service account key, an authorized user's refresh token). Rejects with PROVIDER_CONFIG.
 */
export async function readExternalAccountConfig(owner: string, identity: GcpIdentity): Promise<ExternalAccountConfig> {
  const file = identity.credentialConfigFile;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw bad(owner, file, `cannot be read: ${error instanceof Error ? error.message : String(error)}`, error);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw bad(owner, file, 'is not JSON', error);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw bad(owner, file, 'is not a JSON object');
  const config = json as Record<string, unknown>;
  const secrets = secretKeysIn(config).map((p) => p.join('.'));
  if (secrets.length > 0) throw bad(owner, file, `holds a secret (${secrets.join(', ')}): federation needs none; write it with gcloud iam workload-identity-pools create-cred-config`);
  if (config['type'] !== 'external_account') throw bad(owner, file, `is of type ${JSON.stringify(config['type'])}, not "external_account" (workload identity federation)`);
  if (typeof config['audience'] !== 'string' || config['audience'] === '') throw bad(owner, file, 'has no audience (the workload identity pool provider)');
  if (typeof config['subject_token_type'] !== 'string') throw bad(owner, file, 'has no subject_token_type');
  if (config['token_url'] !== undefined && typeof config['token_url'] !== 'string') throw bad(owner, file, 'has a token_url that is not a string');
  const source = config['credential_source'];
  if (source === null || typeof source !== 'object' || Array.isArray(source)) throw bad(owner, file, 'has no credential_source');
  const s = source as Record<string, unknown>;
  // An executable source runs a command of the file's choosing: not something a config file may start.
  if (s['executable'] !== undefined) throw bad(owner, file, 'has an executable credential source, which Tandem does not run');
  if (s['environment_id'] === undefined && s['file'] === undefined && s['url'] === undefined) throw bad(owner, file, 'has a credential_source with neither environment_id (AWS), file nor url');
  if (s['environment_id'] !== undefined && (typeof s['environment_id'] !== 'string' || !/^aws\d+$/.test(s['environment_id']) || typeof s['regional_cred_verification_url'] !== 'string')) {
    throw bad(owner, file, 'has an AWS credential source without environment_id "aws1" and regional_cred_verification_url');
  }
  return config as ExternalAccountConfig;
}

/** The OAuth error (`invalid_grant`…) and description of a token endpoint's refusal, as gaxios keeps it. */
function oauthRefusal(error: unknown): { status: number | undefined; code: string | undefined; description: string | undefined } {
  const response = (error as { response?: { status?: unknown; data?: unknown } } | null)?.response;
  const data = response?.data;
  const field = (k: string): string | undefined => {
    const v = data !== null && typeof data === 'object' ? (data as Record<string, unknown>)[k] : undefined;
    return typeof v === 'string' ? v : undefined;
  };
  return { status: typeof response?.status === 'number' ? response.status : undefined, code: field('error'), description: field('error_description') };
}

/**
 * A failure of the SDK's federated exchange (the AWS source, Google's STS) as a ProviderError
 * for `owner`, with `details.reason` where the token service said what it refused.
 */
export function gcpIdentityError(owner: string, error: unknown): ProviderError {
  const { status, code, description } = oauthRefusal(error);
  const withDescription = description !== undefined && error instanceof Error && !error.message.includes(description) ? new Error(`${error.message}: ${description}`, { cause: error }) : error;
  return identityError(owner, 'gcp', withDescription, status, code);
}

/**
 * Has `auth` (a client's GoogleAuth) hold a token before a call is made with it, so that a
 * failed exchange is told apart from the service's own answer. The library keeps the token:
 * this costs an exchange only when one is due.
 */
export async function ensureGoogleToken(owner: string, auth: GoogleAuthLike, exchangeAdapter?: ExchangeAdapter): Promise<void> {
  try {
    if (exchangeAdapter) await routeTokenExchange(auth, exchangeAdapter);
    await auth.getAccessToken();
  } catch (error) {
    throw gcpIdentityError(owner, error);
  }
}

/** What these functions need of a GoogleAuth. */
export interface GoogleAuthLike {
  getAccessToken(): Promise<unknown>;
  getClient(): Promise<unknown>;
}

/** A gaxios adapter (a proxy route's), as gaxios calls it. */
export type ExchangeAdapter = (options: never, defaultAdapter: never) => Promise<unknown>;

interface Requester { request(options: Record<string, unknown>): Promise<unknown> }

/** Transporters already given an adapter: routing twice would nest the adapters. */
const routed = new WeakSet<object>();

/**
 * Puts an external account's token exchange on `adapter`'s route. google-auth-library 9 makes
 * that exchange (the STS call) with a transporter of its own, which the client's
 * `transporterOptions` do not reach, so behind a mandatory proxy federation could not get a
 * token. Only this client's exchange changes; a client without one (a static token, a service
 * account) is left as it is.
 */
export async function routeTokenExchange(auth: Pick<GoogleAuthLike, 'getClient'>, adapter: ExchangeAdapter): Promise<void> {
  const client = (await auth.getClient()) as { stsCredential?: { transporter?: Requester } } | null;
  const sts = client?.stsCredential;
  const inner = sts?.transporter;
  if (!sts || !inner || typeof inner.request !== 'function' || routed.has(inner)) return;
  const outer: Requester = { request: (options) => inner.request({ ...options, adapter }) };
  routed.add(outer);
  sts.transporter = outer;
}
