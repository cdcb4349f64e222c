// Google Cloud workload identity federation from AWS (`identity: { gcp: { credentialConfigFile } }`)
// through google-auth-library's own external account client: the AWS source reads the device's
// keys from a loopback IMDS stand-in (IMDSv2), signs GetCallerIdentity, and the serialized
// request is exchanged at a loopback Google STS that verifies the SigV4 signature, the keys'
// expiry and the x-goog-cloud-target-resource header. The access tokens it issues are what a
// real Vertex AI rawPredict (REST) and a GCS upload carry, checked by loopback services.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createProviderClient, ProviderError, type EndpointConfig } from '../../src/providers/index.js';
import { createStore, type StoreDecl } from '../../src/residency/index.js';
import { AwsImdsFake } from '../fakes/aws-imds.js';
import { ConnectProxy } from '../fakes/connect-proxy.js';
import { TokenCheckedGcsFake, TokenCheckedVertexFake } from '../fakes/google-services.js';
import { AWS4_REQUEST_TYPE, GoogleStsFake } from '../fakes/google-sts.js';
import { isolateEnv } from '../helpers/env.js';

const AUDIENCE = '//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/edge-pool/providers/aws-gateways';
// What the external account client and ADC read, so that the machine's own setup stays out.
const ENV = ['AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'GOOGLE_APPLICATION_CREDENTIALS',
  'GOOGLE_CLOUD_PROJECT', 'GCLOUD_PROJECT', 'GCE_METADATA_HOST', 'GCE_METADATA_IP', 'CLOUDSDK_CONFIG'];

let imds: AwsImdsFake;
let sts: GoogleStsFake;
let vertex: TokenCheckedVertexFake;
let gcs: TokenCheckedGcsFake;
let dir: string;
let restoreEnv: () => void;
const allowed = ['tandem-edge-instance'];

beforeAll(async () => {
  imds = await new AwsImdsFake('tandem-edge-instance', 'eu-central-1b').start();
  sts = await new GoogleStsFake(AUDIENCE, imds.ledger, allowed).start();
  const check = sts.accepts.bind(sts);
  vertex = await new TokenCheckedVertexFake(check).start();
  gcs = await new TokenCheckedGcsFake('tandem-results', check).start();
});
afterAll(async () => {
  await Promise.all([vertex.stop(), gcs.stop(), sts.stop(), imds.stop()]);
});
beforeEach(() => {
  restoreEnv = isolateEnv(ENV);
  dir = mkdtempSync(join(tmpdir(), 'tandem-gcp-id-'));
  process.env['CLOUDSDK_CONFIG'] = join(dir, 'gcloud');
  // Any GCE metadata lookup would fail fast: there must be none.
  process.env['GCE_METADATA_HOST'] = '127.0.0.1:9';
  sts.exchanges.length = 0;
  sts.lifetimeSeconds = 3600;
  imds.lifetimeSeconds = 3600;
  imds.serveExpired = false;
  imds.rotate();
  imds.reads.length = 0;
  vertex.calls.length = 0;
  gcs.calls.length = 0;
  allowed.splice(0, allowed.length, 'tandem-edge-instance');
});
afterEach(() => {
  restoreEnv();
  rmSync(dir, { recursive: true, force: true });
});

/** The configuration `gcloud iam workload-identity-pools create-cred-config --aws` writes, pointed at the loopback services. */
function credentialConfig(over: Record<string, unknown> = {}): string {
  const file = join(dir, 'wif-aws.json');
  writeFileSync(file, JSON.stringify({
    type: 'external_account',
    audience: AUDIENCE,
    subject_token_type: AWS4_REQUEST_TYPE,
    token_url: `${sts.url}/v1/token`,
    credential_source: {
      environment_id: 'aws1',
      region_url: `${imds.url}/latest/meta-data/placement/availability-zone`,
      url: `${imds.url}/latest/meta-data/iam/security-credentials`,
      regional_cred_verification_url: 'https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15',
      imdsv2_session_token_url: `${imds.url}/latest/api/token`,
    },
    ...over,
  }));
  return file;
}

const endpoint = (file: string): EndpointConfig => ({ name: 'vx', kind: 'vertex', region: 'europe-west4', url: vertex.url, project: 'proj', target: 'ep1', identity: { gcp: { credentialConfigFile: file } } });
const gcsDecl = (): StoreDecl => ({ type: 'gcs', provider: 'gcp', region: 'europe-west4', bucket: 'tandem-results', apiEndpoint: gcs.url, authWithCustomEndpoint: true } as StoreDecl);
const input = { x: { dtype: 'float32' as const, dims: [1, 3], data: new Float32Array([5, 6, 7]) } };
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function predict(client: ReturnType<typeof createProviderClient>): Promise<void> {
  const res = await client.infer({ model: 'cls', inputs: input }, { deadline: Date.now() + 20_000 });
  expect(Array.from(res.outputs['x']?.data as Float32Array)).toEqual([5, 6, 7]);
}

describe('Google Cloud workload identity federation from AWS credentials', () => {
  it('Vertex AI rawPredict with the federated token: IMDSv2 keys, a verified GetCallerIdentity, one exchange', async () => {
    const client = createProviderClient(endpoint(credentialConfig()));
    try {
      await predict(client);
      await predict(client);
      expect(sts.exchanges).toEqual([expect.objectContaining({ status: 200 })]);
      const token = sts.exchanges[0]?.accessToken;
      expect(vertex.calls).toEqual([
        { path: '/v1/projects/proj/locations/europe-west4/endpoints/ep1:rawPredict', authorization: `Bearer ${token}`, status: 200 },
        { path: '/v1/projects/proj/locations/europe-west4/endpoints/ep1:rawPredict', authorization: `Bearer ${token}`, status: 200 },
      ]);
      // The AWS source went through IMDSv2: a session token first, then region, role and keys.
      expect(imds.reads).toContain('PUT /latest/api/token');
      expect(imds.reads).toContain('GET /latest/meta-data/iam/security-credentials/tandem-edge-instance');
      expect(sts.exchanges[0]?.accessKeyId).toBe([...imds.ledger.keys.keys()][0]);
    } finally {
      await client.close();
    }
  });

  it('a GCS upload from the result store carries the federated token', async () => {
    const store = createStore('results-eu', gcsDecl(), { gcs: { identity: { gcp: { credentialConfigFile: credentialConfig() } } } });
    try {
      await store.put('ab/result-1.tde', new Uint8Array([1, 2, 3]));
      expect([...(gcs.objects.get('ab/result-1.tde')?.body ?? [])]).toEqual([1, 2, 3]);
      expect(sts.exchanges).toEqual([expect.objectContaining({ status: 200 })]);
      expect(gcs.calls.length).toBeGreaterThan(0);
      expect(gcs.calls.every((c) => c.status === 200 && c.authorization === `Bearer ${sts.exchanges[0]?.accessToken ?? ''}`)).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('tokens are kept while fresh and exchanged again while still valid, within five minutes of expiry', async () => {
    // Five minutes and two seconds: fresh for two seconds, then inside the library's
    // five-minute window: replaced, while the service would still take it.
    sts.lifetimeSeconds = 302;
    const client = createProviderClient(endpoint(credentialConfig()));
    try {
      await predict(client);
      await predict(client);
      expect(sts.exchanges).toHaveLength(1);
      await sleep(2_300);
      await predict(client);
      const tokens = sts.exchanges.map((e) => e.accessToken);
      expect(tokens.length).toBeGreaterThanOrEqual(2);
      expect(new Set(tokens).size).toBe(tokens.length);
      expect(sts.accepts(`Bearer ${tokens[0] ?? ''}`)).toBe('ok');
      expect(vertex.calls.every((c) => c.status === 200)).toBe(true);
      expect(vertex.calls.at(-1)?.authorization).toBe(`Bearer ${tokens.at(-1) ?? ''}`);
    } finally {
      await client.close();
    }
  });

  it('short-lived tokens and rotating AWS keys: a client idle past both expiries carries on with fresh ones', async () => {
    sts.lifetimeSeconds = 2;
    imds.lifetimeSeconds = 2;
    const client = createProviderClient(endpoint(credentialConfig()));
    try {
      await predict(client);
      const first = sts.exchanges.at(-1);
      await sleep(2_200);
      // The first token and the AWS keys behind it have lapsed: the services would refuse them.
      expect(sts.accepts(`Bearer ${first?.accessToken ?? ''}`)).toBe('expired');
      await predict(client);
      const last = sts.exchanges.at(-1);
      expect(last?.accessToken).not.toBe(first?.accessToken);
      expect(last?.accessKeyId).not.toBe(first?.accessKeyId);
      expect(sts.exchanges.every((e) => e.status === 200)).toBe(true);
      expect(vertex.calls.every((c) => c.status === 200)).toBe(true);
    } finally {
      await client.close();
    }
  });

  const refusals = [
    { what: 'expired AWS keys', arrange: () => { imds.serveExpired = true; }, config: {}, status: 400, serverCode: 'invalid_grant', reason: 'expired-token' },
    { what: 'a configuration for another pool provider (wrong audience)', arrange: () => undefined, config: { audience: '//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/other/providers/x' }, status: 400, serverCode: 'invalid_target', reason: 'wrong-audience' },
    { what: 'an AWS role the attribute condition refuses', arrange: () => { allowed.splice(0, allowed.length); }, config: {}, status: 403, serverCode: 'unauthorized_client', reason: 'access-denied' },
  ];
  for (const r of refusals) {
    it(`${r.what}: a final PROVIDER_AUTH (reason ${r.reason}), STORE_AUTH for the store, nothing sent to either`, async () => {
      r.arrange();
      const file = credentialConfig(r.config);
      const client = createProviderClient(endpoint(file));
      try {
        const error = await client.infer({ model: 'cls', inputs: input }, { deadline: Date.now() + 20_000 }).then(() => undefined, (e: unknown) => e);
        expect(error).toBeInstanceOf(ProviderError);
        expect(error).toMatchObject({ code: 'PROVIDER_AUTH', retryable: false, status: r.status, details: { endpoint: 'vx', identity: 'gcp', serverCode: r.serverCode, reason: r.reason } });
      } finally {
        await client.close();
      }
      const store = createStore('results-eu', gcsDecl(), { gcs: { identity: { gcp: { credentialConfigFile: file } } } });
      try {
        await expect(store.put('ab/x.tde', new Uint8Array([1]))).rejects.toMatchObject({ code: 'STORE_AUTH', details: { store: 'results-eu', reason: r.reason } });
      } finally {
        await store.close();
      }
      expect(sts.exchanges.map((e) => [e.status, e.error])).toEqual([[r.status, r.serverCode], [r.status, r.serverCode]]);
      expect(vertex.calls).toEqual([]);
      expect(gcs.calls).toEqual([]);
    });
  }

  it('a configuration with a secret in it, or not for federation, is refused before anything is asked (PROVIDER_CONFIG)', async () => {
    const keyed = credentialConfig({ type: 'service_account', private_key: '-----BEGIN PRIVATE KEY-----' });
    const client = createProviderClient(endpoint(keyed));
    try {
      await expect(client.infer({ model: 'cls', inputs: input })).rejects.toMatchObject({ code: 'PROVIDER_CONFIG', message: expect.stringMatching(/holds a secret \(private_key\)/) as unknown });
    } finally {
      await client.close();
    }
    const user = credentialConfig({ type: 'authorized_user' });
    const other = createProviderClient(endpoint(user));
    try {
      await expect(other.infer({ model: 'cls', inputs: input })).rejects.toMatchObject({ code: 'PROVIDER_CONFIG', message: expect.stringMatching(/not "external_account"/) as unknown });
    } finally {
      await other.close();
    }
    expect(sts.exchanges).toEqual([]);
    expect(imds.reads).toEqual([]);
  });
});

describe('federation behind a proxy', () => {
  let proxy: ConnectProxy;
  beforeAll(async () => {
    proxy = await new ConnectProxy().start();
  });
  afterAll(async () => {
    await proxy.stop();
  });
  beforeEach(() => proxy.reset());
  const stsHost = (): string => new URL(sts.url).host;

  it('Vertex AI: the STS exchange goes through the endpoint\'s proxy as its calls do, and direct when NO_PROXY names the token service', async () => {
    const client = createProviderClient({ ...endpoint(credentialConfig()), proxy: proxy.url() });
    try {
      await predict(client);
      await predict(client);
      expect(sts.exchanges).toHaveLength(1);
      // The library's own STS transporter would have gone direct.
      expect(proxy.count(stsHost())).toBe(1);
      expect(proxy.count(new URL(vertex.url).host)).toBeGreaterThan(0);
    } finally {
      await client.close();
    }
    proxy.reset();
    sts.exchanges.length = 0;
    const direct = createProviderClient({ ...endpoint(credentialConfig()), proxyEnv: { https: proxy.url(), http: proxy.url(), noProxy: stsHost() } });
    try {
      await predict(direct);
      expect(sts.exchanges).toHaveLength(1);
      expect(proxy.count(stsHost())).toBe(0);
      expect(proxy.count(new URL(vertex.url).host)).toBeGreaterThan(0);
    } finally {
      await direct.close();
    }
  });

  it('a GCS store: the STS exchange goes through the store\'s proxy', async () => {
    const store = createStore('results-eu', gcsDecl(), { gcs: { identity: { gcp: { credentialConfigFile: credentialConfig() } }, proxy: proxy.url() } });
    try {
      await store.put('ab/result-proxied.tde', new Uint8Array([4, 5]));
      expect([...(gcs.objects.get('ab/result-proxied.tde')?.body ?? [])]).toEqual([4, 5]);
      expect(sts.exchanges).toHaveLength(1);
      expect(proxy.count(stsHost())).toBe(1);
    } finally {
      await store.close();
    }
  });
});
