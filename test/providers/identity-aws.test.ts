// AWS web identity federation (`identity: { aws: … }`) through the SDK's own fromTokenFile: the
// OIDC token file is exchanged at a loopback STS that verifies the token (RS256 signature,
// issuer, audience, expiry) and the role's trust, and the temporary keys it issues sign real
// SageMaker InvokeEndpoint and S3 PutObject calls that a loopback service verifies (SigV4, the
// session token, the keys' expiry). Short lifetimes show the keys refreshed before they expire.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createProviderClient, ProviderError, type EndpointConfig } from '../../src/providers/index.js';
import type { AwsIdentity } from '../../src/providers/identity/index.js';
import { createStore, type StoreDecl } from '../../src/residency/index.js';
import { AWS_STS_AUDIENCE, AwsStsOidcFake } from '../fakes/aws-sts-oidc.js';
import { AwsSignedServicesFake } from '../fakes/aws-signed-services.js';
import { OidcIssuer } from '../fakes/oidc.js';
import { isolateEnv } from '../helpers/env.js';
import { closedPort } from '../helpers/net.js';

const ROLE = 'arn:aws:iam::123456789012:role/tandem-edge';
const UNTRUSTED_ROLE = 'arn:aws:iam::123456789012:role/someone-else';
// Everything the SDK's chain and STS client read, so that the machine's own AWS setup stays out.
const AWS_ENV = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE',
  'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_ROLE_ARN', 'AWS_ROLE_SESSION_NAME', 'AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_STS', 'AWS_EC2_METADATA_DISABLED', 'AWS_REGION', 'AWS_DEFAULT_REGION'];

const issuer = new OidcIssuer();
let sts: AwsStsOidcFake;
let services: AwsSignedServicesFake;
let dir: string;
let tokenFile: string;
let restoreEnv: () => void;

beforeAll(async () => {
  sts = await new AwsStsOidcFake(issuer, [ROLE]).start();
  services = await new AwsSignedServicesFake(sts.ledger).start();
});
afterAll(async () => {
  await services.stop();
  await sts.stop();
});
beforeEach(() => {
  restoreEnv = isolateEnv(AWS_ENV);
  dir = mkdtempSync(join(tmpdir(), 'tandem-aws-id-'));
  process.env['AWS_CONFIG_FILE'] = join(dir, 'none');
  process.env['AWS_SHARED_CREDENTIALS_FILE'] = join(dir, 'none');
  process.env['AWS_EC2_METADATA_DISABLED'] = 'true';
  tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, issuer.mint(AWS_STS_AUDIENCE, { subject: 'device-1' }));
  sts.calls.length = 0;
  services.calls.length = 0;
  sts.lifetimeSeconds = 3600;
});
afterEach(() => {
  restoreEnv();
  rmSync(dir, { recursive: true, force: true });
});

const identity = (over: Partial<AwsIdentity> = {}): { aws: AwsIdentity } => ({ aws: { roleArn: ROLE, webIdentityTokenFile: tokenFile, stsEndpoint: sts.url, ...over } });
const endpoint = (over: Partial<AwsIdentity> = {}): EndpointConfig => ({ name: 'sm', kind: 'sagemaker', region: 'eu-central-1', url: services.url, target: 'tandem-ep', identity: identity(over) });
const input = { x: { dtype: 'float32' as const, dims: [1, 4], data: new Float32Array([1, 2, 3, 4]) } };
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function invoke(client: ReturnType<typeof createProviderClient>): Promise<void> {
  const res = await client.infer({ model: 'cls', inputs: input }, { deadline: Date.now() + 20_000 });
  // The loopback SageMaker echoes the request's tensors once it has accepted the signature.
  expect(Array.from(res.outputs['x']?.data as Float32Array)).toEqual([1, 2, 3, 4]);
}

describe('AWS AssumeRoleWithWebIdentity from an OIDC token file', () => {
  it('SageMaker InvokeEndpoint signed with the STS keys: one exchange for the role, the session token checked', async () => {
    const client = createProviderClient(endpoint({ roleSessionName: 'gateway-7' }));
    try {
      await invoke(client);
      await invoke(client);
      expect(sts.calls).toEqual([expect.objectContaining({ action: 'AssumeRoleWithWebIdentity', roleArn: ROLE, roleSessionName: 'gateway-7', status: 200, subject: 'device-1' })]);
      const issued = sts.calls[0]?.accessKeyId;
      expect(services.calls).toEqual([
        { service: 'sagemaker', path: '/endpoints/tandem-ep/invocations', accessKeyId: issued, status: 200 },
        { service: 'sagemaker', path: '/endpoints/tandem-ep/invocations', accessKeyId: issued, status: 200 },
      ]);
    } finally {
      await client.close();
    }
  });

  it('short-lived keys are replaced before they expire, and a rotated token file is read at the next exchange', async () => {
    // 2-second keys, held for half their life (the SDK's five-minute window would take all of it).
    sts.lifetimeSeconds = 2;
    const client = createProviderClient(endpoint());
    try {
      await invoke(client);
      // The token file rotates (as a projected service account token does).
      writeFileSync(tokenFile, issuer.mint(AWS_STS_AUDIENCE, { subject: 'device-1-rotated' }));
      await sleep(2_200);
      // The first keys have expired by now: the service would refuse them.
      const first = sts.calls[0]?.accessKeyId ?? '';
      expect(sts.ledger.check(first, sts.ledger.keys.get(first)?.sessionToken).ok).toBe(false);
      await invoke(client);
      expect(sts.calls.map((c) => [c.status, c.subject])).toEqual([[200, 'device-1'], [200, 'device-1-rotated']]);
      const keys = services.calls.map((c) => c.accessKeyId);
      expect(new Set(keys).size).toBe(2);
      expect(keys).toEqual(sts.calls.map((c) => c.accessKeyId));
      expect(services.calls.every((c) => c.status === 200)).toBe(true);
    } finally {
      await client.close();
    }
  });

  it('keys are kept while fresh and replaced while still valid: no request signs with keys about to lapse', async () => {
    // 4-second keys: held for two seconds, then exchanged again with two seconds of life left.
    sts.lifetimeSeconds = 4;
    const client = createProviderClient(endpoint());
    try {
      await Promise.all([invoke(client), invoke(client)]);
      await invoke(client);
      // Concurrent calls share one exchange; the keys serve until their refresh point.
      expect(sts.calls).toHaveLength(1);
      await sleep(2_300);
      await invoke(client);
      expect(sts.calls).toHaveLength(2);
      const [a, b] = sts.calls.map((c) => c.accessKeyId ?? '');
      expect(a).not.toBe(b);
      // The first keys were replaced before they lapsed: they are still valid now.
      expect(sts.ledger.check(a ?? '', sts.ledger.keys.get(a ?? '')?.sessionToken).ok).toBe(true);
      expect(services.calls.map((c) => c.accessKeyId)).toEqual([a, a, a, b]);
      expect(services.calls.every((c) => c.status === 200)).toBe(true);
    } finally {
      await client.close();
    }
  });

  it('a refresh STS refuses does not fail requests while the held keys are valid; once they expire it does', async () => {
    sts.lifetimeSeconds = 4;
    const client = createProviderClient(endpoint());
    try {
      await invoke(client);
      // The token file now holds an expired token: every exchange from here on is refused.
      writeFileSync(tokenFile, issuer.mint(AWS_STS_AUDIENCE, { lifetimeSeconds: -60 }));
      await sleep(2_300);
      await invoke(client);
      expect(sts.calls.map((c) => c.status)).toEqual([200, 400]);
      await sleep(2_000);
      await expect(client.infer({ model: 'cls', inputs: input }, { deadline: Date.now() + 20_000 })).rejects.toMatchObject({ code: 'PROVIDER_AUTH', details: { reason: 'expired-token' } });
      // Every request that reached the service was signed with live keys.
      expect(services.calls.map((c) => c.status)).toEqual([200, 200]);
    } finally {
      await client.close();
    }
  });

  it('S3 PutObject from the result store with the federated keys', async () => {
    const decl = { type: 's3', provider: 'aws', region: 'eu-central-1', bucket: 'tandem-results', endpoint: services.url, forcePathStyle: true, sse: 'none' } as StoreDecl;
    const store = createStore('results-eu', decl, { s3: { identity: identity() } });
    try {
      await store.put('ab/result-1.tde', new Uint8Array([7, 8, 9]));
      expect([...(services.objects.get('/tandem-results/ab/result-1.tde') ?? [])]).toEqual([7, 8, 9]);
      expect(sts.calls).toEqual([expect.objectContaining({ status: 200, roleSessionName: 'tandem-results-eu' })]);
      expect(services.calls).toEqual([expect.objectContaining({ service: 's3', status: 200, accessKeyId: sts.calls[0]?.accessKeyId })]);
    } finally {
      await store.close();
    }
  });

  const refusals = [
    { what: 'an expired token', token: () => issuer.mint(AWS_STS_AUDIENCE, { lifetimeSeconds: -60 }), role: ROLE, status: 400, wireCode: 'ExpiredTokenException', serverCode: 'ExpiredTokenException', reason: 'expired-token' },
    { what: 'a token for another audience', token: () => issuer.mint('sts.amazonaws.com.cn'), role: ROLE, status: 400, wireCode: 'InvalidIdentityToken', serverCode: 'InvalidIdentityTokenException', reason: 'wrong-audience' },
    { what: 'a role that does not trust the issuer', token: () => issuer.mint(AWS_STS_AUDIENCE), role: UNTRUSTED_ROLE, status: 403, wireCode: 'AccessDenied', serverCode: 'AccessDenied', reason: 'access-denied' },
    { what: 'a token another key signed', token: () => new OidcIssuer().mint(AWS_STS_AUDIENCE), role: ROLE, status: 400, wireCode: 'InvalidIdentityToken', serverCode: 'InvalidIdentityTokenException', reason: 'invalid-token' },
  ];
  for (const r of refusals) {
    it(`${r.what}: a final PROVIDER_AUTH (reason ${r.reason}) for the endpoint, STORE_AUTH for the store, nothing sent to either`, async () => {
      writeFileSync(tokenFile, r.token());
      const client = createProviderClient(endpoint({ roleArn: r.role }));
      try {
        const error = await client.infer({ model: 'cls', inputs: input }, { deadline: Date.now() + 20_000 }).then(() => undefined, (e: unknown) => e);
        expect(error).toBeInstanceOf(ProviderError);
        expect(error).toMatchObject({ code: 'PROVIDER_AUTH', retryable: false, status: r.status, details: { endpoint: 'sm', identity: 'aws', serverCode: r.serverCode, reason: r.reason } });
      } finally {
        await client.close();
      }
      const decl = { type: 's3', provider: 'aws', region: 'eu-central-1', bucket: 'tandem-results', endpoint: services.url, sse: 'none' } as StoreDecl;
      const store = createStore('results-eu', decl, { s3: { identity: identity({ roleArn: r.role }) } });
      try {
        await expect(store.put('ab/x.tde', new Uint8Array([1]))).rejects.toMatchObject({ code: 'STORE_AUTH', failure: 'auth', details: { store: 'results-eu', reason: r.reason } });
      } finally {
        await store.close();
      }
      expect(sts.calls.map((c) => c.code)).toEqual([r.wireCode, r.wireCode]);
      expect(services.calls).toEqual([]);
    });
  }

  it('an unreachable STS is a retryable network failure (PROVIDER_NETWORK; the store: unavailable)', async () => {
    const down = `http://127.0.0.1:${await closedPort()}`;
    const client = createProviderClient(endpoint({ stsEndpoint: down }));
    try {
      await expect(client.infer({ model: 'cls', inputs: input }, { deadline: Date.now() + 20_000 })).rejects.toMatchObject({ code: 'PROVIDER_NETWORK', retryable: true, details: { identity: 'aws' } });
    } finally {
      await client.close();
    }
    const decl = { type: 's3', provider: 'aws', region: 'eu-central-1', bucket: 'tandem-results', endpoint: services.url, sse: 'none' } as StoreDecl;
    const store = createStore('results-eu', decl, { s3: { identity: identity({ stsEndpoint: down }) } });
    try {
      await expect(store.put('ab/x.tde', new Uint8Array([1]))).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', failure: 'unavailable' });
    } finally {
      await store.close();
    }
  });

  it('an identity of another cloud is refused when the client is made (PROVIDER_CONFIG)', () => {
    expect(() => createProviderClient({ name: 'sm', kind: 'sagemaker', region: 'eu-central-1', identity: { gcp: { credentialConfigFile: '/x.json' } } })).toThrow(expect.objectContaining({ code: 'PROVIDER_CONFIG', message: expect.stringMatching(/sagemaker takes an aws identity, not gcp/) as unknown }));
  });
});
